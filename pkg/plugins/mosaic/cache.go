package mosaic

import (
	"sort"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// usageCache is the plugin's view of every node's cards and of what each pod
// holds on them. It is built from the API alone (node inventories, pods
// carrying allocations), so a restarted scheduler rebuilds the same state,
// plus the pods this scheduler has assumed between Reserve and the moment
// its informer sees them bound.
type usageCache struct {
	mu       sync.RWMutex
	defaults device.NodeConfig
	nodes    map[string]*nodeEntry
	pods     map[types.UID]*podEntry
}

type nodeEntry struct {
	raw  string // the inventory annotation, to skip re-parsing unchanged ones
	inv  *device.Inventory
	err  error
	cfg  device.NodeConfig
	used map[string]device.Usage // by card UUID
	// awaiting holds the pods bound or assumed here whose devices the node
	// agent has not handed out yet.
	awaiting map[types.UID]bool
}

type podEntry struct {
	node      string
	footprint map[string]device.Usage
	assumed   bool
	// awaiting is true until the node agent has handed out the pod's
	// devices (HandedOutLabel); it matters on nodes without NRI only.
	awaiting bool
}

func newUsageCache(defaults device.NodeConfig) *usageCache {
	return &usageCache{defaults: defaults, nodes: map[string]*nodeEntry{}, pods: map[types.UID]*podEntry{}}
}

func (c *usageCache) node(name string) *nodeEntry {
	n := c.nodes[name]
	if n == nil {
		n = &nodeEntry{used: map[string]device.Usage{}, awaiting: map[types.UID]bool{}}
		c.nodes[name] = n
	}
	return n
}

// setNode records a node's inventory. A malformed inventory is kept as an
// error that Filter reports; it never stops the scheduler.
func (c *usageCache) setNode(logger klog.Logger, node *v1.Node) {
	raw := node.Annotations[device.InventoryAnnotation]
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.node(node.Name)
	if n.raw == raw && (n.inv != nil || n.err != nil || raw == "") {
		return
	}
	n.raw, n.inv, n.err = raw, nil, nil
	if raw == "" {
		return
	}
	n.inv, n.err = device.DecodeInventory(raw)
	if n.err != nil {
		logger.Error(n.err, "Ignoring invalid device inventory", "node", klog.KObj(node))
		return
	}
	sort.Slice(n.inv.Devices, func(i, j int) bool { return n.inv.Devices[i].Index < n.inv.Devices[j].Index })
	n.cfg = n.inv.Config.Merge(c.defaults)
}

func (c *usageCache) deleteNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[name]; n != nil {
		n.raw, n.inv, n.err = "", nil, nil
	}
}

// updatePod records what a pod holds, from its allocation annotation. A pod
// that is finished or not yet bound holds nothing, except a pod this
// scheduler assumed and is still binding.
func (c *usageCache) updatePod(logger klog.Logger, pod *v1.Pod) {
	if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		c.deletePod(pod.UID)
		return
	}
	raw, ok := pod.Annotations[device.AllocationAnnotation]
	if pod.Spec.NodeName == "" || !ok {
		c.mu.Lock()
		defer c.mu.Unlock()
		if e := c.pods[pod.UID]; e != nil && !e.assumed {
			c.removeLocked(pod.UID)
		}
		return
	}
	alloc, err := device.DecodeAllocation(raw)
	if err != nil {
		logger.Error(err, "Ignoring invalid allocation", "pod", klog.KObj(pod))
		c.deletePod(pod.UID)
		return
	}
	c.set(pod.UID, pod.Spec.NodeName, alloc, false, pod.Labels[device.HandedOutLabel] != "true")
}

func (c *usageCache) deletePod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(uid)
}

// assume records a placement this scheduler made before the API has it.
func (c *usageCache) assume(uid types.UID, alloc *device.Allocation) {
	c.set(uid, alloc.Node, alloc, true, true)
}

// forget drops an assumed placement whose binding failed.
func (c *usageCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.pods[uid]; e != nil && e.assumed {
		c.removeLocked(uid)
	}
}

func (c *usageCache) set(uid types.UID, node string, alloc *device.Allocation, assumed, awaiting bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(uid)
	e := &podEntry{node: node, footprint: alloc.Footprint(), assumed: assumed, awaiting: awaiting}
	c.pods[uid] = e
	n := c.node(node)
	for id, u := range e.footprint {
		n.used[id] = n.used[id].Add(u)
	}
	if awaiting {
		n.awaiting[uid] = true
	}
}

func (c *usageCache) removeLocked(uid types.UID) {
	e := c.pods[uid]
	if e == nil {
		return
	}
	delete(c.pods, uid)
	n := c.node(e.node)
	delete(n.awaiting, uid)
	for id, u := range e.footprint {
		left := n.used[id].Sub(u)
		if left.Slots <= 0 {
			delete(n.used, id)
		} else {
			n.used[id] = left
		}
	}
}

// handoutBusy reports whether the node hands out devices through the
// kubelet's Allocate alone (no NRI) and a device pod there is still waiting
// for them: such a node takes one device pod at a time, derived from pod
// state rather than a lock annotation that could dangle.
func (c *usageCache) handoutBusy(node string, self types.UID) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := c.nodes[node]
	if n == nil || n.inv == nil || n.inv.NRI {
		return false
	}
	return len(n.awaiting) > 1 || (len(n.awaiting) == 1 && !n.awaiting[self])
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

// view returns the node's cards with their usage, adjusted by the pods that
// preemption's dry run added or removed. A node without an inventory has no
// cards; err explains a malformed one.
func (c *usageCache) view(name string, added, removed map[string]device.Usage) (*placement.Node, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := c.nodes[name]
	if n == nil || n.inv == nil {
		if n != nil {
			return &placement.Node{Name: name}, n.err
		}
		return &placement.Node{Name: name}, nil
	}
	out := &placement.Node{Name: name, Cards: make([]placement.Card, len(n.inv.Devices))}
	for i := range n.inv.Devices {
		d := &n.inv.Devices[i]
		u := n.used[d.UUID].Add(added[d.UUID]).Sub(removed[d.UUID])
		out.Cards[i] = placement.NewCard(d, n.cfg, u)
	}
	return out, nil
}
