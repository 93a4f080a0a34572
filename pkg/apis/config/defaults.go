package config

import (
	"path/filepath"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// Defaults of MosaicArgs.
const (
	DefaultNodePolicy = device.PolicyBinpack
	DefaultGPUPolicy  = device.PolicySpread
	DefaultNUMAPolicy = string(placement.NUMABestEffort)
)

// DefaultAllocationKeyFile is where the manifests mount the current
// allocation signing key.
var DefaultAllocationKeyFile = filepath.Join(device.DefaultKeyDir, device.CurrentKey)

// SetDefaultsMosaicArgs fills the unset fields of args.
func SetDefaultsMosaicArgs(args *MosaicArgs) {
	if args.NodePolicy == "" {
		args.NodePolicy = DefaultNodePolicy
	}
	if args.GPUPolicy == "" {
		args.GPUPolicy = DefaultGPUPolicy
	}
	if args.NUMAPolicy == "" {
		args.NUMAPolicy = DefaultNUMAPolicy
	}
	// The sharing args default to the node agent's own defaults, so that
	// a node whose inventory does not say is shared as its agent shares it.
	d := args.NodeDefaults().Merge(device.DefaultNodeConfig())
	args.DeviceSplitCount, args.DeviceMemoryScaling, args.DeviceCoreScaling = d.SplitCount, d.MemoryScaling, d.CoreScaling
	if args.AllocationKeyFile == "" && !args.UnsignedAllocations {
		args.AllocationKeyFile = DefaultAllocationKeyFile
	}
	if args.AscendModels == nil {
		args.AscendModels = device.DefaultAscendModels()
	}
}

// NodeDefaults is the sharing config of a node whose inventory does not
// say (an agent older than the published config, or an inventory written by
// a tool); a node agent publishes its own, which wins.
func (a *MosaicArgs) NodeDefaults() device.NodeConfig {
	return device.NodeConfig{SplitCount: a.DeviceSplitCount, MemoryScaling: a.DeviceMemoryScaling, CoreScaling: a.DeviceCoreScaling}
}
