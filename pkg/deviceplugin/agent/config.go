package agent

import (
	"fmt"
	"sort"

	"sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// SharingConfig is the cluster's sharing configuration, kept in a ConfigMap
// (key config.yaml) that every node agent reads:
//
//	default: {splitCount: 10, memoryScaling: 1.0, coreScaling: 1.0}
//	nodes:
//	  gpu-node-7: {splitCount: 4, memoryScaling: 1.5}
//
// A node's entry overrides the default field by field; what neither sets
// comes from the agent's flags, then from device.DefaultNodeConfig. The
// agent publishes the result in its inventory and advertises its split
// count to the kubelet; the scheduler places by it.
type SharingConfig struct {
	Default device.NodeConfig            `json:"default,omitempty"`
	Nodes   map[string]device.NodeConfig `json:"nodes,omitempty"`
}

// ConfigKey is the ConfigMap key holding the SharingConfig.
const ConfigKey = "config.yaml"

// ParseSharingConfig decodes and validates the ConfigMap's config.yaml.
func ParseSharingConfig(b []byte) (*SharingConfig, error) {
	c := &SharingConfig{}
	if err := yaml.UnmarshalStrict(b, c); err != nil {
		return nil, fmt.Errorf("%s: %w", ConfigKey, err)
	}
	if err := c.Default.Validate("default"); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(c.Nodes))
	for n := range c.Nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := c.Nodes[n].Validate("nodes." + n); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// For returns the config of one node: its entry over the default.
func (c *SharingConfig) For(node string) device.NodeConfig {
	if c == nil {
		return device.NodeConfig{}
	}
	return c.Nodes[node].Merge(c.Default)
}
