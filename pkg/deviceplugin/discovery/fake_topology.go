package discovery

import (
	"fmt"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// FakeTopology describes how a fake node's cards are linked, by card
// index, as the node agent would publish what NVML reports.
type FakeTopology struct {
	// NVLink groups cards every pair of which is linked by NVLink: the
	// cards of an NVSwitch board, or a bridged pair.
	NVLink []FakeLinkGroup `json:"nvlink,omitempty"`
	// HCCS groups Ascend cards every pair of which is linked by HCCS.
	HCCS []FakeLinkGroup `json:"hccs,omitempty"`
	// PCIeSwitches lists the cards under each PCIe switch.
	PCIeSwitches [][]int `json:"pcieSwitches,omitempty"`
}

// FakeLinkGroup is a set of cards linked pairwise by Links links each.
type FakeLinkGroup struct {
	Cards []int `json:"cards"`
	// Links is the number of links between each pair (NV18 through an
	// H200's NVSwitches); 0 means 1.
	Links int `json:"links,omitempty"`
}

// Connect adds t's links to the fake's cards, as the NVIDIA backend
// writes them: on both cards of a pair, a pair linked by NVLink or HCCS
// not also listed as PCIe. Errors name the field and the card.
func (f *Fake) Connect(t *FakeTopology) error {
	if t == nil {
		return nil
	}
	type pair struct{ a, b int }
	linked := map[pair]bool{}
	join := func(path string, cards []int, typ device.LinkType, count int) error {
		if len(cards) < 2 {
			return fmt.Errorf("%s.cards: a group needs at least 2 cards", path)
		}
		seen := map[int]bool{}
		for _, c := range cards {
			if c < 0 || c >= len(f.devices) {
				return fmt.Errorf("%s.cards: card %d is not one of the node's %d cards", path, c, len(f.devices))
			}
			if seen[c] {
				return fmt.Errorf("%s.cards: card %d is listed twice", path, c)
			}
			seen[c] = true
		}
		for _, a := range cards {
			for _, b := range cards {
				if a == b || (typ == device.LinkPCIe && linked[pair{a, b}]) {
					continue
				}
				if typ != device.LinkPCIe {
					if linked[pair{a, b}] {
						return fmt.Errorf("%s.cards: cards %d and %d are linked twice", path, a, b)
					}
					linked[pair{a, b}] = true
				}
				f.devices[a].Links = append(f.devices[a].Links, device.Link{Peer: f.devices[b].UUID, Type: typ, Count: count})
			}
		}
		return nil
	}
	for _, fabric := range []struct {
		name   string
		groups []FakeLinkGroup
		typ    device.LinkType
		vendor device.Vendor
	}{{"nvlink", t.NVLink, device.LinkNVLink, device.VendorNVIDIA}, {"hccs", t.HCCS, device.LinkHCCS, device.VendorAscend}} {
		for i, g := range fabric.groups {
			path := fmt.Sprintf("topology.%s[%d]", fabric.name, i)
			if g.Links < 0 || g.Links > 255 {
				return fmt.Errorf("%s.links: %d must be in 0..255", path, g.Links)
			}
			for _, c := range g.Cards {
				if c >= 0 && c < len(f.devices) && f.devices[c].Vendor != fabric.vendor {
					return fmt.Errorf("%s.cards: card %d is %s; %s links %s cards", path, c, f.devices[c].Vendor, fabric.name, fabric.vendor)
				}
			}
			if err := join(path, g.Cards, fabric.typ, max(g.Links, 1)); err != nil {
				return err
			}
		}
	}
	for i, cards := range t.PCIeSwitches {
		if err := join(fmt.Sprintf("topology.pcieSwitches[%d]", i), cards, device.LinkPCIe, 1); err != nil {
			return err
		}
	}
	return nil
}
