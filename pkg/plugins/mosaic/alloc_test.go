//go:build !race

package mosaic

import (
	"context"
	"fmt"
	"testing"
)

// Filter and Score run for every node and every device pod: on a node
// that fits they must not allocate, whatever the node's fill. (The race
// detector allocates on its own, hence the build tag.)
func TestFilterAndScoreAllocateNothing(t *testing.T) {
	ctx := context.Background()
	for _, cards := range []int{8, 16} {
		for _, fill := range benchFills {
			for _, req := range benchRequests {
				t.Run(fmt.Sprintf("cards=%d/%s/%s", cards, fill.name, req.name), func(t *testing.T) {
					p, ni := benchNode(t, cards, fill.fill)
					pod := req.pod()
					state := prefilteredT(t, p, pod)
					if !p.Filter(ctx, state, pod, ni).IsSuccess() {
						t.Skip("does not fit; a rejection allocates its status")
					}
					if n := testing.AllocsPerRun(100, func() { p.Filter(ctx, state, pod, ni) }); n != 0 {
						t.Errorf("Filter allocates %v times per call", n)
					}
					if n := testing.AllocsPerRun(100, func() { p.Score(ctx, state, pod, ni) }); n != 0 {
						t.Errorf("Score allocates %v times per call", n)
					}
				})
			}
		}
	}
}
