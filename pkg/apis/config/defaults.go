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
	DefaultSplitCount = 10
	DefaultScaling    = 1.0
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
	if args.DeviceSplitCount == 0 {
		args.DeviceSplitCount = DefaultSplitCount
	}
	if args.DeviceMemoryScaling == 0 {
		args.DeviceMemoryScaling = DefaultScaling
	}
	if args.DeviceCoreScaling == 0 {
		args.DeviceCoreScaling = DefaultScaling
	}
	if args.AllocationKeyFile == "" && !args.UnsignedAllocations {
		args.AllocationKeyFile = DefaultAllocationKeyFile
	}
	if args.AscendModels == nil {
		args.AscendModels = device.DefaultAscendModels()
	}
}

// NodeDefaults is the sharing config of a node whose inventory sets none.
func (a *MosaicArgs) NodeDefaults() device.NodeConfig {
	return device.NodeConfig{SplitCount: a.DeviceSplitCount, MemoryScaling: a.DeviceMemoryScaling, CoreScaling: a.DeviceCoreScaling}
}
