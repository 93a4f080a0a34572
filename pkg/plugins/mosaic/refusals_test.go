package mosaic

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// A node's refusal is known, with the code and reasons placement gives,
// until the node's view is published anew: a card freed, the node fits.
func TestKnownRefusalsFollowTheView(t *testing.T) {
	p, ni := benchNode(t, 8, benchFills[1].fill)
	ctx := context.Background()
	cards := []string{"GPU-01", "GPU-03", "GPU-05", "GPU-06", "GPU-07"}
	for i, card := range cards {
		p.cache.updatePod(klog.Background(), boundPod(t, fmt.Sprint("b", i), "n", testAlloc("n", card, 60000)))
	}
	whole := benchPod("whole", "4", "", "100", false)
	state := prefilteredT(t, p, whole)
	s, _ := getState(state)
	ref := p.cache.viewOf(ni.Node())
	want := placement.Check(&ref.v.node, s.req, p.placeOpts)
	if want.Fits {
		t.Fatal("the pod fits five cards taken of eight")
	}
	first := p.Filter(ctx, state, whole, ni)
	r, ok := p.cache.knownRefusal(ref, s.id)
	if !ok {
		t.Fatal("no known refusal after Filter refused")
	}
	if r.unresolvable != want.Unresolvable || !slices.Equal(r.reasons, want.Reasons) {
		t.Errorf("known refusal %+v, placement %+v", r, want)
	}
	if _, ok := p.cache.knownFit(ref, s.id); ok {
		t.Error("a refused request is known to fit")
	}
	again := p.Filter(ctx, prefilteredT(t, p, whole), whole, ni)
	for _, st := range []*fwk.Status{first, again} {
		if st.Code() != fwk.Unschedulable || !slices.Equal(st.Reasons(), want.Reasons) {
			t.Errorf("Filter %v, want Unschedulable %v", st, want.Reasons)
		}
	}
	if first == again {
		t.Error("two Filters share one status, which the framework writes")
	}

	// Free the four cards without shares: the new view fits, and the
	// refusal is not taken for it.
	for _, uid := range []types.UID{"b0", "b1", "b2", "b4"} {
		p.cache.deletePod(uid)
	}
	if _, ok := p.cache.knownRefusal(p.cache.viewOf(ni.Node()), s.id); ok {
		t.Error("the old view's refusal is known for the new one")
	}
	if st := p.Filter(ctx, prefilteredT(t, p, whole), whole, ni); !st.IsSuccess() {
		t.Errorf("Filter after four cards freed: %v", st)
	}
}

// Refusals are numbered by code and reasons, keep their number, and stop
// being numbered, not renumbered, once the numbers are spent.
func TestRefusalsNumbered(t *testing.T) {
	var r refusals
	memory := placement.Verdict{Reasons: []string{placement.ReasonMemory}}
	a, ok := r.number(memory)
	if !ok {
		t.Fatal("first refusal not numbered")
	}
	if b, _ := r.number(placement.Verdict{Reasons: []string{placement.ReasonMemory}}); b != a {
		t.Errorf("the same refusal numbered %d then %d", a, b)
	}
	if b, _ := r.number(placement.Verdict{Reasons: []string{placement.ReasonMemory}, Unresolvable: true}); b == a {
		t.Error("an unresolvable refusal shares the resolvable one's number")
	}
	if b, _ := r.number(placement.Verdict{Reasons: []string{placement.ReasonMemory, placement.ReasonCores}}); b == a {
		t.Error("refusals with other reasons share a number")
	}
	for i := 0; ; i++ {
		if _, ok := r.number(placement.Verdict{Reasons: []string{fmt.Sprint("reason ", i)}}); !ok {
			if i+3 != maxRefusals {
				t.Errorf("%d refusals numbered, want %d", i+3, maxRefusals)
			}
			break
		}
		if i > maxRefusals {
			t.Fatal("numbers never spent")
		}
	}
	if n, ok := r.number(memory); !ok || n != a {
		t.Errorf("a numbered refusal after the numbers are spent: %d %v, want %d", n, ok, a)
	}
	got, ok := r.get(a)
	if !ok || got.unresolvable || !slices.Equal(got.reasons, memory.Reasons) {
		t.Fatalf("refusal %d: %+v %v", a, got, ok)
	}
	if cap(got.reasons) != len(got.reasons) {
		t.Error("a shared reasons list has room to append in place")
	}
	if _, ok := r.get(maxRefusals); ok {
		t.Error("a number beyond the table resolves")
	}
}
