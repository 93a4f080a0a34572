package placement

import (
	"fmt"
	"sort"
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
		return nil, &Failure{Reasons: []string{ReasonNoDevices}, Unresolvable: true}
	}
	alloc, reasons := place(n, req, opts)
	if alloc != nil {
		return alloc, nil
	}
	if _, emptyReasons := place(n.Empty(), req, opts); emptyReasons != nil {
		return nil, &Failure{Reasons: emptyReasons, Unresolvable: true}
	}
	return nil, &Failure{Reasons: reasons}
}

func place(n *Node, req *device.PodRequest, opts Options) (*device.Allocation, []string) {
	if req.GPUPolicy != "" {
		opts.GPUPolicy = req.GPUPolicy
	}
	others := make([]device.Usage, len(n.Cards))
	for i := range n.Cards {
		others[i] = n.Cards[i].Used
	}
	app := append([]device.Usage(nil), others...)
	byName := map[string]device.ContainerAllocation{}
	// App containers and sidecars run together, so their shares add up.
	// Each regular init container runs alone before them: it only has to
	// fit beside the other pods.
	for _, init := range []bool{false, true} {
		for i := range req.Containers {
			c := &req.Containers[i]
			if c.Init != init {
				continue
			}
			used := app
			if init {
				used = others
			}
			shares, reasons := pick(n, used, c, req, opts)
			if shares == nil {
				return nil, reasons
			}
			if !init {
				for _, s := range shares {
					idx := cardIndex(n, s.UUID)
					app[idx] = app[idx].Add(device.Usage{MemoryMiB: s.MemoryMiB, Cores: s.Cores, Slots: 1, Exclusive: c.Exclusive()})
				}
			}
			byName[c.Name] = device.ContainerAllocation{Name: c.Name, Init: init, Devices: shares}
		}
	}
	alloc := &device.Allocation{Version: device.AllocationVersion, Node: n.Name}
	for _, c := range req.Containers {
		alloc.Containers = append(alloc.Containers, byName[c.Name])
	}
	return alloc, nil
}

func cardIndex(n *Node, uuid string) int {
	for i := range n.Cards {
		if n.Cards[i].Device.UUID == uuid {
			return i
		}
	}
	return -1
}

type candidate struct {
	card      int
	memory    int64
	freeAfter int64
	numa      int
}

// pick chooses c.Count distinct cards for one container.
func pick(n *Node, used []device.Usage, c *device.ContainerRequest, req *device.PodRequest, opts Options) ([]device.Share, []string) {
	rejected := map[string]int{}
	var cands []candidate
	matching := 0
	var largest int64
	for i := range n.Cards {
		card := &n.Cards[i]
		if wrongModel(card.Device, c) {
			continue
		}
		matching++
		largest = max(largest, card.Capacity.MemoryMiB)
		mem := c.MemoryOn(card.Device)
		if r := reject(card, used[i], c, mem, &req.Selector); r != "" {
			rejected[r]++
			continue
		}
		free := card.Capacity.MemoryMiB - used[i].MemoryMiB - mem
		cands = append(cands, candidate{card: i, memory: mem, freeAfter: free, numa: card.Device.NUMA})
	}
	if matching < c.Count {
		if matching == 0 {
			return nil, []string{ReasonWrongModel}
		}
		return nil, []string{ReasonTooFewCards}
	}
	if len(cands) < c.Count {
		if rejected[ReasonTooLarge] == matching {
			return nil, []string{tooLarge(c, largest)}
		}
		return nil, sortedReasons(rejected)
	}
	order(cands, n, used, opts.GPUPolicy)
	chosen := cands[:c.Count]
	if c.Count > 1 && (req.NUMABind || opts.NUMA != NUMANone) {
		group := numaGroup(cands, c.Count, opts.GPUPolicy)
		switch {
		case group != nil:
			chosen = group
		case req.NUMABind || opts.NUMA == NUMASingle:
			return nil, []string{ReasonNUMA}
		}
	}
	shares := make([]device.Share, 0, c.Count)
	for _, cd := range chosen {
		d := n.Cards[cd.card].Device
		shares = append(shares, device.Share{
			UUID: d.UUID, Index: d.Index, Vendor: d.Vendor, Model: d.Model,
			MemoryMiB: cd.memory, Cores: c.Cores, NUMA: d.NUMA, Template: c.Template,
		})
	}
	return shares, nil
}

func wrongModel(d *device.Device, c *device.ContainerRequest) bool {
	return d.Vendor != c.Vendor || (c.Model != "" && !strings.EqualFold(d.Model, c.Model))
}

// reject returns why card cannot take a share of mem MiB, or "".
func reject(card *Card, used device.Usage, c *device.ContainerRequest, mem int64, sel *device.Selector) string {
	switch {
	case !usable(card.Device):
		return ReasonUnhealthy
	case !sel.Allows(card.Device):
		return ReasonSelector
	case mem > card.Capacity.MemoryMiB || c.Cores > card.Capacity.Cores:
		return ReasonTooLarge
	case used.Exclusive:
		return ReasonExclusive
	case c.Exclusive() && used.Slots > 0:
		return ReasonNeedsEmpty
	case used.Slots >= card.Capacity.Slots:
		return ReasonSlots
	case used.MemoryMiB+mem > card.Capacity.MemoryMiB:
		return ReasonMemory
	case used.Cores+c.Cores > card.Capacity.Cores:
		return ReasonCores
	}
	return ""
}

func tooLarge(c *device.ContainerRequest, largest int64) string {
	if c.MemoryMiB > 0 {
		return fmt.Sprintf("GPU memory request %d MiB exceeds every GPU on the node (largest offers %d MiB)", c.MemoryMiB, largest)
	}
	return ReasonTooLarge
}

func sortedReasons(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for r := range m {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// order sorts candidates by the GPU policy: binpack fills the fullest card
// that fits, spread takes the emptiest. Ties go to the lower index so that
// placements are deterministic.
func order(cands []candidate, n *Node, used []device.Usage, p device.Policy) {
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.freeAfter != b.freeAfter {
			if p == device.PolicySpread {
				return a.freeAfter > b.freeAfter
			}
			return a.freeAfter < b.freeAfter
		}
		if sa, sb := used[a.card].Slots, used[b.card].Slots; sa != sb {
			if p == device.PolicySpread {
				return sa < sb
			}
			return sa > sb
		}
		return n.Cards[a.card].Device.Index < n.Cards[b.card].Device.Index
	})
}

// numaGroup returns count candidates from one NUMA node, or nil. Among the
// NUMA nodes that can hold the container, binpack takes the one left with
// the least room (keeping the others whole for later multi-card requests)
// and spread the one with the most.
func numaGroup(cands []candidate, count int, p device.Policy) []candidate {
	groups := map[int][]candidate{}
	var keys []int
	for _, c := range cands {
		if _, ok := groups[c.numa]; !ok {
			keys = append(keys, c.numa)
		}
		groups[c.numa] = append(groups[c.numa], c)
	}
	sort.Ints(keys)
	var best []candidate
	var bestRoom int64
	for _, k := range keys {
		g := groups[k]
		if len(g) < count {
			continue
		}
		var room int64
		for _, c := range g {
			room += c.freeAfter
		}
		if best == nil || (p == device.PolicySpread && room > bestRoom) || (p != device.PolicySpread && room < bestRoom) {
			best, bestRoom = g[:count], room
		}
	}
	return best
}
