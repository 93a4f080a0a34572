package integration

import (
	"fmt"
	"slices"
	"testing"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
	"github.com/mosaic-gpu/mosaic/pkg/sim"
)

// h200 is a node spec of eight H200 cards, four per NUMA node, linked as
// topo says.
func h200(name string, topo *discovery.FakeTopology) sim.NodeSpec {
	return sim.NodeSpec{Name: name, Topology: topo, GPUs: []discovery.CardSpec{{Vendor: device.VendorNVIDIA, Model: "NVIDIA H200",
		MemoryMiB: 143771, SMs: 132, Count: 8, NUMA: []int{0, 0, 0, 0, 1, 1, 1, 1}}}}
}

var whole = func(n int) map[string]string { return map[string]string{"nvidia.com/gpu": fmt.Sprint(n)} }

var requireNVLink = map[string]string{device.GPUTopologyAnnotation: string(device.TopologyNVLink)}

// linkedSet fails unless every pair of the pod's cards is linked by
// NVLink in the node's inventory, and returns the cards' indexes sorted.
func (e *env) linkedSet(a *device.Allocation) []int {
	e.t.Helper()
	inv := e.inventory(a.Node)
	links := map[[2]string]bool{}
	for _, d := range inv.Devices {
		for _, l := range d.Links {
			if l.Type == device.LinkNVLink {
				links[[2]string{d.UUID, l.Peer}] = true
			}
		}
	}
	shares := a.Containers[0].Devices
	for _, s := range shares {
		for _, t := range shares {
			if s.UUID != t.UUID && !links[[2]string{s.UUID, t.UUID}] {
				e.t.Errorf("cards %d and %d of %s are not linked by NVLink", s.Index, t.Index, a.Node)
			}
		}
	}
	return sorted(cards(a))
}

func sorted(s []int) []int {
	slices.Sort(s)
	return s
}

// On a mixed board (an NVLink pair, a PCIe pair, four cards on an
// NVSwitch) sets go by links, most links first; a required link waits
// until a linked set frees, then binds.
func TestTopologyMixedNode(t *testing.T) {
	e := newEnv(t, nil, h200("topo-mixed", &discovery.FakeTopology{
		NVLink:       []discovery.FakeLinkGroup{{Cards: []int{0, 1}, Links: 4}, {Cards: []int{4, 5, 6, 7}, Links: 18}},
		PCIeSwitches: [][]int{{2, 3}},
	}))
	_, a := e.mustBind(podSpec{name: "four", limits: whole(4)})
	if got := e.linkedSet(a); !slices.Equal(got, []int{4, 5, 6, 7}) {
		t.Errorf("4 cards: %v, want the NVSwitch quad", got)
	}
	_, a = e.mustBind(podSpec{name: "pair", limits: whole(2)})
	if got := e.linkedSet(a); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("2 cards: %v, want the NVLink pair", got)
	}
	// Only the PCIe pair is free: refused with the reason, resolvable;
	// preferred, it takes the PCIe pair.
	e.mustReject(podSpec{name: "nvlink", limits: whole(2), annotations: requireNVLink}, placement.ReasonTopology)
	_, a = e.mustBind(podSpec{name: "pcie", limits: whole(2)})
	if got := sorted(cards(a)); !slices.Equal(got, []int{2, 3}) {
		t.Errorf("2 cards: %v, want the PCIe pair", got)
	}
	e.delete("four")
	if p := e.settleBound("nvlink"); p == nil {
		t.Fatal("the pod requiring NVLink was not bound once the quad freed")
	} else if got := e.linkedSet(allocation(t, p)); len(got) != 2 || got[0] < 4 {
		t.Errorf("2 linked cards: %v, want two of the quad", got)
	}
	e.checkCapacity()
}

// Between nodes offering equally linked sets, the node policy still
// decides: binpack fills one board, spread uses both.
func TestTopologyNodePolicy(t *testing.T) {
	nvswitch := &discovery.FakeTopology{NVLink: []discovery.FakeLinkGroup{{Cards: []int{0, 1, 2, 3, 4, 5, 6, 7}, Links: 18}}}
	for _, tc := range []struct {
		policy string
		nodes  int
	}{{"binpack", 1}, {"spread", 2}} {
		t.Run(tc.policy, func(t *testing.T) {
			e := newEnv(t, withArgs("nodePolicy: binpack", "nodePolicy: "+tc.policy),
				h200("topo-"+tc.policy+"-a", nvswitch), h200("topo-"+tc.policy+"-b", nvswitch))
			nodes := map[string]bool{}
			for i := range 2 {
				_, a := e.mustBind(podSpec{name: fmt.Sprint("p", i), limits: whole(2)})
				e.linkedSet(a)
				nodes[a.Node] = true
			}
			if len(nodes) != tc.nodes {
				t.Errorf("%s placed two pods on %d nodes, want %d", tc.policy, len(nodes), tc.nodes)
			}
			e.checkCapacity()
		})
	}
}
