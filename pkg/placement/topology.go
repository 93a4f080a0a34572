package placement

import (
	"math/bits"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// Tier ranks a set of cards by how they reach each other, best last.
type Tier int8

const (
	// TierAny: some pair of the cards meets only through the CPUs of two
	// NUMA nodes.
	TierAny Tier = iota
	// TierNUMA: all cards on one NUMA node.
	TierNUMA
	// TierPCIe: every pair under one PCIe switch, or linked.
	TierPCIe
	// TierLinked: every pair linked by NVLink (HCCS on Ascend), directly
	// or through NVSwitch.
	TierLinked
)

// maxTopologyCards bounds the nodes whose links placement reads: the sets
// are bit masks over a node's cards. No board has more cards today.
const maxTopologyCards = 64

// maxGroups bounds the link groups kept per node, so that a hostile or
// odd inventory cannot make every placement on its node slow.
const maxGroups = 64

// Topology is how a node's cards are linked, as masks over their
// positions in Node.Cards. It is built once per inventory (NewTopology),
// so that choosing a set of cards is a few mask operations per group.
type Topology struct {
	// linked[i] holds the cards linked to card i by NVLink or HCCS;
	// pcie[i] those under a PCIe switch with it, or linked.
	linked, pcie []uint64
	// links[i*len+j] is the number of NVLinks between cards i and j.
	links  []uint8
	groups []linkGroup
}

// linkGroup is a maximal set of cards every pair of which is linked (or
// under a PCIe switch), or its part on one NUMA node.
type linkGroup struct {
	mask uint64
	tier Tier // TierLinked or TierPCIe
	// local: all its cards are on one NUMA node. part: it is the local
	// part of a larger group, worth choosing only where NUMA matters.
	local, part bool
	// minLinks is the fewest NVLinks between two of its cards: the set's
	// bandwidth is its weakest pair's.
	minLinks int
}

// NewTopology reads the links of a node's cards (only Card.Device is
// used). It returns nil for a node without links between its cards, or
// with more than maxTopologyCards cards: placement then considers NUMA
// nodes alone. A link is taken as both its ends report it, or one does:
// the node agent writes both.
func NewTopology(cards []Card) *Topology {
	n := len(cards)
	if n < 2 || n > maxTopologyCards {
		return nil
	}
	pos := make(map[string]int, n)
	for i := range cards {
		pos[cards[i].Device.UUID] = i
	}
	t := &Topology{linked: make([]uint64, n), pcie: make([]uint64, n), links: make([]uint8, n*n)}
	any := false
	for i := range cards {
		for _, l := range cards[i].Device.Links {
			j, ok := pos[l.Peer]
			if !ok || j == i {
				continue
			}
			any = true
			switch l.Type {
			case device.LinkNVLink, device.LinkHCCS:
				t.linked[i] |= 1 << j
				t.linked[j] |= 1 << i
				c := uint8(min(max(l.Count, 1), 255))
				t.links[i*n+j], t.links[j*n+i] = max(t.links[i*n+j], c), max(t.links[j*n+i], c)
			case device.LinkPCIe:
				t.pcie[i] |= 1 << j
				t.pcie[j] |= 1 << i
			}
		}
	}
	if !any {
		return nil
	}
	for i := range t.pcie {
		t.pcie[i] |= t.linked[i]
	}
	for _, tier := range []Tier{TierLinked, TierPCIe} {
		adj := t.linked
		if tier == TierPCIe {
			adj = t.pcie
		}
		// Cards without a link of the tier are in no group: leaving
		// them out keeps them from counting against maxGroups.
		var linked uint64
		for i, a := range adj {
			if a != 0 {
				linked |= 1 << i
			}
		}
		cliques(adj, 0, linked, 0, func(m uint64) { t.addGroup(cards, m, tier) })
	}
	return t
}

// addGroup adds the clique m, and its part on each NUMA node where it
// spans several.
func (t *Topology) addGroup(cards []Card, m uint64, tier Tier) {
	if bits.OnesCount64(m) < 2 {
		return
	}
	first := cards[bits.TrailingZeros64(m)].Device.NUMA
	local := true
	for r := m; r != 0; r &= r - 1 {
		if cards[bits.TrailingZeros64(r)].Device.NUMA != first {
			local = false
		}
	}
	t.add(linkGroup{mask: m, tier: tier, local: local, minLinks: t.minLinks(m)})
	if local {
		return
	}
	for r := m; r != 0; {
		numa := cards[bits.TrailingZeros64(r)].Device.NUMA
		var part uint64
		for s := r; s != 0; s &= s - 1 {
			if i := bits.TrailingZeros64(s); cards[i].Device.NUMA == numa {
				part |= 1 << i
			}
		}
		r &^= part
		if bits.OnesCount64(part) >= 2 {
			t.add(linkGroup{mask: part, tier: tier, local: true, part: true, minLinks: t.minLinks(part)})
		}
	}
}

func (t *Topology) add(g linkGroup) {
	if len(t.groups) >= maxGroups {
		return
	}
	for _, h := range t.groups {
		if h.mask == g.mask && h.tier == g.tier {
			return
		}
	}
	t.groups = append(t.groups, g)
}

func (t *Topology) minLinks(m uint64) int {
	n := len(t.linked)
	low := 0
	for r := m; r != 0; r &= r - 1 {
		i := bits.TrailingZeros64(r)
		for s := r & (r - 1); s != 0; s &= s - 1 {
			if c := int(t.links[i*n+bits.TrailingZeros64(s)]); low == 0 || c < low {
				low = c
			}
		}
	}
	return low
}

// cliques calls emit with every maximal clique of the graph adj that
// holds r, extends it from p and excludes x (Bron–Kerbosch with a pivot),
// stopping after maxGroups of them.
func cliques(adj []uint64, r, p, x uint64, emit func(uint64)) int {
	if p == 0 && x == 0 {
		emit(r)
		return 1
	}
	pivot, most := 0, -1
	for u := p | x; u != 0; u &= u - 1 {
		if v := bits.TrailingZeros64(u); bits.OnesCount64(p&adj[v]) > most {
			pivot, most = v, bits.OnesCount64(p&adj[v])
		}
	}
	found := 0
	for u := p &^ adj[pivot]; u != 0 && found < maxGroups; u &= u - 1 {
		v := bits.TrailingZeros64(u)
		found += cliques(adj, r|1<<v, p&adj[v], x&adj[v], emit)
		p &^= 1 << v
		x |= 1 << v
	}
	return found
}

// numaMode is how NUMA weighs in the choice of a container's cards.
type numaMode int8

const (
	numaIgnored numaMode = iota
	numaPreferred
	numaRequired
)

func numaModeOf(req *device.PodRequest, opts Options) numaMode {
	switch {
	case req.NUMABind || opts.NUMA == NUMASingle:
		return numaRequired
	case opts.NUMA == NUMABestEffort:
		return numaPreferred
	}
	return numaIgnored
}

// rank orders the groups a container may take under mode: linked before
// PCIe, and a group on one NUMA node before one across NUMA nodes where
// NUMA is preferred. ok is false for a group it may not take.
func (g *linkGroup) rank(mode numaMode, topo device.TopologyPolicy) (rank int, ok bool) {
	switch {
	case topo == device.TopologyNVLink && g.tier != TierLinked,
		mode == numaRequired && !g.local,
		mode == numaIgnored && g.part:
		return 0, false
	}
	rank = int(g.tier) * 2
	if mode == numaPreferred && g.local {
		rank++
	}
	return rank, true
}

// bestGroup returns the mask of the best group that holds count of the
// candidates (ordered by policy p), if any: the highest rank, then the
// strongest weakest link, then as numaGroup chooses NUMA nodes, the
// least room left for binpack and the most for spread; then the first.
func (t *Topology) bestGroup(cands []candidate, candMask uint64, count int, mode numaMode, topo device.TopologyPolicy, p device.Policy) (uint64, bool) {
	if t == nil {
		return 0, false
	}
	var best uint64
	bestRank, bestLinks, found := 0, 0, false
	var bestRoom int64
	for i := range t.groups {
		g := &t.groups[i]
		rank, ok := g.rank(mode, topo)
		if !ok || bits.OnesCount64(g.mask&candMask) < count {
			continue
		}
		var room int64
		for _, c := range cands {
			if g.mask&(1<<c.card) != 0 {
				room += c.freeAfter
			}
		}
		better := !found || rank > bestRank ||
			rank == bestRank && (g.minLinks > bestLinks ||
				g.minLinks == bestLinks && ((p == device.PolicySpread && room > bestRoom) || (p != device.PolicySpread && room < bestRoom)))
		if better {
			best, bestRank, bestLinks, bestRoom, found = g.mask, rank, g.minLinks, room, true
		}
	}
	return best, found
}

// holds reports whether some group the container may take holds count of
// the candidates: whether it fits, where the set must be linked.
func (t *Topology) holds(candMask uint64, count int, mode numaMode, topo device.TopologyPolicy) bool {
	if t == nil {
		return false
	}
	for i := range t.groups {
		g := &t.groups[i]
		if _, ok := g.rank(mode, topo); ok && bits.OnesCount64(g.mask&candMask) >= count {
			return true
		}
	}
	return false
}

// TierOf is how the cards at positions idx of n reach each other.
func TierOf(n *Node, idx []int) Tier {
	if t := n.Topology; t != nil && len(idx) > 1 {
		var m uint64
		for _, i := range idx {
			m |= 1 << i
		}
		linked, pcie := true, true
		for _, i := range idx {
			rest := m &^ (1 << i)
			linked = linked && rest&^t.linked[i] == 0
			pcie = pcie && rest&^t.pcie[i] == 0
		}
		switch {
		case linked:
			return TierLinked
		case pcie:
			return TierPCIe
		}
	}
	for _, i := range idx {
		if n.Cards[i].Device.NUMA != n.Cards[idx[0]].Device.NUMA {
			return TierAny
		}
	}
	return TierNUMA
}
