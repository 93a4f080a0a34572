package mosaic

import (
	"fmt"
	"runtime"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// BenchmarkCacheMemory reports the plugin cache's heap per 10,000 cards
// (1,250 nodes of 8 cards, as the informers deliver them) and per 10,000
// allocations (bound pods of one 4 GiB share each, eight to a node), the
// figures docs/performance.md gives for a cluster's size.
func BenchmarkCacheMemory(b *testing.B) {
	const nodes, cards, pods = 1250, 8, 10000
	args, err := decodeArgs(nil)
	if err != nil {
		b.Fatal(err)
	}
	logger := klog.Background()
	var perCards, perAllocs float64
	for b.Loop() {
		before := heapInUse()
		cache := newUsageCache(args.NodeDefaults())
		for n := range nodes {
			cache.setNode(logger, memoryNode(b, fmt.Sprintf("n%04d", n), cards))
		}
		withNodes := heapInUse()
		for i := range pods {
			node := fmt.Sprintf("n%04d", i/cards%nodes)
			uid := fmt.Sprintf("pod-%05d", i)
			a := testAlloc(node, fmt.Sprintf("GPU-%s-%d", node, i%cards), 4096)
			raw, err := device.EncodeAllocation(a)
			if err != nil {
				b.Fatal(err)
			}
			cache.updatePod(logger, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: uid, UID: types.UID(uid),
				Labels:      map[string]string{device.HandedOutLabel: "true"},
				Annotations: map[string]string{device.AllocationAnnotation: raw}}, Spec: v1.PodSpec{NodeName: node}})
		}
		withPods := heapInUse()
		perCards = float64(withNodes-before) * 10000 / (nodes * cards)
		perAllocs = float64(withPods-withNodes) * 10000 / pods
		runtime.KeepAlive(cache)
	}
	b.ReportMetric(perCards, "B/10k-cards")
	b.ReportMetric(perAllocs, "B/10k-allocs")
}

// memoryNode is a node of cards 80 GiB cards on two NUMA nodes, its
// inventory annotated as the node agent writes it.
func memoryNode(tb testing.TB, name string, cards int) *v1.Node {
	tb.Helper()
	inv := &device.Inventory{NRI: true}
	for i := range cards {
		inv.Devices = append(inv.Devices, device.Device{UUID: fmt.Sprintf("GPU-%s-%d", name, i), Index: i, Vendor: device.VendorNVIDIA,
			Model: "NVIDIA H100 80GB HBM3", MemoryMiB: 81920, NUMA: i * 2 / cards, Healthy: true})
	}
	raw, err := device.EncodeInventory(inv)
	if err != nil {
		tb.Fatal(err)
	}
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{device.InventoryAnnotation: raw}}}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
