package placement

import "github.com/mosaic-gpu/mosaic/pkg/device"

// Check and ScoreFit are what the scheduler asks of every node for every
// pod, so for the common pod, whose devices go to one app container, they
// allocate nothing and build no allocation; Place decides the same. Pods
// with several device containers take Place's path.

// Verdict says whether a pod fits a node and, if not, why.
type Verdict struct {
	Fits bool
	// Reasons are shared between verdicts: append to them, never write.
	Reasons []string
	// Unresolvable: the pod would not fit even on the empty node.
	Unresolvable bool
}

// oneContainer reports whether the pod's devices go to a single app
// container, so that one pick decides its fit.
func oneContainer(req *device.PodRequest) bool {
	return len(req.Containers) == 1 && !req.Containers[0].Init
}

// Check says whether req fits n, exactly as Place decides.
func Check(n *Node, req *device.PodRequest, opts Options) Verdict {
	if len(n.Cards) == 0 {
		return Verdict{Reasons: noDevices, Unresolvable: true}
	}
	if !oneContainer(req) {
		if _, fail := Place(n, req, opts); fail != nil {
			return Verdict{Reasons: fail.Reasons, Unresolvable: fail.Unresolvable}
		}
		return Verdict{Fits: true}
	}
	if req.GPUPolicy != "" {
		opts.GPUPolicy = req.GPUPolicy
	}
	var buf [stackCards]candidate
	_, w := pick(n, false, true, nil, &req.Containers[0], req, opts, buf[:0])
	if w.set == 0 {
		return Verdict{Fits: true}
	}
	if _, empty := pick(n, true, true, nil, &req.Containers[0], req, opts, buf[:0]); empty.set != 0 {
		return Verdict{Reasons: empty.reasons(), Unresolvable: true}
	}
	return Verdict{Reasons: w.reasons()}
}

// ScoreFit is Score of the allocation Place would make of req on n under
// node policy p; ok is false when req does not fit.
func ScoreFit(n *Node, req *device.PodRequest, opts Options, p device.Policy) (score int64, ok bool) {
	if !oneContainer(req) {
		alloc, fail := Place(n, req, opts)
		if fail != nil {
			return 0, false
		}
		return Score(n, alloc, p), true
	}
	if req.GPUPolicy != "" {
		opts.GPUPolicy = req.GPUPolicy
	}
	var buf [stackCards]candidate
	c := &req.Containers[0]
	chosen, w := pick(n, false, false, nil, c, req, opts, buf[:0])
	if w.set != 0 {
		return 0, false
	}
	// As Score: the node's utilization once the shares are added.
	var usedMem, capMem, usedSlots, capSlots float64
	for i := range n.Cards {
		card := &n.Cards[i]
		if !usable(card.Device) {
			continue
		}
		used := card.Used
		for _, cd := range chosen {
			if cd.card == i {
				used = used.Add(device.Usage{MemoryMiB: cd.memory, Cores: c.Cores, Slots: 1, Exclusive: c.Exclusive()})
			}
		}
		usedMem += float64(min(used.MemoryMiB, card.Capacity.MemoryMiB))
		capMem += float64(card.Capacity.MemoryMiB)
		usedSlots += float64(min(used.Slots, card.Capacity.Slots))
		capSlots += float64(card.Capacity.Slots)
	}
	score = scoreOf(usedMem, capMem, usedSlots, capSlots, p)
	if len(chosen) < 2 {
		return score, true
	}
	var idx [stackCards]int
	pos := idx[:0]
	for _, cd := range chosen {
		pos = append(pos, cd.card)
	}
	return banded(score, TierOf(n, pos)), true
}
