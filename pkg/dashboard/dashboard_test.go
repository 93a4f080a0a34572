package dashboard

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/usage"
)

func source(t *testing.T) Source {
	t.Helper()
	inv, _ := device.EncodeInventory(&device.Inventory{Devices: []device.Device{
		{UUID: "GPU-0", Index: 0, Vendor: device.VendorNVIDIA, Model: "NVIDIA L4", MemoryMiB: 23034, Healthy: true}}, NRI: true})
	alloc, _ := device.EncodeAllocation(&device.Allocation{Node: "gpu-1", Containers: []device.ContainerAllocation{
		{Name: "c", Devices: []device.Share{{UUID: "GPU-0", Vendor: device.VendorNVIDIA, MemoryMiB: 3000, Cores: 30}}}}})
	nodes := []*v1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "gpu-1", Annotations: map[string]string{device.InventoryAnnotation: inv}}}}
	pods := []*v1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "infer<x>", Namespace: "team-a", Annotations: map[string]string{device.AllocationAnnotation: alloc}}, Spec: v1.PodSpec{NodeName: "gpu-1"}}}
	return Source{Nodes: func() []*v1.Node { return nodes }, Pods: func() []*v1.Pod { return pods }, Defaults: device.NodeConfig{SplitCount: 10, MemoryScaling: 1, CoreScaling: 1}}
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestDashboard(t *testing.T) {
	h := Handler(source(t))
	code, body := get(t, h, "/api/cards")
	if code != http.StatusOK {
		t.Fatalf("GET /api/cards: %d", code)
	}
	var nodes []usage.Node
	if err := json.Unmarshal([]byte(body), &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].Cards[0].UsedMemoryMiB != 3000 || nodes[0].Cards[0].Holders[0].Pod != "infer<x>" {
		t.Fatalf("api = %s", body)
	}
	code, body = get(t, h, "/")
	if code != http.StatusOK {
		t.Fatalf("GET /: %d", code)
	}
	for _, want := range []string{"gpu-1", "3000/23034", "30/100", "1/10", "team-a/infer&lt;x&gt;", "width: 13%"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "infer<x>") {
		t.Error("pod names are not escaped")
	}
	if code, _ := get(t, h, "/nothing"); code != http.StatusNotFound {
		t.Errorf("GET /nothing: %d", code)
	}
}
