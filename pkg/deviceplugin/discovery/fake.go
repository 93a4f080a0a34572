package discovery

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// CardSpec describes identical cards of a fake node, as the simulator's
// scenario and the fake backend's file write them.
type CardSpec struct {
	Vendor    device.Vendor `json:"vendor"`
	Model     string        `json:"model"`
	MemoryMiB int64         `json:"memoryMiB"`
	Count     int           `json:"count,omitempty"`
	// NUMA gives each card's NUMA node; empty means node 0 for all.
	NUMA []int `json:"numa,omitempty"`
	// SMs (NVIDIA) or AICore (Ascend) is the compute unit count.
	SMs    int `json:"sms,omitempty"`
	AICore int `json:"aiCore,omitempty"`
	// Unhealthy lists card indexes (within this spec) reported unhealthy.
	Unhealthy []int `json:"unhealthy,omitempty"`
}

// Fake is a backend that reports fixed cards: the simulator's, and the
// tests'. UUIDs derive from the node name, so they are stable across runs.
type Fake struct {
	devices []device.Device
}

// NewFake expands specs into the cards of node.
func NewFake(node string, specs []CardSpec) (*Fake, error) {
	f := &Fake{}
	for si, s := range specs {
		path := fmt.Sprintf("gpus[%d]", si)
		count := s.Count
		if count == 0 {
			count = 1
		}
		if count < 0 || count > 256 {
			return nil, fmt.Errorf("%s.count: %d must be in 1..256", path, s.Count)
		}
		if s.MemoryMiB <= 0 || s.MemoryMiB > 16<<20 {
			return nil, fmt.Errorf("%s.memoryMiB: %d must be in 1..%d", path, s.MemoryMiB, 16<<20)
		}
		if s.Model == "" {
			return nil, fmt.Errorf("%s.model: must not be empty", path)
		}
		if len(s.NUMA) != 0 && len(s.NUMA) != count {
			return nil, fmt.Errorf("%s.numa: lists %d nodes for %d cards", path, len(s.NUMA), count)
		}
		for i := range count {
			idx := len(f.devices)
			d := device.Device{
				UUID: fakeUUID(node, idx, s.Vendor), Index: idx, Vendor: s.Vendor, Model: s.Model,
				MemoryMiB: s.MemoryMiB, ComputeUnits: s.SMs + s.AICore, Healthy: true,
				PCIBus: fmt.Sprintf("0000:%02x:00.0", 0x10+idx),
			}
			if len(s.NUMA) > 0 {
				d.NUMA = s.NUMA[i]
			}
			for _, u := range s.Unhealthy {
				if u == i {
					d.Healthy = false
				}
			}
			f.devices = append(f.devices, d)
		}
	}
	inv := device.Inventory{Devices: f.devices}
	if err := inv.Validate(); err != nil {
		return nil, fmt.Errorf("node %s: %w", node, err)
	}
	return f, nil
}

// LoadFake reads a file holding a list of CardSpec (YAML or JSON).
func LoadFake(node, path string) (*Fake, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var specs []CardSpec
	if err := yaml.UnmarshalStrict(b, &specs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return NewFake(node, specs)
}

func (f *Fake) Name() string { return "fake" }

// Devices returns a copy of the cards.
func (f *Fake) Devices(context.Context) ([]device.Device, error) {
	return append([]device.Device(nil), f.devices...), nil
}

// fakeUUID formats a stable, vendor-styled UUID from the node and index.
func fakeUUID(node string, idx int, v device.Vendor) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", node, idx)))
	x := fmt.Sprintf("%x", h[:16])
	id := strings.Join([]string{x[0:8], x[8:12], x[12:16], x[16:20], x[20:32]}, "-")
	if v == device.VendorAscend {
		return "NPU-" + id
	}
	return "GPU-" + id
}
