package placement

import "github.com/mosaic-gpu/mosaic/pkg/device"

// MaxScore matches the framework's fwk.MaxNodeScore.
const MaxScore = 100

// Score rates n for alloc under the node policy, 0..MaxScore: binpack
// prefers the node that is fullest once the pod is placed, spread the
// emptiest.
func Score(n *Node, alloc *device.Allocation, p device.Policy) int64 {
	after := &Node{Name: n.Name, Cards: append([]Card(nil), n.Cards...)}
	for id, u := range alloc.Footprint() {
		if i := cardIndex(after, id); i >= 0 {
			after.Cards[i].Used = after.Cards[i].Used.Add(u)
		}
	}
	util := after.Utilization()
	if p == device.PolicySpread {
		util = 1 - util
	}
	return int64(util*MaxScore + 0.5)
}
