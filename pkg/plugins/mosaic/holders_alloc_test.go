//go:build !race

package mosaic

import (
	"context"
	"fmt"
	"testing"

	"k8s.io/kubernetes/pkg/scheduler/framework"
)

// In a pod-group cycle Filter also checks that the NodeInfo holds every
// bound pod the cache counts: when it does and the pod fits, that check
// allocates nothing either.
func TestPodGroupFilterAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	p, ni := benchNode(t, 8, benchFills[1].fill) // half the cards hold 3 shares
	for i := 0; i < 8; i += 2 {
		for s := range 3 {
			addPod(t, ni, fmt.Sprintf("fill-%d-%d", i, s))
		}
	}
	pod := benchRequests[0].pod()
	state := framework.NewCycleState()
	state.SetPodGroupSchedulingCycle(framework.NewCycleState())
	if _, s := p.PreFilter(ctx, state, pod, nil); !s.IsSuccess() {
		t.Fatal(s)
	}
	if s := p.Filter(ctx, state, pod, ni); !s.IsSuccess() {
		t.Fatalf("Filter: %v, want a fit", s)
	}
	if n := testing.AllocsPerRun(100, func() { p.Filter(ctx, state, pod, ni) }); n != 0 {
		t.Errorf("Filter allocates %v times per call in a pod-group cycle", n)
	}
}
