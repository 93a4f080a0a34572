package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/agent"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/kubelet"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// The node's agent decides how many shares a card holds: the scheduler,
// told deviceSplitCount 20, places on each card only as many shares as the
// agent advertises to the kubelet, 4 on a node whose agent is configured
// so, and the default 10 on one whose agent is configured with nothing.
// Each share the kubelet sees carries its card's NUMA node.
func TestNodeAgentSplitCountBoundsPlacement(t *testing.T) {
	e := newStoppedEnv(t, withArgs("deviceSplitCount: 10", "deviceSplitCount: 20"))
	nodes := []struct {
		name  string
		split int
		flags device.NodeConfig
	}{
		{"split-four", 4, device.NodeConfig{SplitCount: 4}},
		{"split-default", device.DefaultSplitCount, device.NodeConfig{}},
	}
	for _, n := range nodes {
		ag := startAgent(t, e, n.name, true, func(_ string, o *agent.Options) {
			o.ConfigMap, o.Sharing = "", n.flags
		})
		inv := e.waitInventory(n.name, func(inv *device.Inventory) bool { return inv.NRI })
		if want := (device.NodeConfig{SplitCount: n.split, MemoryScaling: 1, CoreScaling: 1}); inv.Config != want {
			t.Errorf("node %s publishes sharing %+v, want %+v", n.name, inv.Config, want)
		}
		reg := ag.kubelet.WaitRegistered(t)
		stream, err := ag.kubelet.Dial(t, reg.Endpoint).ListAndWatch(ag.ctx, &pluginapi.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		list := recvUntil(t, stream, func(l *pluginapi.ListAndWatchResponse) bool { return len(l.Devices) > 0 })
		checkAdvertised(t, n.name, inv, list.Devices, n.split)
		// A kubelet would report cards x split as the node's
		// nvidia.com/gpu; a larger count leaves the bound to Mosaic alone.
		node, err := e.cs.CoreV1().Nodes().Get(e.ctx, n.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		node.Status.Capacity["nvidia.com/gpu"] = resource.MustParse("100")
		node.Status.Allocatable["nvidia.com/gpu"] = resource.MustParse("100")
		if _, err := e.cs.CoreV1().Nodes().UpdateStatus(e.ctx, node, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.startScheduler()

	for _, n := range nodes {
		perCard := map[string]int{}
		capacity := 2 * n.split // two cards
		for i := range capacity + 1 {
			name := fmt.Sprintf("%s-%d", n.name, i)
			p := e.pod(podSpec{name: name, limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "100"}})
			p.Spec.Affinity = nodeNameAffinity(n.name)
			e.create(p)
			p = e.settle(name)
			if i == capacity {
				if p.Spec.NodeName != "" {
					t.Fatalf("node %s took share %d, beyond its 2 cards x %d", n.name, i+1, n.split)
				}
				if msg := unschedulable(p); !strings.Contains(msg, placement.ReasonSlots) {
					t.Errorf("share %d of node %s rejected with %q, want %q", i+1, n.name, msg, placement.ReasonSlots)
				}
				continue
			}
			if p.Spec.NodeName == "" {
				t.Fatalf("share %d of node %s not placed: %s", i+1, n.name, unschedulable(p))
			}
			perCard[allocation(t, p).Containers[0].Devices[0].UUID]++
		}
		for uuid, k := range perCard {
			if k > n.split {
				t.Errorf("node %s card %s holds %d shares, the kubelet counts %d", n.name, uuid, k, n.split)
			}
		}
	}
}

// checkAdvertised checks a node agent's kubelet devices against its
// inventory: split shares per card, each with its card's health and NUMA
// node (none where the card's is unknown).
func checkAdvertised(t *testing.T, node string, inv *device.Inventory, devs []*pluginapi.Device, split int) {
	t.Helper()
	if len(devs) != len(inv.Devices)*split {
		t.Errorf("node %s advertises %d devices, want %d cards x %d", node, len(devs), len(inv.Devices), split)
	}
	cards := map[string]*device.Device{}
	for i := range inv.Devices {
		cards[inv.Devices[i].UUID] = &inv.Devices[i]
	}
	shares := map[string]int{}
	for _, d := range devs {
		card := cards[kubelet.CardOf(d.ID)]
		if card == nil {
			t.Errorf("node %s advertises %s, of no card in its inventory", node, d.ID)
			continue
		}
		shares[card.UUID]++
		var numa []int64
		for _, n := range d.GetTopology().GetNodes() {
			numa = append(numa, n.GetID())
		}
		want := []int64{int64(card.NUMA)}
		if card.NUMA == device.UnknownNUMA {
			want = nil
		}
		if fmt.Sprint(numa) != fmt.Sprint(want) {
			t.Errorf("node %s: %s has NUMA nodes %v, its card's is %d", node, d.ID, numa, card.NUMA)
		}
	}
	for uuid, k := range shares {
		if k != split {
			t.Errorf("node %s card %s: %d shares advertised, want %d", node, uuid, k, split)
		}
	}
}

// waitInventory waits until the node's inventory satisfies ok and returns it.
func (e *env) waitInventory(node string, ok func(*device.Inventory) bool) *device.Inventory {
	e.t.Helper()
	var inv *device.Inventory
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		n, err := e.cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil || n.Annotations[device.InventoryAnnotation] == "" {
			return false, nil
		}
		got, err := device.DecodeInventory(n.Annotations[device.InventoryAnnotation])
		if err != nil {
			return false, err
		}
		inv = got
		return ok(got), nil
	})
	if err != nil {
		e.t.Fatalf("node %s: no inventory as wanted within %v: %v", node, waitTimeout, err)
	}
	return inv
}

// A pod given two cards in the order opposite to their PCI bus order gets
// them in bus order, with CUDA_DEVICE_ORDER=PCI_BUS_ID and each per-card
// limit at the ordinal CUDA gives its card, whether the agent hands them
// out through NRI or in the kubelet's Allocate.
func TestNodeAgentHandsOutCardsInBusOrder(t *testing.T) {
	for name, withNRI := range map[string]bool{"nri": true, "allocate": false} {
		t.Run(name, func(t *testing.T) {
			e := newStoppedEnv(t, nil)
			nodeName := "bus-order-" + name
			ag := startAgent(t, e, nodeName, withNRI)
			inv := e.waitInventory(nodeName, func(inv *device.Inventory) bool { return inv.NRI == withNRI && len(inv.Devices) == 2 })
			cards := e.busOrder(nodeName, []device.Share{
				{UUID: inv.Devices[0].UUID}, {UUID: inv.Devices[1].UUID},
			})
			first, second := cards[0].UUID, cards[1].UUID
			// The scheduler's order: the second card by bus first, with
			// its own memory, so a limit at the wrong ordinal shows.
			raw, err := device.EncodeAllocation(&device.Allocation{Node: nodeName, Containers: []device.ContainerAllocation{{Name: "c0", Devices: []device.Share{
				{UUID: second, Vendor: device.VendorNVIDIA, MemoryMiB: 2000, Cores: 20},
				{UUID: first, Vendor: device.VendorNVIDIA, MemoryMiB: 1000, Cores: 20},
			}}}})
			if err != nil {
				t.Fatal(err)
			}
			p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "two-cards", Namespace: e.ns, Annotations: map[string]string{device.AllocationAnnotation: raw}},
				Spec: v1.PodSpec{NodeName: nodeName, Containers: []v1.Container{{Name: "c0", Image: "cuda"}}}}
			if p, err = e.cs.CoreV1().Pods(e.ns).Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}

			env := map[string]string{}
			if withNRI {
				err := wait.PollUntilContextTimeout(ag.ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
					adj, err := ag.rt.CreateContainer(ctx, sandbox(p), container(p, "c0"))
					if err != nil || adj == nil {
						return false, nil
					}
					for _, kv := range adj.GetEnv() {
						env[kv.GetKey()] = kv.GetValue()
					}
					return len(env) > 0, nil
				})
				if err != nil {
					t.Fatal("the agent's NRI plugin never adjusted the container:", err)
				}
			} else {
				reg := ag.kubelet.WaitRegistered(t)
				rsp, err := ag.kubelet.Dial(t, reg.Endpoint).Allocate(ag.ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"any::0", "any::1"}}}})
				if err != nil {
					t.Fatal(err)
				}
				env = rsp.ContainerResponses[0].Envs
			}
			for k, want := range map[string]string{
				device.NVIDIAVisibleDevicesEnv: first + "," + second,
				device.CUDADeviceOrderEnv:      device.CUDADeviceOrderPCIBus,
				"CUDA_DEVICE_MEMORY_LIMIT_0":   "1000m",
				"CUDA_DEVICE_MEMORY_LIMIT_1":   "2000m",
			} {
				if env[k] != want {
					t.Errorf("%s=%q, want %q", k, env[k], want)
				}
			}
			l := readLimits(t, ag.stateDir, p, "c0")
			if len(l.Cards) != 2 || l.Cards[0].UUID != first || l.Cards[0].MemoryBytes != 1000<<20 || l.Cards[1].UUID != second || l.Cards[1].MemoryBytes != 2000<<20 {
				t.Errorf("limits cards = %+v, want %s (1000 MiB) at 0 and %s (2000 MiB) at 1", l.Cards, first, second)
			}
		})
	}
}

// readLimits reads the limits file the node agent wrote for a container.
func readLimits(t *testing.T, stateDir string, p *v1.Pod, ctr string) *device.Limits {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(nri.ContainerStateDir(stateDir, string(p.UID)), ctr, "limits.conf"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := device.DecodeLimits(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return l
}
