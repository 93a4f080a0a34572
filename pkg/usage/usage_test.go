package usage

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

func node(t *testing.T, name string, inv *device.Inventory) *v1.Node {
	t.Helper()
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{}}}
	if inv != nil {
		raw, err := device.EncodeInventory(inv)
		if err != nil {
			t.Fatal(err)
		}
		n.Annotations[device.InventoryAnnotation] = raw
	}
	return n
}

func pod(t *testing.T, name, node string, phase v1.PodPhase, shares ...device.Share) *v1.Pod {
	t.Helper()
	raw, err := device.EncodeAllocation(&device.Allocation{Node: node, Containers: []device.ContainerAllocation{{Name: "c", Devices: shares}}})
	if err != nil {
		t.Fatal(err)
	}
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Annotations: map[string]string{device.AllocationAnnotation: raw}},
		Spec: v1.PodSpec{NodeName: node}, Status: v1.PodStatus{Phase: phase}}
}

func TestCompute(t *testing.T) {
	inv := &device.Inventory{Devices: []device.Device{
		{UUID: "GPU-1", Index: 1, Vendor: device.VendorNVIDIA, Model: "L4", MemoryMiB: 1000, Healthy: true},
		{UUID: "GPU-0", Index: 0, Vendor: device.VendorNVIDIA, Model: "L4", MemoryMiB: 1000, NUMA: 1, Healthy: false},
	}, Config: device.NodeConfig{MemoryScaling: 2}, NRI: true}
	nodes := []*v1.Node{node(t, "b", inv), node(t, "plain", nil), node(t, "a", &device.Inventory{Devices: []device.Device{}})}
	bad := node(t, "broken", nil)
	bad.Annotations[device.InventoryAnnotation] = "{"
	nodes = append(nodes, bad)
	share := device.Share{UUID: "GPU-1", Vendor: device.VendorNVIDIA, MemoryMiB: 300, Cores: 20}
	pods := []*v1.Pod{
		pod(t, "p1", "b", v1.PodRunning, share),
		pod(t, "p2", "b", v1.PodPending, share),
		pod(t, "done", "b", v1.PodSucceeded, share), // holds nothing
	}
	got := Compute(nodes, pods, device.NodeConfig{SplitCount: 4, MemoryScaling: 1, CoreScaling: 1})
	want := []Node{
		{Name: "a", Cards: []Card{}},
		{Name: "b", NRI: true, Cards: []Card{
			{UUID: "GPU-0", Index: 0, Model: "L4", NUMA: 1, MemoryMiB: 2000, Cores: 100, Slots: 4},
			{UUID: "GPU-1", Index: 1, Model: "L4", Healthy: true, MemoryMiB: 2000, UsedMemoryMiB: 600, Cores: 100, UsedCores: 40, Slots: 4, UsedSlots: 2,
				Holders: []Holder{{"ns", "p1", 300, 20}, {"ns", "p2", 300, 20}}},
		}},
		{Name: "broken", Cards: []Card{}, Error: "mosaic.io/devices: unexpected EOF"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("usage (-want,+got):\n%s", diff)
	}
	c := got[1].Cards[1]
	if c.OverCommitted() {
		t.Error("a card within capacity is over-committed")
	}
	c.UsedSlots = 5
	if !c.OverCommitted() {
		t.Error("a card over its slots is not over-committed")
	}
}
