package mosaic

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// walkTotals is what the metrics reported before the totals were kept: a
// walk of every node's cards and every pod.
func walkTotals(c *usageCache) (map[modelKey]modelTotals, int, int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	models := map[modelKey]modelTotals{}
	var assumed, bound int
	for _, e := range c.pods {
		if e.assumed {
			assumed++
		} else {
			bound++
		}
	}
	for _, n := range c.nodes {
		for _, s := range n.view.sumCards() {
			t := models[s.key]
			t.add(s.modelTotals, 1)
			models[s.key] = t
		}
	}
	return models, assumed, bound
}

// The totals the cache keeps match a walk of its nodes and pods after
// every step of a long mixed sequence: pods assumed, bound, forgotten,
// deleted and moved; inventories replaced by another model, made invalid,
// deleted and restored.
func TestTotalsFollowTheCache(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	c := newUsageCache(device.NodeConfig{SplitCount: 10, MemoryScaling: 1, CoreScaling: 1})
	h100 := func(t *testing.T) string {
		raw, err := device.EncodeInventory(&device.Inventory{Devices: []device.Device{
			{UUID: "GPU-0", Index: 0, Vendor: device.VendorNVIDIA, Model: "H100", MemoryMiB: 80000, Healthy: true},
			{UUID: "GPU-1", Index: 1, Vendor: device.VendorNVIDIA, Model: "H100", MemoryMiB: 80000, Healthy: true},
			{UUID: "GPU-2", Index: 2, Vendor: device.VendorNVIDIA, Model: "H100", MemoryMiB: 80000, Healthy: true},
		}, NRI: true})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}(t)
	nodes := []string{"n0", "n1", "n2", "n3"}
	for _, n := range nodes {
		c.setNode(logger, testNode(t, n, ""))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 2000 {
		node := nodes[rng.IntN(len(nodes))]
		uid := fmt.Sprintf("p%d", rng.IntN(12))
		card := fmt.Sprintf("GPU-%d", rng.IntN(2))
		var what string
		switch op := rng.IntN(8); op {
		case 0, 1:
			what = "assume " + uid + " on " + node
			c.assume(types.UID(uid), testAlloc(node, card, int64(1+rng.IntN(300))), 0)
		case 2, 3:
			what = "bind " + uid + " on " + node
			c.updatePod(logger, boundPod(t, uid, node, testAlloc(node, card, int64(1+rng.IntN(300)))))
		case 4:
			what = "forget " + uid
			c.forget(types.UID(uid))
		case 5:
			what = "delete " + uid
			c.deletePod(types.UID(uid))
		case 6:
			raws := []string{"", h100, "{not json"}
			raw := raws[rng.IntN(len(raws))]
			what = "inventory of " + node
			if raw == "" {
				c.setNode(logger, testNode(t, node, ""))
			} else {
				c.setNode(logger, testNode(t, node, raw))
			}
		case 7:
			what = "delete node " + node
			c.deleteNode(testNode(t, node, ""))
		}
		gotModels, gotAssumed, gotBound := c.totals()
		wantModels, wantAssumed, wantBound := walkTotals(c)
		if !maps.Equal(gotModels, wantModels) || gotAssumed != wantAssumed || gotBound != wantBound {
			t.Fatalf("step %d (%s): totals %v, %d assumed, %d bound; the walk gives %v, %d, %d",
				step, what, gotModels, gotAssumed, gotBound, wantModels, wantAssumed, wantBound)
		}
	}
	models, _, _ := c.totals()
	if len(models) == 0 {
		t.Fatal("the sequence ended with no cards: it tests little")
	}
}
