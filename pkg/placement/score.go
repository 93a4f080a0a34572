package placement

import "github.com/mosaic-gpu/mosaic/pkg/device"

// MaxScore matches the framework's fwk.MaxNodeScore.
const MaxScore = 100

// Score rates n for alloc under the node policy, 0..MaxScore: binpack
// prefers the node that is fullest once the pod is placed, spread the
// emptiest. For a pod with a multi-card container, how well its cards
// are linked comes first (banded).
func Score(n *Node, alloc *device.Allocation, p device.Policy) int64 {
	after := &Node{Name: n.Name, Cards: append([]Card(nil), n.Cards...)}
	for id, u := range alloc.Footprint() {
		if i := cardIndex(after, id); i >= 0 {
			after.Cards[i].Used = after.Cards[i].Used.Add(u)
		}
	}
	usedMem, capMem, usedSlots, capSlots := after.sums()
	score := scoreOf(usedMem, capMem, usedSlots, capSlots, p)
	multi, worst := false, TierLinked
	for _, c := range alloc.Containers {
		if len(c.Devices) < 2 {
			continue
		}
		idx := make([]int, 0, len(c.Devices))
		for _, s := range c.Devices {
			if i := cardIndex(n, s.UUID); i >= 0 {
				idx = append(idx, i)
			}
		}
		multi, worst = true, min(worst, TierOf(n, idx))
	}
	if multi {
		return banded(score, worst)
	}
	return score
}

// tierBand is the share of the score range each Tier takes.
const tierBand = (MaxScore + 1) / (int64(TierLinked) + 1)

// banded puts a policy score into its tier's band of the score range, so
// that a node offering a better-linked set of cards scores above every
// node offering a worse one, and the node policy decides within a tier.
func banded(score int64, t Tier) int64 {
	return int64(t)*tierBand + score*(tierBand-1)/MaxScore
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
