package placement

import "github.com/mosaic-gpu/mosaic/pkg/device"

// Card is one card of a node with what it offers and what is in use.
type Card struct {
	Device   *device.Device
	Capacity device.Usage
	Used     device.Usage
}

// NewCard derives a card's capacity from its node's sharing config, the
// one the node agent advertises to the kubelet when its inventory says.
func NewCard(d *device.Device, cfg device.NodeConfig, used device.Usage) Card {
	return Card{Device: d, Capacity: device.CardCapacity(d, cfg), Used: used}
}

func (c *Card) free() device.Usage { return c.Capacity.Sub(c.Used) }

// Node is a node's cards, in index order.
type Node struct {
	Name  string
	Cards []Card
	// Topology is how the cards are linked (NewTopology); nil when they
	// are not, or not known.
	Topology *Topology
}

// sums adds up, over the usable cards, the memory and slots in use (each
// card's at most its capacity) and their capacity.
func (n *Node) sums() (usedMem, capMem, usedSlots, capSlots float64) {
	for _, c := range n.Cards {
		if !usable(c.Device) {
			continue
		}
		usedMem += float64(min(c.Used.MemoryMiB, c.Capacity.MemoryMiB))
		capMem += float64(c.Capacity.MemoryMiB)
		usedSlots += float64(min(c.Used.Slots, c.Capacity.Slots))
		capSlots += float64(c.Capacity.Slots)
	}
	return usedMem, capMem, usedSlots, capSlots
}

func usable(d *device.Device) bool { return d.Healthy && !d.MIG }
