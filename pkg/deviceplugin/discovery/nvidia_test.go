//go:build cgo

package discovery

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/google/go-cmp/cmp"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery/nvidiatest"
)

func newTestNVIDIA(t *testing.T, s *server.Server, sysfs string) *NVIDIA {
	t.Helper()
	n, err := NewNVIDIAFrom(s, NVIDIAOptions{SysfsRoot: sysfs})
	if err != nil {
		t.Fatalf("newNVIDIA: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func TestNVIDIADevices(t *testing.T) {
	s := nvidiatest.NewH200()
	// Card 2 in MIG mode.
	if ret, _ := s.Devices[2].SetMigMode(nvml.DEVICE_MIG_ENABLE); ret != nvml.SUCCESS {
		t.Fatalf("SetMigMode: %v", ret)
	}
	// NUMA 0 for the first four cards, 1 for two, -1 for card 6, no file for card 7.
	sysfs := writeSysfsTree(t, map[string]string{
		"0000:19:00.0": "0", "0000:3b:00.0": "0", "0000:4c:00.0": "0", "0000:5d:00.0": "0",
		"0000:9b:00.0": "1", "0000:bb:00.0": "1", "0000:cb:00.0": "-1",
	})
	got, err := newTestNVIDIA(t, s, sysfs).Devices(context.Background())
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	numa := []int{0, 0, 0, 0, 1, 1, device.UnknownNUMA, device.UnknownNUMA}
	buses := []string{"0000:19:00.0", "0000:3b:00.0", "0000:4c:00.0", "0000:5d:00.0",
		"0000:9b:00.0", "0000:bb:00.0", "0000:cb:00.0", "0000:db:00.0"}
	var want []device.Device
	for i := range 8 {
		want = append(want, device.Device{
			UUID: nvidiatest.UUID(s, i), Index: i, Vendor: device.VendorNVIDIA, Model: "NVIDIA H200 141GB HBM3e",
			MemoryMiB: 144384, ComputeUnits: 132, NUMA: numa[i], Healthy: true, MIG: i == 2, PCIBus: buses[i],
		})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Devices (-want,+got):\n%s", diff)
	}
	if _, err := device.EncodeInventory(&device.Inventory{Devices: got}); err != nil {
		t.Errorf("inventory of the discovered cards is invalid: %v", err)
	}
}

func TestNVIDIAFailingQueries(t *testing.T) {
	s := nvidiatest.NewH200()
	lost := func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_GPU_IS_LOST }
	s.Devices[3].(*server.Device).GetMemoryInfoFunc = lost
	s.Devices[4].(*server.Device).GetNameFunc = func() (string, nvml.Return) { return "", nvml.ERROR_UNKNOWN }
	s.Devices[5].(*server.Device).GetUUIDFunc = func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST }
	// Without attributes the SM count comes from the core count: 16896
	// cores / 128 per SM on compute capability 9.0. Without either it is
	// unknown, and without MIG support the card is not in MIG mode.
	noAttributes := func() (nvml.DeviceAttributes, nvml.Return) { return nvml.DeviceAttributes{}, nvml.ERROR_NOT_SUPPORTED }
	s.Devices[6].(*server.Device).GetAttributesFunc = noAttributes
	s.Devices[6].(*server.Device).GetNumGpuCoresFunc = func() (int, nvml.Return) { return 16896, nvml.SUCCESS }
	s.Devices[7].(*server.Device).GetAttributesFunc = noAttributes
	s.Devices[7].(*server.Device).GetMigModeFunc = func() (int, int, nvml.Return) { return 0, 0, nvml.ERROR_NOT_SUPPORTED }

	got, err := newTestNVIDIA(t, s, t.TempDir()).Devices(context.Background())
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	if len(got) != 7 {
		t.Fatalf("got %d cards, want 7 (card 5 has no UUID and is left out)", len(got))
	}
	byIndex := map[int]device.Device{}
	for _, d := range got {
		byIndex[d.Index] = d
	}
	if _, ok := byIndex[5]; ok {
		t.Errorf("card 5, which has no UUID, is listed")
	}
	for i, d := range byIndex {
		wantHealthy := i != 3 && i != 4
		if d.Healthy != wantHealthy {
			t.Errorf("card %d: healthy = %v, want %v", i, d.Healthy, wantHealthy)
		}
	}
	if d := byIndex[3]; d.MemoryMiB != unknownMemoryMiB || d.Model != "NVIDIA H200 141GB HBM3e" {
		t.Errorf("card 3 (memory query fails): memoryMiB %d model %q, want %d and the real model", d.MemoryMiB, d.Model, unknownMemoryMiB)
	}
	if d := byIndex[4]; d.Model != unknownModel || d.MemoryMiB != 144384 {
		t.Errorf("card 4 (name query fails): model %q memoryMiB %d, want %q and the real memory", d.Model, d.MemoryMiB, unknownModel)
	}
	if d := byIndex[6]; !d.Healthy || d.ComputeUnits != 132 {
		t.Errorf("card 6 (no attributes): %+v, want healthy with 132 SMs from the core count", d)
	}
	if d := byIndex[7]; !d.Healthy || d.ComputeUnits != 0 || d.MIG {
		t.Errorf("card 7 (optional queries not supported): %+v, want healthy, 0 SMs, no MIG", d)
	}
	if _, err := device.EncodeInventory(&device.Inventory{Devices: got}); err != nil {
		t.Errorf("inventory with unhealthy cards is invalid: %v", err)
	}
}

func TestNVIDIALinks(t *testing.T) {
	s := nvidiatest.NewH200()
	dev := func(i int) *server.Device { return s.Devices[i].(*server.Device) }
	// Cards 0 and 1: four links to each other, link 4 down, no link 5.
	for _, pair := range [][2]int{{0, 1}, {1, 0}} {
		peerBus := nvidiatest.H200Buses[pair[1]]
		d := dev(pair[0])
		d.GetNvLinkStateFunc = func(l int) (nvml.EnableState, nvml.Return) {
			switch {
			case l < 4:
				return nvml.FEATURE_ENABLED, nvml.SUCCESS
			case l == 4:
				return nvml.FEATURE_DISABLED, nvml.SUCCESS
			}
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		d.GetNvLinkRemoteDeviceTypeFunc = func(int) (nvml.IntNvLinkDeviceType, nvml.Return) {
			return nvml.NVLINK_DEVICE_TYPE_GPU, nvml.SUCCESS
		}
		d.GetNvLinkRemotePciInfoFunc = func(int) (nvml.PciInfo, nvml.Return) { return nvidiatest.PciInfo(peerBus), nvml.SUCCESS }
	}
	// Cards 4-7: 18 links each to NVSwitches.
	for i := 4; i < 8; i++ {
		d := dev(i)
		d.GetNvLinkStateFunc = func(l int) (nvml.EnableState, nvml.Return) {
			if l < 18 {
				return nvml.FEATURE_ENABLED, nvml.SUCCESS
			}
			return 0, nvml.ERROR_NOT_SUPPORTED
		}
		d.GetNvLinkRemoteDeviceTypeFunc = func(int) (nvml.IntNvLinkDeviceType, nvml.Return) {
			return nvml.NVLINK_DEVICE_TYPE_SWITCH, nvml.SUCCESS
		}
	}
	// Cards 2 and 3 share a PCIe switch.
	for _, pair := range [][2]int{{2, 3}, {3, 2}} {
		peer := pair[1]
		dev(pair[0]).GetTopologyCommonAncestorFunc = func(o nvml.Device) (nvml.GpuTopologyLevel, nvml.Return) {
			if o.(*server.Device).Index == peer {
				return nvml.TOPOLOGY_SINGLE, nvml.SUCCESS
			}
			return nvml.TOPOLOGY_SYSTEM, nvml.SUCCESS
		}
	}

	got, err := newTestNVIDIA(t, s, t.TempDir()).Devices(context.Background())
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	nv := func(peer, count int) device.Link {
		return device.Link{Peer: nvidiatest.UUID(s, peer), Type: device.LinkNVLink, Count: count}
	}
	pcie := func(peer int) device.Link {
		return device.Link{Peer: nvidiatest.UUID(s, peer), Type: device.LinkPCIe, Count: 1}
	}
	want := [][]device.Link{
		{nv(1, 4)}, {nv(0, 4)}, {pcie(3)}, {pcie(2)},
		{nv(5, 18), nv(6, 18), nv(7, 18)}, {nv(4, 18), nv(6, 18), nv(7, 18)},
		{nv(4, 18), nv(5, 18), nv(7, 18)}, {nv(4, 18), nv(5, 18), nv(6, 18)},
	}
	gotLinks := make([][]device.Link, len(got))
	for i, d := range got {
		gotLinks[i] = d.Links
	}
	if diff := cmp.Diff(want, gotLinks); diff != "" {
		t.Errorf("links (-want,+got):\n%s", diff)
	}
}

func TestNVIDIAInitErrors(t *testing.T) {
	tests := []struct {
		ret      nvml.Return
		noDriver bool
	}{
		{nvml.ERROR_LIBRARY_NOT_FOUND, true},
		{nvml.ERROR_DRIVER_NOT_LOADED, true},
		{nvml.ERROR_NO_PERMISSION, false},
	}
	for _, tc := range tests {
		t.Run(tc.ret.Error(), func(t *testing.T) {
			s := nvidiatest.NewH200()
			s.InitFunc = func() nvml.Return { return tc.ret }
			_, err := NewNVIDIAFrom(s, NVIDIAOptions{})
			if err == nil {
				t.Fatal("newNVIDIA succeeded, want an error")
			}
			if got := errors.Is(err, ErrNoDriver); got != tc.noDriver {
				t.Errorf("errors.Is(%v, ErrNoDriver) = %v, want %v", err, got, tc.noDriver)
			}
		})
	}
}

// TestNewNVIDIANoLibrary runs the production constructor, through
// go-nvml's dlopen, against a library that is not there.
func TestNewNVIDIANoLibrary(t *testing.T) {
	_, err := NewNVIDIA(NVIDIAOptions{LibraryPath: filepath.Join(t.TempDir(), "libnvidia-ml.so.1")})
	if !errors.Is(err, ErrNoDriver) {
		t.Fatalf("NewNVIDIA without a library: error %v, want ErrNoDriver", err)
	}
}

func TestNVIDIACloseOnce(t *testing.T) {
	s := nvidiatest.NewH200()
	n, err := NewNVIDIAFrom(s, NVIDIAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if calls := len(s.ShutdownCalls()); calls != 1 {
		t.Errorf("Shutdown called %d times, want 1", calls)
	}
}

func TestXIDIsFatal(t *testing.T) {
	for xid, want := range map[uint64]bool{13: false, 31: false, 43: false, 45: false, 68: false, 109: false, 48: true, 79: true, 94: true, 95: true} {
		if got := xidIsFatal(xid); got != want {
			t.Errorf("xidIsFatal(%d) = %v, want %v", xid, got, want)
		}
	}
}

func ExampleNVIDIA_WatchHealth() {
	n, err := NewNVIDIA(NVIDIAOptions{})
	if errors.Is(err, ErrNoDriver) {
		fmt.Println("no NVIDIA driver: running with no GPUs")
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()
	_ = n.WatchHealth(context.Background(), func(uuid string, healthy bool) {
		fmt.Println(uuid, healthy)
	})
}
