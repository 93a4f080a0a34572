//go:build cgo

package discovery

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// readDevice queries one card. Only a failing UUID query is an error;
// any other failing basic query (name, memory, PCI info) marks the card
// unhealthy. ERROR_NOT_SUPPORTED of an optional query (SM count, MIG mode)
// just leaves that field at its zero value.
func (n *NVIDIA) readDevice(index int, h nvml.Device) (device.Device, error) {
	uuid, ret := h.GetUUID()
	if ret != nvml.SUCCESS {
		return device.Device{}, fmt.Errorf("reading the UUID of GPU %d: %v", index, ret)
	}
	d := device.Device{
		UUID: uuid, Index: index, Vendor: device.VendorNVIDIA,
		Model: unknownModel, MemoryMiB: unknownMemoryMiB, NUMA: device.UnknownNUMA, Healthy: true,
	}
	if name, ret := h.GetName(); ret == nvml.SUCCESS && name != "" {
		d.Model = name
	} else {
		d.Healthy = false
	}
	// NVML reports bytes; a card of less than 1 MiB would be broken.
	if mem, ret := h.GetMemoryInfo(); ret == nvml.SUCCESS && mem.Total >= 1<<20 {
		d.MemoryMiB = int64(mem.Total >> 20)
	} else {
		d.Healthy = false
	}
	d.ComputeUnits = smCount(h)
	if pci, ret := h.GetPciInfo(); ret == nvml.SUCCESS {
		if bus, err := normalizePCIBusID(cString(pci.BusId[:])); err == nil {
			d.PCIBus = bus
			d.NUMA = readNUMANode(n.sysfsRoot, bus)
		}
	} else {
		d.Healthy = false
	}
	if current, _, ret := h.GetMigMode(); ret == nvml.SUCCESS {
		d.MIG = current == nvml.DEVICE_MIG_ENABLE
	}
	return d, nil
}

// smCount reads a card's SM count, or 0 when NVML cannot tell it.
// nvmlDeviceGetAttributes has it, though NVML documents that call for MIG
// handles only; failing that it is the CUDA core count over the cores per
// SM of the card's compute capability. A card in MIG mode reports neither,
// and Mosaic does not share it anyway.
func smCount(h nvml.Device) int {
	if attr, ret := h.GetAttributes(); ret == nvml.SUCCESS && attr.MultiprocessorCount > 0 {
		return int(attr.MultiprocessorCount)
	}
	cores, ret := h.GetNumGpuCores()
	if ret != nvml.SUCCESS || cores <= 0 {
		return 0
	}
	major, minor, ret := h.GetCudaComputeCapability()
	if ret != nvml.SUCCESS {
		return 0
	}
	perSM := coresPerSM(major, minor)
	if perSM == 0 || cores%perSM != 0 {
		return 0
	}
	return cores / perSM
}

// coresPerSM is the number of FP32 cores per SM of a compute capability
// (the CUDA programming guide's throughput table), 0 where unknown.
func coresPerSM(major, minor int) int {
	switch {
	case major == 7, major == 8 && minor == 0: // Volta, Turing, A100, A30
		return 64
	case major >= 8: // other Ampere, Ada, Hopper, Blackwell
		return 128
	}
	return 0
}

// cString converts a NUL-terminated C char array.
func cString(b []int8) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
