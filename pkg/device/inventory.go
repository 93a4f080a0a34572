package device

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// InventoryVersion is the version of the Inventory encoding this package
// writes and the only one it reads.
const InventoryVersion = 1

// Inventory is what a node's agent publishes on its Node object.
type Inventory struct {
	Version int      `json:"version"`
	Devices []Device `json:"devices"`
	// Config holds this node's overrides of the scheduler's sharing defaults.
	Config NodeConfig `json:"config,omitempty"`
	// NRI is true when the node agent hands out cards at container creation
	// (the pod's allocation is read there). False means the kubelet's
	// Allocate call does it, which cannot tell pods apart, so the scheduler
	// lets only one GPU pod at a time be in flight to such a node. The
	// agent says true only while its NRI plugin is connected to the runtime.
	NRI bool `json:"nri"`
}

// NodeConfig is the sharing configuration of a node's cards. A zero field
// means "the scheduler's default".
type NodeConfig struct {
	// SplitCount is how many vGPU shares one card can hold.
	SplitCount int `json:"splitCount,omitempty"`
	// MemoryScaling over-commits memory: a card offers memoryMiB*scaling.
	MemoryScaling float64 `json:"memoryScaling,omitempty"`
	// CoreScaling over-commits compute: a card offers 100*scaling cores.
	CoreScaling float64 `json:"coreScaling,omitempty"`
}

// Limits accepted for NodeConfig fields.
const (
	MaxSplitCount = 1024
	MaxScaling    = 100.0
)

// Validate checks a config, naming the field and its limit.
func (c NodeConfig) Validate(path string) error {
	if c.SplitCount < 0 || c.SplitCount > MaxSplitCount {
		return fmt.Errorf("%s.splitCount: %d must be in 1..%d (0 = default)", path, c.SplitCount, MaxSplitCount)
	}
	if err := validScaling(path+".memoryScaling", c.MemoryScaling); err != nil {
		return err
	}
	return validScaling(path+".coreScaling", c.CoreScaling)
}

func validScaling(path string, v float64) error {
	if math.IsNaN(v) || v < 0 || v > MaxScaling || (v > 0 && v < 0.01) {
		return fmt.Errorf("%s: %v must be in 0.01..%v (0 = default)", path, v, MaxScaling)
	}
	return nil
}

// Merge returns c with its zero fields taken from defaults.
func (c NodeConfig) Merge(defaults NodeConfig) NodeConfig {
	if c.SplitCount == 0 {
		c.SplitCount = defaults.SplitCount
	}
	if c.MemoryScaling == 0 {
		c.MemoryScaling = defaults.MemoryScaling
	}
	if c.CoreScaling == 0 {
		c.CoreScaling = defaults.CoreScaling
	}
	return c
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
