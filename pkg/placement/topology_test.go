package placement

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// link joins cards a and b of n (both ends, as the node agent writes
// them) and rebuilds its topology.
func link(n *Node, typ device.LinkType, count int, cards ...int) *Node {
	for _, a := range cards {
		for _, b := range cards {
			if a != b {
				d := n.Cards[a].Device
				d.Links = append(d.Links, device.Link{Peer: n.Cards[b].Device.UUID, Type: typ, Count: count})
			}
		}
	}
	n.Topology = NewTopology(n.Cards)
	return n
}

// hgxH200 is an HGX H200 board: eight cards, four per NUMA node, each
// reaching every other at 18 NVLinks through the NVSwitches.
func hgxH200(used map[int]device.Usage) *Node {
	return link(node(8, 143771, []int{0, 0, 0, 0, 1, 1, 1, 1}, used), device.LinkNVLink, 18, 0, 1, 2, 3, 4, 5, 6, 7)
}

// mixed is a board of eight cards, four per NUMA node: cards 0-1 are an
// NVLink pair (4 links), 2-3 share a PCIe switch, 4-7 are joined by an
// NVSwitch (18 links).
func mixed(used map[int]device.Usage) *Node {
	n := node(8, 81920, []int{0, 0, 0, 0, 1, 1, 1, 1}, used)
	link(n, device.LinkNVLink, 4, 0, 1)
	link(n, device.LinkPCIe, 1, 2, 3)
	return link(n, device.LinkNVLink, 18, 4, 5, 6, 7)
}

func withTopology(r *device.PodRequest, t device.TopologyPolicy) *device.PodRequest {
	r.Topology = t
	return r
}

func TestPlaceChoosesLinkedCards(t *testing.T) {
	binpack := Options{GPUPolicy: device.PolicyBinpack, NUMA: NUMABestEffort}
	spread := Options{GPUPolicy: device.PolicySpread, NUMA: NUMABestEffort}
	full := device.Usage{MemoryMiB: 81920, Slots: 1}
	tests := []struct {
		name string
		node *Node
		req  *device.PodRequest
		opts Options
		want []int
		tier Tier
	}{
		// Every pair is linked: NUMA decides, then the policy. Binpack
		// takes the NUMA node left with the least room (card 5 is in use).
		{"h200 pair binpack", hgxH200(map[int]device.Usage{5: {MemoryMiB: 1000, Slots: 1}}), gpuReq(2, 1000, 0), binpack, []int{4, 5}, TierLinked},
		{"h200 pair spread", hgxH200(map[int]device.Usage{5: {MemoryMiB: 1000, Slots: 1}}), gpuReq(2, 1000, 0), spread, []int{0, 1}, TierLinked},
		{"h200 four", hgxH200(nil), gpuReq(4, 0, 0), binpack, []int{0, 1, 2, 3}, TierLinked},
		// Cards 3 and 4 are busy: four whole cards span the NUMA nodes but
		// stay on the NVSwitch.
		{"h200 four across numa", hgxH200(map[int]device.Usage{3: full, 4: full}), gpuReq(4, 0, 0), binpack, []int{0, 1, 2, 5}, TierLinked},
		{"h200 eight", hgxH200(nil), gpuReq(8, 0, 0), spread, []int{0, 1, 2, 3, 4, 5, 6, 7}, TierLinked},
		// The most links first: the NVSwitch quad over the NV4 pair, under
		// either policy.
		{"mixed pair binpack", mixed(nil), gpuReq(2, 1000, 0), binpack, []int{4, 5}, TierLinked},
		{"mixed pair spread", mixed(nil), gpuReq(2, 1000, 0), spread, []int{4, 5}, TierLinked},
		{"mixed four", mixed(nil), gpuReq(4, 0, 0), binpack, []int{4, 5, 6, 7}, TierLinked},
		// The quad is busy: the NVLink pair, then the PCIe pair.
		{"mixed pair quad busy", mixed(map[int]device.Usage{4: full, 5: full, 6: full}), gpuReq(2, 0, 0), binpack, []int{0, 1}, TierLinked},
		{"mixed pcie pair", mixed(map[int]device.Usage{0: full, 4: full, 5: full, 6: full}), gpuReq(2, 0, 0), binpack, []int{2, 3}, TierPCIe},
		// No linked or PCIe set of four: one NUMA node.
		{"mixed four numa", mixed(map[int]device.Usage{5: full}), gpuReq(4, 0, 0), binpack, []int{0, 1, 2, 3}, TierNUMA},
		// A linked pair across NUMA nodes beats an unlinked one within.
		{"linked across numa", link(node(4, 1000, []int{0, 0, 1, 1}, nil), device.LinkNVLink, 2, 1, 2), gpuReq(2, 100, 0), binpack, []int{1, 2}, TierLinked},
		// With NUMA required it does not.
		{"linked across numa single", link(node(4, 1000, []int{0, 0, 1, 1}, nil), device.LinkNVLink, 2, 1, 2), gpuReq(2, 100, 0), Options{GPUPolicy: device.PolicyBinpack, NUMA: NUMASingle}, []int{0, 1}, TierNUMA},
		// One card is unaffected by links.
		{"one card", mixed(map[int]device.Usage{3: {MemoryMiB: 80000, Slots: 1}}), gpuReq(1, 1000, 0), binpack, []int{3}, TierNUMA},
		{"required", mixed(nil), withTopology(gpuReq(4, 0, 0), device.TopologyNVLink), binpack, []int{4, 5, 6, 7}, TierLinked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, fail := Place(tc.node, tc.req, tc.opts)
			if fail != nil {
				t.Fatalf("no fit: %+v", fail)
			}
			if v := Check(tc.node, tc.req, tc.opts); !v.Fits {
				t.Errorf("Check: %+v, Place fits", v)
			}
			got := indexes(a, 0)
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("cards (-want,+got):\n%s", diff)
			}
			if tier := TierOf(tc.node, got); tier != tc.tier {
				t.Errorf("tier = %d, want %d", tier, tc.tier)
			}
		})
	}
}

func TestPlaceRequiredTopologyFailures(t *testing.T) {
	full := device.Usage{MemoryMiB: 81920, Slots: 1}
	tests := []struct {
		name         string
		node         *Node
		opts         Options
		count        int
		unresolvable bool
	}{
		// Cards 4-6 are taken: three linked cards are left, not four; an
		// emptier node would do.
		{"quad busy", mixed(map[int]device.Usage{4: full, 5: full, 6: full}), Options{NUMA: NUMABestEffort}, 4, false},
		// No node state gives eight linked cards.
		{"eight", mixed(nil), Options{NUMA: NUMABestEffort}, 8, true},
		{"no links", node(4, 81920, nil, nil), Options{NUMA: NUMANone}, 2, true},
		// The only linked pair spans the NUMA nodes.
		{"single numa", link(node(4, 1000, []int{0, 0, 1, 1}, nil), device.LinkNVLink, 2, 1, 2), Options{NUMA: NUMASingle}, 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := withTopology(gpuReq(tc.count, 0, 0), device.TopologyNVLink)
			a, fail := Place(tc.node, req, tc.opts)
			if fail == nil {
				t.Fatalf("placed %v, want %q", indexes(a, 0), ReasonTopology)
			}
			if !slices.Equal(fail.Reasons, []string{ReasonTopology}) || fail.Unresolvable != tc.unresolvable {
				t.Errorf("failure = %+v, want %q (unresolvable %v)", fail, ReasonTopology, tc.unresolvable)
			}
			v := Check(tc.node, req, tc.opts)
			if v.Fits || !slices.Equal(v.Reasons, fail.Reasons) || v.Unresolvable != fail.Unresolvable {
				t.Errorf("Check = %+v, Place %+v", v, fail)
			}
		})
	}
}

func TestScorePrefersLinkedSets(t *testing.T) {
	// Node a can give four linked cards and is empty; node b is fuller
	// (binpack's choice for a single card) but its four free cards are
	// not linked.
	a := mixed(nil)
	b := node(8, 81920, []int{0, 0, 0, 0, 1, 1, 1, 1}, map[int]device.Usage{0: {MemoryMiB: 40000, Slots: 4}, 4: {MemoryMiB: 40000, Slots: 4}})
	opts := Options{GPUPolicy: device.PolicyBinpack, NUMA: NUMABestEffort}
	four := gpuReq(4, 1000, 0)
	sa, okA := ScoreFit(a, four, opts, device.PolicyBinpack)
	sb, okB := ScoreFit(b, four, opts, device.PolicyBinpack)
	if !okA || !okB || sa <= sb {
		t.Errorf("four cards: linked node scores %d (ok %v), unlinked %d (ok %v); want the linked one higher", sa, okA, sb, okB)
	}
	// Where no node offers links, the policy decides as before.
	one := gpuReq(1, 1000, 0)
	sa, _ = ScoreFit(a, one, opts, device.PolicyBinpack)
	sb, _ = ScoreFit(b, one, opts, device.PolicyBinpack)
	if sa >= sb {
		t.Errorf("one card, binpack: empty node %d, fuller node %d; want the fuller one higher", sa, sb)
	}
	// Between two nodes of one tier, binpack and spread still choose.
	c := mixed(map[int]device.Usage{4: {MemoryMiB: 20000, Slots: 2}})
	for _, p := range []device.Policy{device.PolicyBinpack, device.PolicySpread} {
		sa, _ := ScoreFit(a, four, opts, p)
		sc, _ := ScoreFit(c, four, opts, p)
		if (sc > sa) != (p == device.PolicyBinpack) {
			t.Errorf("%s: empty node %d, fuller node %d", p, sa, sc)
		}
	}
}

func TestNewTopology(t *testing.T) {
	// A hostile inventory: links to unknown peers and to itself, and a
	// node too big for masks, change nothing.
	n := node(3, 1000, nil, nil)
	n.Cards[0].Device.Links = []device.Link{{Peer: "GPU-x", Type: device.LinkNVLink}, {Peer: "GPU-0", Type: device.LinkNVLink}}
	if topo := NewTopology(n.Cards); topo != nil {
		t.Errorf("topology of unknown and self links = %+v, want nil", topo)
	}
	big := node(maxTopologyCards+1, 1000, nil, nil)
	link(big, device.LinkNVLink, 1, 0, 1)
	if big.Topology != nil {
		t.Error("topology of a node beyond the mask size, want nil")
	}
	// A dense graph stops at maxGroups groups.
	dense := node(maxTopologyCards, 1000, nil, nil)
	for i := 0; i < maxTopologyCards; i += 2 {
		link(dense, device.LinkPCIe, 1, i, i+1)
	}
	if got := len(dense.Topology.groups); got > maxGroups {
		t.Errorf("%d groups, want at most %d", got, maxGroups)
	}
	// Cards without links do not crowd out the groups of those with.
	sparse := link(node(maxTopologyCards, 1000, nil, nil), device.LinkNVLink, 1, 60, 61, 62, 63)
	if g := sparse.Topology.groups; len(g) != 2 || g[0].mask != 0xf<<60 {
		t.Errorf("groups of four linked cards among 64: %+v", g)
	}
	// Groups of the mixed board.
	var got []string
	for _, g := range mixed(nil).Topology.groups {
		got = append(got, fmt.Sprintf("%d:%08b/%v/%d", g.tier, g.mask, g.local, g.minLinks))
	}
	slices.Sort(got)
	want := []string{"2:00000011/true/4", "2:00001100/true/0", "2:11110000/true/18", "3:00000011/true/4", "3:11110000/true/18"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("groups (-want,+got):\n%s", diff)
	}
	if !strings.Contains(ReasonTopology, device.GPUTopologyAnnotation) {
		t.Errorf("reason %q does not name the annotation", ReasonTopology)
	}
}

func BenchmarkCheckLinked(b *testing.B) {
	n := hgxH200(map[int]device.Usage{1: {MemoryMiB: 4000, Slots: 2}, 5: {MemoryMiB: 9000, Slots: 3}})
	opts := Options{GPUPolicy: device.PolicyBinpack, NUMA: NUMABestEffort}
	for _, count := range []int{2, 4} {
		req := gpuReq(count, 3000, 20)
		b.Run(fmt.Sprint("cards=", count), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !Check(n, req, opts).Fits {
					b.Fatal("does not fit")
				}
				if _, ok := ScoreFit(n, req, opts, device.PolicyBinpack); !ok {
					b.Fatal("does not fit")
				}
			}
		})
	}
}
