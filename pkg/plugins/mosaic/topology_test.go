package mosaic

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// linkCards republishes the bench node's inventory with every card linked
// to every other by 18 NVLinks, as on an HGX board.
func linkCards(tb testing.TB, p *Mosaic, ni fwk.NodeInfo) {
	tb.Helper()
	inv, err := device.DecodeInventory(ni.Node().Annotations[device.InventoryAnnotation])
	if err != nil {
		tb.Fatal(err)
	}
	for i := range inv.Devices {
		for j := range inv.Devices {
			if i != j {
				inv.Devices[i].Links = append(inv.Devices[i].Links, device.Link{Peer: inv.Devices[j].UUID, Type: device.LinkNVLink, Count: 18})
			}
		}
	}
	raw, err := device.EncodeInventory(inv)
	if err != nil {
		tb.Fatal(err)
	}
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", ResourceVersion: "2", Annotations: map[string]string{device.InventoryAnnotation: raw}}}
	p.cache.setNode(klog.Background(), node)
	ni.SetNode(node)
}

func topologyPod(name, gpu, topology string) *v1.Pod {
	pod := benchPod(name, gpu, "8000", "20", false)
	pod.Annotations = map[string]string{device.GPUTopologyAnnotation: topology}
	return pod
}

// The cache reads the links once per inventory and Filter requires them
// where the pod asks.
func TestFilterRequiredTopology(t *testing.T) {
	p, ni := benchNode(t, 8, benchFills[1].fill)
	pod := topologyPod("linked", "4", "nvlink")
	ctx := context.Background()
	s := p.Filter(ctx, prefilteredT(t, p, pod), pod, ni)
	if s.Code() != fwk.UnschedulableAndUnresolvable || s.Message() != placement.ReasonTopology {
		t.Fatalf("unlinked node: %v, want unresolvable %q", s, placement.ReasonTopology)
	}
	linkCards(t, p, ni)
	if s := p.Filter(ctx, prefilteredT(t, p, pod), pod, ni); !s.IsSuccess() {
		t.Fatalf("linked node: %v", s)
	}
}

// BenchmarkFilterLinked is BenchmarkFilter's half-full node with its
// cards linked, for multi-card pods that prefer or require the links.
func BenchmarkFilterLinked(b *testing.B) {
	for _, cards := range []int{8, 16} {
		for _, req := range []struct{ gpu, topology string }{{"2", "best-effort"}, {"4", "best-effort"}, {"4", "nvlink"}} {
			b.Run(fmt.Sprintf("cards=%d/gpus=%s/%s", cards, req.gpu, req.topology), func(b *testing.B) {
				p, ni := benchNode(b, cards, benchFills[1].fill)
				linkCards(b, p, ni)
				pod := topologyPod("linked", req.gpu, req.topology)
				state := prefiltered(b, p, pod)
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if !p.Filter(ctx, state, pod, ni).IsSuccess() {
						b.Fatal("does not fit")
					}
					if _, s := p.Score(ctx, state, pod, ni); !s.IsSuccess() {
						b.Fatal(s)
					}
				}
			})
		}
	}
}
