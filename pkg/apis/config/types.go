package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// MosaicArgs configures the Mosaic plugin.
//
//	pluginConfig:
//	- name: Mosaic
//	  args:
//	    nodePolicy: binpack
//	    gpuPolicy: spread
//	    numaPolicy: best-effort
//	    deviceSplitCount: 10
type MosaicArgs struct {
	// TypeMeta lets the args carry kind: MosaicArgs, as typed args do.
	metav1.TypeMeta `json:",inline"`

	// NodePolicy chooses between nodes: binpack (default) or spread.
	NodePolicy device.Policy `json:"nodePolicy,omitempty"`
	// GPUPolicy chooses between cards of a node: spread (default) or binpack.
	GPUPolicy device.Policy `json:"gpuPolicy,omitempty"`
	// NUMAPolicy is none, best-effort (default) or single-numa.
	NUMAPolicy string `json:"numaPolicy,omitempty"`
	// DeviceSplitCount is how many shares one card holds on a node whose
	// inventory does not say (default device.DefaultSplitCount). The node
	// agent publishes the split count it advertises to the kubelet, and
	// that one wins: the kubelet counts the node's shares, not the
	// scheduler.
	DeviceSplitCount int `json:"deviceSplitCount,omitempty"`
	// DeviceMemoryScaling over-commits card memory where the inventory
	// does not say (default 1.0).
	DeviceMemoryScaling float64 `json:"deviceMemoryScaling,omitempty"`
	// DeviceCoreScaling over-commits card compute where the inventory
	// does not say (default 1.0).
	DeviceCoreScaling float64 `json:"deviceCoreScaling,omitempty"`
	// DefaultMemoryMiB is the memory of a request that names none; 0 (the
	// default) means the whole card.
	DefaultMemoryMiB int64 `json:"defaultMemoryMiB,omitempty"`
	// DefaultCores is the compute share of a request that names none
	// (default 0: time-shared).
	DefaultCores int `json:"defaultCores,omitempty"`
	// AllocationKeyFile is the file holding the key the scheduler signs
	// each allocation with (mosaic.io/allocation-signature); node agents
	// holding the same key hand out only signed allocations. Default: the
	// current key of the mosaic-allocation-key Secret as the manifests
	// mount it. The scheduler does not start without it.
	AllocationKeyFile string `json:"allocationKeyFile,omitempty"`
	// UnsignedAllocations runs the scheduler without a key: allocations
	// are not signed, and only agents that check no signature hand them
	// out.
	UnsignedAllocations bool `json:"unsignedAllocations,omitempty"`
	// AscendModels replaces the built-in Ascend models and vNPU templates.
	AscendModels []device.AscendModel `json:"ascendModels,omitempty"`
}

var _ runtime.Object = &MosaicArgs{}

// DeepCopyObject implements runtime.Object.
func (a *MosaicArgs) DeepCopyObject() runtime.Object {
	c := *a
	c.AscendModels = make([]device.AscendModel, len(a.AscendModels))
	for i, m := range a.AscendModels {
		m.Templates = append([]device.AscendTemplate(nil), m.Templates...)
		c.AscendModels[i] = m
	}
	if a.AscendModels == nil {
		c.AscendModels = nil
	}
	return &c
}
