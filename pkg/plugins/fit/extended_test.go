package fit

import (
	"context"
	"fmt"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"
)

func fitArgs(t *testing.T) *config.NodeResourcesFitArgs {
	args, err := DecodeArgs(nil)
	if err != nil {
		t.Fatal(err)
	}
	args.IgnoredResources = []string{"nvidia.com/gpumem"}
	args.IgnoredResourceGroups = []string{"example.org"}
	return args
}

func list(kv ...any) v1.ResourceList {
	l := v1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[v1.ResourceName(kv[i].(string))] = resource.MustParse(fmt.Sprint(kv[i+1]))
	}
	return l
}

func node(alloc v1.ResourceList, held ...v1.ResourceList) fwk.NodeInfo {
	ni := framework.NewNodeInfo()
	ni.SetNode(&v1.Node{Status: v1.NodeStatus{Allocatable: alloc}})
	for i, r := range held {
		ni.AddPod(&v1.Pod{Spec: v1.PodSpec{NodeName: "n", Containers: []v1.Container{{Name: fmt.Sprint(i), Resources: v1.ResourceRequirements{Requests: r}}}}})
	}
	return ni
}

func podOf(init, app []v1.ResourceList) *v1.Pod {
	p := &v1.Pod{}
	for i, r := range init {
		p.Spec.InitContainers = append(p.Spec.InitContainers, v1.Container{Name: fmt.Sprint("i", i), Resources: v1.ResourceRequirements{Requests: r, Limits: r}})
	}
	for i, r := range app {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: fmt.Sprint("c", i), Resources: v1.ResourceRequirements{Requests: r, Limits: r}})
	}
	return p
}

func run(t *testing.T, pl interface {
	fwk.PreFilterPlugin
	fwk.FilterPlugin
}, pod *v1.Pod, ni fwk.NodeInfo) *fwk.Status {
	t.Helper()
	state := framework.NewCycleState()
	if _, s := pl.PreFilter(context.Background(), state, pod, nil); !s.IsSuccess() {
		t.Fatalf("PreFilter: %v", s)
	}
	// Filter sees a clone, as in preemption's dry runs.
	return pl.Filter(context.Background(), state.Clone(), pod, ni)
}

// The plugin's Filter decides as the stock one, with the same code and
// reasons, on every pod and node of a grid of extended resources (counted,
// ignored, by group, on init containers), CPU, memory and pod counts.
func TestFilterAsStock(t *testing.T) {
	ctx := context.Background()
	args := fitArgs(t)
	stock, err := noderesources.NewFit(ctx, args, nil, feature.Features{})
	if err != nil {
		t.Fatal(err)
	}
	ours, err := newPlugin(ctx, args, nil, feature.Features{})
	if err != nil {
		t.Fatal(err)
	}
	nodes := []fwk.NodeInfo{
		node(list("cpu", 4, "memory", "8Gi", "pods", 10, "nvidia.com/gpu", 4, "example.com/foo", 2)),
		node(list("cpu", 4, "memory", "8Gi", "pods", 10, "nvidia.com/gpu", 4, "example.com/foo", 2), list("nvidia.com/gpu", 3, "cpu", 3)),
		node(list("cpu", 4, "memory", "8Gi", "pods", 1, "nvidia.com/gpu", 4), list("example.com/foo", 1)),
		node(list("cpu", 1, "memory", "1Gi", "pods", 10)),
	}
	var pods []*v1.Pod
	for _, gpu := range []int{0, 1, 2, 5} {
		for _, foo := range []int{0, 1, 3} {
			for _, cpu := range []string{"100m", "2"} {
				app := list("cpu", cpu, "nvidia.com/gpumem", 4000, "example.org/x", 9)
				if gpu > 0 {
					app["nvidia.com/gpu"] = resource.MustParse(fmt.Sprint(gpu))
				}
				if foo > 0 {
					app["example.com/foo"] = resource.MustParse(fmt.Sprint(foo))
				}
				pods = append(pods, podOf(nil, []v1.ResourceList{app}))
			}
		}
	}
	// An init container asking for more cards than the app containers
	// together: the pod's request is the larger.
	pods = append(pods, podOf([]v1.ResourceList{list("nvidia.com/gpu", 2)}, []v1.ResourceList{list("nvidia.com/gpu", 1), list("cpu", "100m")}))
	pods = append(pods, podOf([]v1.ResourceList{list("nvidia.com/gpu", 1)}, []v1.ResourceList{list("nvidia.com/gpu", 1), list("nvidia.com/gpu", 1)}))
	failed := 0
	for i, pod := range pods {
		for j, ni := range nodes {
			want := run(t, stock.(*noderesources.Fit), pod, ni)
			got := run(t, ours, pod, ni)
			if got.Code() != want.Code() || !sameReasons(reasons(got), reasons(want)) {
				t.Errorf("pod %d on node %d: %v %q, stock %v %q", i, j, got.Code(), reasons(got), want.Code(), reasons(want))
			}
			if !want.IsSuccess() {
				failed++
			}
		}
	}
	if failed == 0 || failed == len(pods)*len(nodes) {
		t.Fatalf("%d of %d cases rejected: the grid tests nothing", failed, len(pods)*len(nodes))
	}
}

func reasons(s *fwk.Status) []string {
	if s == nil {
		return nil
	}
	return s.Reasons()
}

func sameReasons(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// A resource that DRA serves is left to DRA on a node that does not
// advertise it, and checked on one that does.
func TestFilterLeavesDRAResources(t *testing.T) {
	s := &extendedState{wants: []want{{name: "example.com/dra", qty: 2, reason: "Insufficient example.com/dra", dra: true}}}
	if st := s.filter(nil, &allocatables{}, node(list("cpu", 1))); !st.IsSuccess() {
		t.Errorf("node without the resource: %v, want it left to DRA", st)
	}
	st := s.filter(nil, &allocatables{}, node(list("example.com/dra", 3), list("example.com/dra", 2)))
	if st.Code() != fwk.Unschedulable || !slices.Equal(reasons(st), []string{"Insufficient example.com/dra"}) {
		t.Errorf("node advertising 3 with 2 held: %v %q", st.Code(), reasons(st))
	}
	s.wants[0].dra = false
	if st := s.filter(nil, &allocatables{}, node(list("cpu", 1))); st.Code() != fwk.UnschedulableAndUnresolvable {
		t.Errorf("without DRA, a node without the resource: %v, want unresolvable", st)
	}
}

// A pod without extended resources, or already bound to a node, takes the
// stock path and leaves no state of its own.
func TestStockPath(t *testing.T) {
	ours, err := newPlugin(context.Background(), fitArgs(t), nil, feature.Features{})
	if err != nil {
		t.Fatal(err)
	}
	bound := podOf(nil, []v1.ResourceList{list("nvidia.com/gpu", 1)})
	bound.Spec.NodeName = "n"
	for name, pod := range map[string]*v1.Pod{"plain": podOf(nil, []v1.ResourceList{list("cpu", 1)}), "bound": bound} {
		state := framework.NewCycleState()
		if _, s := ours.PreFilter(context.Background(), state, pod, nil); !s.IsSuccess() {
			t.Fatal(s)
		}
		if _, err := state.Read(extendedKey); err == nil {
			t.Errorf("%s pod: extended state written", name)
		}
	}
	st := run(t, ours, bound, node(list("cpu", 4, "pods", 10)))
	if st.Code() != fwk.UnschedulableAndUnresolvable || !slices.Equal(reasons(st), []string{"Insufficient nvidia.com/gpu"}) {
		t.Errorf("bound pod on a node without cards: %v %q, want the stock verdict", st.Code(), reasons(st))
	}
}
