package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/usage"
)

// Report is the outcome of a run, read back from the API objects.
type Report struct {
	Pods  []PodResult  `json:"pods"`
	Nodes []NodeResult `json:"nodes"`
}

// PodResult is where one pod landed.
type PodResult struct {
	Namespace  string            `json:"namespace"`
	Name       string            `json:"name"`
	Node       string            `json:"node"`
	Scheduled  bool              `json:"scheduled"`
	Reason     string            `json:"reason"`
	Containers []ContainerResult `json:"containers"`
}

// ContainerResult lists the cards a container got.
type ContainerResult struct {
	Name    string         `json:"name"`
	Devices []DeviceResult `json:"devices"`
}

// DeviceResult is a container's share of one card.
type DeviceResult struct {
	UUID      string        `json:"uuid"`
	Index     int           `json:"index"`
	Vendor    device.Vendor `json:"vendor"`
	Model     string        `json:"model"`
	MemoryMiB int64         `json:"memoryMiB"`
	Cores     int           `json:"cores"`
	NUMA      int           `json:"numa"`
}

// NodeResult is each card of a node with what is used of it.
type NodeResult struct {
	Name    string       `json:"name"`
	Devices []CardResult `json:"devices"`
}

// CardResult is one card's capacity and use.
type CardResult struct {
	UUID          string `json:"uuid"`
	Index         int    `json:"index"`
	NUMA          int    `json:"numa"`
	MemoryMiB     int64  `json:"memoryMiB"`
	UsedMemoryMiB int64  `json:"usedMemoryMiB"`
	Cores         int    `json:"cores"`
	UsedCores     int    `json:"usedCores"`
	Slots         int    `json:"slots"`
	UsedSlots     int    `json:"usedSlots"`
	// holders is for the table: pod name -> memory.
	holders []string
}

func buildReport(ctx context.Context, cs kubernetes.Interface, created []string) (*Report, error) {
	rep := &Report{Pods: []PodResult{}, Nodes: []NodeResult{}}
	var pods []*v1.Pod
	for _, key := range created {
		ns, name := splitKey(key)
		pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		pr, err := podResult(pod)
		if err != nil {
			return nil, err
		}
		rep.Pods = append(rep.Pods, pr)
		pods = append(pods, pod)
	}
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	nodes := make([]*v1.Node, len(list.Items))
	for i := range list.Items {
		nodes[i] = &list.Items[i]
	}
	for _, n := range usage.Compute(nodes, pods, device.DefaultNodeConfig()) {
		nr := NodeResult{Name: n.Name, Devices: []CardResult{}}
		for _, c := range n.Cards {
			var holders []string
			for _, h := range c.Holders {
				holders = append(holders, fmt.Sprintf("%s(%dMiB,%d%%)", h.Pod, h.MemoryMiB, h.Cores))
			}
			nr.Devices = append(nr.Devices, CardResult{
				UUID: c.UUID, Index: c.Index, NUMA: c.NUMA,
				MemoryMiB: c.MemoryMiB, UsedMemoryMiB: c.UsedMemoryMiB, Cores: c.Cores, UsedCores: c.UsedCores,
				Slots: c.Slots, UsedSlots: c.UsedSlots, holders: holders,
			})
		}
		rep.Nodes = append(rep.Nodes, nr)
	}
	return rep, nil
}

func podResult(pod *v1.Pod) (PodResult, error) {
	pr := PodResult{Namespace: pod.Namespace, Name: pod.Name, Node: pod.Spec.NodeName, Scheduled: pod.Spec.NodeName != "", Containers: []ContainerResult{}}
	if !pr.Scheduled {
		pr.Reason = "pending"
		for _, c := range pod.Status.Conditions {
			if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
				pr.Reason = c.Message
			}
		}
		return pr, nil
	}
	raw, ok := pod.Annotations[device.AllocationAnnotation]
	if !ok {
		return pr, nil
	}
	a, err := device.DecodeAllocation(raw)
	if err != nil {
		return pr, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	for _, c := range a.Containers {
		cr := ContainerResult{Name: c.Name, Devices: []DeviceResult{}}
		for _, s := range c.Devices {
			cr.Devices = append(cr.Devices, DeviceResult{UUID: s.UUID, Index: s.Index, Vendor: s.Vendor, Model: s.Model, MemoryMiB: s.MemoryMiB, Cores: s.Cores, NUMA: s.NUMA})
		}
		pr.Containers = append(pr.Containers, cr)
	}
	return pr, nil
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for people: pods, then each node's cards
// and who holds them.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tNODE\tDEVICES (container: card memory cores)\tREASON")
	for _, p := range r.Pods {
		var devs []string
		for _, c := range p.Containers {
			for _, d := range c.Devices {
				devs = append(devs, fmt.Sprintf("%s:#%d %dMiB %d%%", c.Name, d.Index, d.MemoryMiB, d.Cores))
			}
		}
		node := p.Node
		if !p.Scheduled {
			node = "<pending>"
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\n", p.Namespace, p.Name, node, strings.Join(devs, ", "), p.Reason)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "NODE\tCARD\tNUMA\tMEMORY USED/TOTAL MiB\tCORES\tSLOTS\tHELD BY")
	for _, n := range r.Nodes {
		for _, d := range n.Devices {
			fmt.Fprintf(tw, "%s\t#%d\t%d\t%d/%d\t%d/%d\t%d/%d\t%s\n", n.Name, d.Index, d.NUMA,
				d.UsedMemoryMiB, d.MemoryMiB, d.UsedCores, d.Cores, d.UsedSlots, d.Slots, strings.Join(d.holders, " "))
		}
	}
	return tw.Flush()
}
