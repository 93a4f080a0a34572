package discovery

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// defaultSysfsRoot is where the host's sysfs is mounted. The node agent's
// pod mounts it at the same place; tests point the backends at a temp tree.
const defaultSysfsRoot = "/sys"

// normalizePCIBusID turns a driver's PCI address ("00000000:19:00.0" from
// NVML, upper or lower case, with or without a domain) into the kernel's
// form, "0000:19:00.0", the name of the card's directory in sysfs.
func normalizePCIBusID(id string) (string, error) {
	a, err := device.ParsePCIAddress(id)
	if err != nil {
		return "", err
	}
	return a.String(), nil
}

// formatPCIBusID formats a PCI address as the kernel names it in sysfs.
func formatPCIBusID(domain, bus, dev, fn uint64) string {
	return device.PCIAddress{Domain: uint32(domain), Bus: uint32(bus), Device: uint32(dev), Function: uint32(fn)}.String()
}

// readNUMANode returns the NUMA node sysfs reports for a PCI device, or
// device.UnknownNUMA when it reports none (-1, usual in virtual machines)
// or cannot be read: affinity is a placement hint, never a reason to fail.
func readNUMANode(sysfsRoot, busID string) int {
	if busID == "" {
		return device.UnknownNUMA
	}
	if sysfsRoot == "" {
		sysfsRoot = defaultSysfsRoot
	}
	b, err := os.ReadFile(filepath.Join(sysfsRoot, "bus", "pci", "devices", busID, "numa_node"))
	if err != nil {
		return device.UnknownNUMA
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 {
		return device.UnknownNUMA
	}
	return n
}
