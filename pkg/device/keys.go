package device

import v1 "k8s.io/api/core/v1"

// Mosaic's own annotation keys.
const (
	// InventoryAnnotation holds a node's JSON-encoded Inventory.
	InventoryAnnotation = "mosaic.io/devices"
	// AllocationAnnotation holds a pod's JSON-encoded Allocation. Only the
	// scheduler writes it, through the pod's Binding.
	AllocationAnnotation = "mosaic.io/allocation"

	// HandedOutLabel marks a pod whose devices the node agent has handed
	// to the kubelet (value "true"). Only nodes without NRI use it: there,
	// the kubelet's Allocate cannot tell pods apart, so the scheduler keeps
	// at most one device pod per node waiting for it. It is a label so that
	// setting it is an event the scheduler requeues pods on.
	HandedOutLabel = "mosaic.io/handed-out"

	NodePolicyAnnotation = "mosaic.io/node-scheduler-policy"
	GPUPolicyAnnotation  = "mosaic.io/gpu-scheduler-policy"
	NUMABindAnnotation   = "mosaic.io/numa-bind"
	UseTypeAnnotation    = "mosaic.io/use-gputype"
	NoUseTypeAnnotation  = "mosaic.io/nouse-gputype"
	UseUUIDAnnotation    = "mosaic.io/use-gpuuuid"
	NoUseUUIDAnnotation  = "mosaic.io/nouse-gpuuuid"
	// GPUTopologyAnnotation says how closely a multi-card container's
	// cards must be linked (TopologyPolicy).
	GPUTopologyAnnotation = "mosaic.io/gpu-topology"
)

// HAMi's annotation keys, accepted unchanged as aliases of Mosaic's.
const (
	HAMiNodePolicyAnnotation = "hami.io/node-scheduler-policy"
	HAMiGPUPolicyAnnotation  = "hami.io/gpu-scheduler-policy"
	HAMiNUMABindAnnotation   = "nvidia.com/numa-bind"
	HAMiUseTypeAnnotation    = "nvidia.com/use-gputype"
	HAMiNoUseTypeAnnotation  = "nvidia.com/nouse-gputype"
	HAMiUseUUIDAnnotation    = "nvidia.com/use-gpuuuid"
	HAMiNoUseUUIDAnnotation  = "nvidia.com/nouse-gpuuuid"
)

// HAMi-compatible NVIDIA resource names.
const (
	ResourceNvidiaGPU           v1.ResourceName = "nvidia.com/gpu"
	ResourceNvidiaMem           v1.ResourceName = "nvidia.com/gpumem"
	ResourceNvidiaMemPercentage v1.ResourceName = "nvidia.com/gpumem-percentage"
	ResourceNvidiaCores         v1.ResourceName = "nvidia.com/gpucores"
)

// AscendResourcePrefix prefixes Ascend resources: huawei.com/<Model> counts
// cards and huawei.com/<Model>-memory asks for memory (MiB) on each.
const (
	AscendResourcePrefix = "huawei.com/"
	AscendMemorySuffix   = "-memory"
)

// annotation returns the value of the first key present, Mosaic's key first.
func annotation(ann map[string]string, keys ...string) (string, bool) {
	for _, k := range keys {
		if v, ok := ann[k]; ok {
			return v, true
		}
	}
	return "", false
}
