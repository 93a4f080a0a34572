package mosaic

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// A fit Filter found is known, with its score, until the node's view is
// published anew; Filter and Score then answer for the new view.
func TestKnownFitsFollowTheView(t *testing.T) {
	p, ni := benchNode(t, 8, benchFills[1].fill)
	ctx := context.Background()
	whole := benchPod("whole", "4", "", "100", false)
	state := prefilteredT(t, p, whole)
	s, _ := getState(state)
	if st := p.Filter(ctx, state, whole, ni); !st.IsSuccess() {
		t.Fatal(st)
	}
	ref := p.cache.viewOf(ni.Node())
	want, _ := placement.ScoreFit(&ref.v.node, s.req, p.placeOpts, s.policy)
	if score, ok := p.cache.knownFit(ref, s.id); !ok || score != want {
		t.Fatalf("known fit after Filter: %d %v, placement scores %d", score, ok, want)
	}
	if score, st := p.Score(ctx, state, whole, ni); !st.IsSuccess() || score != want {
		t.Errorf("Score %d %v, placement %d", score, st, want)
	}

	// Whole-card shares on five cards leave three: the pod no longer fits.
	for i, card := range []string{"GPU-01", "GPU-03", "GPU-05", "GPU-06", "GPU-07"} {
		p.cache.updatePod(klog.Background(), boundPod(t, fmt.Sprint("b", i), "n", testAlloc("n", card, 60000)))
	}
	if _, ok := p.cache.knownFit(ref, s.id); ok {
		t.Error("the old view's fit is known for the new one")
	}
	for way := range uint64(fitWays) {
		if w := *p.cache.fits.Load().word(ref.slot, way); w != 0 {
			t.Errorf("word %d kept for the new view: %#x", way, w)
		}
	}
	// A Filter that read the old view writes after the new one is out.
	p.cache.rememberFit(ref, s.id, want)
	if _, ok := p.cache.knownFit(p.cache.viewOf(ni.Node()), s.id); ok {
		t.Error("a word written for the old view is taken for the new one")
	}
	next := prefilteredT(t, p, whole)
	if st := p.Filter(ctx, next, whole, ni); st.IsSuccess() {
		t.Error("Filter passes the pod on five cards taken of eight")
	}
}

// Requests whose numbers share a word evict each other, and one is never
// answered with the other's fit.
func TestKnownFitsNameTheirRequest(t *testing.T) {
	c := newUsageCache(device.DefaultNodeConfig())
	c.setNode(klog.Background(), testNode(t, "n", ""))
	ref := c.viewOf(testNode(t, "n", ""))
	c.rememberFit(ref, 3, 40)
	c.rememberFit(ref, 3+fitWays, 70)
	if _, ok := c.knownFit(ref, 3); ok {
		t.Error("request 3 answered from request 19's word")
	}
	if score, ok := c.knownFit(ref, 3+fitWays); !ok || score != 70 {
		t.Errorf("request 19: %d %v", score, ok)
	}
	c.rememberFit(ref, 5, fitScoreMask+1) // out of range: not kept
	if _, ok := c.knownFit(ref, 5); ok {
		t.Error("a score outside the word was kept")
	}
}

// A node without NRI holding a pod that waits for its devices refuses
// other device pods, even those its cards were known to fit.
func TestKnownFitsHonourHandout(t *testing.T) {
	p, _ := benchNode(t, 8, benchFills[0].fill)
	inv := &device.Inventory{}
	for i := range 8 {
		inv.Devices = append(inv.Devices, device.Device{UUID: fmt.Sprintf("GPU-%02d", i), Index: i, Vendor: device.VendorNVIDIA,
			Model: "NVIDIA H100 80GB HBM3", MemoryMiB: 81920, Healthy: true})
	}
	raw, err := device.EncodeInventory(inv)
	if err != nil {
		t.Fatal(err)
	}
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "plain", Annotations: map[string]string{device.InventoryAnnotation: raw}}}
	p.cache.setNode(klog.Background(), node)
	ni := framework.NewNodeInfo()
	ni.SetNode(node)
	ctx := context.Background()
	small := benchPod("small", "1", "4096", "10", false)
	if st := p.Filter(ctx, prefilteredT(t, p, small), small, ni); !st.IsSuccess() {
		t.Fatal(st)
	}
	if !p.cache.viewOf(node).quick {
		t.Error("a node without NRI and nothing awaiting is not answered from its known fits")
	}
	// The waiting pod itself passes (its own retry), which must not
	// make the node known to fit the next.
	waiting := benchPod("waiting", "1", "4096", "10", false)
	p.cache.assume(waiting.UID, testAlloc("plain", "GPU-00", 1024), 0)
	if st := p.Filter(ctx, prefilteredT(t, p, waiting), waiting, ni); !st.IsSuccess() {
		t.Fatalf("the waiting pod itself: %v", st)
	}
	st := p.Filter(ctx, prefilteredT(t, p, small), small, ni)
	if st.IsSuccess() || st.Reasons()[0] != placement.ReasonHandoutBusy {
		t.Errorf("a pod awaiting its devices on a node without NRI: Filter %v", st)
	}
}

// The table grows with the nodes and keeps what was written before.
func TestKnownFitsGrow(t *testing.T) {
	c := newUsageCache(device.DefaultNodeConfig())
	logger := klog.Background()
	c.setNode(logger, testNode(t, "first", ""))
	first := c.viewOf(testNode(t, "first", ""))
	c.rememberFit(first, 7, 42)
	for i := range 200 {
		c.setNode(logger, testNode(t, fmt.Sprint("n", i), ""))
	}
	if got := len(*c.fits.Load()); got < len(c.nodes)*fitWays {
		t.Fatalf("%d words for %d nodes", got, len(c.nodes))
	}
	if score, ok := c.knownFit(c.viewOf(testNode(t, "first", "")), 7); !ok || score != 42 {
		t.Errorf("after growing: %d %v, want 42", score, ok)
	}
}

var _ fwk.ScorePlugin = (*Mosaic)(nil)
