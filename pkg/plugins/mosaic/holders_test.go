package mosaic

import (
	"context"
	"fmt"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// In a pod-group cycle the NodeInfo says which bound pods hold cards: a
// full node whose NodeInfo lacks its holders (pod-group preemption removed
// them) fits, with them it does not; a single-pod cycle reads the cache
// alone, whatever the NodeInfo holds.
func TestFilterHonoursTheNodeInfoInPodGroupCycles(t *testing.T) {
	ctx := context.Background()
	full := benchFills[3]
	holders := func(ni fwk.NodeInfo, cards int) {
		t.Helper()
		for i := range cards {
			for s := range 10 {
				uid := fmt.Sprintf("fill-%d-%d", i, s)
				addPod(t, ni, uid)
			}
		}
	}
	for _, tc := range []struct {
		name        string
		group       bool
		withHolders bool
		wantFit     bool
	}{
		{name: "pod-group cycle, holders removed", group: true, wantFit: true},
		{name: "pod-group cycle, holders present", group: true, withHolders: true},
		{name: "single-pod cycle, holders removed"},
		{name: "single-pod cycle, holders present", withHolders: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ni := benchNode(t, 8, full.fill)
			if tc.withHolders {
				holders(ni, 8)
			}
			pod := benchRequests[1].pod()
			state := framework.NewCycleState()
			if tc.group {
				state.SetPodGroupSchedulingCycle(framework.NewCycleState())
			}
			if _, s := p.PreFilter(ctx, state, pod, nil); !s.IsSuccess() {
				t.Fatal(s)
			}
			if got := p.Filter(ctx, state, pod, ni).IsSuccess(); got != tc.wantFit {
				t.Errorf("fits = %v, want %v", got, tc.wantFit)
			}
		})
	}
}

// Pod-group preemption puts a victim back in the NodeInfo and calls
// AddPod: the victim counts once, by its presence, not again as a delta.
func TestAddPodOfABoundHolderCountsOnce(t *testing.T) {
	ctx := context.Background()
	// One slot left on card 0: every card holds ten shares but card 0's
	// first share is a victim removed from the NodeInfo.
	p, ni := benchNode(t, 1, benchFills[3].fill)
	for s := 1; s < 10; s++ {
		uid := fmt.Sprintf("fill-0-%d", s)
		addPod(t, ni, uid)
	}
	pod := benchRequests[0].pod()
	state := framework.NewCycleState()
	state.SetPodGroupSchedulingCycle(framework.NewCycleState())
	if _, s := p.PreFilter(ctx, state, pod, nil); !s.IsSuccess() {
		t.Fatal(s)
	}
	if s := p.Filter(ctx, state, pod, ni); !s.IsSuccess() {
		t.Fatalf("with the victim removed: %v, want a fit", s)
	}
	vi := addPod(t, ni, "fill-0-0")
	if s := p.AddPod(ctx, state, pod, vi, ni); !s.IsSuccess() {
		t.Fatal(s)
	}
	if s, err := getState(state); err != nil || len(s.added["n"]) != 0 {
		t.Errorf("AddPod of a bound holder left the delta %v (%v), want none", s.added["n"], err)
	}
	if s := p.Filter(ctx, state, pod, ni); s.IsSuccess() {
		t.Error("with the victim back the full card still fits")
	}
}

// addPod puts a pod of that name and UID, bound to node n, in ni.
func addPod(t *testing.T, ni fwk.NodeInfo, uid string) fwk.PodInfo {
	t.Helper()
	pi, err := framework.NewPodInfo(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: uid, UID: types.UID(uid)}, Spec: v1.PodSpec{NodeName: "n"}})
	if err != nil {
		t.Fatal(err)
	}
	ni.AddPodInfo(pi)
	return pi
}

// A change publishes the node's view once, and the list of bound holders
// is rebuilt only when a bound holder came or went: an assumed pod (what
// Reserve adds) leaves the last view's list as it was.
func TestViewsPublishedOncePerChange(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	c := newUsageCache(device.NodeConfig{SplitCount: 10, MemoryScaling: 1, CoreScaling: 1})
	c.setNode(logger, testNode(t, "n", ""))
	c.setNode(logger, testNode(t, "m", ""))
	gen := func(name string) uint32 { return c.nodes[name].gen }
	uids := func(v *nodeView) []types.UID {
		var out []types.UID
		for _, h := range v.bound {
			out = append(out, h.uid)
		}
		return out
	}
	c.updatePod(logger, boundPod(t, "a", "n", testAlloc("n", "GPU-0", 100)))
	before, g := c.nodeView("n"), gen("n")
	if !slices.Equal(uids(before), []types.UID{"a"}) {
		t.Fatalf("bound holders %v, want [a]", uids(before))
	}
	c.assume("b", testAlloc("n", "GPU-1", 100), 0)
	after := c.nodeView("n")
	if gen("n") != g+1 {
		t.Errorf("assuming a new pod published %d views, want 1", gen("n")-g)
	}
	if len(after.bound) != 1 || &after.bound[0] != &before.bound[0] {
		t.Errorf("assuming a pod rebuilt the bound holders (%v)", uids(after))
	}
	if after.node.Cards[1].Used.MemoryMiB != 100 {
		t.Errorf("the assumed share is not in the view: %+v", after.node.Cards[1].Used)
	}
	// b binds: one publish, and the list now holds it.
	g = gen("n")
	c.updatePod(logger, boundPod(t, "b", "n", testAlloc("n", "GPU-1", 100)))
	if gen("n") != g+1 {
		t.Errorf("binding an assumed pod published %d views, want 1", gen("n")-g)
	}
	if got := uids(c.nodeView("n")); !slices.Equal(got, []types.UID{"a", "b"}) {
		t.Errorf("bound holders %v, want [a b]", got)
	}
	// c, assumed on n, turns up bound on m: both nodes publish once.
	c.assume("c", testAlloc("n", "GPU-1", 100), 0)
	gn, gm := gen("n"), gen("m")
	c.updatePod(logger, boundPod(t, "c", "m", testAlloc("m", "GPU-0", 100)))
	if gen("n") != gn+1 || gen("m") != gm+1 {
		t.Errorf("a pod bound elsewhere than assumed published %d and %d views, want 1 each", gen("n")-gn, gen("m")-gm)
	}
	if c.nodeView("n").node.Cards[1].Used.MemoryMiB != 100 {
		t.Errorf("n still holds c's assumed share: %+v", c.nodeView("n").node.Cards[1].Used)
	}
	if got := uids(c.nodeView("m")); !slices.Equal(got, []types.UID{"c"}) {
		t.Errorf("bound holders of m: %v, want [c]", got)
	}
	c.deletePod("a")
	if got := uids(c.nodeView("n")); !slices.Equal(got, []types.UID{"b"}) {
		t.Errorf("bound holders after a's delete: %v, want [b]", got)
	}
}
