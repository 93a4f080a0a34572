package mosaic

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// Pod-group preemption (GenericWorkload) tries a group's placement with
// the victims removed from the scheduler's snapshot, without calling
// RemovePod, and puts victims back, with AddPod, while it reprieves them.
// Mosaic's cache still counts the victims, so in a pod-group cycle the
// NodeInfo decides which of the pods the cache counts as bound are
// there: a bound holder missing from it holds nothing for this cycle,
// and AddPod/RemovePod change nothing for a bound holder (its presence
// in the NodeInfo already says it). Single-pod cycles keep the cache and
// the dry-run deltas alone, as before.
//
// Pods the cache assumed (Reserve, binding in flight) are never taken
// as absent: the scheduler assumes a pod in its own snapshot before
// Reserve runs, so a missing assumed pod can only be a race, and
// counting it is the safe side.

// boundHolder is a pod bound on the node with an allocation, as the
// node's view lists it (sorted by UID).
type boundHolder struct {
	uid       types.UID
	footprint map[string]device.Usage
}

// boundHoldersLocked lists the node's bound holders for its view: the last
// view's list (views never change it) unless a bound holder came or went.
// Reserve's assumed pods, the most frequent change, leave it as it was.
func (n *nodeEntry) boundHoldersLocked() []boundHolder {
	if !n.boundChanged && n.view != nil {
		return n.view.bound
	}
	n.boundChanged = false
	var out []boundHolder
	for uid, e := range n.pods {
		if !e.assumed {
			out = append(out, boundHolder{uid: uid, footprint: e.footprint})
		}
	}
	slices.SortFunc(out, func(a, b boundHolder) int { return strings.Compare(string(a.uid), string(b.uid)) })
	return out
}

// findBound returns the index of uid among the view's bound holders.
func (v *nodeView) findBound(uid types.UID) (int, bool) {
	return slices.BinarySearchFunc(v.bound, uid, func(h boundHolder, u types.UID) int { return strings.Compare(string(h.uid), string(u)) })
}

// absentFrom sums the footprints of the view's bound holders that
// nodeInfo does not hold; nil when it holds them all, which it checks
// without allocating.
func (v *nodeView) absentFrom(nodeInfo fwk.NodeInfo) map[string]device.Usage {
	if len(v.bound) == 0 || nodeInfo == nil {
		return nil
	}
	pods := nodeInfo.GetPods()
	present := 0
	for _, pi := range pods {
		if _, ok := v.findBound(pi.GetPod().UID); ok {
			present++
		}
	}
	if present == len(v.bound) {
		return nil
	}
	here := make([]bool, len(v.bound))
	for _, pi := range pods {
		if i, ok := v.findBound(pi.GetPod().UID); ok {
			here[i] = true
		}
	}
	gone := map[string]device.Usage{}
	for i, h := range v.bound {
		if here[i] {
			continue
		}
		for id, u := range h.footprint {
			gone[id] = gone[id].Add(u)
		}
	}
	return gone
}

// withRemoved is removed with more added to it, in a new map.
func withRemoved(removed, more map[string]device.Usage) map[string]device.Usage {
	out := make(map[string]device.Usage, len(removed)+len(more))
	for id, u := range removed {
		out[id] = u
	}
	for id, u := range more {
		out[id] = out[id].Add(u)
	}
	return out
}

// boundOn reports whether the cache counts pod uid as bound on node.
func (c *usageCache) boundOn(uid types.UID, node string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e := c.pods[uid]
	return e != nil && !e.assumed && e.node == node
}
