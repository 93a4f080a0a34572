package mosaic

import (
	"context"
	"testing"

	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// Score takes the score its own cycle's Filter left, and only while the
// node's view is the one Filter read: not another cycle's (another kind
// of pod scores the node otherwise), not one from before a binding.
func TestFilterScoresAreTheCycles(t *testing.T) {
	p, ni := benchNode(t, 8, benchFills[1].fill)
	ctx := context.Background()
	small := benchPod("small", "1", "4096", "10", false)
	whole := benchPod("whole", "4", "", "100", false)
	want := func(st fwk.CycleState) int64 {
		s, _ := getState(st)
		score, _ := placement.ScoreFit(&p.cache.nodeView("n").node, s.req, p.placeOpts, s.policy)
		return score
	}
	check := func(what string, st fwk.CycleState) {
		t.Helper()
		got, status := p.Score(ctx, st, nil, ni)
		if w := want(st); !status.IsSuccess() || got != w {
			t.Errorf("%s: Score %d %v, placement %d", what, got, status, w)
		}
	}

	a := prefilteredT(t, p, small)
	if st := p.Filter(ctx, a, small, ni); !st.IsSuccess() {
		t.Fatal(st)
	}
	s, _ := getState(a)
	if _, ok := p.cache.filterScore(ni.Node(), s.stamp); !ok {
		t.Fatal("Filter left no score for its cycle")
	}
	check("after Filter", a)

	// Another cycle, of a pod the node scores otherwise, has not filtered.
	b := prefilteredT(t, p, whole)
	if want(b) == want(a) {
		t.Fatalf("the two pods score the node alike (%d): the test cannot tell them apart", want(a))
	}
	check("another cycle's Score", b)

	// A binding between Filter and Score publishes a new view.
	c := prefilteredT(t, p, whole)
	if st := p.Filter(ctx, c, whole, ni); !st.IsSuccess() {
		t.Fatal(st)
	}
	before := want(c)
	for i, card := range []string{"GPU-01", "GPU-03", "GPU-05"} {
		p.cache.updatePod(klog.Background(), boundPod(t, "b"+card, "n", testAlloc("n", card, int64(20000+i))))
	}
	if want(c) == before {
		t.Fatal("the bindings did not change the node's score: the test cannot tell the views apart")
	}
	check("after a binding", c)
}

// The table of scores grows with the nodes, and a slot written before it
// grew is found in the new table.
func TestScoresGrow(t *testing.T) {
	c := newUsageCache(device.DefaultNodeConfig())
	logger := klog.Background()
	c.setNode(logger, testNode(t, "first", ""))
	first := c.viewOf(testNode(t, "first", ""))
	c.leaveScore(first, 7, 42)
	for i := range 200 {
		c.setNode(logger, testNode(t, "n"+string(rune('a'+i%26))+string(rune('a'+i/26)), ""))
	}
	if got := len(*c.scores.Load()); got < len(c.nodes) {
		t.Fatalf("%d slots for %d nodes", got, len(c.nodes))
	}
	obj := testNode(t, "first", "")
	if score, ok := c.filterScore(obj, 7); !ok || score != 42 {
		t.Errorf("after growing: %d %v, want 42", score, ok)
	}
	if _, ok := c.filterScore(obj, 8); ok {
		t.Error("another cycle's stamp found the score")
	}
}
