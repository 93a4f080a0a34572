package device

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// PCIAddress is a card's PCI bus ID, domain:bus:device.function. The
// inventory's pciBus field holds it as String formats it, the name of the
// card's directory in sysfs.
type PCIAddress struct {
	Domain, Bus, Device, Function uint32
}

// ParsePCIAddress reads a PCI bus ID as drivers write it: hexadecimal,
// upper or lower case, with or without the domain ("00000000:19:00.0"
// from NVML, "0000:19:00.0" from sysfs, "19:00.0").
func ParsePCIAddress(id string) (PCIAddress, error) {
	parts := strings.Split(strings.TrimSpace(id), ":")
	if len(parts) == 2 {
		parts = append([]string{"0"}, parts...)
	}
	if len(parts) != 3 {
		return PCIAddress{}, fmt.Errorf("PCI bus id %q: want domain:bus:device.function", id)
	}
	devFn := strings.Split(parts[2], ".")
	if len(devFn) != 2 {
		return PCIAddress{}, fmt.Errorf("PCI bus id %q: want domain:bus:device.function", id)
	}
	var v [4]uint32
	for i, s := range []string{parts[0], parts[1], devFn[0], devFn[1]} {
		n, err := strconv.ParseUint(s, 16, 32)
		if err != nil {
			return PCIAddress{}, fmt.Errorf("PCI bus id %q: %q is not hexadecimal", id, s)
		}
		v[i] = uint32(n)
	}
	return PCIAddress{Domain: v[0], Bus: v[1], Device: v[2], Function: v[3]}, nil
}

// String formats the address as the kernel names it in sysfs.
func (a PCIAddress) String() string {
	return fmt.Sprintf("%04x:%02x:%02x.%x", a.Domain, a.Bus, a.Device, a.Function)
}

// Compare orders addresses as CUDA's PCI_BUS_ID device order does: by
// domain, then bus, then device (then function).
func (a PCIAddress) Compare(b PCIAddress) int {
	return cmp.Or(cmp.Compare(a.Domain, b.Domain), cmp.Compare(a.Bus, b.Bus), cmp.Compare(a.Device, b.Device), cmp.Compare(a.Function, b.Function))
}
