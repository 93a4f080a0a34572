package device

import (
	"fmt"
	"slices"
)

// CUDA numbers the cards a container sees fastest first unless told
// otherwise, an order only the driver knows. The node agent therefore sets
// CUDA_DEVICE_ORDER=PCI_BUS_ID and hands a container its cards in PCI bus
// order (InBusOrder): CUDA ordinal i is then the i-th card by bus ID, the
// card named i-th in NVIDIA_VISIBLE_DEVICES, by HAMi's
// CUDA_DEVICE_MEMORY_LIMIT_<i>, by the limits file's "card i" and by slot i
// of the enforcer's accounting file. NVML numbers cards in bus order too.
const (
	CUDADeviceOrderEnv    = "CUDA_DEVICE_ORDER"
	CUDADeviceOrderPCIBus = "PCI_BUS_ID"
)

// PCIBuses maps card UUIDs to PCI bus IDs.
type PCIBuses map[string]string

// BusesOf returns the bus IDs of the cards that report one.
func BusesOf(devs []Device) PCIBuses {
	b := make(PCIBuses, len(devs))
	for _, d := range devs {
		if d.PCIBus != "" {
			b[d.UUID] = d.PCIBus
		}
	}
	return b
}

// PCIBus returns a card's bus ID, false when it has none here.
func (b PCIBuses) PCIBus(uuid string) (string, bool) {
	id, ok := b[uuid]
	return id, ok
}

// InBusOrder returns a container's shares sorted by the PCI bus IDs of
// their cards, which bus looks up by UUID. A single card needs no order;
// several, one of them without a known, well-formed bus ID, are an error:
// the ordinals CUDA will give them could not be told, and a limit written
// for one card would apply to another.
func InBusOrder(shares []Share, bus func(uuid string) (string, bool)) ([]Share, error) {
	out := slices.Clone(shares)
	if len(out) < 2 {
		return out, nil
	}
	addr := make(map[string]PCIAddress, len(out))
	for i, s := range out {
		id, ok := "", false
		if bus != nil {
			id, ok = bus(s.UUID)
		}
		if !ok {
			return nil, fmt.Errorf("devices[%d]: card %s has no known PCI bus ID on this node, so its CUDA ordinal among the container's %d cards cannot be fixed", i, s.UUID, len(out))
		}
		a, err := ParsePCIAddress(id)
		if err != nil {
			return nil, fmt.Errorf("devices[%d]: card %s: %w", i, s.UUID, err)
		}
		addr[s.UUID] = a
	}
	slices.SortStableFunc(out, func(a, b Share) int { return addr[a.UUID].Compare(addr[b.UUID]) })
	return out, nil
}
