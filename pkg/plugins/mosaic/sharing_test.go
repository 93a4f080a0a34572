package mosaic

import (
	"fmt"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// The scheduler places on a card as many shares as its node's agent
// publishes (and advertises to the kubelet), whatever deviceSplitCount
// says; the arg counts only for a node whose inventory does not say.
func TestFilterUsesTheNodesSplitCount(t *testing.T) {
	logger, ctx := ktesting.NewTestContext(t)
	args, err := decodeArgs(&runtime.Unknown{Raw: []byte(`{"deviceSplitCount":20}`)})
	if err != nil {
		t.Fatal(err)
	}
	p := testPlugin(t)
	p.args, p.cache = *args, newUsageCache(args.NodeDefaults())
	inventory := func(cfg device.NodeConfig) string {
		raw, err := device.EncodeInventory(&device.Inventory{Devices: []device.Device{
			{UUID: "GPU-0", Index: 0, Vendor: device.VendorNVIDIA, Model: "L4", MemoryMiB: 23034, Healthy: true},
			{UUID: "GPU-1", Index: 1, Vendor: device.VendorNVIDIA, Model: "L4", MemoryMiB: 23034, Healthy: true},
		}, Config: cfg, NRI: true})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	tests := []struct {
		name string
		cfg  device.NodeConfig
		// held is the shares already on GPU-0 and GPU-1.
		held [2]int
		fits bool
	}{
		{"node says 4, one slot left", device.NodeConfig{SplitCount: 4, MemoryScaling: 1, CoreScaling: 1}, [2]int{4, 3}, true},
		{"node says 4, both cards full", device.NodeConfig{SplitCount: 4, MemoryScaling: 1, CoreScaling: 1}, [2]int{4, 4}, false},
		{"node says 30, above the arg", device.NodeConfig{SplitCount: 30, MemoryScaling: 1, CoreScaling: 1}, [2]int{20, 20}, true},
		{"node says nothing: the arg's 20", device.NodeConfig{}, [2]int{19, 20}, true},
		{"node says nothing, both cards full", device.NodeConfig{}, [2]int{20, 20}, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("n%d", i)
			node := testNode(t, name, inventory(tc.cfg))
			p.cache.setNode(logger, node)
			for card, n := range tc.held {
				for k := range n {
					uuid := fmt.Sprintf("GPU-%d", card)
					p.cache.assume(types.UID(fmt.Sprintf("%s-%s-%d", name, uuid, k)), &device.Allocation{Version: 1, Node: name, Containers: []device.ContainerAllocation{
						{Name: "c", Devices: []device.Share{{UUID: uuid, Vendor: device.VendorNVIDIA, MemoryMiB: 100}}}}}, 0)
				}
			}
			ni := framework.NewNodeInfo()
			ni.SetNode(node)
			state := framework.NewCycleState()
			pod := gpuPod("new", "100")
			if _, s := p.PreFilter(ctx, state, pod, nil); !s.IsSuccess() {
				t.Fatal(s)
			}
			s := p.Filter(ctx, state, pod, ni)
			if s.IsSuccess() != tc.fits {
				t.Fatalf("Filter = %v, want fits=%v", s, tc.fits)
			}
			if !tc.fits && !slices.Contains(s.Reasons(), placement.ReasonSlots) {
				t.Errorf("reasons %v, want %q", s.Reasons(), placement.ReasonSlots)
			}
		})
	}
}

// Unset, the sharing args are the node agent's own defaults, so that a
// node whose inventory does not say is shared as an agent would share it.
func TestArgsSharingDefaultsAreTheAgents(t *testing.T) {
	args, err := decodeArgs(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := args.NodeDefaults(); got != device.DefaultNodeConfig() {
		t.Errorf("NodeDefaults = %+v, want %+v", got, device.DefaultNodeConfig())
	}
}
