package mosaic

import (
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
	"github.com/mosaic-gpu/mosaic/pkg/plugins/internal/nodeindex"
)

// usageCache is the plugin's view of every node's cards and of what each pod
// holds on them. It is built from the API alone (node inventories, pods
// carrying allocations), so a restarted scheduler rebuilds the same state,
// plus the pods this scheduler has assumed between Reserve and the moment
// its informer sees them bound. One scheduler keeps one, whatever number of
// its profiles enable Mosaic (shared.go).
//
// Two streams write it: the informer handlers (informers.go), which see
// every event in the order the API server wrote it, and the queueing hints
// (events.go), which the scheduler calls from its own handler of the same
// events, possibly before or after the cache's handler. Every write is
// therefore ordered by the object's resourceVersion and idempotent: an
// object older than what the cache holds changes nothing, and the same
// object applied twice counts once.
type usageCache struct {
	mu       sync.RWMutex
	defaults device.NodeConfig
	nodes    map[string]*nodeEntry
	// views holds each node's current view, for nodeView; objects the
	// same by the Node object the informer handed over last (viewOf),
	// read without the lock.
	views   map[string]viewRef
	objects nodeindex.Index[nodeView]
	// fits holds every node's known fits, by the entry's slot (fits.go).
	fits atomic.Pointer[fitsTable]
	// refusals numbers the refusals the table's words name (refusals.go).
	refusals refusals
	pods     map[types.UID]*podEntry
	// gone holds the resourceVersion at which a queueing hint removed a
	// pod that the informer handler has not seen leave yet: the handler's
	// older events of that pod are stale. The handler's delete clears it.
	gone map[types.UID]string
	// waker activates waiting pod groups when the informers see cards
	// free (groupwake.go).
	waker groupWaker
	// pending holds the pods waiting for a node, sums the cards and pods
	// the cache holds, for the metrics (pending.go, totals.go).
	pending pendingPods
	sums    cacheTotals
}

type nodeEntry struct {
	name string
	rv   string   // resourceVersion of the Node last applied
	obj  *v1.Node // the Node last applied, the key in objects
	raw  string   // the inventory annotation, to skip re-parsing unchanged ones
	inv  *device.Inventory
	err  error
	cfg  device.NodeConfig
	// topo is how the inventory's cards are linked, read once per
	// inventory.
	topo *placement.Topology
	used map[string]device.Usage // by card UUID
	// awaiting holds the pods bound or assumed here whose devices the node
	// agent has not handed out yet.
	awaiting map[types.UID]bool
	// pods are the pods bound or assumed here (holders.go); boundChanged
	// is set when a bound one came or went since the view was published,
	// which otherwise shares the last view's list of them.
	pods         map[types.UID]*podEntry
	boundChanged bool
	// view is the above as Filter and Score read it (also in views);
	// gen counts the views published, slot is the entry's in fits; cards
	// is the view's part of the metrics' totals (totals.go).
	view  *nodeView
	cards []modelSum
	gen   uint32
	slot  int32
}

// viewRef is how the maps hold a view: with the node's slot in the
// known fits and the view's generation, and whether the view passes any
// pod its cards fit (a valid inventory, no hand-out pending: see
// handoutBusy), which
// Filter and Score read without reading the view (fits.go).
type viewRef struct {
	v     *nodeView
	gen   uint32
	slot  int32
	quick bool
}

// word packs a ref's generation, slot and quick flag as objects holds them
// beside its view: generation in the high half, quick in bit 31, the slot
// (never negative there) below.
func (r viewRef) word() uint64 {
	w := uint64(r.gen)<<32 | uint64(uint32(r.slot)&(1<<31-1))
	if r.quick {
		w |= 1 << 31
	}
	return w
}

func refOf(v *nodeView, w uint64) viewRef {
	return viewRef{v: v, gen: uint32(w >> 32), slot: int32(w & (1<<31 - 1)), quick: w&(1<<31) != 0}
}

// nodeView is one node's cards with their usage, built whenever the node
// or a pod on it changes and never written after, but for the memo of its
// answers (memo.go). Filter and Score run once per node for every pod:
// they find it without a lock and read it without copying, parsing or
// allocating.
type nodeView struct {
	// handout: the node hands devices out through the kubelet's Allocate
	// alone (no NRI); awaiting counts the pods waiting for theirs, one is
	// the pod when there is one. (First, with err and the memo: what
	// every Filter reads, in the view's first cache lines.)
	handout  bool
	awaiting int
	one      types.UID
	err      error // the inventory is malformed
	memo     answers
	node     placement.Node
	// bound lists the pods bound here, for pod-group cycles (holders.go).
	bound []boundHolder
	// lowest is the lowest priority among the pods holding cards here
	// (math.MaxInt32 with none): preemption can free cards here only for
	// a pod above it (fitsSomewhere).
	lowest int32
}

// handoutBusy reports whether the node hands out devices through the
// kubelet's Allocate alone (no NRI) and a device pod there other than
// self is still waiting for them: such a node takes one device pod at a
// time, derived from pod state rather than a lock annotation that could
// dangle.
func (v *nodeView) handoutBusy(self types.UID) bool {
	return v.handout && (v.awaiting > 1 || (v.awaiting == 1 && v.one != self))
}

// publishLocked builds the node's view from its entry.
func (c *usageCache) publishLocked(n *nodeEntry) {
	v := &nodeView{node: placement.Node{Name: n.name, Topology: n.topo}, err: n.err, awaiting: len(n.awaiting), bound: n.boundHoldersLocked(), lowest: math.MaxInt32}
	for _, e := range n.pods {
		if len(e.footprint) > 0 {
			v.lowest = min(v.lowest, e.priority)
		}
	}
	for uid := range n.awaiting {
		v.one = uid
	}
	if n.inv != nil {
		v.handout = !n.inv.NRI
		v.node.Cards = make([]placement.Card, len(n.inv.Devices))
		for i := range n.inv.Devices {
			d := &n.inv.Devices[i]
			v.node.Cards[i] = placement.NewCard(d, n.cfg, n.used[d.UUID])
		}
	}
	cards := v.sumCards()
	c.sums.replaceView(n.cards, cards)
	n.cards = cards
	n.view = v
	n.gen++
	c.clearFitsLocked(n.slot)
	ref := viewRef{v: v, gen: n.gen, slot: n.slot, quick: v.err == nil && (!v.handout || v.awaiting == 0)}
	c.views[n.name] = ref
	if n.obj != nil {
		c.objects.Set(n.obj, ref.v, ref.word())
	}
}

type podEntry struct {
	rv        string // resourceVersion of the Pod it was read from; "" while assumed
	raw       string // its allocation annotation; "" while assumed
	node      string
	footprint map[string]device.Usage
	assumed   bool
	priority  int32
	// awaiting is true until the node agent has handed out the pod's
	// devices (HandedOutLabel); it matters on nodes without NRI only.
	awaiting bool
}

func newUsageCache(defaults device.NodeConfig) *usageCache {
	return &usageCache{defaults: defaults, nodes: map[string]*nodeEntry{}, views: map[string]viewRef{}, pods: map[types.UID]*podEntry{}, gone: map[types.UID]string{}}
}

// compareRV orders two resourceVersions of one object; ok is false when
// either is not a version the API server writes (as in hand-made objects).
func compareRV(a, b string) (c int, ok bool) {
	c, err := resourceversion.CompareResourceVersion(a, b)
	return c, err == nil
}

// stale reports whether an object at resourceVersion rv is not newer than
// what the cache applied at have. Versions that cannot be compared are not
// stale: the informer handler delivers them in order anyway.
func stale(rv, have string) bool {
	c, ok := compareRV(rv, have)
	return ok && c <= 0
}

func (c *usageCache) node(name string) *nodeEntry {
	n := c.nodes[name]
	if n == nil {
		n = &nodeEntry{name: name, used: map[string]device.Usage{}, awaiting: map[types.UID]bool{}, pods: map[types.UID]*podEntry{}, slot: int32(len(c.nodes))}
		c.nodes[name] = n
		c.growFitsLocked()
		c.publishLocked(n)
	}
	return n
}

// setNode records a node's inventory. A malformed inventory is kept as an
// error that Filter reports; it never stops the scheduler. A Node older
// than the one last applied is ignored.
func (c *usageCache) setNode(logger klog.Logger, node *v1.Node) {
	raw := node.Annotations[device.InventoryAnnotation]
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.node(node.Name)
	if cmp, ok := compareRV(node.ResourceVersion, n.rv); ok && cmp < 0 {
		return
	}
	n.rv = node.ResourceVersion
	if n.obj != node {
		c.objects.Delete(n.obj)
		n.obj = node
		ref := c.views[n.name]
		c.objects.Set(node, ref.v, ref.word())
	}
	if n.raw == raw && (n.inv != nil || n.err != nil || raw == "") {
		return
	}
	defer c.publishLocked(n)
	n.raw, n.inv, n.err, n.topo = raw, nil, nil, nil
	if raw == "" {
		return
	}
	n.inv, n.err = device.DecodeInventory(raw)
	if n.err != nil {
		logger.Error(n.err, "Ignoring invalid device inventory", "node", klog.KObj(node))
		return
	}
	sort.Slice(n.inv.Devices, func(i, j int) bool { return n.inv.Devices[i].Index < n.inv.Devices[j].Index })
	// Placement compares every card's vendor with the request's, which
	// holds the constant: sharing its bytes makes the comparison a pointer
	// check instead of a read of each node's own copy.
	for i := range n.inv.Devices {
		switch d := &n.inv.Devices[i]; d.Vendor {
		case device.VendorNVIDIA:
			d.Vendor = device.VendorNVIDIA
		case device.VendorAscend:
			d.Vendor = device.VendorAscend
		}
	}
	n.cfg = n.inv.Config.Merge(c.defaults)
	cards := make([]placement.Card, len(n.inv.Devices))
	for i := range n.inv.Devices {
		cards[i].Device = &n.inv.Devices[i]
	}
	n.topo = placement.NewTopology(cards)
}

// deleteNode forgets a deleted node's inventory; the pods bound there keep
// their entries until they are deleted too.
func (c *usageCache) deleteNode(node *v1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[node.Name]; n != nil {
		c.objects.Delete(n.obj)
		n.raw, n.inv, n.err, n.topo, n.obj = "", nil, nil, nil, nil
		if !stale(node.ResourceVersion, n.rv) {
			n.rv = node.ResourceVersion
		}
		c.publishLocked(n)
	}
}

// updatePod records what a pod holds, from its allocation annotation, as
// the informer handler sees it. A pod that is finished or not yet bound
// holds nothing, except a pod this scheduler assumed and is still binding.
func (c *usageCache) updatePod(logger klog.Logger, pod *v1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applyPodLocked(logger, pod)
}

// deletePod drops a pod the informer handler saw deleted (or finished).
// No event of that pod follows.
func (c *usageCache) deletePod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(uid)
	delete(c.gone, uid)
}

// hintUpdatePod applies a pod update that a queueing hint saw, ahead of the
// informer handler. It only moves forward a pod the cache already holds: a
// pod the cache does not hold blocks nobody, and the handler adds it.
func (c *usageCache) hintUpdatePod(logger klog.Logger, pod *v1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.pods[pod.UID]
	if e == nil {
		return
	}
	if !e.assumed {
		if cmp, ok := compareRV(pod.ResourceVersion, e.rv); !ok || cmp <= 0 {
			return
		}
	}
	c.applyPodLocked(logger, pod)
	if c.pods[pod.UID] == nil {
		c.gone[pod.UID] = pod.ResourceVersion
	}
}

// hintDeletePod applies a pod delete that a queueing hint saw, ahead of
// the informer handler. The scheduler also reports a pod whose binding
// failed as deleted, with its own copy from before the binding: that copy
// is older than a bound pod the informer handler has seen (the binding may
// have committed even though the call failed), so it leaves the pod
// counted. Assumptions are Reserve's and Unreserve's to drop.
func (c *usageCache) hintDeletePod(pod *v1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.pods[pod.UID]
	if e == nil || e.assumed {
		return
	}
	if cmp, ok := compareRV(pod.ResourceVersion, e.rv); !ok || cmp < 0 {
		return
	}
	c.removeLocked(pod.UID)
	c.gone[pod.UID] = pod.ResourceVersion
}

func (c *usageCache) applyPodLocked(logger klog.Logger, pod *v1.Pod) {
	if rv, ok := c.gone[pod.UID]; ok && stale(pod.ResourceVersion, rv) {
		return
	}
	e := c.pods[pod.UID]
	if e != nil && !e.assumed && stale(pod.ResourceVersion, e.rv) {
		return
	}
	if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		c.removeLocked(pod.UID)
		return
	}
	raw, ok := pod.Annotations[device.AllocationAnnotation]
	if pod.Spec.NodeName == "" || !ok {
		if e != nil && !e.assumed {
			c.removeLocked(pod.UID)
		}
		return
	}
	priority, awaiting := corev1helpers.PodPriority(pod), pod.Labels[device.HandedOutLabel] != "true"
	if e != nil && !e.assumed && e.raw == raw && e.node == pod.Spec.NodeName && e.priority == priority && e.awaiting == awaiting {
		// A status update of a bound pod (the kubelet's, mostly): nothing
		// the cards see changed, so the node's view and its remembered
		// answers stay. The entry takes the new object's copy of the
		// annotation, so that the old object's can be freed.
		e.rv, e.raw = pod.ResourceVersion, raw
		return
	}
	alloc, err := device.DecodeAllocation(raw)
	if err != nil {
		logger.Error(err, "Ignoring invalid allocation", "pod", klog.KObj(pod))
		c.removeLocked(pod.UID)
		return
	}
	c.setLocked(pod.UID, &podEntry{rv: pod.ResourceVersion, raw: raw, node: pod.Spec.NodeName, footprint: alloc.Footprint(), priority: priority, awaiting: awaiting})
}

// assume records a placement this scheduler made before the API has it. A
// pod the informer handler has seen bound keeps what the API says it
// holds: a cycle that started before its binding showed up is stale, and
// its own binding will be refused.
func (c *usageCache) assume(uid types.UID, alloc *device.Allocation, priority int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.pods[uid]; e != nil && !e.assumed {
		return
	}
	c.setLocked(uid, &podEntry{node: alloc.Node, footprint: alloc.Footprint(), assumed: true, awaiting: true, priority: priority})
}

// forget drops an assumed placement whose binding failed. A binding that
// failed on the client may still have committed; once the informer handler
// has seen the pod bound, the entry is the API's and forget leaves it, and
// if forget comes first the handler adds the bound pod back: either order
// ends with the pod counted once.
func (c *usageCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.pods[uid]; e != nil && e.assumed {
		c.removeLocked(uid)
	}
}

// setLocked records what a pod holds, replacing what it held before, and
// publishes the node's view once (and the old node's, if it moved).
func (c *usageCache) setLocked(uid types.UID, e *podEntry) {
	old := c.unlinkLocked(uid)
	c.pods[uid] = e
	c.sums.countPod(e, 1)
	n := c.node(e.node)
	n.pods[uid] = e
	if !e.assumed {
		n.boundChanged = true
	}
	for id, u := range e.footprint {
		n.used[id] = n.used[id].Add(u)
	}
	if e.awaiting {
		n.awaiting[uid] = true
	}
	if old != nil && old != n {
		c.publishLocked(old)
	}
	c.publishLocked(n)
}

func (c *usageCache) removeLocked(uid types.UID) {
	if n := c.unlinkLocked(uid); n != nil {
		c.publishLocked(n)
	}
}

// unlinkLocked forgets what a pod holds and returns its node, whose view
// the caller publishes; nil when the cache holds nothing of the pod.
func (c *usageCache) unlinkLocked(uid types.UID) *nodeEntry {
	e := c.pods[uid]
	if e == nil {
		return nil
	}
	delete(c.pods, uid)
	c.sums.countPod(e, -1)
	n := c.node(e.node)
	delete(n.awaiting, uid)
	delete(n.pods, uid)
	if !e.assumed {
		n.boundChanged = true
	}
	for id, u := range e.footprint {
		left := n.used[id].Sub(u)
		if left.Slots <= 0 {
			delete(n.used, id)
		} else {
			n.used[id] = left
		}
	}
	return n
}

// footprint returns what the pod holds, if the cache knows it.
func (c *usageCache) footprint(uid types.UID) (string, map[string]device.Usage, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e := c.pods[uid]; e != nil {
		return e.node, e.footprint, true
	}
	return "", nil, false
}

// nodeView returns the node's current view; a node the cache has not seen
// has no cards.
func (c *usageCache) nodeView(name string) *nodeView {
	c.mu.RLock()
	v := c.views[name].v
	c.mu.RUnlock()
	if v == nil {
		return &noCards
	}
	return v
}

// viewOf is nodeView for the framework's NodeInfo of a node. The
// scheduler's NodeInfo holds the Node object that the shared informer
// handed to the cache too, so the view is found by that pointer, without
// the lock and without reading the name's bytes, which at 1,000 nodes cost
// more than the rest of Filter; a NodeInfo holding another object (an
// update one of them has not seen yet), or a lookup that met a writer, is
// answered by name under the lock.
func (c *usageCache) viewOf(node *v1.Node) viewRef {
	if v, w, ok := c.objects.Get(node); ok {
		return refOf(v, w)
	}
	c.mu.RLock()
	ref, ok := c.views[node.Name]
	c.mu.RUnlock()
	if !ok {
		return viewRef{v: &noCards, slot: -1}
	}
	return ref
}

// fitsSomewhere reports whether the cards of one of nodes fit the request
// now, or hold a pod of priority below below, which preemption could evict
// for it; when none does, how many nodes refused it for each reason, as
// Filter would have. Views answer from their memos (memo.go) and remember
// what they placed, for the Filter that follows.
func (c *usageCache) fitsSomewhere(nodes []fwk.NodeInfo, id uint64, req *device.PodRequest, opts placement.Options, below int32) (bool, map[string]int) {
	refusals := map[string]int{}
	for _, ni := range nodes {
		v := c.viewOf(ni.Node()).v
		if v.err != nil {
			refusals["node device inventory is invalid"]++
			continue
		}
		if v.lowest < below {
			return true, nil
		}
		verdict := v.verdict(id, req, opts)
		if verdict.Fits {
			return true, nil
		}
		for _, r := range verdict.Reasons {
			refusals[r]++
		}
	}
	return false, refusals
}

// noCards is the view of a node the cache has not seen.
var noCards nodeView

// view returns the node's cards with their usage, adjusted by the pods that
// preemption's dry run added or removed. A node without an inventory has no
// cards; err explains a malformed one. Without adjustments the node is the
// cache's own: callers never write to it.
func (c *usageCache) view(name string, added, removed map[string]device.Usage) (*placement.Node, error) {
	v := c.nodeView(name)
	if len(added) == 0 && len(removed) == 0 {
		return &v.node, v.err
	}
	return v.adjusted(added, removed), v.err
}

// adjusted is a copy of the view's cards with the footprints of added
// pods counted and of removed ones released.
func (v *nodeView) adjusted(added, removed map[string]device.Usage) *placement.Node {
	out := &placement.Node{Name: v.node.Name, Cards: slices.Clone(v.node.Cards), Topology: v.node.Topology}
	for i := range out.Cards {
		card := &out.Cards[i]
		id := card.Device.UUID
		card.Used = card.Used.Add(added[id]).Sub(removed[id])
	}
	return out
}
