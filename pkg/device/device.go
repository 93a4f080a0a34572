package device

import (
	"fmt"
	"strings"
)

// Vendor names a device family. The scheduler treats vendors alike; the
// node agent and the enforcer use it to pick the runtime plumbing.
type Vendor string

const (
	VendorNVIDIA Vendor = "NVIDIA"
	VendorAscend Vendor = "Ascend"
)

// UnknownNUMA is the NUMA node of a card whose affinity the host does not
// report (sysfs numa_node = -1, common in virtual machines).
const UnknownNUMA = -1

// Device is one physical card as its node's agent discovered it.
type Device struct {
	UUID   string `json:"uuid"`
	Index  int    `json:"index"`
	Vendor Vendor `json:"vendor"`
	Model  string `json:"model"`
	// MemoryMiB is the card's physical memory.
	MemoryMiB int64 `json:"memoryMiB"`
	// ComputeUnits is the SM count (NVIDIA) or AI core count (Ascend).
	ComputeUnits int  `json:"computeUnits,omitempty"`
	NUMA         int  `json:"numa"`
	Healthy      bool `json:"healthy"`
	// MIG is true when the card is in MIG mode; Mosaic does not share such cards.
	MIG    bool   `json:"mig,omitempty"`
	PCIBus string `json:"pciBus,omitempty"`
	Links  []Link `json:"links,omitempty"`
}

// LinkType is the kind of interconnect between two cards.
type LinkType string

const (
	LinkNVLink LinkType = "nvlink"
	LinkHCCS   LinkType = "hccs"
	LinkPCIe   LinkType = "pcie"
)

// Link is an interconnect from a card to a peer card on the same node.
type Link struct {
	Peer string   `json:"peer"`
	Type LinkType `json:"type"`
	// Count is the number of links (NVLink lanes) or 1.
	Count int `json:"count,omitempty"`
}

func (d *Device) validate(path string) error {
	switch {
	case d.UUID == "":
		return fmt.Errorf("%s.uuid: must not be empty", path)
	case strings.ContainsAny(d.UUID, ", \t\n"):
		return fmt.Errorf("%s.uuid: %q must not contain commas or spaces", path, d.UUID)
	case d.Index < 0:
		return fmt.Errorf("%s.index: %d must be >= 0", path, d.Index)
	case d.Vendor != VendorNVIDIA && d.Vendor != VendorAscend:
		return fmt.Errorf("%s.vendor: %q is not one of %s, %s", path, d.Vendor, VendorNVIDIA, VendorAscend)
	case d.Model == "":
		return fmt.Errorf("%s.model: must not be empty", path)
	case d.MemoryMiB <= 0 || d.MemoryMiB > maxMemoryMiB:
		return fmt.Errorf("%s.memoryMiB: %d must be in 1..%d", path, d.MemoryMiB, maxMemoryMiB)
	case d.ComputeUnits < 0:
		return fmt.Errorf("%s.computeUnits: %d must be >= 0", path, d.ComputeUnits)
	case d.NUMA < UnknownNUMA:
		return fmt.Errorf("%s.numa: %d must be >= -1", path, d.NUMA)
	}
	for i, l := range d.Links {
		if l.Peer == "" {
			return fmt.Errorf("%s.links[%d].peer: must not be empty", path, i)
		}
		if l.Count < 0 {
			return fmt.Errorf("%s.links[%d].count: %d must be >= 0", path, i, l.Count)
		}
	}
	return nil
}

// maxMemoryMiB bounds a card's memory (16 TiB) so that sums over a node's
// cards and over-commit scaling cannot overflow int64.
const maxMemoryMiB = 16 << 20
