//go:build cgo

// Package nvidiatest provides NVML servers for tests of the NVIDIA backend
// and of the node agent on it, built on go-nvml's mock servers.
package nvidiatest

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// H200Buses are the PCI buses of an HGX H200 board, in NVML's format.
var H200Buses = []string{"00000000:19:00.0", "00000000:3B:00.0", "00000000:4C:00.0", "00000000:5D:00.0",
	"00000000:9B:00.0", "00000000:BB:00.0", "00000000:CB:00.0", "00000000:DB:00.0"}

// NewH200 returns go-nvml's eight-H200 server with the queries its fakes
// leave unset answered as a healthy board without NVLink would: PCI bus
// ids, 132 SMs, NVLink not supported, every pair joined only through the
// CPUs, no row remapping pending and no page retirement (H200 remaps rows).
func NewH200() *server.Server {
	s := dgxh200.New()
	for i, d := range s.Devices {
		md := d.(*server.Device)
		bus := H200Buses[i]
		md.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) { return PciInfo(bus), nvml.SUCCESS }
		md.GetAttributesFunc = func() (nvml.DeviceAttributes, nvml.Return) {
			return nvml.DeviceAttributes{MultiprocessorCount: 132}, nvml.SUCCESS
		}
		md.GetNumGpuCoresFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		md.GetNvLinkStateFunc = func(int) (nvml.EnableState, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		md.GetNvLinkRemoteDeviceTypeFunc = func(int) (nvml.IntNvLinkDeviceType, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		md.GetNvLinkRemotePciInfoFunc = func(int) (nvml.PciInfo, nvml.Return) { return nvml.PciInfo{}, nvml.ERROR_NOT_SUPPORTED }
		md.GetTopologyCommonAncestorFunc = func(nvml.Device) (nvml.GpuTopologyLevel, nvml.Return) {
			return nvml.TOPOLOGY_SYSTEM, nvml.SUCCESS
		}
		md.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 0, false, false, nvml.SUCCESS }
		md.GetRetiredPagesPendingStatusFunc = func() (nvml.EnableState, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	}
	return s
}

// PciInfo is NVML's PCI info of a card on bus.
func PciInfo(bus string) nvml.PciInfo {
	var p nvml.PciInfo
	for i := range len(bus) {
		p.BusId[i] = int8(bus[i])
	}
	return p
}

// UUID is the UUID of s's card i.
func UUID(s *server.Server, i int) string { return s.Devices[i].(*server.Device).UUID }

// NewHGXH200 is NewH200 as an HGX H200 board is wired: each card's 18
// NVLinks end at the NVSwitches, so every card reaches every other.
func NewHGXH200() *server.Server {
	s := NewH200()
	for _, d := range s.Devices {
		md := d.(*server.Device)
		md.GetNvLinkStateFunc = func(l int) (nvml.EnableState, nvml.Return) {
			if l < 18 {
				return nvml.FEATURE_ENABLED, nvml.SUCCESS
			}
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		md.GetNvLinkRemoteDeviceTypeFunc = func(int) (nvml.IntNvLinkDeviceType, nvml.Return) {
			return nvml.NVLINK_DEVICE_TYPE_SWITCH, nvml.SUCCESS
		}
	}
	return s
}
