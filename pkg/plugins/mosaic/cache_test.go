package mosaic

import (
	"math"
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

func boundPod(t testing.TB, uid, node string, a *device.Allocation) *v1.Pod {
	raw, err := device.EncodeAllocation(a)
	if err != nil {
		t.Fatal(err)
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: uid, UID: types.UID(uid), Annotations: map[string]string{device.AllocationAnnotation: raw}},
		Spec:       v1.PodSpec{NodeName: node},
	}
}

// at returns a copy of pod at resourceVersion rv, as the API server writes
// versions: one integer that grows with every write.
func at(pod *v1.Pod, rv string) *v1.Pod {
	p := pod.DeepCopy()
	p.ResourceVersion = rv
	return p
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
	c.assume("a", testAlloc("n", "GPU-0", 300), 0)
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
	c.assume("c", testAlloc("n", "GPU-1", 500), 0)
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
	s := &cycleState{added: map[string]map[string]device.Usage{}, removed: map[string]map[string]device.Usage{}}
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
	p := testPlugin(t)
	gpu := at(boundPod(t, "g", "n", testAlloc("n", "GPU-0", 1)), "10")
	plain := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1.PodSpec{NodeName: "n"}}
	p.cache.setNode(logger, testNode(t, "n", ""))
	p.cache.updatePod(logger, gpu)
	if h, _ := p.isDevicePodDeleted(logger, nil, at(gpu, "11"), nil); h != fwk.Queue {
		t.Error("deleting a device pod does not requeue")
	}
	// The hint released the share before the pod it requeues is retried.
	if u := used(t, p.cache, "n"); len(u) != 0 {
		t.Errorf("usage after the hint: %v, want none", u)
	}
	if h, _ := p.isDevicePodDeleted(logger, nil, plain, nil); h != fwk.QueueSkip {
		t.Error("deleting an ordinary pod requeues")
	}
	// After a failed binding the scheduler reports its own copy of the pod
	// deleted: assigned, with the device request but no allocation.
	released := gpuPod("released", "500")
	released.Spec.NodeName = "n"
	if h, _ := p.isDevicePodDeleted(logger, nil, released, nil); h != fwk.Queue {
		t.Error("a reservation released after a failed binding does not requeue")
	}
	unbound := gpuPod("unbound", "500")
	if h, _ := p.isDevicePodDeleted(logger, nil, unbound, nil); h != fwk.QueueSkip {
		t.Error("deleting a device pod that was never assigned requeues")
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

	c.assume("a", testAlloc("plain", "GPU-0", 10), 0)
	c.assume("b", testAlloc("nri", "GPU-0", 10), 0)
	if !c.nodeView("plain").handoutBusy("other") {
		t.Error("a node without NRI with a pod awaiting its devices takes another")
	}
	if c.nodeView("plain").handoutBusy("a") {
		t.Error("the awaiting pod blocks itself")
	}
	if c.nodeView("nri").handoutBusy("other") {
		t.Error("a node with NRI is limited to one pod at a time")
	}
	// Bound, then handed out: the node is free again.
	p := boundPod(t, "a", "plain", testAlloc("plain", "GPU-0", 10))
	c.updatePod(logger, p)
	if !c.nodeView("plain").handoutBusy("other") {
		t.Error("a bound pod without the handed-out label does not block")
	}
	p.Labels = map[string]string{device.HandedOutLabel: "true"}
	c.updatePod(logger, p)
	if c.nodeView("plain").handoutBusy("other") {
		t.Error("a handed-out pod still blocks the node")
	}
}

// The informer handler and the queueing hints apply the same events in
// either order: an object older than what the cache holds changes
// nothing, and one applied twice counts once.
func TestCacheUpdatesAreOrderedAndIdempotent(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	newCache := func() *usageCache {
		c := newUsageCache(device.NodeConfig{SplitCount: 10, MemoryScaling: 1, CoreScaling: 1})
		c.setNode(logger, testNode(t, "n", ""))
		return c
	}
	pod := boundPod(t, "a", "n", testAlloc("n", "GPU-0", 300))
	held := map[string]device.Usage{"GPU-0": {MemoryMiB: 300, Cores: 10, Slots: 1}}

	t.Run("twice counts once", func(t *testing.T) {
		c := newCache()
		c.updatePod(logger, at(pod, "10"))
		c.updatePod(logger, at(pod, "10"))
		c.hintUpdatePod(logger, at(pod, "10"))
		if diff := cmp.Diff(held, used(t, c, "n")); diff != "" {
			t.Errorf("(-want,+got):\n%s", diff)
		}
	})
	t.Run("older after newer", func(t *testing.T) {
		c := newCache()
		c.updatePod(logger, at(pod, "10"))
		// A hint sees the handed-out label (version 12) first; the
		// handler then delivers version 11, before the label.
		labelled := at(pod, "12")
		labelled.Labels = map[string]string{device.HandedOutLabel: "true"}
		c.hintUpdatePod(logger, labelled)
		c.updatePod(logger, at(pod, "11"))
		if _, _, ok := c.footprint("a"); !ok || len(c.nodes["n"].awaiting) != 0 {
			t.Errorf("version 11 undid version 12: held %v, awaiting %v", ok, c.nodes["n"].awaiting)
		}
		// An older allocation (as a corrupt or replayed event) does not
		// replace the newer one either.
		c.updatePod(logger, at(boundPod(t, "a", "n", testAlloc("n", "GPU-1", 900)), "9"))
		if diff := cmp.Diff(held, used(t, c, "n")); diff != "" {
			t.Errorf("(-want,+got):\n%s", diff)
		}
	})
	t.Run("delete seen by a hint first", func(t *testing.T) {
		c := newCache()
		c.updatePod(logger, at(pod, "10"))
		c.hintDeletePod(at(pod, "13"))
		// The handler still delivers the pod's last update, then its delete.
		c.updatePod(logger, at(pod, "12"))
		if u := used(t, c, "n"); len(u) != 0 {
			t.Errorf("a stale update brought a deleted pod back: %v", u)
		}
		c.deletePod("a")
		if len(c.gone) != 0 {
			t.Errorf("the handler's delete left %v behind", c.gone)
		}
	})
	t.Run("a hint never adds", func(t *testing.T) {
		c := newCache()
		c.hintUpdatePod(logger, at(pod, "10"))
		if u := used(t, c, "n"); len(u) != 0 {
			t.Errorf("a hint added a pod the handler has not seen: %v", u)
		}
	})
	t.Run("stale inventory", func(t *testing.T) {
		c := newCache()
		two := testNode(t, "m", "")
		two.ResourceVersion = "20"
		c.setNode(logger, two)
		one := two.DeepCopy()
		one.ResourceVersion = "19"
		one.Annotations[device.InventoryAnnotation] = `{"version":1,"devices":[]}`
		c.setNode(logger, one)
		if v, _ := c.view("m", nil, nil); len(v.Cards) != 2 {
			t.Errorf("an older inventory replaced a newer one: %d cards, want 2", len(v.Cards))
		}
	})
}

// A binding that failed on the client may have committed. Whether
// Unreserve's forget or the informer's bound pod comes first, the pod ends
// up counted once, and the scheduler's report of its copy of the pod as
// deleted (older than the bound pod) leaves it counted.
func TestForgetCommutesWithInformer(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	alloc := testAlloc("n", "GPU-0", 300)
	queued := at(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "a"}}, "10")
	bound := at(boundPod(t, "a", "n", alloc), "11")
	copyOfQueued := queued.DeepCopy()
	copyOfQueued.Spec.NodeName = "n" // the scheduler's assumed copy
	held := map[string]device.Usage{"GPU-0": {MemoryMiB: 300, Cores: 10, Slots: 1}}
	for name, steps := range map[string][]string{
		// A second cycle of the pod reserved other cards just as the
		// first binding showed up; its own binding is refused.
		"stale reserve":  {"assume", "forget", "bound", "reassume", "forget"},
		"informer first": {"assume", "bound", "forget", "hint"},
		"forget first":   {"assume", "forget", "hint", "bound"},
		"hint between":   {"assume", "forget", "bound", "hint"},
		"never forgot":   {"assume", "bound", "bound"},
	} {
		t.Run(name, func(t *testing.T) {
			c := newUsageCache(device.NodeConfig{SplitCount: 10, MemoryScaling: 1, CoreScaling: 1})
			c.setNode(logger, testNode(t, "n", ""))
			for _, s := range steps {
				switch s {
				case "assume":
					c.assume("a", alloc, 0)
				case "reassume":
					c.assume("a", testAlloc("n", "GPU-1", 500), 0)
				case "bound":
					c.updatePod(logger, bound)
				case "forget":
					c.forget("a")
				case "hint":
					c.hintDeletePod(copyOfQueued)
				}
			}
			if diff := cmp.Diff(held, used(t, c, "n")); diff != "" {
				t.Errorf("after %v (-want,+got):\n%s", steps, diff)
			}
		})
	}
}

// viewOf finds a node's current view by the Node object the cache was
// given last, by name for any other object of the node, and keeps no
// object it was given before.
func TestViewOfNodeObjects(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	c := newUsageCache(device.NodeConfig{SplitCount: 10, MemoryScaling: 1, CoreScaling: 1})
	first := testNode(t, "n", "")
	first.ResourceVersion = "1"
	c.setNode(logger, first)
	second := first.DeepCopy()
	second.ResourceVersion = "2"
	second.Labels = map[string]string{"relabelled": "true"}
	c.setNode(logger, second)
	c.setNode(logger, testNode(t, "m", ""))
	c.assume("a", testAlloc("n", "GPU-0", 300), 0)
	cur := c.nodeView("n")
	if cur.node.Cards[0].Used.MemoryMiB != 300 {
		t.Fatalf("the view does not hold the assumed share: %+v", cur.node.Cards[0].Used)
	}
	unseen := second.DeepCopy()
	unseen.ResourceVersion = "3"
	for name, obj := range map[string]*v1.Node{"last given": second, "given before": first, "never given": unseen} {
		if got := c.viewOf(obj); got.v != cur || got != c.views["n"] {
			t.Errorf("%s object: another view than the node's current one", name)
		}
	}
	if _, _, ok := c.objects.Get(first); ok || c.objects.Len() != 2 {
		t.Errorf("objects kept: %d (the replaced one: %v), want one per node", c.objects.Len(), ok)
	}
	if v, w, ok := c.objects.Get(second); !ok || refOf(v, w) != c.views["n"] {
		t.Errorf("the last object given: found %v, %+v, want the view's ref %+v", ok, refOf(v, w), c.views["n"])
	}
	c.deleteNode(second)
	if c.objects.Len() != 1 || len(c.viewOf(second).v.node.Cards) != 0 {
		t.Errorf("after the node's delete: %d objects kept, %d cards seen", c.objects.Len(), len(c.viewOf(second).v.node.Cards))
	}
}

// A freed share requeues the waiting pods that fit the node's cards once
// it is released, and only those.
func TestFreedCardsRequeueWhatFits(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	p := testPlugin(t)
	p.cache.setNode(logger, testNode(t, "n", "")) // two cards of 1000 MiB
	a := at(boundPod(t, "a", "n", testAlloc("n", "GPU-0", 1000)), "10")
	b := at(boundPod(t, "b", "n", testAlloc("n", "GPU-1", 1000)), "11")
	p.cache.updatePod(logger, a)
	p.cache.updatePod(logger, b)
	one := benchPod("one", "1", "500", "10", false)
	two := benchPod("two", "2", "500", "10", false)
	huge := benchPod("huge", "1", "2000", "10", false) // fits no card of the node
	grouped := two.DeepCopy()
	g := "g"
	grouped.Spec.SchedulingGroup = &v1.PodSchedulingGroup{PodGroupName: &g}
	want := func(step string, freed *v1.Pod, hints map[*v1.Pod]fwk.QueueingHint) {
		t.Helper()
		for pod, h := range hints {
			// Each hint applies the delete again: the cache counts it once.
			if got, _ := p.isDevicePodDeleted(logger, pod, freed, nil); got != h {
				t.Errorf("%s: pod %s got %v, want %v", step, pod.Name, got, h)
			}
		}
	}
	want("GPU-0 freed", at(a, "12"), map[*v1.Pod]fwk.QueueingHint{one: fwk.Queue, two: fwk.QueueSkip, huge: fwk.QueueSkip, grouped: fwk.Queue})
	want("GPU-1 freed too", at(b, "13"), map[*v1.Pod]fwk.QueueingHint{one: fwk.Queue, two: fwk.Queue, huge: fwk.QueueSkip})
	bad := gpuPod("bad", "-5")
	if h, _ := p.isDevicePodDeleted(logger, bad, at(b, "14"), nil); h != fwk.QueueSkip {
		t.Errorf("a pod with an invalid request is retried: %v", h)
	}
	if h, _ := p.isDevicePodDeleted(logger, one, at(boundPod(t, "c", "elsewhere", testAlloc("elsewhere", "GPU-9", 1)), "15"), nil); h != fwk.Queue {
		t.Errorf("a share freed on a node the cache has not seen: %v, want a retry", h)
	}
}

// A ref survives the word objects keeps it in: every generation, the
// largest slot, quick or not.
func TestViewRefWord(t *testing.T) {
	v := &nodeView{}
	for _, ref := range []viewRef{
		{v: v, gen: 0, slot: 0},
		{v: v, gen: 1, slot: 7, quick: true},
		{v: v, gen: math.MaxUint32, slot: math.MaxInt32, quick: true},
		{v: v, gen: math.MaxUint32, slot: math.MaxInt32},
	} {
		if got := refOf(v, ref.word()); got != ref {
			t.Errorf("ref %+v came back as %+v", ref, got)
		}
	}
}

// A bound pod's status update that leaves its allocation, node, priority
// and hand-out as they were publishes no new view (the node keeps its
// remembered answers) but moves the pod's version forward; one that
// changes what the cards see publishes.
func TestStatusUpdatesKeepTheView(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	c := newUsageCache(device.NodeConfig{SplitCount: 10, MemoryScaling: 1, CoreScaling: 1})
	c.setNode(logger, testNode(t, "n", ""))
	pod := at(boundPod(t, "a", "n", testAlloc("n", "GPU-0", 300)), "10")
	c.updatePod(logger, pod)
	gen := c.nodes["n"].gen
	running := at(pod, "11")
	running.Status.Phase = v1.PodRunning
	c.updatePod(logger, running)
	if c.nodes["n"].gen != gen {
		t.Errorf("a status update published %d views, want none", c.nodes["n"].gen-gen)
	}
	if got := c.pods["a"].rv; got != "11" {
		t.Errorf("the entry is at version %s, want 11", got)
	}
	// The older version, delivered late, is stale now.
	c.hintUpdatePod(logger, at(pod, "10"))
	if got := c.pods["a"].rv; got != "11" {
		t.Errorf("a stale version moved the entry to %s", got)
	}
	handed := at(running, "12")
	handed.Labels = map[string]string{device.HandedOutLabel: "true"}
	c.updatePod(logger, handed)
	if c.nodes["n"].gen != gen+1 || c.nodes["n"].view.awaiting != 0 {
		t.Errorf("the hand-out: %d views published, %d awaiting, want 1 and 0", c.nodes["n"].gen-gen, c.nodes["n"].view.awaiting)
	}
	moved := boundPod(t, "a", "n", testAlloc("n", "GPU-1", 500))
	moved.ResourceVersion = "13"
	moved.Labels = handed.Labels
	c.updatePod(logger, moved)
	if u := used(t, c, "n"); u["GPU-0"].MemoryMiB != 0 || u["GPU-1"].MemoryMiB != 500 {
		t.Errorf("after the allocation changed: %+v", u)
	}
}
