package discovery

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// AscendOptions configures the Ascend backend.
type AscendOptions struct {
	// LibraryPath is the path of the driver's libdcmi.so; empty tries the
	// dynamic loader's search path, then the driver's install directories.
	LibraryPath string
	// SysfsRoot is where the host's sysfs is mounted; empty means /sys.
	SysfsRoot string
}

// ascendLibraryPaths are tried in order when no LibraryPath is given.
var ascendLibraryPaths = []string{
	"libdcmi.so",
	"/usr/local/Ascend/driver/lib64/driver/libdcmi.so",
	"/usr/local/Ascend/driver/lib64/libdcmi.so",
}

// ascendModel names a chip as Mosaic's Ascend models and resource names do
// ("Ascend910B3") from DCMI's chip type ("Ascend") and name ("910B3").
// Chips sold under one resource name are folded into it: every 310P
// variant is huawei.com/Ascend310P, as in HAMi.
func ascendModel(chipType, chipName string) string {
	var m string
	switch {
	case chipName == "":
		return unknownModel
	case strings.HasPrefix(chipName, chipType):
		m = chipName
	default:
		m = chipType + chipName
	}
	if strings.HasPrefix(m, "Ascend310P") {
		return "Ascend310P"
	}
	return m
}

// ascendHealthy reads dcmi_get_device_health: 0 is normal and 1 a minor
// alarm, which leaves the chip usable; 2 (major), 3 (critical) and
// 0xFFFFFFFF (chip absent) do not.
func ascendHealthy(code uint32) bool { return code <= 1 }

// ascendDieUUID formats a chip's die id, unique per chip and stable
// across reboots, as its UUID.
func ascendDieUUID(die [5]uint32) string {
	return fmt.Sprintf("NPU-%08x-%08x-%08x-%08x-%08x", die[0], die[1], die[2], die[3], die[4])
}

// ascendLink maps the topology DCMI reports between two chips
// (dcmi_get_topo_info_by_device_id's DCMI_TOPO_TYPE_*) to a link: HCCS,
// Huawei's chip-to-chip interconnect, which placement prefers as it does
// NVLink; a PCIe switch between them (PXB several, PIX one), whose
// peer-to-peer traffic avoids the CPU; nothing for the paths through a
// host bridge or across CPUs (PHB, SYS), the chip itself (SELF) or an
// unknown type.
func ascendLink(topo int) (device.LinkType, bool) {
	switch topo {
	case dcmiTopoHCCS:
		return device.LinkHCCS, true
	case dcmiTopoPXB, dcmiTopoPIX:
		return device.LinkPCIe, true
	}
	return "", false
}

// DCMI's topology types (dcmi_interface_api.h).
const (
	dcmiTopoHCCS = 3
	dcmiTopoPXB  = 4
	dcmiTopoPIX  = 5
)

// dcmiErrors names DCMI's return codes (dcmi_interface_api.h).
var dcmiErrors = map[int]string{
	-8001: "invalid parameter",
	-8002: "operation not permitted",
	-8005: "internal error",
	-8006: "timeout",
	-8007: "invalid device id",
	-8008: "device does not exist",
	-8012: "not ready",
	-8013: "not supported in a container",
	-8255: "not supported",
}

func dcmiError(rc int) string {
	if s, ok := dcmiErrors[rc]; ok {
		return fmt.Sprintf("%s (%d)", s, rc)
	}
	return fmt.Sprintf("DCMI error %d", rc)
}

// cBytes converts a fixed-size C char array that is NUL-terminated unless full.
func cBytes(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
