package mosaic

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
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
