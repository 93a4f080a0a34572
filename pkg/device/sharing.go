package device

import (
	"fmt"
	"math"
)

// The sharing defaults: a node that says nothing shares each card ten ways,
// without over-commit. The scheduler's args, the node agent and the tools
// all take them from here.
const (
	DefaultSplitCount = 10
	DefaultScaling    = 1.0
)

// Limits accepted for NodeConfig fields.
const (
	MaxSplitCount = 1024
	MaxScaling    = 100.0
)

// NodeConfig is the sharing configuration of a node's cards. The node agent
// publishes every field, with the values it advertises to the kubelet. A
// zero field (an inventory written before the agent published them, or by
// a tool) means the scheduler's default for it.
type NodeConfig struct {
	// SplitCount is how many vGPU shares one card can hold: the kubelet
	// devices the node agent advertises per card.
	SplitCount int `json:"splitCount,omitempty"`
	// MemoryScaling over-commits memory: a card offers memoryMiB*scaling.
	MemoryScaling float64 `json:"memoryScaling,omitempty"`
	// CoreScaling over-commits compute: a card offers 100*scaling cores.
	CoreScaling float64 `json:"coreScaling,omitempty"`
}

// DefaultNodeConfig is the sharing of a node that configures none.
func DefaultNodeConfig() NodeConfig {
	return NodeConfig{SplitCount: DefaultSplitCount, MemoryScaling: DefaultScaling, CoreScaling: DefaultScaling}
}

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

// CardCapacity is what one card offers under a complete config: the
// scheduler places at most this on it, and the node agent advertises
// Slots kubelet devices for it, so the two always agree.
func CardCapacity(d *Device, cfg NodeConfig) Usage {
	return Usage{
		MemoryMiB: int64(float64(d.MemoryMiB) * cfg.MemoryScaling),
		Cores:     int(100 * cfg.CoreScaling),
		Slots:     cfg.SplitCount,
	}
}
