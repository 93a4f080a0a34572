//go:build cgo

package discovery

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// buildStubDCMI compiles testdata/libdcmi_stub.c into a libdcmi.so that
// the backend loads through its real dlopen path.
func buildStubDCMI(t *testing.T, defines ...string) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot build the stub libdcmi.so")
	}
	lib := filepath.Join(t.TempDir(), "libdcmi.so")
	args := append([]string{"-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", lib}, defines...)
	args = append(args, filepath.Join("testdata", "libdcmi_stub.c"))
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("building the stub libdcmi.so: %v\n%s", err, out)
	}
	return lib
}

func TestAscendDevices(t *testing.T) {
	lib := buildStubDCMI(t)
	sysfs := writeSysfsTree(t, map[string]string{"0000:c1:00.0": "1"})
	a, err := NewAscend(AscendOptions{LibraryPath: lib, SysfsRoot: sysfs})
	if err != nil {
		t.Fatalf("NewAscend: %v", err)
	}
	defer a.Close()
	got, err := a.Devices(context.Background())
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	// Ordered by logic id: card 5 is logic 0. Its memory comes from the DDR
	// query (no HBM), its major alarm makes it unhealthy, and without a die
	// id it is named by its PCI address, whose NUMA node sysfs lacks.
	// The stub's topology query joins the two by HCCS.
	const a310, a910 = "NPU-0000:01:00.0", "NPU-1a2b3c4d-00000011-00000022-00000033-00000044"
	want := []device.Device{
		{UUID: a310, Index: 0, Vendor: device.VendorAscend, Model: "Ascend310P", MemoryMiB: 21527,
			ComputeUnits: 8, NUMA: device.UnknownNUMA, Healthy: false, PCIBus: "0000:01:00.0",
			Links: []device.Link{{Peer: a910, Type: device.LinkHCCS, Count: 1}}},
		{UUID: a910, Index: 1, Vendor: device.VendorAscend,
			Model: "Ascend910B3", MemoryMiB: 65536, ComputeUnits: 20, NUMA: 1, Healthy: true, PCIBus: "0000:c1:00.0",
			Links: []device.Link{{Peer: a310, Type: device.LinkHCCS, Count: 1}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Devices (-want,+got):\n%s", diff)
	}
	if _, err := device.EncodeInventory(&device.Inventory{Devices: got}); err != nil {
		t.Errorf("inventory of the discovered chips is invalid: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := a.Devices(context.Background()); err == nil {
		t.Error("Devices after Close succeeded, want an error")
	}
}

// A driver without the topology query leaves the chips unlinked.
func TestAscendWithoutTopology(t *testing.T) {
	a, err := NewAscend(AscendOptions{LibraryPath: buildStubDCMI(t, "-DSTUB_WITHOUT_TOPO"), SysfsRoot: writeSysfsTree(t, nil)})
	if err != nil {
		t.Fatalf("NewAscend: %v", err)
	}
	defer a.Close()
	got, err := a.Devices(context.Background())
	if err != nil || len(got) != 2 {
		t.Fatalf("Devices: %d chips, %v; want 2", len(got), err)
	}
	for _, d := range got {
		if len(d.Links) != 0 {
			t.Errorf("%s has links %+v without the topology query", d.UUID, d.Links)
		}
	}
}

func TestNewAscendErrors(t *testing.T) {
	t.Run("no library", func(t *testing.T) {
		_, err := NewAscend(AscendOptions{LibraryPath: filepath.Join(t.TempDir(), "libdcmi.so")})
		if !errors.Is(err, ErrNoDriver) {
			t.Fatalf("error %v, want ErrNoDriver", err)
		}
	})
	t.Run("dcmi_init fails", func(t *testing.T) {
		lib := buildStubDCMI(t)
		t.Setenv("MOSAIC_DCMI_STUB_INIT_FAIL", "1")
		_, err := NewAscend(AscendOptions{LibraryPath: lib})
		if !errors.Is(err, ErrNoDriver) || !strings.Contains(err.Error(), "dcmi_init") {
			t.Fatalf("error %v, want ErrNoDriver naming dcmi_init", err)
		}
	})
	t.Run("required function missing", func(t *testing.T) {
		lib := buildStubDCMI(t, "-DSTUB_WITHOUT_HEALTH")
		_, err := NewAscend(AscendOptions{LibraryPath: lib})
		if err == nil || errors.Is(err, ErrNoDriver) || !strings.Contains(err.Error(), "dcmi_get_device_health") {
			t.Fatalf("error %v, want a broken-library error naming dcmi_get_device_health", err)
		}
	})
}

func TestAscendHelpers(t *testing.T) {
	for _, tc := range []struct{ typ, name, want string }{
		{"Ascend", "910B3", "Ascend910B3"},
		{"Ascend", "Ascend910B", "Ascend910B"},
		{"", "310P3", "310P3"},
		// Every 310P variant is the resource huawei.com/Ascend310P.
		{"Ascend", "310P3", "Ascend310P"},
		{"Ascend", "", unknownModel},
	} {
		if got := ascendModel(tc.typ, tc.name); got != tc.want {
			t.Errorf("ascendModel(%q, %q) = %q, want %q", tc.typ, tc.name, got, tc.want)
		}
	}
	for topo, want := range map[int]device.LinkType{0: "", 1: "", 2: "", 3: device.LinkHCCS, 4: device.LinkPCIe, 5: device.LinkPCIe, 6: "", -1: ""} {
		if got, ok := ascendLink(topo); got != want || ok != (want != "") {
			t.Errorf("ascendLink(%d) = %q, %v; want %q", topo, got, ok, want)
		}
	}
	for code, want := range map[uint32]bool{0: true, 1: true, 2: false, 3: false, 0xffffffff: false} {
		if got := ascendHealthy(code); got != want {
			t.Errorf("ascendHealthy(%d) = %v, want %v", code, got, want)
		}
	}
}
