package agent

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
)

func TestParseSharingConfig(t *testing.T) {
	c, err := ParseSharingConfig([]byte("default: {splitCount: 8, memoryScaling: 1.5}\nnodes:\n  gpu-7: {splitCount: 4}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.For("gpu-7"); got != (device.NodeConfig{SplitCount: 4, MemoryScaling: 1.5}) {
		t.Errorf("gpu-7 = %+v", got)
	}
	if got := c.For("other"); got != (device.NodeConfig{SplitCount: 8, MemoryScaling: 1.5}) {
		t.Errorf("other = %+v", got)
	}
	for in, want := range map[string]string{
		"defaults: {}\n":                     `unknown field "defaults"`,
		"nodes:\n  n1: {splitCount: 9999}\n": "nodes.n1.splitCount: 9999 must be in 1..1024",
		"default: {coreScaling: -1}\n":       "default.coreScaling: -1",
	} {
		if _, err := ParseSharingConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error = %v, want %q", in, err, want)
		}
	}
}

func TestCollector(t *testing.T) {
	raw, err := device.EncodeAllocation(&device.Allocation{Node: "n1", Containers: []device.ContainerAllocation{
		{Name: "a", Devices: []device.Share{{UUID: "GPU-0", Vendor: device.VendorNVIDIA, MemoryMiB: 300, Cores: 20}}},
		{Name: "b", Devices: []device.Share{{UUID: "GPU-0", Vendor: device.VendorNVIDIA, MemoryMiB: 200, Cores: 10}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	pods := []*v1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: map[string]string{device.AllocationAnnotation: raw}}, Spec: v1.PodSpec{NodeName: "n1"}},
		// Finished pods hold nothing.
		{ObjectMeta: metav1.ObjectMeta{Name: "done", Namespace: "ns", Annotations: map[string]string{device.AllocationAnnotation: raw}}, Spec: v1.PodSpec{NodeName: "n1"}, Status: v1.PodStatus{Phase: v1.PodSucceeded}},
	}
	c := NewCollector("n1", "", func() []*v1.Pod { return pods })
	c.SetCards([]device.Device{{UUID: "GPU-0", Index: 0, Model: "A100", MemoryMiB: 1000, Healthy: true}}, device.NodeConfig{SplitCount: 4})
	want := `
# HELP mosaic_card_allocated_memory_mib Card memory allocated to pods bound to this node, MiB.
# TYPE mosaic_card_allocated_memory_mib gauge
mosaic_card_allocated_memory_mib{index="0",model="A100",node="n1",uuid="GPU-0"} 500
# HELP mosaic_card_allocated_slots Shares of the card allocated to pods bound to this node.
# TYPE mosaic_card_allocated_slots gauge
mosaic_card_allocated_slots{index="0",model="A100",node="n1",uuid="GPU-0"} 2
# HELP mosaic_card_slots Shares a card can hold (split count).
# TYPE mosaic_card_slots gauge
mosaic_card_slots{index="0",model="A100",node="n1",uuid="GPU-0"} 4
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "mosaic_card_allocated_memory_mib", "mosaic_card_allocated_slots", "mosaic_card_slots"); err != nil {
		t.Error(err)
	}
}

// A container can put anything in its shared directory: a FIFO where the
// accounting file goes neither hangs a scrape nor loses the other metrics.
func TestCollectorWithATenantsFIFO(t *testing.T) {
	raw, err := device.EncodeAllocation(&device.Allocation{Node: "n1", Containers: []device.ContainerAllocation{
		{Name: "a", Devices: []device.Share{{UUID: "GPU-0", Vendor: device.VendorNVIDIA, MemoryMiB: 300}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1", Annotations: map[string]string{device.AllocationAnnotation: raw}}, Spec: v1.PodSpec{NodeName: "n1"}}
	shared := filepath.Join(nri.ContainerStateDir(state, "uid-1"), "a", "shared")
	if err := os.MkdirAll(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(shared, device.AccountingFile), 0o666); err != nil {
		t.Fatal(err)
	}
	c := NewCollector("n1", state, func() []*v1.Pod { return []*v1.Pod{pod} })
	want := `
# HELP mosaic_container_allocated_memory_mib Card memory allocated to one container, MiB.
# TYPE mosaic_container_allocated_memory_mib gauge
mosaic_container_allocated_memory_mib{container="a",namespace="ns",node="n1",pod="p",uuid="GPU-0"} 300
`
	done := make(chan error, 1)
	go func() {
		done <- testutil.CollectAndCompare(c, strings.NewReader(want), "mosaic_container_allocated_memory_mib", "mosaic_container_used_memory_bytes")
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(20 * time.Second): // a hang guard only
		t.Fatal("a scrape did not return with a FIFO in a container's shared directory")
	}
}

// What the enforcers wrote (a container's accounting file, the card's
// region) becomes the container's memory in use and GPU time, and the
// card's lease hand-overs; a container that never joined the region has no
// GPU time, and another container's entry is not its own.
func TestCollectorReadsTheEnforcersFiles(t *testing.T) {
	raw, err := device.EncodeAllocation(&device.Allocation{Node: "n1", Containers: []device.ContainerAllocation{
		{Name: "a", Devices: []device.Share{{UUID: "GPU-0", Vendor: device.VendorNVIDIA, MemoryMiB: 300, Cores: 20}}},
		{Name: "b", Devices: []device.Share{{UUID: "GPU-0", Vendor: device.VendorNVIDIA, MemoryMiB: 200, Cores: 10}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1", Annotations: map[string]string{device.AllocationAnnotation: raw}}, Spec: v1.PodSpec{NodeName: "n1"}}
	write := func(path string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	acct := func(ctr string) string {
		return filepath.Join(nri.ContainerStateDir(state, "uid-1"), ctr, "shared", device.AccountingFile)
	}
	write(acct("a"), device.EncodeAccounting(&device.Accounting{Used: []uint64{123 << 20}, TenantKey: 41}))
	write(acct("b"), device.EncodeAccounting(&device.Accounting{Used: []uint64{7 << 20}})) // never limited: no key
	write(device.CardRegionPath(nri.CardRegionsDir(state), "GPU-0"), device.EncodeCardRegion(&device.CardRegion{
		Switches: 12,
		Tenants:  []device.CardTenant{{Key: 99, Share: 50, BusyNs: 9e9}, {Key: 41, Share: 20, BusyNs: 2_500_000_000}},
	}))
	c := NewCollector("n1", state, func() []*v1.Pod { return []*v1.Pod{pod} })
	c.SetCards([]device.Device{{UUID: "GPU-0", Index: 0, Model: "H200", MemoryMiB: 1000, Healthy: true, PCIBus: "0000:19:00.0"}}, device.NodeConfig{SplitCount: 4})
	want := `
# HELP mosaic_card_lease_switches_total Hand-overs of the card's time lease between processes of the containers sharing it.
# TYPE mosaic_card_lease_switches_total counter
mosaic_card_lease_switches_total{index="0",model="H200",node="n1",uuid="GPU-0"} 12
# HELP mosaic_container_gpu_seconds_total GPU time the enforcer charged to the container on the card (its compute share's use), seconds.
# TYPE mosaic_container_gpu_seconds_total counter
mosaic_container_gpu_seconds_total{container="a",namespace="ns",node="n1",pod="p",uuid="GPU-0"} 2.5
# HELP mosaic_container_used_memory_bytes Card memory the container's processes hold, as the enforcer accounts it.
# TYPE mosaic_container_used_memory_bytes gauge
mosaic_container_used_memory_bytes{container="a",namespace="ns",node="n1",pod="p",uuid="GPU-0"} 1.28974848e+08
mosaic_container_used_memory_bytes{container="b",namespace="ns",node="n1",pod="p",uuid="GPU-0"} 7.340032e+06
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "mosaic_card_lease_switches_total", "mosaic_container_gpu_seconds_total", "mosaic_container_used_memory_bytes"); err != nil {
		t.Error(err)
	}
}
