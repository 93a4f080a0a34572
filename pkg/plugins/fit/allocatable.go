package fit

import (
	"sync"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/plugins/internal/nodeindex"
)

// allocatables keeps, per Node object, what it makes allocatable of the
// extended resources that pods ask for, in a small array.
//
// Filter compares a device pod's nvidia.com/gpu with every node's
// allocatable amount: a lookup in the NodeInfo's map of scalar
// resources, whose keys' bytes each node holds in its own copy of the
// Node. At 1,000 nodes that lookup missed the processor's caches on
// nearly every node, and cost as much as the rest of the stock Filter.
// A NodeInfo's allocatable amounts are a function of its Node object,
// which the informers never change in place (a new version is a new
// object), so they are kept here by the object's pointer, in a lock-free
// index (nodeindex): an array indexed by the resource's number among
// those asked for (at most maxKept; further names are looked up in the
// NodeInfo as before), never written once published. A node whose entry
// lacks a resource numbered since gets a new one. Entries of objects that
// the informers replaced are dropped all together once they outnumber the
// nodes.
type allocatables struct {
	nodes nodeindex.Index[nodeAllocatable]
	mu    sync.Mutex
	// names numbers the resources asked for, byNumber names the numbers
	// (each set once, read without the lock); written under mu, which
	// also serializes add.
	names    map[v1.ResourceName]int
	byNumber [maxKept]atomic.Pointer[v1.ResourceName]
	// live is the number of nodes the last PreFilter was given.
	live atomic.Int64
}

// maxKept bounds the extended resources kept per node: far more than a
// cluster's device pods ask for.
const maxKept = 8

// firstKnown flags an index word that holds the amount of resource 0, the
// one nearly every device pod asks for (nvidia.com/gpu or an Ascend
// model), so that of reads it from the index's slot without the entry.
const firstKnown = 1 << 63

type nodeAllocatable struct {
	known uint8 // the resources, by number, that qty holds
	qty   [maxKept]int64
}

// number returns the resource's number, or -1 when maxKept are taken,
// and the name as numbered: sharing its bytes makes of's check of the
// name a comparison of pointers.
func (a *allocatables) number(name v1.ResourceName) (int, v1.ResourceName) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if i, ok := a.names[name]; ok {
		return i, *a.byNumber[i].Load()
	}
	if a.names == nil {
		a.names = map[v1.ResourceName]int{}
	}
	if len(a.names) >= maxKept {
		return -1, name
	}
	i := len(a.names)
	a.names[name] = i
	a.byNumber[i].Store(&name)
	return i, name
}

// of returns what the node makes allocatable of the resource name,
// numbered i, as nodeInfo.GetAllocatable() says.
func (a *allocatables) of(nodeInfo fwk.NodeInfo, name v1.ResourceName, i int) int64 {
	obj := nodeInfo.Node()
	if i < 0 || i >= maxKept || obj == nil {
		return nodeInfo.GetAllocatable().GetScalarResources()[name]
	}
	if numbered := a.byNumber[i].Load(); numbered == nil || *numbered != name {
		return nodeInfo.GetAllocatable().GetScalarResources()[name]
	}
	e, w, ok := a.nodes.Get(obj)
	if ok && i == 0 && w&firstKnown != 0 {
		return int64(w &^ firstKnown)
	}
	if ok && e.known&(1<<i) != 0 {
		return e.qty[i]
	}
	return a.add(obj, nodeInfo)[i]
}

// add publishes the node object's entry for every resource numbered.
func (a *allocatables) add(obj *v1.Node, nodeInfo fwk.NodeInfo) [maxKept]int64 {
	scalar := nodeInfo.GetAllocatable().GetScalarResources()
	a.mu.Lock()
	defer a.mu.Unlock()
	e := &nodeAllocatable{}
	for name, i := range a.names {
		e.qty[i] = scalar[name]
		e.known |= 1 << i
	}
	if int64(a.nodes.Len()) > 2*a.live.Load()+64 {
		a.nodes.Reset()
	}
	var w uint64
	if e.known&1 != 0 && e.qty[0] >= 0 {
		w = firstKnown | uint64(e.qty[0])
	}
	a.nodes.Set(obj, e, w)
	return e.qty
}
