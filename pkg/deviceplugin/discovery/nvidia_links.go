//go:build cgo

package discovery

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// addNVIDIALinks records each card's peers.
//
// Where GPUs are wired to each other, the far end of a link is a GPU and
// the active links to each peer are counted. On HGX boards every link goes
// to an NVSwitch and each GPU reaches every other at full bandwidth, so
// two switch-attached GPUs are linked by the smaller of their switch link
// counts, as nvidia-smi topo -m shows it (NV18 on H100 and H200).
//
// Pairs without NVLink get a PCIe link when a PCIe switch joins them
// without a CPU root complex in between (PIX, PXB), the pairs whose
// peer-to-peer traffic is fast; other pairs get none.
func addNVIDIALinks(cards []nvidiaCard) {
	byBus := make(map[string]int, len(cards))
	for i, c := range cards {
		if c.dev.PCIBus != "" {
			byBus[c.dev.PCIBus] = i
		}
	}
	peers := make([]map[int]int, len(cards))
	switchLinks := make([]int, len(cards))
	for i := range cards {
		peers[i], switchLinks[i] = nvlinkPeers(cards[i].handle, byBus, i)
	}
	for i := range cards {
		for j := range cards {
			if i == j {
				continue
			}
			count := peers[i][j]
			if count == 0 && switchLinks[i] > 0 && switchLinks[j] > 0 {
				count = min(switchLinks[i], switchLinks[j])
			}
			if count > 0 {
				cards[i].dev.Links = append(cards[i].dev.Links, device.Link{Peer: cards[j].dev.UUID, Type: device.LinkNVLink, Count: count})
				continue
			}
			level, ret := cards[i].handle.GetTopologyCommonAncestor(cards[j].handle)
			if ret == nvml.SUCCESS && level <= nvml.TOPOLOGY_MULTIPLE {
				cards[i].dev.Links = append(cards[i].dev.Links, device.Link{Peer: cards[j].dev.UUID, Type: device.LinkPCIe, Count: 1})
			}
		}
	}
}

// nvlinkPeers counts a card's active NVLinks per peer card (by index in
// cards) and those that end at an NVSwitch.
func nvlinkPeers(h nvml.Device, byBus map[string]int, self int) (peers map[int]int, switchLinks int) {
	peers = map[int]int{}
	for l := range nvml.NVLINK_MAX_LINKS {
		state, ret := h.GetNvLinkState(l)
		// A card without NVLink says NOT_SUPPORTED for link 0; past its
		// last link NVML says INVALID_ARGUMENT (or NOT_SUPPORTED).
		if ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_INVALID_ARGUMENT {
			break
		}
		if ret != nvml.SUCCESS || state != nvml.FEATURE_ENABLED {
			continue
		}
		if typ, ret := h.GetNvLinkRemoteDeviceType(l); ret == nvml.SUCCESS && typ == nvml.NVLINK_DEVICE_TYPE_SWITCH {
			switchLinks++
			continue
		}
		pci, ret := h.GetNvLinkRemotePciInfo(l)
		if ret != nvml.SUCCESS {
			continue
		}
		bus, err := normalizePCIBusID(cString(pci.BusId[:]))
		if err != nil {
			continue
		}
		if peer, ok := byBus[bus]; ok && peer != self {
			peers[peer]++
		}
	}
	return peers, switchLinks
}
