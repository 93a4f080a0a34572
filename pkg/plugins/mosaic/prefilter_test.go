package mosaic

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

func testPlugin(t *testing.T) *Mosaic {
	t.Helper()
	args, err := decodeArgs(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Mosaic{
		args:      *args,
		parseOpts: device.ParseOptions{AscendModels: args.AscendModels},
		placeOpts: placement.Options{GPUPolicy: args.GPUPolicy, NUMA: placement.NUMAPolicy(args.NUMAPolicy)},
		cache:     newUsageCache(args.NodeDefaults()),
	}
}

func gpuPod(name string, mem string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: k8stypes.UID("uid-" + name)}, Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c",
		Resources: v1.ResourceRequirements{Limits: v1.ResourceList{"nvidia.com/gpu": resource.MustParse("1"), "nvidia.com/gpumem": resource.MustParse(mem)}}}}}}
}

// Preemption's dry runs: removing a victim frees its share; a nominated
// pod, not yet bound, holds what it would take.
func TestPreemptionDryRun(t *testing.T) {
	logger, ctx := ktesting.NewTestContext(t)
	p := testPlugin(t)
	node := testNode(t, "n", "") // two 1000 MiB cards
	p.cache.setNode(logger, node)
	victim := boundPod(t, "victim", "n", testAlloc("n", "GPU-0", 1000))
	p.cache.updatePod(logger, victim)
	p.cache.updatePod(logger, boundPod(t, "other", "n", testAlloc("n", "GPU-1", 1000)))

	ni := framework.NewNodeInfo()
	ni.SetNode(node)
	state := framework.NewCycleState()
	preemptor := gpuPod("preemptor", "800")
	// Of the holders' priority, it could not preempt them: PreFilter
	// rejects it at once, for every node.
	if _, s := p.PreFilter(ctx, state, preemptor, []fwk.NodeInfo{ni}); !noRoomAnywhere(s) || !strings.Contains(s.Message(), "1 insufficient GPU memory") {
		t.Fatalf("a pod that fits nowhere and cannot preempt: %v", s)
	}
	never := v1.PreemptNever
	prio := int32(10)
	preemptor.Spec.Priority, preemptor.Spec.PreemptionPolicy = &prio, &never
	if _, s := p.PreFilter(ctx, framework.NewCycleState(), preemptor, []fwk.NodeInfo{ni}); !noRoomAnywhere(s) {
		t.Fatalf("a higher-priority pod that never preempts: %v", s)
	}
	preemptor.Spec.PreemptionPolicy = nil
	state = framework.NewCycleState()
	if _, s := p.PreFilter(ctx, state, preemptor, []fwk.NodeInfo{ni}); !s.IsSuccess() {
		t.Fatal(s)
	}
	if s := p.Filter(ctx, state, preemptor, ni); s.IsSuccess() {
		t.Fatal("fits on two full cards")
	}
	vi, _ := framework.NewPodInfo(victim)
	if s := p.RemovePod(ctx, state, preemptor, vi, ni); !s.IsSuccess() {
		t.Fatal(s)
	}
	if s := p.Filter(ctx, state, preemptor, ni); !s.IsSuccess() {
		t.Fatalf("does not fit after the victim is removed: %v", s)
	}
	// A nominated pod of higher priority, asking for 500 MiB, takes the
	// freed room in the dry run: the preemptor no longer fits.
	clone := state.Clone()
	ni2, _ := framework.NewPodInfo(gpuPod("nominated", "500"))
	if s := p.AddPod(ctx, clone, preemptor, ni2, ni); !s.IsSuccess() {
		t.Fatal(s)
	}
	if s := p.Filter(ctx, clone, preemptor, ni); s.IsSuccess() {
		t.Error("the nominated pod's share was not held")
	}
	// The original state is untouched by the clone.
	if s := p.Filter(ctx, state, preemptor, ni); !s.IsSuccess() {
		t.Errorf("the clone's AddPod leaked into the original state: %v", s)
	}
}

// nominator is a framework handle that knows only the nominated pods.
type nominator struct {
	fwk.Handle
	pods []fwk.PodInfo
}

func (n nominator) NominatedPodsForNode(string) []fwk.PodInfo { return n.pods }

// Reserve sees what Filter saw: a nominated pod of higher priority holds
// the card it was nominated for, so a lower-priority pod scheduled meanwhile
// takes another.
func TestReserveLeavesNominatedPodsTheirCards(t *testing.T) {
	logger, ctx := ktesting.NewTestContext(t)
	p := testPlugin(t)
	p.placeOpts.GPUPolicy = device.PolicySpread   // would pick the emptiest card: GPU-0
	p.cache.setNode(logger, testNode(t, "n", "")) // two 1000 MiB cards
	p.cache.updatePod(logger, boundPod(t, "other", "n", testAlloc("n", "GPU-1", 500)))
	high, low := int32(1000), int32(0)
	nominated := gpuPod("nominated", "1000") // fits only on GPU-0
	nominated.Spec.Priority = &high
	ni, _ := framework.NewPodInfo(nominated)
	p.handle = nominator{pods: []fwk.PodInfo{ni}}

	pod := gpuPod("low", "400")
	pod.Spec.Priority = &low
	state := framework.NewCycleState()
	if _, s := p.PreFilter(ctx, state, pod, nil); !s.IsSuccess() {
		t.Fatal(s)
	}
	if s := p.Reserve(ctx, state, pod, "n"); !s.IsSuccess() {
		t.Fatal(s)
	}
	s, _ := getState(state)
	if got := s.chosen.Containers[0].Devices[0].UUID; got != "GPU-1" {
		t.Errorf("the low-priority pod took %s, the card the nominated pod needs; want GPU-1", got)
	}

	// A nominated pod of lower priority holds nothing against it.
	nominated.Spec.Priority = &low
	pod2 := gpuPod("high", "400")
	pod2.Spec.Priority = &high
	state = framework.NewCycleState()
	if _, st := p.PreFilter(ctx, state, pod2, nil); !st.IsSuccess() {
		t.Fatal(st)
	}
	if st := p.Reserve(ctx, state, pod2, "n"); !st.IsSuccess() {
		t.Fatal(st)
	}
	s, _ = getState(state)
	if got := s.chosen.Containers[0].Devices[0].UUID; got != "GPU-0" {
		t.Errorf("spread placed the high-priority pod on %s, want GPU-0 (the lower nominated pod does not count)", got)
	}
}

// Device pods are signed with their parsed request, so that the scheduler
// batches pods asking alike and only those.
func TestSignPod(t *testing.T) {
	p := testPlugin(t)
	ctx := context.Background()
	sign := func(pod *v1.Pod) string {
		t.Helper()
		f, s := p.SignPod(ctx, pod)
		if !s.IsSuccess() {
			t.Fatalf("%s: %v", pod.Name, s)
		}
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	a, b, other := sign(gpuPod("a", "1000")), sign(gpuPod("b", "1000")), sign(gpuPod("c", "2000"))
	if a != b {
		t.Errorf("pods asking alike are signed apart: %s, %s", a, b)
	}
	if a == other {
		t.Errorf("pods asking for 1000 and 2000 MiB are signed alike: %s", a)
	}
	bound := gpuPod("bound", "1000")
	bound.Annotations = map[string]string{device.NUMABindAnnotation: "true"}
	if sign(bound) == a {
		t.Error("numa-bind is not part of the signature")
	}
	if f, s := p.SignPod(ctx, &v1.Pod{}); !s.IsSuccess() || f != nil {
		t.Errorf("a pod without devices: %v, %v; want no fragment", f, s)
	}
	bad := gpuPod("bad", "1000")
	bad.Spec.Containers[0].Resources.Limits["nvidia.com/gpucores"] = resource.MustParse("101")
	if _, s := p.SignPod(ctx, bad); s.IsSuccess() {
		t.Error("an invalid request was signed")
	}
}

// PreFilter's rejection reads as the framework's summary of Filter's:
// nodes per reason, the most frequent first.
func TestNoRoomReasons(t *testing.T) {
	got := noRoomReasons(map[string]int{"b": 1, "a": 1, placement.ReasonMemory: 3})
	want := []string{"3 " + placement.ReasonMemory, "1 a", "1 b", reasonNoPreemption}
	if !slices.Equal(got, want) {
		t.Errorf("reasons %q, want %q", got, want)
	}
	if !noRoomAnywhere(fwk.NewStatus(fwk.UnschedulableAndUnresolvable, got...)) || noRoomAnywhere(fwk.NewStatus(fwk.Unschedulable, got...)) {
		t.Error("noRoomAnywhere does not tell PreFilter's rejection apart")
	}
}
