package mosaic

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

func testNode(t *testing.T, name string, raw string) *v1.Node {
	t.Helper()
	if raw == "" {
		inv := &device.Inventory{Devices: []device.Device{
			{UUID: "GPU-0", Index: 0, Vendor: device.VendorNVIDIA, Model: "A100", MemoryMiB: 1000, Healthy: true},
			{UUID: "GPU-1", Index: 1, Vendor: device.VendorNVIDIA, Model: "A100", MemoryMiB: 1000, Healthy: true},
		}, NRI: true}
		var err error
		if raw, err = device.EncodeInventory(inv); err != nil {
			t.Fatal(err)
		}
	}
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{device.InventoryAnnotation: raw}}}
}

func testAlloc(node, uuid string, mem int64) *device.Allocation {
	return &device.Allocation{Version: 1, Node: node, Containers: []device.ContainerAllocation{{Name: "c", Devices: []device.Share{{UUID: uuid, Vendor: device.VendorNVIDIA, MemoryMiB: mem, Cores: 10}}}}}
}

func boundPod(t *testing.T, uid, node string, a *device.Allocation) *v1.Pod {
	raw, err := device.EncodeAllocation(a)
	if err != nil {
		t.Fatal(err)
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: uid, UID: types.UID(uid), Annotations: map[string]string{device.AllocationAnnotation: raw}},
		Spec:       v1.PodSpec{NodeName: node},
	}
}

func used(t *testing.T, c *usageCache, node string) map[string]device.Usage {
	t.Helper()
	v, err := c.view(node, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]device.Usage{}
	for _, card := range v.Cards {
		if card.Used != (device.Usage{}) {
			out[card.Device.UUID] = card.Used
		}
	}
	return out
}

func TestCacheLifecycle(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	c := newUsageCache(device.NodeConfig{SplitCount: 10, MemoryScaling: 1, CoreScaling: 1})
	c.setNode(logger, testNode(t, "n", ""))

	// Reserve assumes; the informer then confirms the bound pod.
	c.assume("a", testAlloc("n", "GPU-0", 300))
	want := map[string]device.Usage{"GPU-0": {MemoryMiB: 300, Cores: 10, Slots: 1}}
	if diff := cmp.Diff(want, used(t, c, "n")); diff != "" {
		t.Fatalf("after assume (-want,+got):\n%s", diff)
	}
	// An update of the pod before it is bound keeps the assumed share.
	c.updatePod(logger, &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "a"}})
	if diff := cmp.Diff(want, used(t, c, "n")); diff != "" {
		t.Fatalf("after unbound update (-want,+got):\n%s", diff)
	}
	c.updatePod(logger, boundPod(t, "a", "n", testAlloc("n", "GPU-0", 300)))
	// Forget after confirmation does nothing: the API owns it now.
	c.forget("a")
	if diff := cmp.Diff(want, used(t, c, "n")); diff != "" {
		t.Fatalf("after confirm+forget (-want,+got):\n%s", diff)
	}
	// A second pod, then a failed bind of a third.
	c.updatePod(logger, boundPod(t, "b", "n", testAlloc("n", "GPU-0", 200)))
	c.assume("c", testAlloc("n", "GPU-1", 500))
	c.forget("c")
	want = map[string]device.Usage{"GPU-0": {MemoryMiB: 500, Cores: 20, Slots: 2}}
	if diff := cmp.Diff(want, used(t, c, "n")); diff != "" {
		t.Fatalf("after second pod (-want,+got):\n%s", diff)
	}
	// A finished pod releases its share; a deleted one too.
	finished := boundPod(t, "a", "n", testAlloc("n", "GPU-0", 300))
	finished.Status.Phase = v1.PodSucceeded
	c.updatePod(logger, finished)
	c.deletePod("b")
	if got := used(t, c, "n"); len(got) != 0 {
		t.Fatalf("usage left after every pod ended: %v", got)
	}
}

func TestCacheToleratesBadInput(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	c := newUsageCache(device.NodeConfig{SplitCount: 10, MemoryScaling: 1, CoreScaling: 1})
	c.setNode(logger, testNode(t, "bad", `{"version":1,"devices":[{"uuid":""}]}`))
	if _, err := c.view("bad", nil, nil); err == nil {
		t.Error("view of a node with a malformed inventory returned no error")
	}
	// A forged or corrupt allocation is logged and ignored, not counted.
	p := boundPod(t, "x", "bad", testAlloc("bad", "GPU-0", 1))
	p.Annotations[device.AllocationAnnotation] = "{not json"
	c.updatePod(logger, p)
	if _, _, ok := c.footprint("x"); ok {
		t.Error("a corrupt allocation was counted")
	}
	// The node is fixed by its agent: the error clears.
	c.setNode(logger, testNode(t, "bad", ""))
	if _, err := c.view("bad", nil, nil); err != nil {
		t.Errorf("view after a fixed inventory: %v", err)
	}
}

func TestCycleStateCloneIsDeep(t *testing.T) {
	s := &cycleState{added: map[string]map[string]device.Usage{}, removed: map[string]map[string]device.Usage{}, placements: &sync.Map{}}
	s.adjust(s.removed, "n", map[string]device.Usage{"GPU-0": {MemoryMiB: 5, Slots: 1}})
	c := s.Clone().(*cycleState)
	c.adjust(c.removed, "n", map[string]device.Usage{"GPU-0": {MemoryMiB: 7, Slots: 1}})
	if got := s.removed["n"]["GPU-0"].MemoryMiB; got != 5 {
		t.Errorf("original changed through its clone: %d MiB removed, want 5", got)
	}
	if got := c.removed["n"]["GPU-0"].MemoryMiB; got != 12 {
		t.Errorf("clone has %d MiB removed, want 12", got)
	}
}

func TestQueueingHints(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	p := &Mosaic{cache: newUsageCache(device.NodeConfig{SplitCount: 10, MemoryScaling: 1, CoreScaling: 1})}
	gpuPod := boundPod(t, "g", "n", testAlloc("n", "GPU-0", 1))
	plain := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1.PodSpec{NodeName: "n"}}
	p.cache.setNode(logger, testNode(t, "n", ""))
	p.cache.updatePod(logger, gpuPod)
	if h, _ := p.isDevicePodDeleted(logger, nil, gpuPod, nil); h != fwk.Queue {
		t.Error("deleting a device pod does not requeue")
	}
	// The hint released the share before the pod it requeues is retried.
	if u := used(t, p.cache, "n"); len(u) != 0 {
		t.Errorf("usage after the hint: %v, want none", u)
	}
	if h, _ := p.isDevicePodDeleted(logger, nil, plain, nil); h != fwk.QueueSkip {
		t.Error("deleting an ordinary pod requeues")
	}
	n1 := testNode(t, "n", "")
	n2 := n1.DeepCopy()
	if h, _ := p.isInventoryChanged(logger, nil, n1, n2); h != fwk.QueueSkip {
		t.Error("an unchanged inventory requeues")
	}
	n2.Annotations[device.InventoryAnnotation] = `{"version":1,"devices":[]}`
	if h, _ := p.isInventoryChanged(logger, nil, n1, n2); h != fwk.Queue {
		t.Error("a changed inventory does not requeue")
	}
	if h, _ := p.isInventoryChanged(logger, nil, nil, n1); h != fwk.Queue {
		t.Error("a new node with an inventory does not requeue")
	}
}

// A node without NRI takes one device pod at a time: the pod waiting for
// the node agent to hand out its devices blocks the next until labelled.
func TestHandoutBusyWithoutNRI(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	c := newUsageCache(device.NodeConfig{SplitCount: 10, MemoryScaling: 1, CoreScaling: 1})
	inv := &device.Inventory{Devices: []device.Device{{UUID: "GPU-0", Index: 0, Vendor: device.VendorNVIDIA, Model: "A100", MemoryMiB: 1000, Healthy: true}}}
	raw, _ := device.EncodeInventory(inv)
	c.setNode(logger, testNode(t, "plain", raw))
	inv.NRI = true
	rawNRI, _ := device.EncodeInventory(inv)
	c.setNode(logger, testNode(t, "nri", rawNRI))

	c.assume("a", testAlloc("plain", "GPU-0", 10))
	c.assume("b", testAlloc("nri", "GPU-0", 10))
	if !c.handoutBusy("plain", "other") {
		t.Error("a node without NRI with a pod awaiting its devices takes another")
	}
	if c.handoutBusy("plain", "a") {
		t.Error("the awaiting pod blocks itself")
	}
	if c.handoutBusy("nri", "other") {
		t.Error("a node with NRI is limited to one pod at a time")
	}
	// Bound, then handed out: the node is free again.
	p := boundPod(t, "a", "plain", testAlloc("plain", "GPU-0", 10))
	c.updatePod(logger, p)
	if !c.handoutBusy("plain", "other") {
		t.Error("a bound pod without the handed-out label does not block")
	}
	p.Labels = map[string]string{device.HandedOutLabel: "true"}
	c.updatePod(logger, p)
	if c.handoutBusy("plain", "other") {
		t.Error("a handed-out pod still blocks the node")
	}
}
