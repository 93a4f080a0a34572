package discovery

import (
	"fmt"
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
	parts := strings.Split(strings.TrimSpace(id), ":")
	if len(parts) == 2 {
		parts = append([]string{"0"}, parts...)
	}
	if len(parts) != 3 {
		return "", fmt.Errorf("PCI bus id %q: want domain:bus:device.function", id)
	}
	devFn := strings.Split(parts[2], ".")
	if len(devFn) != 2 {
		return "", fmt.Errorf("PCI bus id %q: want domain:bus:device.function", id)
	}
	var v [4]uint64
	for i, s := range []string{parts[0], parts[1], devFn[0], devFn[1]} {
		n, err := strconv.ParseUint(s, 16, 32)
		if err != nil {
			return "", fmt.Errorf("PCI bus id %q: %q is not hexadecimal", id, s)
		}
		v[i] = n
	}
	return formatPCIBusID(v[0], v[1], v[2], v[3]), nil
}

// formatPCIBusID formats a PCI address as the kernel names it in sysfs.
func formatPCIBusID(domain, bus, dev, fn uint64) string {
	return fmt.Sprintf("%04x:%02x:%02x.%x", domain, bus, dev, fn)
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
