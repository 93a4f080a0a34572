package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

var defaultCfg = device.NodeConfig{SplitCount: 10, MemoryScaling: 1, CoreScaling: 1}

// node builds a node of n NVIDIA cards of memMiB each, with NUMA nodes
// given per card (or all 0) and used[i] already taken on card i.
func node(n int, memMiB int64, numa []int, used map[int]device.Usage) *Node {
	out := &Node{Name: "n"}
	for i := range n {
		d := &device.Device{UUID: fmt.Sprintf("GPU-%d", i), Index: i, Vendor: device.VendorNVIDIA, Model: "NVIDIA A100", MemoryMiB: memMiB, Healthy: true}
		if numa != nil {
			d.NUMA = numa[i]
		}
		out.Cards = append(out.Cards, NewCard(d, defaultCfg, used[i]))
	}
	return out
}

func gpuReq(count int, mem int64, cores int) *device.PodRequest {
	return &device.PodRequest{Containers: []device.ContainerRequest{{Name: "c", Vendor: device.VendorNVIDIA, Count: count, MemoryMiB: mem, Cores: cores}}}
}

func indexes(a *device.Allocation, container int) []int {
	var out []int
	for _, s := range a.Containers[container].Devices {
		out = append(out, s.Index)
	}
	return out
}

func TestPlaceChoosesCards(t *testing.T) {
	spread := Options{GPUPolicy: device.PolicySpread, NUMA: NUMABestEffort}
	binpack := Options{GPUPolicy: device.PolicyBinpack, NUMA: NUMABestEffort}
	tests := []struct {
		name string
		node *Node
		req  *device.PodRequest
		opts Options
		want []int
	}{
		// Spread takes the card with most free memory; ties go to index 0.
		{"spread empty", node(4, 1000, nil, nil), gpuReq(1, 100, 0), spread, []int{0}},
		{"spread avoids used", node(3, 1000, nil, map[int]device.Usage{0: {MemoryMiB: 500, Slots: 1}, 1: {MemoryMiB: 100, Slots: 1}}), gpuReq(1, 100, 0), spread, []int{2}},
		// Binpack takes the fullest card that still fits.
		{"binpack fullest", node(3, 1000, nil, map[int]device.Usage{1: {MemoryMiB: 800, Slots: 1}, 2: {MemoryMiB: 500, Slots: 1}}), gpuReq(1, 100, 0), binpack, []int{1}},
		{"binpack skips too full", node(3, 1000, nil, map[int]device.Usage{1: {MemoryMiB: 950, Slots: 1}, 2: {MemoryMiB: 500, Slots: 1}}), gpuReq(1, 100, 0), binpack, []int{2}},
		// Best-effort NUMA keeps a 2-card container on one NUMA node even
		// though spread alone would pick cards 0 and 2 (most free).
		{"numa best effort", node(4, 1000, []int{0, 0, 1, 1}, map[int]device.Usage{1: {MemoryMiB: 10, Slots: 1}, 3: {MemoryMiB: 20, Slots: 1}}), gpuReq(2, 100, 0), spread, []int{0, 1}},
		// Binpack picks the NUMA node left with the least room; spread the most.
		{"numa binpack tightest", node(4, 1000, []int{0, 0, 1, 1}, map[int]device.Usage{2: {MemoryMiB: 300, Slots: 1}}), gpuReq(2, 100, 0), binpack, []int{2, 3}},
		{"numa spread roomiest", node(4, 1000, []int{0, 0, 1, 1}, map[int]device.Usage{2: {MemoryMiB: 300, Slots: 1}}), gpuReq(2, 100, 0), spread, []int{0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, fail := Place(tc.node, tc.req, tc.opts)
			if fail != nil {
				t.Fatalf("no fit: %+v", fail)
			}
			got := indexes(a, 0)
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("cards (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestPlaceFailures(t *testing.T) {
	opts := Options{GPUPolicy: device.PolicySpread, NUMA: NUMABestEffort}
	excl := map[int]device.Usage{0: {MemoryMiB: 10, Cores: 100, Slots: 1, Exclusive: true}}
	tests := []struct {
		name         string
		node         *Node
		req          *device.PodRequest
		opts         *Options
		want         string
		unresolvable bool
	}{
		{"no inventory", &Node{Name: "n"}, gpuReq(1, 1, 0), nil, ReasonNoDevices, true},
		{"too large", node(2, 1000, nil, nil), gpuReq(1, 2000, 0), nil, "GPU memory request 2000 MiB exceeds every GPU on the node (largest offers 1000 MiB)", true},
		{"too many cards", node(2, 1000, nil, nil), gpuReq(3, 1, 0), nil, ReasonTooFewCards, true},
		{"memory", node(1, 1000, nil, map[int]device.Usage{0: {MemoryMiB: 950, Slots: 1}}), gpuReq(1, 100, 0), nil, ReasonMemory, false},
		{"cores", node(1, 1000, nil, map[int]device.Usage{0: {MemoryMiB: 1, Cores: 80, Slots: 1}}), gpuReq(1, 100, 30), nil, ReasonCores, false},
		{"slots", node(1, 1000, nil, map[int]device.Usage{0: {MemoryMiB: 10, Slots: 10}}), gpuReq(1, 1, 0), nil, ReasonSlots, false},
		{"exclusive held", node(1, 1000, nil, excl), gpuReq(1, 1, 0), nil, ReasonExclusive, false},
		{"exclusive wanted", node(1, 1000, nil, map[int]device.Usage{0: {MemoryMiB: 1, Slots: 1}}), gpuReq(1, 1, 100), nil, ReasonNeedsEmpty, false},
		{"single numa", node(4, 1000, []int{0, 0, 1, 1}, nil), gpuReq(3, 1, 0), &Options{GPUPolicy: device.PolicySpread, NUMA: NUMASingle}, ReasonNUMA, true},
		{"wrong model", node(1, 1000, nil, nil), &device.PodRequest{Containers: []device.ContainerRequest{{Name: "c", Vendor: device.VendorAscend, Model: "Ascend910B3", Count: 1}}}, nil, ReasonWrongModel, true},
		{"selector", node(2, 1000, nil, nil), func() *device.PodRequest {
			r := gpuReq(1, 1, 0)
			r.Selector.UseTypes = []string{"H100"}
			return r
		}(), nil, ReasonSelector, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := opts
			if tc.opts != nil {
				o = *tc.opts
			}
			a, fail := Place(tc.node, tc.req, o)
			if fail == nil {
				t.Fatalf("placed %+v, want failure %q", a, tc.want)
			}
			if !strings.Contains(strings.Join(fail.Reasons, "; "), tc.want) {
				t.Errorf("reasons = %q, want %q", fail.Reasons, tc.want)
			}
			if fail.Unresolvable != tc.unresolvable {
				t.Errorf("unresolvable = %v, want %v", fail.Unresolvable, tc.unresolvable)
			}
		})
	}
}

func TestPlaceMultiContainerAndInit(t *testing.T) {
	n := node(1, 1000, nil, nil)
	req := &device.PodRequest{Containers: []device.ContainerRequest{
		{Name: "init", Init: true, Vendor: device.VendorNVIDIA, Count: 1, MemoryMiB: 900},
		{Name: "a", Vendor: device.VendorNVIDIA, Count: 1, MemoryMiB: 400},
		{Name: "b", Vendor: device.VendorNVIDIA, Count: 1, MemoryMiB: 500},
	}}
	// 400+500 app containers fit together; the 900 MiB init container runs
	// before them, so it fits too: the pod holds max(900, 900).
	a, fail := Place(n, req, Options{GPUPolicy: device.PolicySpread})
	if fail != nil {
		t.Fatalf("no fit: %+v", fail)
	}
	if got := []string{a.Containers[0].Name, a.Containers[1].Name, a.Containers[2].Name}; !slices.Equal(got, []string{"init", "a", "b"}) {
		t.Errorf("containers in order %v", got)
	}
	fp := a.Footprint()["GPU-0"]
	if fp.MemoryMiB != 900 || fp.Slots != 2 {
		t.Errorf("footprint = %+v, want 900 MiB in 2 slots", fp)
	}
	// App containers of 400 and 700 MiB do not fit one 1000 MiB card.
	req.Containers[2].MemoryMiB = 700
	if _, fail := Place(n, req, Options{}); fail == nil || !slices.Contains(fail.Reasons, ReasonMemory) {
		t.Errorf("failure = %+v, want %q", fail, ReasonMemory)
	}
}

func TestScorePolicies(t *testing.T) {
	// Node a is half full, node b empty; placing 100 MiB on 1000 MiB cards.
	a := node(1, 1000, nil, map[int]device.Usage{0: {MemoryMiB: 500, Slots: 5}})
	b := node(1, 1000, nil, nil)
	req := gpuReq(1, 100, 0)
	allocA, _ := Place(a, req, Options{})
	allocB, _ := Place(b, req, Options{})
	// a after: memory 600/1000, slots 6/10 -> 60; b after: 100/1000, 1/10 -> 10.
	if got := Score(a, allocA, device.PolicyBinpack); got != 60 {
		t.Errorf("binpack score a = %d, want 60", got)
	}
	if got := Score(b, allocB, device.PolicyBinpack); got != 10 {
		t.Errorf("binpack score b = %d, want 10", got)
	}
	if got := Score(b, allocB, device.PolicySpread); got != 90 {
		t.Errorf("spread score b = %d, want 90", got)
	}
}

func BenchmarkPlace(b *testing.B) {
	n := node(8, 81920, []int{0, 0, 0, 0, 1, 1, 1, 1}, map[int]device.Usage{1: {MemoryMiB: 4000, Slots: 2}, 5: {MemoryMiB: 9000, Slots: 3}})
	req := gpuReq(2, 3000, 20)
	opts := Options{GPUPolicy: device.PolicyBinpack, NUMA: NUMABestEffort}
	for b.Loop() {
		if _, fail := Place(n, req, opts); fail != nil {
			b.Fatal(fail)
		}
	}
}

// randomCase is a node of 1-16 cards of mixed models, sizes, health, NUMA
// nodes, split counts, links and usage, and a pod of one to three device
// containers (some of them init containers) with every kind of request.
func randomCase(r *rand.Rand) (*Node, *device.PodRequest, Options) {
	policies := []device.Policy{device.PolicyBinpack, device.PolicySpread, ""}
	n := &Node{Name: "n"}
	cards := 1 + r.IntN(16)
	for i := range cards {
		d := &device.Device{UUID: fmt.Sprintf("GPU-%d", i), Index: (i * 7) % cards, Vendor: device.VendorNVIDIA,
			Model: []string{"NVIDIA A100", "NVIDIA H100"}[r.IntN(2)], MemoryMiB: []int64{1000, 2000, 81920}[r.IntN(3)],
			Healthy: r.IntN(20) != 0, MIG: r.IntN(30) == 0, NUMA: r.IntN(3)}
		cfg := device.NodeConfig{SplitCount: []int{1, 4, 10}[r.IntN(3)], MemoryScaling: 1, CoreScaling: 1}
		var u device.Usage
		if r.IntN(3) > 0 {
			u = device.Usage{MemoryMiB: r.Int64N(d.MemoryMiB + 1), Cores: r.IntN(101), Slots: 1 + r.IntN(cfg.SplitCount), Exclusive: r.IntN(10) == 0}
		}
		n.Cards = append(n.Cards, NewCard(d, cfg, u))
	}
	// Half the nodes have links: random pairs of every type.
	if r.IntN(2) == 0 {
		types := []device.LinkType{device.LinkNVLink, device.LinkPCIe, device.LinkHCCS}
		for range r.IntN(cards * 2) {
			a, b := r.IntN(cards), r.IntN(cards)
			n.Cards[a].Device.Links = append(n.Cards[a].Device.Links, device.Link{Peer: n.Cards[b].Device.UUID, Type: types[r.IntN(3)], Count: r.IntN(20)})
		}
		n.Topology = NewTopology(n.Cards)
	}
	topologies := []device.TopologyPolicy{"", device.TopologyBestEffort, device.TopologyNVLink}
	req := &device.PodRequest{NUMABind: r.IntN(4) == 0, GPUPolicy: policies[r.IntN(3)], Topology: topologies[r.IntN(3)]}
	containers := 1
	if r.IntN(5) == 0 {
		containers = 1 + r.IntN(3)
	}
	for i := range containers {
		c := device.ContainerRequest{Name: fmt.Sprint("c", i), Vendor: device.VendorNVIDIA, Count: 1 + r.IntN(4),
			Cores: []int{0, 10, 30, 100}[r.IntN(4)], Init: containers > 1 && r.IntN(3) == 0}
		switch r.IntN(4) {
		case 0:
			c.MemoryPercent = 1 + r.IntN(100)
		case 1: // the whole card's memory
		default:
			c.MemoryMiB = 1 + r.Int64N(3000)
		}
		if r.IntN(10) == 0 {
			c.Model = "nvidia h100"
		}
		req.Containers = append(req.Containers, c)
	}
	if r.IntN(10) == 0 {
		req.Selector.UseTypes = []string{"a100"}
	}
	if r.IntN(10) == 0 {
		req.Selector.NoUseUUIDs = []string{"GPU-1"}
	}
	numa := []NUMAPolicy{NUMANone, NUMABestEffort, NUMASingle}[r.IntN(3)]
	return n, req, Options{GPUPolicy: policies[r.IntN(2)], NUMA: numa}
}

// Check and ScoreFit, which the scheduler runs for every node, decide and
// score exactly as Place and Score of Place's allocation.
func TestCheckAndScoreFitAgreeWithPlace(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 5000))
	fits := 0
	for i := range 20000 {
		n, req, opts := randomCase(r)
		alloc, fail := Place(n, req, opts)
		v := Check(n, req, opts)
		if v.Fits != (fail == nil) {
			t.Fatalf("case %d: Check says fits=%v, Place %+v", i, v.Fits, fail)
		}
		if fail != nil {
			if !slices.Equal(v.Reasons, fail.Reasons) || v.Unresolvable != fail.Unresolvable {
				t.Fatalf("case %d: Check %+v, Place %+v", i, v, fail)
			}
			continue
		}
		fits++
		for _, p := range []device.Policy{device.PolicyBinpack, device.PolicySpread} {
			if got, ok := ScoreFit(n, req, opts, p); !ok || got != Score(n, alloc, p) {
				t.Fatalf("case %d %s: ScoreFit %d (ok %v), Score %d", i, p, got, ok, Score(n, alloc, p))
			}
		}
	}
	// Both outcomes are well represented.
	if fits < 2000 || fits > 18000 {
		t.Errorf("%d of 20000 cases fit", fits)
	}
}

func BenchmarkCheck(b *testing.B) {
	n := node(8, 81920, []int{0, 0, 0, 0, 1, 1, 1, 1}, map[int]device.Usage{1: {MemoryMiB: 4000, Slots: 2}, 5: {MemoryMiB: 9000, Slots: 3}})
	req := gpuReq(2, 3000, 20)
	opts := Options{GPUPolicy: device.PolicyBinpack, NUMA: NUMABestEffort}
	b.ReportAllocs()
	for b.Loop() {
		if !Check(n, req, opts).Fits {
			b.Fatal("does not fit")
		}
	}
}
