package device

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// InventoryVersion is the version of the Inventory encoding this package
// writes and the only one it reads.
const InventoryVersion = 1

// Inventory is what a node's agent publishes on its Node object.
type Inventory struct {
	Version int      `json:"version"`
	Devices []Device `json:"devices"`
	// Config is how the node shares its cards: the node agent publishes
	// the values it serves the kubelet with, so that the scheduler places
	// on each card exactly as many shares as the kubelet counts.
	Config NodeConfig `json:"config,omitempty"`
	// NRI is true when the node agent hands out cards at container creation
	// (the pod's allocation is read there). False means the kubelet's
	// Allocate call does it, which cannot tell pods apart, so the scheduler
	// lets only one GPU pod at a time be in flight to such a node. The
	// agent says true only while its NRI plugin is connected to the runtime.
	NRI bool `json:"nri"`
}

// EncodeInventory validates inv and returns its annotation value.
func EncodeInventory(inv *Inventory) (string, error) {
	inv.Version = InventoryVersion
	if err := inv.Validate(); err != nil {
		return "", err
	}
	b, err := json.Marshal(inv)
	return string(b), err
}

// DecodeInventory parses and validates an annotation value. Unknown fields
// and a version other than InventoryVersion are errors: a scheduler must not
// place work on cards it misunderstands.
func DecodeInventory(s string) (*Inventory, error) {
	var inv Inventory
	if err := strictUnmarshal(s, &inv); err != nil {
		return nil, fmt.Errorf("%s: %w", InventoryAnnotation, err)
	}
	if inv.Version != InventoryVersion {
		return nil, fmt.Errorf("%s: version %d is not supported (want %d)", InventoryAnnotation, inv.Version, InventoryVersion)
	}
	if err := inv.Validate(); err != nil {
		return nil, err
	}
	return &inv, nil
}

// Validate checks every device and the config; UUIDs and indexes must be unique.
func (inv *Inventory) Validate() error {
	if len(inv.Devices) > maxDevicesPerNode {
		return fmt.Errorf("%s.devices: %d devices exceed the limit of %d", InventoryAnnotation, len(inv.Devices), maxDevicesPerNode)
	}
	uuids := make(map[string]bool, len(inv.Devices))
	indexes := make(map[int]bool, len(inv.Devices))
	for i := range inv.Devices {
		d := &inv.Devices[i]
		path := fmt.Sprintf("%s.devices[%d]", InventoryAnnotation, i)
		if err := d.validate(path); err != nil {
			return err
		}
		if uuids[d.UUID] {
			return fmt.Errorf("%s.uuid: %q is listed twice", path, d.UUID)
		}
		if indexes[d.Index] {
			return fmt.Errorf("%s.index: %d is listed twice", path, d.Index)
		}
		uuids[d.UUID], indexes[d.Index] = true, true
	}
	return inv.Config.Validate(InventoryAnnotation + ".config")
}

const maxDevicesPerNode = 256

func strictUnmarshal(s string, v any) error {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}
