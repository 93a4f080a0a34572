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
}

// Empty returns a copy of n with no usage: what preemption could at best
// make of the node.
func (n *Node) Empty() *Node {
	e := &Node{Name: n.Name, Cards: make([]Card, len(n.Cards))}
	for i, c := range n.Cards {
		c.Used = device.Usage{}
		e.Cards[i] = c
	}
	return e
}

// Utilization is the node's share in use, 0..1: the mean of its memory and
// slot fractions over the cards the pod could use.
func (n *Node) Utilization() float64 {
	var usedMem, capMem, usedSlots, capSlots float64
	for _, c := range n.Cards {
		if !usable(c.Device) {
			continue
		}
		usedMem += float64(min(c.Used.MemoryMiB, c.Capacity.MemoryMiB))
		capMem += float64(c.Capacity.MemoryMiB)
		usedSlots += float64(min(c.Used.Slots, c.Capacity.Slots))
		capSlots += float64(c.Capacity.Slots)
	}
	if capMem == 0 || capSlots == 0 {
		return 0
	}
	return (usedMem/capMem + usedSlots/capSlots) / 2
}

func usable(d *device.Device) bool { return d.Healthy && !d.MIG }
