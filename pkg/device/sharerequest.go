package device

import (
	"fmt"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// ShareRequest is a device request as a person picks it (the dashboard's pod
// spec helper): a vendor and model, how many cards, and per card the
// memory and compute. Resources writes it in the resource names and
// annotations ParsePodRequest reads, so the two stay one contract.
type ShareRequest struct {
	Vendor Vendor
	// Model is the card model (NVIDIA: matched by the use-gputype
	// annotation, empty for any; Ascend: the resource suffix, as in
	// huawei.com/<Model>).
	Model string
	// Count is the number of cards, one share on each.
	Count int
	// MemoryMiB per card; 0 asks for the whole card's memory.
	MemoryMiB int64
	// Cores per card in percent (NVIDIA); 0 leaves the scheduler's default.
	Cores int
	// NUMABind asks for the cards on one NUMA node.
	NUMABind bool
}

// Resources returns the container limits and pod annotations that ask for
// s. Errors name the field and its limit.
func (s ShareRequest) Resources() (v1.ResourceList, map[string]string, error) {
	if s.Count < 1 || s.Count > MaxCardsPerContainer {
		return nil, nil, fmt.Errorf("count: %d must be in 1..%d", s.Count, MaxCardsPerContainer)
	}
	if s.MemoryMiB < 0 || s.MemoryMiB > maxMemoryMiB {
		return nil, nil, fmt.Errorf("memoryMiB: %d must be in 0..%d", s.MemoryMiB, maxMemoryMiB)
	}
	if s.Cores < 0 || s.Cores > MaxCores {
		return nil, nil, fmt.Errorf("cores: %d must be in 0..%d", s.Cores, MaxCores)
	}
	limits := v1.ResourceList{}
	ann := map[string]string{}
	qty := func(n int64) resource.Quantity { return *resource.NewQuantity(n, resource.DecimalSI) }
	switch s.Vendor {
	case VendorNVIDIA:
		limits[ResourceNvidiaGPU] = qty(int64(s.Count))
		if s.MemoryMiB > 0 {
			limits[ResourceNvidiaMem] = qty(s.MemoryMiB)
		}
		if s.Cores > 0 {
			limits[ResourceNvidiaCores] = qty(int64(s.Cores))
		}
		if s.Model != "" {
			ann[UseTypeAnnotation] = s.Model
		}
	case VendorAscend:
		if s.Model == "" {
			return nil, nil, fmt.Errorf("model: an Ascend share names its model (huawei.com/<model>)")
		}
		if s.Cores > 0 {
			return nil, nil, fmt.Errorf("cores: Ascend shares take the AI cores of their vNPU template; leave cores 0")
		}
		limits[v1.ResourceName(AscendResourcePrefix+s.Model)] = qty(int64(s.Count))
		if s.MemoryMiB > 0 {
			limits[v1.ResourceName(AscendResourcePrefix+s.Model+AscendMemorySuffix)] = qty(s.MemoryMiB)
		}
	default:
		return nil, nil, fmt.Errorf("vendor: %q is not one of %s, %s", s.Vendor, VendorNVIDIA, VendorAscend)
	}
	if s.NUMABind {
		ann[NUMABindAnnotation] = strconv.FormatBool(true)
	}
	return limits, ann, nil
}

// IsDeviceResource reports whether a container resource is one of the
// device resources ParsePodRequest reads.
func IsDeviceResource(name v1.ResourceName) bool {
	switch name {
	case ResourceNvidiaGPU, ResourceNvidiaMem, ResourceNvidiaMemPercentage, ResourceNvidiaCores:
		return true
	}
	return strings.HasPrefix(string(name), AscendResourcePrefix)
}
