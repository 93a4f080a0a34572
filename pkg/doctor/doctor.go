// Package doctor finds, from the API objects alone, the usual reasons GPU
// sharing does not work on a node: another device plugin serving the same
// resource, a kubelet that counts other shares than the scheduler places,
// NRI not connected, unhealthy cards, and pods on shared cards whose
// containers the enforcer cannot hold. Each finding says how to fix it.
// `kubectl mosaic doctor` (cmd/kubectl-mosaic) prints them.
package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/kubelet"
)

// Check names a kind of finding; scripts may match on it.
type Check string

const (
	NoInventory      Check = "no-inventory"
	BadInventory     Check = "bad-inventory"
	CapacityMismatch Check = "capacity-mismatch"
	NRIDisconnected  Check = "nri-disconnected"
	CardUnhealthy    Check = "card-unhealthy"
	EnforcerOverride Check = "enforcer-override"
)

// Finding is one problem on one node, or one pod on it.
type Finding struct {
	Check Check  `json:"check"`
	Node  string `json:"node"`
	// Pod is namespace/name when the finding is about a pod.
	Pod     string `json:"pod,omitempty"`
	Problem string `json:"problem"`
	Fix     string `json:"fix"`
}

// Options narrows what is checked.
type Options struct {
	// Node, when set, checks that node alone.
	Node string
}

// Run checks every node (or opts.Node) and the pods bound to it, and
// returns the findings sorted by node, pod and check.
func Run(ctx context.Context, cs kubernetes.Interface, opts Options) ([]Finding, error) {
	var nodes []v1.Node
	if opts.Node != "" {
		n, err := cs.CoreV1().Nodes().Get(ctx, opts.Node, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		nodes = []v1.Node{*n}
	} else {
		l, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		nodes = l.Items
	}
	var out []Finding
	for i := range nodes {
		out = append(out, CheckNode(&nodes[i])...)
	}
	listOpts := metav1.ListOptions{}
	if opts.Node != "" {
		listOpts.FieldSelector = "spec.nodeName=" + opts.Node
	}
	pods, err := cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, listOpts)
	if err != nil {
		return nil, err
	}
	for i := range pods.Items {
		out = append(out, CheckPod(&pods.Items[i])...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		if a.Pod != b.Pod {
			return a.Pod < b.Pod
		}
		return a.Check < b.Check
	})
	return out, nil
}

// CheckNode looks at one Node object: its inventory, and the kubelet's
// capacity against what the node agent serves.
func CheckNode(n *v1.Node) []Finding {
	raw, ok := n.Annotations[device.InventoryAnnotation]
	if !ok {
		for rn := range n.Status.Capacity {
			if rn == device.ResourceNvidiaGPU || isAscend(rn) {
				return []Finding{{Check: NoInventory, Node: n.Name,
					Problem: fmt.Sprintf("the kubelet counts %s, but no Mosaic node agent published an inventory (%s)", rn, device.InventoryAnnotation),
					Fix:     "run Mosaic's node agent on this node (the mosaic-device-plugin DaemonSet: check its node selector and tolerations), and stop any other device plugin for this resource"}}
			}
		}
		return nil
	}
	inv, err := device.DecodeInventory(raw)
	if err != nil {
		return []Finding{{Check: BadInventory, Node: n.Name, Problem: fmt.Sprintf("the inventory does not decode: %v", err),
			Fix: "run one version of Mosaic's node agent per node; the agent rewrites the annotation when it starts"}}
	}
	var out []Finding
	cfg := inv.Config.Merge(device.DefaultNodeConfig())
	served := map[v1.ResourceName]int64{}
	for _, s := range kubeletShares(inv.Devices, cfg) {
		served[s]++
	}
	names := make([]v1.ResourceName, 0, len(served))
	for rn := range served {
		names = append(names, rn)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	for _, rn := range names {
		want := served[rn]
		q, ok := n.Status.Capacity[rn]
		switch got := q.Value(); {
		case !ok:
			out = append(out, Finding{Check: CapacityMismatch, Node: n.Name,
				Problem: fmt.Sprintf("the kubelet counts no %s, the node agent serves %d", rn, want),
				Fix:     "the node agent has not registered with the kubelet: check its log and that the kubelet's device-plugins directory is mounted"})
		case got != want:
			out = append(out, Finding{Check: CapacityMismatch, Node: n.Name,
				Problem: fmt.Sprintf("the kubelet counts %d %s, the node agent serves %d (%d cards × split %d)", got, rn, want, cardsOf(inv.Devices, rn), cfg.SplitCount),
				Fix:     "another device plugin is registered for " + string(rn) + " (the NVIDIA device plugin, HAMi's): remove it from this node; if none is, restart the kubelet so it drops a stale registration"})
		}
	}
	if !inv.NRI && len(inv.Devices) > 0 {
		out = append(out, Finding{Check: NRIDisconnected, Node: n.Name,
			Problem: "the node agent's NRI plugin is not connected: cards are handed out in the kubelet's Allocate, one GPU pod at a time per node, and containers without a GPU request keep their image's selection",
			Fix:     "enable NRI in containerd (1.7: [plugins.\"io.containerd.nri.v1.nri\"] disable = false; on by default from 2.0) and mount its socket into the node agent (docs/device-plugin.md)"})
	}
	for _, d := range inv.Devices {
		if !d.Healthy {
			out = append(out, Finding{Check: CardUnhealthy, Node: n.Name,
				Problem: fmt.Sprintf("card %d (%s, %s) is unhealthy: no new pod is placed on it", d.Index, d.UUID, d.Model),
				Fix:     "look for XID errors (dmesg, nvidia-smi -q); drain the node and reset or replace the card. It returns by itself once the driver reports it healthy"})
		}
	}
	return out
}

// CheckPod looks at a pod bound with an allocation that shares a card: any
// container the enforcer cannot hold to its share is a finding.
func CheckPod(p *v1.Pod) []Finding {
	if p.Spec.NodeName == "" || p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
		return nil
	}
	raw, ok := p.Annotations[device.AllocationAnnotation]
	if !ok {
		return nil
	}
	a, err := device.DecodeAllocation(raw)
	if err != nil || !a.SharesCards() {
		return nil
	}
	var out []Finding
	for _, s := range device.PodSettings(p) {
		if found := device.EnforcerOverrides(&s, nil); len(found) > 0 {
			out = append(out, Finding{Check: EnforcerOverride, Node: p.Spec.NodeName, Pod: p.Namespace + "/" + p.Name,
				Problem: device.OverrideError(s.Name, found).Error(),
				Fix:     "recreate the pod without these settings, or give it whole cards (nvidia.com/gpucores: 100); the admission webhook refuses such pods from now on (--override-policy=deny)"})
		}
	}
	return out
}

// kubeletShares is the resource name of every kubelet device the node
// agent serves for these cards.
func kubeletShares(cards []device.Device, cfg device.NodeConfig) []v1.ResourceName {
	var out []v1.ResourceName
	for i := range cards {
		n := len(kubelet.Shares(cards[i:i+1], cfg))
		for range n {
			out = append(out, v1.ResourceName(kubelet.ResourceName(&cards[i])))
		}
	}
	return out
}

func cardsOf(cards []device.Device, rn v1.ResourceName) int {
	n := 0
	for i := range cards {
		if v1.ResourceName(kubelet.ResourceName(&cards[i])) == rn {
			n++
		}
	}
	return n
}

func isAscend(rn v1.ResourceName) bool {
	s := string(rn)
	return strings.HasPrefix(s, device.AscendResourcePrefix) && !strings.HasSuffix(s, "-memory")
}
