package dashboard

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/usage"
)

// snapshot is the cluster as the page shows it, computed once per change
// of the API objects or of the live use and shared by every request until
// the next one.
type snapshot struct {
	gen      uint64
	built    time.Time
	overview Overview
	nodes    []NodeView
	pods     []PodView
	pending  []PendingPod
}

// Overview is the cluster's cards per vendor and model, and in total.
type Overview struct {
	Gen     uint64         `json:"gen"`
	Nodes   int            `json:"nodes"`
	Pending int            `json:"pending"`
	Pods    int            `json:"pods"`
	Live    bool           `json:"live"`
	Models  []ModelSummary `json:"models"`
	Total   ModelSummary   `json:"total"`
}

// ModelSummary totals one vendor and model's cards. Used values are the
// live use the node agents measure; they are absent without a live source.
type ModelSummary struct {
	Vendor             string   `json:"vendor"`
	Model              string   `json:"model"`
	Cards              int      `json:"cards"`
	UnhealthyCards     int      `json:"unhealthyCards"`
	MemoryMiB          int64    `json:"memoryMiB"`
	AllocatedMemoryMiB int64    `json:"allocatedMemoryMiB"`
	UsedMemoryMiB      *float64 `json:"usedMemoryMiB,omitempty"`
	FreeMemoryMiB      int64    `json:"freeMemoryMiB"`
	Cores              int      `json:"cores"`
	AllocatedCores     int      `json:"allocatedCores"`
	UsedCores          *float64 `json:"usedCores,omitempty"`
	Shares             int      `json:"shares"`
	AllocatedShares    int      `json:"allocatedShares"`
}

// NodeView is a node's cards with their holders.
type NodeView struct {
	Name  string     `json:"name"`
	NRI   bool       `json:"nri"`
	Error string     `json:"error,omitempty"`
	Cards []CardView `json:"cards"`
}

// CardView is one card: capacity, allocation, live use and holders.
type CardView struct {
	UUID               string       `json:"uuid"`
	Index              int          `json:"index"`
	Vendor             string       `json:"vendor"`
	Model              string       `json:"model"`
	NUMA               int          `json:"numa"`
	Healthy            bool         `json:"healthy"`
	MemoryMiB          int64        `json:"memoryMiB"`
	AllocatedMemoryMiB int64        `json:"allocatedMemoryMiB"`
	UsedMemoryMiB      *float64     `json:"usedMemoryMiB,omitempty"`
	Cores              int          `json:"cores"`
	AllocatedCores     int          `json:"allocatedCores"`
	UsedCores          *float64     `json:"usedCores,omitempty"`
	Slots              int          `json:"slots"`
	AllocatedSlots     int          `json:"allocatedSlots"`
	Exclusive          bool         `json:"exclusive,omitempty"`
	Holders            []HolderView `json:"holders"`
}

// HolderView is a pod's part of a card, allocated and used.
type HolderView struct {
	Namespace     string   `json:"namespace"`
	Pod           string   `json:"pod"`
	MemoryMiB     int64    `json:"memoryMiB"`
	Cores         int      `json:"cores"`
	UsedMemoryMiB *float64 `json:"usedMemoryMiB,omitempty"`
	UsedCores     *float64 `json:"usedCores,omitempty"`
}

// PodView is a bound device pod: per container its cards, limits and use.
type PodView struct {
	Namespace  string          `json:"namespace"`
	Name       string          `json:"name"`
	Node       string          `json:"node"`
	Containers []ContainerView `json:"containers"`
}

// ContainerView is one container's device limits and cards.
type ContainerView struct {
	Name   string            `json:"name"`
	Limits map[string]string `json:"limits"`
	Cards  []ContainerCard   `json:"cards"`
}

// ContainerCard is a container's share of one card.
type ContainerCard struct {
	UUID          string   `json:"uuid"`
	Index         int      `json:"index"`
	Model         string   `json:"model"`
	MemoryMiB     int64    `json:"memoryMiB"`
	Cores         int      `json:"cores"`
	UsedMemoryMiB *float64 `json:"usedMemoryMiB,omitempty"`
	UsedCores     *float64 `json:"usedCores,omitempty"`
}

// PendingPod is a device pod not bound yet, with the scheduler's reason.
type PendingPod struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Request   string    `json:"request"`
	Reason    string    `json:"reason"`
	Created   time.Time `json:"created"`
}

const mib = 1 << 20

func ptr(v float64) *float64 { return &v }

func addPtr(sum **float64, v *float64) {
	if v == nil {
		return
	}
	if *sum == nil {
		*sum = ptr(0)
	}
	**sum += *v
}

// build computes the snapshot from the API objects and the live use (nil
// without a live source).
func build(nodes []*v1.Node, pods []*v1.Pod, defaults device.NodeConfig, opts device.ParseOptions, live *LiveUsage) *snapshot {
	s := &snapshot{built: time.Now()}
	s.overview.Live = live != nil
	vendorOf := map[string]string{}
	for _, n := range usage.Compute(nodes, pods, defaults) {
		nv := NodeView{Name: n.Name, NRI: n.NRI, Error: n.Error, Cards: make([]CardView, 0, len(n.Cards))}
		for _, c := range n.Cards {
			cv := CardView{UUID: c.UUID, Index: c.Index, Model: c.Model, NUMA: c.NUMA, Healthy: c.Healthy,
				MemoryMiB: c.MemoryMiB, AllocatedMemoryMiB: c.UsedMemoryMiB, Cores: c.Cores, AllocatedCores: c.UsedCores,
				Slots: c.Slots, AllocatedSlots: c.UsedSlots, Exclusive: c.Exclusive, Holders: []HolderView{}}
			if live != nil {
				if u, ok := live.Cards[c.UUID]; ok {
					cv.UsedMemoryMiB, cv.UsedCores = ptr(u.MemoryUsedBytes/mib), ptr(u.Utilization*100)
				}
			}
			for _, h := range c.Holders {
				hv := HolderView{Namespace: h.Namespace, Pod: h.Pod, MemoryMiB: h.MemoryMiB, Cores: h.Cores}
				if live != nil {
					if u, ok := live.Pods[PodCard{h.Namespace, h.Pod, c.UUID}]; ok {
						hv.UsedMemoryMiB, hv.UsedCores = ptr(u.MemoryUsedBytes/mib), ptr(u.Cores)
					}
				}
				cv.Holders = append(cv.Holders, hv)
			}
			nv.Cards = append(nv.Cards, cv)
		}
		s.nodes = append(s.nodes, nv)
	}
	// usage.Compute does not carry the vendor; the inventories do.
	for _, n := range nodes {
		if inv, err := device.DecodeInventory(n.Annotations[device.InventoryAnnotation]); err == nil {
			for _, d := range inv.Devices {
				vendorOf[d.UUID] = string(d.Vendor)
			}
		}
	}
	models := map[[2]string]*ModelSummary{}
	cardOf := map[string]*CardView{}
	for i := range s.nodes {
		for j := range s.nodes[i].Cards {
			c := &s.nodes[i].Cards[j]
			c.Vendor = vendorOf[c.UUID]
			cardOf[c.UUID] = c
			k := [2]string{c.Vendor, c.Model}
			m := models[k]
			if m == nil {
				m = &ModelSummary{Vendor: c.Vendor, Model: c.Model}
				models[k] = m
			}
			for _, sum := range []*ModelSummary{m, &s.overview.Total} {
				sum.Cards++
				if !c.Healthy {
					sum.UnhealthyCards++
				}
				sum.MemoryMiB += c.MemoryMiB
				sum.AllocatedMemoryMiB += c.AllocatedMemoryMiB
				sum.FreeMemoryMiB += max(0, c.MemoryMiB-c.AllocatedMemoryMiB)
				sum.Cores += c.Cores
				sum.AllocatedCores += c.AllocatedCores
				sum.Shares += c.Slots
				sum.AllocatedShares += c.AllocatedSlots
				addPtr(&sum.UsedMemoryMiB, c.UsedMemoryMiB)
				addPtr(&sum.UsedCores, c.UsedCores)
			}
		}
	}
	for _, m := range models {
		s.overview.Models = append(s.overview.Models, *m)
	}
	slices.SortFunc(s.overview.Models, func(a, b ModelSummary) int {
		return cmp.Or(cmp.Compare(a.Vendor, b.Vendor), cmp.Compare(a.Model, b.Model))
	})
	s.overview.Total.Vendor, s.overview.Total.Model = "", ""
	s.overview.Nodes = len(s.nodes)

	for _, p := range pods {
		if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		if p.Spec.NodeName == "" {
			req, err := device.ParsePodRequest(p, opts)
			if err == nil && req == nil {
				continue
			}
			pp := PendingPod{Namespace: p.Namespace, Name: p.Name, Reason: scheduledMessage(p), Created: p.CreationTimestamp.Time}
			if err != nil {
				pp.Request = err.Error()
			} else {
				pp.Request = describeRequest(req)
			}
			s.pending = append(s.pending, pp)
			continue
		}
		_, _, ok, err := device.PodFootprint(p)
		if err != nil || !ok {
			continue
		}
		a, err := device.DecodeAllocation(p.Annotations[device.AllocationAnnotation])
		if err != nil {
			continue
		}
		pv := PodView{Namespace: p.Namespace, Name: p.Name, Node: p.Spec.NodeName}
		for _, ctr := range a.Containers {
			cv := ContainerView{Name: ctr.Name, Limits: deviceLimits(p, ctr.Name)}
			for _, d := range ctr.Devices {
				cc := ContainerCard{UUID: d.UUID, Index: d.Index, MemoryMiB: d.MemoryMiB, Cores: d.Cores}
				if c := cardOf[d.UUID]; c != nil {
					cc.Model = c.Model
				}
				if live != nil {
					if u, ok := live.Containers[ContainerCardKey{p.Namespace, p.Name, ctr.Name, d.UUID}]; ok {
						cc.UsedMemoryMiB, cc.UsedCores = ptr(u.MemoryUsedBytes/mib), ptr(u.Cores)
					}
				}
				cv.Cards = append(cv.Cards, cc)
			}
			pv.Containers = append(pv.Containers, cv)
		}
		s.pods = append(s.pods, pv)
	}
	slices.SortFunc(s.pods, func(a, b PodView) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortFunc(s.pending, func(a, b PendingPod) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	s.overview.Pods, s.overview.Pending = len(s.pods), len(s.pending)
	return s
}

// scheduledMessage is why the scheduler has not bound the pod: the
// message of its PodScheduled condition, empty while it has not tried.
func scheduledMessage(p *v1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
			return c.Message
		}
	}
	return ""
}

// describeRequest writes a request as one line: per device container, the
// cards and the share of each.
func describeRequest(req *device.PodRequest) string {
	var parts []string
	for _, c := range req.Containers {
		what := string(c.Vendor)
		if c.Model != "" {
			what = c.Model
		}
		share := "whole memory"
		switch {
		case c.MemoryMiB > 0:
			share = fmt.Sprintf("%d MiB", c.MemoryMiB)
		case c.MemoryPercent > 0:
			share = fmt.Sprintf("%d%% memory", c.MemoryPercent)
		}
		if c.Cores > 0 {
			share += fmt.Sprintf(", %d%% cores", c.Cores)
		}
		parts = append(parts, fmt.Sprintf("%s: %d × %s (%s)", c.Name, c.Count, what, share))
	}
	if len(req.Selector.UseTypes) > 0 {
		parts = append(parts, "types "+strings.Join(req.Selector.UseTypes, ","))
	}
	if req.NUMABind {
		parts = append(parts, "one NUMA node")
	}
	return strings.Join(parts, "; ")
}

// deviceLimits are the container's device resources as written in its
// spec (limits over requests).
func deviceLimits(p *v1.Pod, name string) map[string]string {
	out := map[string]string{}
	for _, list := range [][]v1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range list {
			c := &list[i]
			if c.Name != name {
				continue
			}
			for _, rl := range []v1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
				for k, q := range rl {
					if !device.IsDeviceResource(k) {
						continue
					}
					// As written: 20000, not the canonical 20k.
					if v, ok := q.AsInt64(); ok {
						out[string(k)] = strconv.FormatInt(v, 10)
					} else {
						out[string(k)] = q.String()
					}
				}
			}
		}
	}
	return out
}
