package mosaic

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// Every field placement reads changes the key; the containers' names, which
// it does not read, do not.
func TestRequestKey(t *testing.T) {
	base := func() *device.PodRequest {
		return &device.PodRequest{Containers: []device.ContainerRequest{{Name: "a", Vendor: device.VendorNVIDIA, Count: 1, MemoryMiB: 4096, Cores: 10}}}
	}
	opts := placement.Options{GPUPolicy: device.PolicySpread, NUMA: "best-effort"}
	key := requestKey(base(), opts, device.PolicyBinpack)
	renamed := base()
	renamed.Containers[0].Name = "b"
	if requestKey(renamed, opts, device.PolicyBinpack) != key {
		t.Error("a container's name changed the key")
	}
	changes := map[string]func(r *device.PodRequest, o *placement.Options, p *device.Policy){
		"init": func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) { r.Containers[0].Init = true },
		"vendor": func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) {
			r.Containers[0].Vendor = device.VendorAscend
		},
		"model":          func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) { r.Containers[0].Model = "910B3" },
		"count":          func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) { r.Containers[0].Count = 2 },
		"memory":         func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) { r.Containers[0].MemoryMiB = 4097 },
		"memory percent": func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) { r.Containers[0].MemoryPercent = 10 },
		"cores":          func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) { r.Containers[0].Cores = 11 },
		"template":       func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) { r.Containers[0].Template = "vir02" },
		"second": func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) {
			r.Containers = append(r.Containers, r.Containers[0])
		},
		"use types": func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) {
			r.Selector.UseTypes = []string{"H200"}
		},
		"no use types": func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) {
			r.Selector.NoUseTypes = []string{"H200"}
		},
		"use uuids": func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) {
			r.Selector.UseUUIDs = []string{"GPU-1"}
		},
		"no use uuids": func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) {
			r.Selector.NoUseUUIDs = []string{"GPU-1"}
		},
		"types split": func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) {
			r.Selector.UseTypes = []string{"H2", "00"}
		},
		"numa bind":    func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) { r.NUMABind = true },
		"gpu policy":   func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) { r.GPUPolicy = device.PolicyBinpack },
		"topology":     func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) { r.Topology = "required" },
		"profile gpu":  func(_ *device.PodRequest, o *placement.Options, _ *device.Policy) { o.GPUPolicy = device.PolicyBinpack },
		"profile numa": func(_ *device.PodRequest, o *placement.Options, _ *device.Policy) { o.NUMA = "strict" },
		"node policy":  func(_ *device.PodRequest, _ *placement.Options, p *device.Policy) { *p = device.PolicySpread },
		"quote in a type": func(r *device.PodRequest, _ *placement.Options, _ *device.Policy) {
			r.Selector.UseTypes = []string{`"("`}
		},
	}
	seen := map[string]string{key: "base"}
	for name, change := range changes {
		r, o, p := base(), opts, device.PolicyBinpack
		change(r, &o, &p)
		k := requestKey(r, o, p)
		if other, dup := seen[k]; dup {
			t.Errorf("%s gives the key of %s: %s", name, other, k)
		}
		seen[k] = name
	}
}

// Filter's and Score's answers, remembered or not, are placement's on the
// node as the cache holds it at that moment, through pods bound and
// deleted and more kinds of pods than a view remembers.
func TestMemoAnswersAsPlacement(t *testing.T) {
	p, ni := benchNode(t, 8, benchFills[0].fill)
	ctx := context.Background()
	logger := klog.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var pods []*v1.Pod
	for i := range memoSize + 8 {
		mem := fmt.Sprint(4096 + 4096*(i%12))
		pods = append(pods, benchPod(fmt.Sprint("p", i), fmt.Sprint(1+i%3), mem, fmt.Sprint(10+10*(i%2)), i%5 == 0))
	}
	var bound []types.UID
	hits, fits, rejects := 0, 0, 0
	for step := range 2000 {
		// Change the node now and then: bind a share (up to 70 of the 80
		// slots), or delete one.
		switch r := rng.IntN(40); {
		case r < 3 && len(bound) < 70:
			uid := types.UID(fmt.Sprint("b", step))
			card := fmt.Sprintf("GPU-%02d", rng.IntN(8))
			p.cache.updatePod(logger, boundPod(t, string(uid), "n", testAlloc("n", card, int64(2048+rng.IntN(16000)))))
			bound = append(bound, uid)
		case r == 3 && len(bound) > 0:
			i := rng.IntN(len(bound))
			p.cache.deletePod(bound[i])
			bound = append(bound[:i], bound[i+1:]...)
		}
		pod := pods[rng.IntN(len(pods))]
		v := p.cache.nodeView("n")
		state := framework.NewCycleState()
		_, pre := p.PreFilter(ctx, state, pod, []fwk.NodeInfo{ni})
		s, _ := getState(state)
		if _, known := v.memo.verdict(s.id); known {
			hits++
		}
		want := placement.Check(&v.node, s.req, p.placeOpts)
		// The one node's holders are all of the pod's priority: PreFilter
		// rejects exactly the pods that fit nowhere.
		if pre.IsSuccess() != want.Fits {
			t.Fatalf("step %d, pod %s: PreFilter %v, placement %+v", step, pod.Name, pre, want)
		}
		got := p.Filter(ctx, state, pod, ni)
		if got.IsSuccess() != want.Fits || (!want.Fits && fmt.Sprint(got.Reasons()) != fmt.Sprint(want.Reasons)) {
			t.Fatalf("step %d, pod %s: Filter %v, placement %+v", step, pod.Name, got, want)
		}
		if !want.Fits {
			rejects++
			continue
		}
		fits++
		wantScore, _ := placement.ScoreFit(&v.node, s.req, p.placeOpts, p.args.NodePolicy)
		for range 2 { // placed, then remembered
			if score, st := p.Score(ctx, state, pod, ni); !st.IsSuccess() || score != wantScore {
				t.Fatalf("step %d, pod %s: Score %d %v, placement %d", step, pod.Name, score, st, wantScore)
			}
		}
	}
	t.Logf("%d remembered, %d fits, %d rejected", hits, fits, rejects)
	if hits < 500 || fits < 200 || rejects < 100 {
		t.Errorf("%d remembered, %d fits, %d rejected of 2000: the test did not exercise the memo both ways", hits, fits, rejects)
	}
}

// A node adjusted by preemption's dry run is placed anew and leaves the
// view's memo as it was.
func TestMemoSkipsAdjustedNodes(t *testing.T) {
	p, ni := benchNode(t, 8, benchFills[0].fill)
	ctx := context.Background()
	pod := benchPod("whole", "8", "", "100", false)
	dry := prefilteredT(t, p, pod)
	s, _ := getState(dry)
	// The dry run holds a share on every card.
	for i := range 8 {
		s.adjust(s.added, "n", map[string]device.Usage{fmt.Sprintf("GPU-%02d", i): {MemoryMiB: 1024, Cores: 10, Slots: 1}})
	}
	if st := p.Filter(ctx, dry, pod, ni); st.IsSuccess() {
		t.Fatal("eight whole cards fit beside a share on each card")
	}
	if v, known := p.cache.nodeView("n").memo.verdict(s.id); known && !v.Fits {
		t.Error("the adjusted node's verdict was remembered")
	}
	if st := p.Filter(ctx, prefilteredT(t, p, pod), pod, ni); !st.IsSuccess() {
		t.Errorf("on the node as it is: %v", st)
	}
}

// A view that forgot an answer (more requests than it remembers) places
// again; the memo never grows past its bound.
func TestMemoBound(t *testing.T) {
	var m answers
	for i := range uint64(3 * memoSize) {
		m.putVerdict(i+1, placement.Verdict{Fits: i%2 == 0})
		m.putScore(i+1, int64(i))
	}
	kept := 0
	for i := range m.words {
		if m.words[i].Load() != 0 {
			kept++
		}
	}
	if kept != memoSize {
		t.Fatalf("%d answers kept, bound %d", kept, memoSize)
	}
	if _, ok := m.verdict(1); ok {
		t.Error("the oldest answer is still there")
	}
	last := uint64(3*memoSize - 1)
	v, ok := m.verdict(last)
	s, sok := m.score(last)
	if !ok || !v.Fits || !sok || s != int64(last-1) {
		t.Errorf("the newest answer: %+v %v, score %d %v", v, ok, s, sok)
	}
}

// Equal keys get one number, different keys different ones, and a table
// started afresh never hands out a number again.
func TestRequestIDs(t *testing.T) {
	a, b := requestID("test-a"), requestID("test-b")
	if a == 0 || b == 0 || a == b || requestID("test-a") != a {
		t.Fatalf("ids %d %d, again %d", a, b, requestID("test-a"))
	}
	seen := map[uint64]bool{a: true, b: true}
	for i := range maxRequestIDs + 10 {
		id := requestID(fmt.Sprint("test-fill-", i))
		if seen[id] {
			t.Fatalf("number %d handed out twice", id)
		}
		seen[id] = true
	}
	if again := requestID("test-a"); seen[again] {
		t.Errorf("after the table started afresh, test-a got %d (was %d)", again, a)
	}
}

var _ fwk.FilterPlugin = (*Mosaic)(nil)

// A refusal read while other answers replace it carries its own reasons,
// never another answer's: writers cycle through more requests than the
// memo holds while readers ask for each.
func TestMemoReasonsMatchTheirAnswer(t *testing.T) {
	var m answers
	const ids = 4 * memoSize
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range 2000 {
				id := uint64((i*7+w)%ids + 1)
				if w%2 == 0 {
					m.putVerdict(id, placement.Verdict{Reasons: []string{fmt.Sprint(id)}, Unresolvable: id%2 == 0})
					continue
				}
				if v, ok := m.verdict(id); ok && (v.Fits || len(v.Reasons) != 1 || v.Reasons[0] != fmt.Sprint(id) || v.Unresolvable != (id%2 == 0)) {
					errs <- fmt.Sprintf("request %d read as %+v", id, v)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
