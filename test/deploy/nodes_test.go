package deploy

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// gpuNodes creates n API-only nodes of cards 80 GiB cards each, with the
// inventory a node agent with the default sharing config publishes and the
// capacity its kubelet reports (cards x split count), and returns their
// names. (pkg/sim does this through the agent's own publisher, but its
// NVML backend cannot be linked into a binary with Helm, whose dependencies
// load Go plugins and so bind every symbol at start.)
func gpuNodes(t *testing.T, ctx context.Context, prefix string, n, cards int) []string {
	t.Helper()
	cfg := device.DefaultNodeConfig()
	var names []string
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		inv := &device.Inventory{Config: cfg, NRI: true}
		for c := range cards {
			inv.Devices = append(inv.Devices, device.Device{UUID: fmt.Sprintf("GPU-%s-%d", name, c), Index: c, Vendor: device.VendorNVIDIA,
				Model: "NVIDIA A100-SXM4-80GB", MemoryMiB: 81920, ComputeUnits: 108, NUMA: c * 2 / cards, Healthy: true,
				PCIBus: fmt.Sprintf("0000:%02x:00.0", c+1)})
		}
		ann, err := device.EncodeInventory(inv)
		if err != nil {
			t.Fatal(err)
		}
		capacity := v1.ResourceList{v1.ResourceCPU: resource.MustParse("64"), v1.ResourceMemory: resource.MustParse("512Gi"),
			v1.ResourcePods: resource.MustParse("250"), device.ResourceNvidiaGPU: *resource.NewQuantity(int64(cards*cfg.SplitCount), resource.DecimalSI)}
		node := &v1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1.LabelHostname: name}, Annotations: map[string]string{device.InventoryAnnotation: ann}},
			Status: v1.NodeStatus{Capacity: capacity, Allocatable: capacity.DeepCopy(), Phase: v1.NodeRunning,
				Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}},
		}
		if _, err := cp.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	t.Cleanup(func() {
		for _, name := range names {
			_ = cp.Client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
		}
	})
	return names
}
