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
	usedMem, capMem, usedSlots, capSlots := after.sums()
	return scoreOf(usedMem, capMem, usedSlots, capSlots, p)
}

func scoreOf(usedMem, capMem, usedSlots, capSlots float64, p device.Policy) int64 {
	var util float64
	if capMem != 0 && capSlots != 0 {
		util = (usedMem/capMem + usedSlots/capSlots) / 2
	}
	if p == device.PolicySpread {
		util = 1 - util
	}
	return int64(util*MaxScore + 0.5)
}
