package integration

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
	"github.com/mosaic-gpu/mosaic/pkg/sim"
)

func TestFractionalPlacement(t *testing.T) {
	e := newEnv(t, nil, a100("frac", 2))
	p, a := e.mustBind(podSpec{name: "p1", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3000", "nvidia.com/gpucores": "30"}})
	if p.Spec.NodeName != "frac" {
		t.Fatalf("node = %s", p.Spec.NodeName)
	}
	s := a.Containers[0].Devices[0]
	if s.MemoryMiB != 3000 || s.Cores != 30 || s.Vendor != device.VendorNVIDIA {
		t.Errorf("share = %+v, want 3000 MiB, 30 cores", s)
	}
	// Percentage of the card's memory.
	_, a = e.mustBind(podSpec{name: "p2", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "25"}})
	if got := a.Containers[0].Devices[0].MemoryMiB; got != 81920/4 {
		t.Errorf("25%% of 81920 MiB = %d, want %d", got, 81920/4)
	}
	// Two containers of one pod each get their own share.
	_, a = e.mustBind(podSpec{name: "p3", containers: 2, limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}})
	if len(a.Containers) != 2 || a.Containers[0].Name != "c0" || a.Containers[1].Name != "c1" {
		t.Fatalf("containers = %+v", a.Containers)
	}
	e.checkCapacity()
}

func TestSplitCountFromInventory(t *testing.T) {
	n := a100("split", 1)
	n.DeviceConfig.SplitCount = 3
	e := newEnv(t, nil, n)
	small := map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "100"}
	for _, name := range []string{"s1", "s2", "s3"} {
		e.mustBind(podSpec{name: name, limits: small})
	}
	// The node advertises 3 nvidia.com/gpu (1 card x split 3); the fourth
	// share does not fit (Mosaic finds the card's slots taken before
	// NodeResourcesFit counts the node's nvidia.com/gpu).
	e.mustReject(podSpec{name: "s4", limits: small}, placement.ReasonSlots)
	if got := e.checkCapacity(); got != 3 {
		t.Errorf("bound pods = %d, want 3", got)
	}
}

func TestMemoryAndCoresExhaustion(t *testing.T) {
	n := sim.NodeSpec{Name: "small", GPUs: []discovery.CardSpec{{Vendor: device.VendorNVIDIA, Model: "Tesla T4", MemoryMiB: 10000, Count: 1}}}
	e := newEnv(t, nil, n)
	e.mustBind(podSpec{name: "m1", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "6000", "nvidia.com/gpucores": "60"}})
	e.mustReject(podSpec{name: "m2", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "6000"}}, "insufficient GPU memory")
	e.mustReject(podSpec{name: "c2", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000", "nvidia.com/gpucores": "50"}}, "insufficient GPU cores")
	e.mustBind(podSpec{name: "fits", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4000", "nvidia.com/gpucores": "40"}})
	// A request bigger than any card can never fit: unresolvable, with the
	// limit named.
	e.mustReject(podSpec{name: "huge", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "20000"}}, "largest offers 10000 MiB")
	e.checkCapacity()
}

func TestInvalidRequestsAreRefusedWithReason(t *testing.T) {
	e := newEnv(t, nil, a100("invalid", 1))
	for _, tc := range []struct {
		name   string
		limits map[string]string
		want   string
	}{
		{"cores", map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpucores": "101"}, "nvidia.com/gpucores=101 must be an integer in 0..100"},
		{"pct", map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "120"}, "nvidia.com/gpumem-percentage=120 must be an integer in 1..100"},
		{"memnogpu", map[string]string{"nvidia.com/gpumem": "1000"}, "nvidia.com/gpumem needs nvidia.com/gpu"},
		{"model", map[string]string{"huawei.com/Ascend000": "1"}, "unknown Ascend model"},
	} {
		e.mustReject(podSpec{name: tc.name, limits: tc.limits}, tc.want)
	}
}

func TestMultipleCardsAreDistinct(t *testing.T) {
	e := newEnv(t, nil, a100("multi", 4))
	_, a := e.mustBind(podSpec{name: "three", limits: map[string]string{"nvidia.com/gpu": "3", "nvidia.com/gpumem": "1000"}})
	got := cards(a)
	if len(got) != 3 || len(slices.Compact(slices.Sorted(slices.Values(got)))) != 3 {
		t.Fatalf("cards = %v, want 3 distinct", got)
	}
	e.mustReject(podSpec{name: "five", limits: map[string]string{"nvidia.com/gpu": "5"}}, "fewer GPUs on the node than requested")
}

func TestNUMABind(t *testing.T) {
	n := a100("numa", 8)
	n.GPUs[0].NUMA = []int{0, 0, 0, 0, 1, 1, 1, 1}
	e := newEnv(t, withArgs("numaPolicy: best-effort", "numaPolicy: none"), n)
	// Take two cards of NUMA node 0 and one of NUMA node 1 whole.
	whole := map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpucores": "100", "nvidia.com/gpumem-percentage": "100"}
	for _, name := range []string{"w1", "w2", "w3"} {
		e.mustBind(podSpec{name: name, limits: whole, annotations: map[string]string{"nvidia.com/use-gpuuuid": uuidOf(t, e, "numa", map[string]int{"w1": 0, "w2": 1, "w3": 4}[name])}})
	}
	// Three cards on one NUMA node: only node 1 has three left.
	_, a := e.mustBind(podSpec{name: "bound3", limits: map[string]string{"nvidia.com/gpu": "3", "nvidia.com/gpucores": "100"}, annotations: map[string]string{"nvidia.com/numa-bind": "true"}})
	for _, s := range a.Containers[0].Devices {
		if s.NUMA != 1 {
			t.Errorf("card %d on NUMA %d, want all on NUMA 1", s.Index, s.NUMA)
		}
	}
	// Two more on one NUMA node: NUMA 0 has two free cards left.
	_, a = e.mustBind(podSpec{name: "bound2", limits: map[string]string{"nvidia.com/gpu": "2", "nvidia.com/gpucores": "100"}, annotations: map[string]string{"nvidia.com/numa-bind": "true"}})
	for _, s := range a.Containers[0].Devices {
		if s.NUMA != 0 {
			t.Errorf("card %d on NUMA %d, want all on NUMA 0", s.Index, s.NUMA)
		}
	}
	e.checkCapacity()
}

func TestNUMABindUnsatisfiable(t *testing.T) {
	n := a100("numa2", 4)
	n.GPUs[0].NUMA = []int{0, 0, 1, 1}
	e := newEnv(t, nil, n)
	e.mustReject(podSpec{name: "three", limits: map[string]string{"nvidia.com/gpu": "3"}, annotations: map[string]string{"nvidia.com/numa-bind": "true"}},
		"not enough fitting GPUs on one NUMA node")
	// Without the binding the same request fits across NUMA nodes.
	e.mustBind(podSpec{name: "three-any", limits: map[string]string{"nvidia.com/gpu": "3"}})
}

// uuidOf reads a card's UUID from the node's published inventory.
func uuidOf(t *testing.T, e *env, node string, index int) string {
	t.Helper()
	n, err := e.cs.CoreV1().Nodes().Get(e.ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := device.DecodeInventory(n.Annotations[device.InventoryAnnotation])
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range inv.Devices {
		if d.Index == index {
			return d.UUID
		}
	}
	t.Fatalf("node %s has no card %d", node, index)
	return ""
}

func TestTypeAndUUIDSelection(t *testing.T) {
	h100 := sim.NodeSpec{Name: "h100", GPUs: []discovery.CardSpec{{Vendor: device.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3", MemoryMiB: 81920, Count: 2}}}
	e := newEnv(t, nil, a100("a100", 2), h100)
	gpu := map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}
	for _, tc := range []struct {
		name string
		ann  map[string]string
		node string
	}{
		{"use-h100", map[string]string{"nvidia.com/use-gputype": "h100"}, "h100"},
		{"nouse-h100", map[string]string{"nvidia.com/nouse-gputype": "H100"}, "a100"},
		{"use-a100-mosaic-key", map[string]string{"mosaic.io/use-gputype": "A100"}, "a100"},
	} {
		p, _ := e.mustBind(podSpec{name: tc.name, limits: gpu, annotations: tc.ann})
		if p.Spec.NodeName != tc.node {
			t.Errorf("%s: node = %s, want %s", tc.name, p.Spec.NodeName, tc.node)
		}
	}
	want := uuidOf(t, e, "h100", 1)
	_, a := e.mustBind(podSpec{name: "by-uuid", limits: gpu, annotations: map[string]string{"nvidia.com/use-gpuuuid": want}})
	if got := a.Containers[0].Devices[0].UUID; got != want {
		t.Errorf("card = %s, want %s", got, want)
	}
	e.mustReject(podSpec{name: "no-such-type", limits: gpu, annotations: map[string]string{"nvidia.com/use-gputype": "V100"}}, "excluded by the pod's type or UUID")
}

func TestAscendTemplateRounding(t *testing.T) {
	npu := sim.NodeSpec{Name: "npu", GPUs: []discovery.CardSpec{{Vendor: device.VendorAscend, Model: "Ascend910B3", MemoryMiB: 65536, AICore: 20, Count: 2}}}
	e := newEnv(t, withArgs("gpuPolicy: spread", "gpuPolicy: binpack"), npu)
	req := map[string]string{"huawei.com/Ascend910B3": "1", "huawei.com/Ascend910B3-memory": "12000"}
	// 12000 MiB rounds up to the 16 GiB template (5 of 20 AI cores): four
	// fill one card.
	var first string
	for i := range 4 {
		_, a := e.mustBind(podSpec{name: "v" + string(rune('0'+i)), limits: req})
		s := a.Containers[0].Devices[0]
		if s.MemoryMiB != 16384 || s.Cores != 25 || s.Template != "vir05_1c_16g" {
			t.Fatalf("share = %+v, want the vir05_1c_16g template", s)
		}
		if first == "" {
			first = s.UUID
		} else if s.UUID != first {
			t.Errorf("binpack put vNPU %d on %s, want %s", i, s.UUID, first)
		}
	}
	_, a := e.mustBind(podSpec{name: "v4", limits: req})
	if a.Containers[0].Devices[0].UUID == first {
		t.Error("fifth vNPU placed on the full card")
	}
	// Two cards are whole cards; none is left whole.
	e.mustReject(podSpec{name: "pair", limits: map[string]string{"huawei.com/Ascend910B3": "2"}}, "")
	e.checkCapacity()
}
