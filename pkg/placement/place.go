package placement

import (
	"slices"
	"strings"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// NUMAPolicy says how a container's cards relate to NUMA nodes.
type NUMAPolicy string

const (
	// NUMANone ignores NUMA unless the pod asks for numa-bind.
	NUMANone NUMAPolicy = "none"
	// NUMABestEffort puts a multi-card container on one NUMA node when it can.
	NUMABestEffort NUMAPolicy = "best-effort"
	// NUMASingle requires all cards of a container on one NUMA node.
	NUMASingle NUMAPolicy = "single-numa"
)

// Options are the scheduler-wide choices that apply to a placement.
type Options struct {
	GPUPolicy device.Policy
	NUMA      NUMAPolicy
}

// Failure says why a pod does not fit a node.
type Failure struct {
	Reasons []string
	// Unresolvable is true when the pod would not fit even on the empty
	// node, so preempting pods there cannot help.
	Unresolvable bool
}

// Place chooses cards on n for every container of req, or says why not.
func Place(n *Node, req *device.PodRequest, opts Options) (*device.Allocation, *Failure) {
	if len(n.Cards) == 0 {
		return nil, &Failure{Reasons: noDevices, Unresolvable: true}
	}
	alloc, why := place(n, false, req, opts)
	if alloc != nil {
		return alloc, nil
	}
	if _, emptyWhy := place(n, true, req, opts); emptyWhy.set != 0 {
		return nil, &Failure{Reasons: emptyWhy.reasons(), Unresolvable: true}
	}
	return nil, &Failure{Reasons: why.reasons()}
}

// place places req on n as it is, or on n emptied of every pod when empty
// is set: what preemption could at best make of the node.
func place(n *Node, empty bool, req *device.PodRequest, opts Options) (*device.Allocation, why) {
	if req.GPUPolicy != "" {
		opts.GPUPolicy = req.GPUPolicy
	}
	// app is what the pod's own app containers add to each card.
	app := make([]device.Usage, len(n.Cards))
	byName := map[string]device.ContainerAllocation{}
	var buf [stackCards]candidate
	// App containers and sidecars run together, so their shares add up.
	// Each regular init container runs alone before them: it only has to
	// fit beside the other pods.
	for _, init := range []bool{false, true} {
		for i := range req.Containers {
			c := &req.Containers[i]
			if c.Init != init {
				continue
			}
			extra := app
			if init {
				extra = nil
			}
			chosen, w := pick(n, empty, false, extra, c, req, opts, buf[:0])
			if w.set != 0 {
				return nil, w
			}
			shares := make([]device.Share, 0, c.Count)
			for _, cd := range chosen {
				d := n.Cards[cd.card].Device
				shares = append(shares, device.Share{
					UUID: d.UUID, Index: d.Index, Vendor: d.Vendor, Model: d.Model,
					MemoryMiB: cd.memory, Cores: c.Cores, NUMA: d.NUMA, Template: c.Template,
				})
				if !init {
					app[cd.card] = app[cd.card].Add(device.Usage{MemoryMiB: cd.memory, Cores: c.Cores, Slots: 1, Exclusive: c.Exclusive()})
				}
			}
			byName[c.Name] = device.ContainerAllocation{Name: c.Name, Init: init, Devices: shares}
		}
	}
	alloc := &device.Allocation{Version: device.AllocationVersion, Node: n.Name}
	for _, c := range req.Containers {
		alloc.Containers = append(alloc.Containers, byName[c.Name])
	}
	return alloc, why{}
}

func cardIndex(n *Node, uuid string) int {
	for i := range n.Cards {
		if n.Cards[i].Device.UUID == uuid {
			return i
		}
	}
	return -1
}

// stackCards is how many candidates the placement keeps on the stack; a
// node with more cards costs an allocation.
const stackCards = 32

type candidate struct {
	card      int
	memory    int64
	freeAfter int64
	numa      int
	slots     int // slots in use before this container
	index     int // the card's index, the last tie-breaker
}

// pick chooses c.Count distinct cards for one container and returns them in
// the front of buf, or says why none fit. A card's usage is its own (none
// when empty is set) plus extra[i], what the pod's earlier containers take.
// It allocates nothing for nodes of up to stackCards cards.
//
// With fitOnly set it only decides whether the container fits, which
// needs no order, and returns the fitting cards unordered.
func pick(n *Node, empty, fitOnly bool, extra []device.Usage, c *device.ContainerRequest, req *device.PodRequest, opts Options, buf []candidate) ([]candidate, why) {
	var rejected reasonSet
	var candMask uint64 // the candidates' positions, for the topology
	cands := buf[:0]
	matching, tooBig := 0, 0
	var largest int64
	for i := range n.Cards {
		card := &n.Cards[i]
		if wrongModel(card.Device, c) {
			continue
		}
		matching++
		largest = max(largest, card.Capacity.MemoryMiB)
		var used device.Usage
		if !empty {
			used = card.Used
		}
		if extra != nil {
			used = used.Add(extra[i])
		}
		mem := c.MemoryOn(card.Device)
		if r := reject(card, used, c, mem, &req.Selector); r != 0 {
			rejected |= r
			if r == rTooLarge {
				tooBig++
			}
			continue
		}
		free := card.Capacity.MemoryMiB - used.MemoryMiB - mem
		cands = append(cands, candidate{card: i, memory: mem, freeAfter: free, numa: card.Device.NUMA, slots: used.Slots, index: card.Device.Index})
		candMask |= 1 << i
	}
	if matching < c.Count {
		if matching == 0 {
			return nil, why{set: rWrongModel}
		}
		return nil, why{set: rTooFewCards}
	}
	if len(cands) < c.Count {
		if tooBig == matching {
			return nil, why{set: rTooLargeMiB, mem: c.MemoryMiB, largest: largest}
		}
		return nil, why{set: rejected}
	}
	if c.Count == 1 {
		if fitOnly {
			return cands, why{}
		}
		order(cands, opts.GPUPolicy)
		return cands[:1], why{}
	}
	mode := numaModeOf(req, opts)
	if fitOnly {
		// Whether the container fits does not depend on which cards it
		// would get: only a required link or NUMA node can still refuse it.
		switch {
		case req.Topology == device.TopologyNVLink:
			if !n.Topology.holds(candMask, c.Count, mode, req.Topology) {
				return nil, why{set: rTopology}
			}
		case mode == numaRequired && !numaFits(cands, c.Count):
			return nil, why{set: rNUMA}
		}
		return cands, why{}
	}
	order(cands, opts.GPUPolicy)
	// The best-linked group of cards that holds the container, then the
	// best NUMA node (topology.go).
	if g, ok := n.Topology.bestGroup(cands, candMask, c.Count, mode, req.Topology, opts.GPUPolicy); ok {
		front(cands, c.Count, func(cd *candidate) bool { return g&(1<<cd.card) != 0 })
		return cands[:c.Count], why{}
	}
	if req.Topology == device.TopologyNVLink {
		return nil, why{set: rTopology}
	}
	if mode != numaIgnored {
		switch k, ok := numaGroup(cands, c.Count, opts.GPUPolicy); {
		case ok:
			front(cands, c.Count, func(cd *candidate) bool { return cd.numa == k })
		case mode == numaRequired:
			return nil, why{set: rNUMA}
		}
	}
	return cands[:c.Count], why{}
}

// front moves the first count candidates that in takes, in order, to the
// front of cands.
func front(cands []candidate, count int, in func(*candidate) bool) {
	j := 0
	for i := range cands {
		if j < count && in(&cands[i]) {
			cands[j], cands[i] = cands[i], cands[j]
			j++
		}
	}
}

func wrongModel(d *device.Device, c *device.ContainerRequest) bool {
	return d.Vendor != c.Vendor || (c.Model != "" && !strings.EqualFold(d.Model, c.Model))
}

// reject returns why card cannot take a share of mem MiB, or 0.
func reject(card *Card, used device.Usage, c *device.ContainerRequest, mem int64, sel *device.Selector) reasonSet {
	switch {
	case !usable(card.Device):
		return rUnhealthy
	case !sel.Allows(card.Device):
		return rSelector
	case mem > card.Capacity.MemoryMiB || c.Cores > card.Capacity.Cores:
		return rTooLarge
	case used.Exclusive:
		return rExclusive
	case c.Exclusive() && used.Slots > 0:
		return rNeedsEmpty
	case used.Slots >= card.Capacity.Slots:
		return rSlots
	case used.MemoryMiB+mem > card.Capacity.MemoryMiB:
		return rMemory
	case used.Cores+c.Cores > card.Capacity.Cores:
		return rCores
	}
	return 0
}

// order sorts candidates by the GPU policy: binpack fills the fullest card
// that fits, spread takes the emptiest. Ties go to the lower index so that
// placements are deterministic.
func order(cands []candidate, p device.Policy) {
	spread := p == device.PolicySpread
	slices.SortStableFunc(cands, func(a, b candidate) int {
		if a.freeAfter != b.freeAfter {
			if (a.freeAfter > b.freeAfter) == spread {
				return -1
			}
			return 1
		}
		if a.slots != b.slots {
			if (a.slots < b.slots) == spread {
				return -1
			}
			return 1
		}
		return a.index - b.index
	})
}

// numaGroup returns the NUMA node whose candidates hold the container, if
// one can. Among the NUMA nodes that can, binpack takes the one left with
// the least room (keeping the others whole for later multi-card requests)
// and spread the one with the most; ties go to the lowest NUMA node.
func numaGroup(cands []candidate, count int, p device.Policy) (best int, ok bool) {
	var bestRoom int64
	for prev, first := 0, true; ; first = false {
		// The NUMA nodes in ascending order, without a map.
		k, found := 0, false
		for _, c := range cands {
			if (first || c.numa > prev) && (!found || c.numa < k) {
				k, found = c.numa, true
			}
		}
		if !found {
			return best, ok
		}
		prev = k
		size, room := 0, int64(0)
		for _, c := range cands {
			if c.numa == k {
				size++
				room += c.freeAfter
			}
		}
		if size < count {
			continue
		}
		if !ok || (p == device.PolicySpread && room > bestRoom) || (p != device.PolicySpread && room < bestRoom) {
			best, bestRoom, ok = k, room, true
		}
	}
}

// numaFits reports whether count candidates share a NUMA node.
func numaFits(cands []candidate, count int) bool {
	for i, a := range cands {
		same := 0
		for _, b := range cands[i:] {
			if b.numa == a.numa {
				same++
			}
		}
		if same >= count {
			return true
		}
	}
	return false
}
