package mosaic

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// The extension points' costs on one node of 8 or 16 80 GiB cards (two NUMA
// nodes, split 10) in several fill states. Filter and Score run once per
// node per pod, so they set the scheduler's device-pod rate. make test runs
// every benchmark once so that they keep compiling and running:
//
//	go test ./pkg/plugins/mosaic -run '^$' -bench . -benchmem

// benchFills are the nodes' states: which share each card holds, per card
// index (-1 cards, memory MiB per share, shares).
var benchFills = []struct {
	name string
	fill func(card, cards int) (memMiB int64, shares int)
}{
	{"empty", func(int, int) (int64, int) { return 0, 0 }},
	// Half the cards carry a few small shares.
	{"half", func(c, _ int) (int64, int) {
		if c%2 == 0 {
			return 4096, 3
		}
		return 0, 0
	}},
	// Every card has room for 4 GiB but not for a whole card.
	{"fragmented", func(int, int) (int64, int) { return 9000, 8 }},
	// No card has a free slot: every pod is rejected.
	{"full", func(int, int) (int64, int) { return 2048, 10 }},
}

// benchRequests are the pods: a small share, a whole card, a NUMA-bound
// pair.
var benchRequests = []struct {
	name string
	pod  func() *v1.Pod
}{
	{"small", func() *v1.Pod { return benchPod("small", "1", "4096", "10", false) }},
	{"whole", func() *v1.Pod { return benchPod("whole", "1", "", "100", false) }},
	{"numa-pair", func() *v1.Pod { return benchPod("pair", "2", "8000", "20", true) }},
}

func benchPod(name, gpu, mem, cores string, numa bool) *v1.Pod {
	l := v1.ResourceList{"nvidia.com/gpu": resource.MustParse(gpu), "nvidia.com/gpucores": resource.MustParse(cores)}
	if mem != "" {
		l["nvidia.com/gpumem"] = resource.MustParse(mem)
	}
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)}, Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{Limits: l}}}}}
	if numa {
		p.Annotations = map[string]string{device.NUMABindAnnotation: "true"}
	}
	return p
}

// benchNode builds a plugin whose cache holds one node of cards cards
// filled as fill says, and the NodeInfo the framework would pass.
func benchNode(tb testing.TB, cards int, fill func(card, cards int) (int64, int)) (*Mosaic, fwk.NodeInfo) {
	tb.Helper()
	p := &Mosaic{}
	args, err := decodeArgs(nil)
	if err != nil {
		tb.Fatal(err)
	}
	p.args, p.parseOpts = *args, args.ParseOptions()
	p.placeOpts.GPUPolicy, p.placeOpts.NUMA = args.GPUPolicy, "best-effort"
	p.cache = newUsageCache(args.NodeDefaults())
	inv := &device.Inventory{NRI: true}
	for i := range cards {
		inv.Devices = append(inv.Devices, device.Device{UUID: fmt.Sprintf("GPU-%02d", i), Index: i, Vendor: device.VendorNVIDIA,
			Model: "NVIDIA H100 80GB HBM3", MemoryMiB: 81920, NUMA: i * 2 / cards, Healthy: true})
	}
	raw, err := device.EncodeInventory(inv)
	if err != nil {
		tb.Fatal(err)
	}
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Annotations: map[string]string{device.InventoryAnnotation: raw}}}
	logger := klog.Background()
	p.cache.setNode(logger, node)
	for i := range cards {
		mem, shares := fill(i, cards)
		for s := range shares {
			a := testAlloc("n", inv.Devices[i].UUID, mem/int64(shares))
			raw, err := device.EncodeAllocation(a)
			if err != nil {
				tb.Fatal(err)
			}
			uid := fmt.Sprintf("fill-%d-%d", i, s)
			p.cache.updatePod(logger, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: uid, UID: types.UID(uid), Labels: map[string]string{device.HandedOutLabel: "true"},
				Annotations: map[string]string{device.AllocationAnnotation: raw}}, Spec: v1.PodSpec{NodeName: "n"}})
		}
	}
	ni := framework.NewNodeInfo()
	ni.SetNode(node)
	return p, ni
}

// benchCases runs f for every card count, fill state and request.
func benchCases(b *testing.B, f func(b *testing.B, p *Mosaic, ni fwk.NodeInfo, pod *v1.Pod)) {
	for _, cards := range []int{8, 16} {
		for _, fill := range benchFills {
			for _, req := range benchRequests {
				b.Run(fmt.Sprintf("cards=%d/%s/%s", cards, fill.name, req.name), func(b *testing.B) {
					p, ni := benchNode(b, cards, fill.fill)
					f(b, p, ni, req.pod())
				})
			}
		}
	}
}

func prefiltered(b *testing.B, p *Mosaic, pod *v1.Pod) fwk.CycleState { return prefilteredT(b, p, pod) }

func prefilteredT(tb testing.TB, p *Mosaic, pod *v1.Pod) fwk.CycleState {
	tb.Helper()
	state := framework.NewCycleState()
	if _, s := p.PreFilter(context.Background(), state, pod, nil); !s.IsSuccess() {
		tb.Fatal(s)
	}
	return state
}

func BenchmarkPreFilter(b *testing.B) {
	for _, req := range benchRequests {
		b.Run(req.name, func(b *testing.B) {
			p, _ := benchNode(b, 8, benchFills[0].fill)
			pod := req.pod()
			b.ReportAllocs()
			for b.Loop() {
				state := framework.NewCycleState()
				if _, s := p.PreFilter(context.Background(), state, pod, nil); !s.IsSuccess() {
					b.Fatal(s)
				}
			}
		})
	}
}

// Filter and Score run "placed" (the first pod of its kind since the node
// changed: placement runs) and "remembered" (the view's memo answers).
func BenchmarkFilter(b *testing.B) {
	benchCases(b, func(b *testing.B, p *Mosaic, ni fwk.NodeInfo, pod *v1.Pod) {
		ctx := context.Background()
		for _, memo := range []bool{false, true} {
			b.Run(map[bool]string{false: "placed", true: "remembered"}[memo], func(b *testing.B) {
				state := withMemo(b, p, pod, memo)
				b.ReportAllocs()
				for b.Loop() {
					p.Filter(ctx, state, pod, ni)
				}
			})
		}
	})
}

func BenchmarkScore(b *testing.B) {
	benchCases(b, func(b *testing.B, p *Mosaic, ni fwk.NodeInfo, pod *v1.Pod) {
		ctx := context.Background()
		if !p.Filter(ctx, prefiltered(b, p, pod), pod, ni).IsSuccess() {
			b.Skip("the pod does not fit: the framework scores only nodes that pass Filter")
		}
		for _, memo := range []bool{false, true} {
			b.Run(map[bool]string{false: "placed", true: "remembered"}[memo], func(b *testing.B) {
				state := withMemo(b, p, pod, memo)
				b.ReportAllocs()
				for b.Loop() {
					if _, s := p.Score(ctx, state, pod, ni); !s.IsSuccess() {
						b.Fatal(s)
					}
				}
			})
		}
	})
}

// withMemo is the pod's cycle state; without the memo, its key is cleared
// so that every call places.
func withMemo(b *testing.B, p *Mosaic, pod *v1.Pod, memo bool) fwk.CycleState {
	state := prefiltered(b, p, pod)
	if !memo {
		s, _ := getState(state)
		s.id = 0
	}
	return state
}

// BenchmarkReserve reserves and unreserves, so that every iteration sees
// the same node.
func BenchmarkReserve(b *testing.B) {
	benchCases(b, func(b *testing.B, p *Mosaic, ni fwk.NodeInfo, pod *v1.Pod) {
		state := prefiltered(b, p, pod)
		ctx := context.Background()
		if !p.Filter(ctx, state, pod, ni).IsSuccess() {
			b.Skip("the pod does not fit")
		}
		b.ReportAllocs()
		for b.Loop() {
			if s := p.Reserve(ctx, state, pod, "n"); !s.IsSuccess() {
				b.Fatal(s)
			}
			p.Unreserve(ctx, state, pod, "n")
		}
	})
}

// BenchmarkCachePod adds a bound pod as the informer delivers it, then
// deletes it.
func BenchmarkCachePod(b *testing.B) {
	for _, cards := range []int{8, 16} {
		b.Run(fmt.Sprintf("cards=%d", cards), func(b *testing.B) {
			p, _ := benchNode(b, cards, benchFills[1].fill)
			a := &device.Allocation{Version: 1, Node: "n", Containers: []device.ContainerAllocation{{Name: "c", Devices: []device.Share{
				{UUID: "GPU-01", Vendor: device.VendorNVIDIA, MemoryMiB: 8000, Cores: 20}, {UUID: "GPU-03", Vendor: device.VendorNVIDIA, MemoryMiB: 8000, Cores: 20}}}}}
			pod := boundPod(b, "added", "n", a)
			logger := klog.Background()
			b.ReportAllocs()
			for b.Loop() {
				p.cache.updatePod(logger, pod)
				p.cache.deletePod(pod.UID)
			}
		})
	}
}
