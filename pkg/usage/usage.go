// Package usage computes, from the API objects alone (nodes' inventories,
// pods' allocations), what every card offers and what pods hold of it. The
// simulator's report, the dashboard and the tests' capacity check all read
// the cluster through it.
package usage

import (
	"sort"

	v1 "k8s.io/api/core/v1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// Node is one node's cards.
type Node struct {
	Name  string `json:"name"`
	NRI   bool   `json:"nri"`
	Cards []Card `json:"cards"`
	// Error explains an inventory that could not be read.
	Error string `json:"error,omitempty"`
}

// Card is one card's capacity (after the node's scaling) and use.
type Card struct {
	UUID          string   `json:"uuid"`
	Index         int      `json:"index"`
	Model         string   `json:"model"`
	NUMA          int      `json:"numa"`
	Healthy       bool     `json:"healthy"`
	MemoryMiB     int64    `json:"memoryMiB"`
	UsedMemoryMiB int64    `json:"usedMemoryMiB"`
	Cores         int      `json:"cores"`
	UsedCores     int      `json:"usedCores"`
	Slots         int      `json:"slots"`
	UsedSlots     int      `json:"usedSlots"`
	Exclusive     bool     `json:"exclusive,omitempty"`
	Holders       []Holder `json:"holders,omitempty"`
}

// Holder is a pod's part of a card.
type Holder struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	MemoryMiB int64  `json:"memoryMiB"`
	Cores     int    `json:"cores"`
}

// Compute lists the nodes that publish an inventory, sorted by name, with
// each card's use by the bound, unfinished pods carrying allocations.
// defaults fill what a node's config leaves unset (the scheduler's args).
func Compute(nodes []*v1.Node, pods []*v1.Pod, defaults device.NodeConfig) []Node {
	used := map[string]map[string]device.Usage{}
	holders := map[string][]Holder{}
	for _, p := range pods {
		node, fp, ok, err := device.PodFootprint(p)
		if err != nil || !ok {
			continue
		}
		if used[node] == nil {
			used[node] = map[string]device.Usage{}
		}
		for id, u := range fp {
			used[node][id] = used[node][id].Add(u)
			holders[id] = append(holders[id], Holder{Namespace: p.Namespace, Pod: p.Name, MemoryMiB: u.MemoryMiB, Cores: u.Cores})
		}
	}
	out := []Node{}
	for _, n := range nodes {
		raw, ok := n.Annotations[device.InventoryAnnotation]
		if !ok {
			continue
		}
		inv, err := device.DecodeInventory(raw)
		if err != nil {
			out = append(out, Node{Name: n.Name, Cards: []Card{}, Error: err.Error()})
			continue
		}
		cfg := inv.Config.Merge(defaults)
		node := Node{Name: n.Name, NRI: inv.NRI, Cards: []Card{}}
		for _, d := range inv.Devices {
			u, capacity := used[n.Name][d.UUID], device.CardCapacity(&d, cfg)
			node.Cards = append(node.Cards, Card{
				UUID: d.UUID, Index: d.Index, Model: d.Model, NUMA: d.NUMA, Healthy: d.Healthy && !d.MIG,
				MemoryMiB: capacity.MemoryMiB, UsedMemoryMiB: u.MemoryMiB,
				Cores: capacity.Cores, UsedCores: u.Cores,
				Slots: capacity.Slots, UsedSlots: u.Slots, Exclusive: u.Exclusive, Holders: holders[d.UUID],
			})
		}
		sort.Slice(node.Cards, func(i, j int) bool { return node.Cards[i].Index < node.Cards[j].Index })
		out = append(out, node)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// OverCommitted reports whether the card holds more than it offers, or
// is shared while a holder asked for it exclusively.
func (c *Card) OverCommitted() bool {
	return c.UsedMemoryMiB > c.MemoryMiB || c.UsedCores > c.Cores || c.UsedSlots > c.Slots || (c.Exclusive && c.UsedSlots > 1)
}
