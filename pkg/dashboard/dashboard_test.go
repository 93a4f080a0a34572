package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// cluster builds n nodes of one 23034 MiB card each; pod i holds 3000 MiB
// and 30 % of node i's card; one more pod waits with the scheduler's
// message.
func cluster(t testing.TB, n int) ([]*v1.Node, []*v1.Pod) {
	t.Helper()
	var nodes []*v1.Node
	var pods []*v1.Pod
	for i := range n {
		name := fmt.Sprintf("gpu-%04d", i)
		uuid := fmt.Sprintf("GPU-%04d", i)
		inv, err := device.EncodeInventory(&device.Inventory{Devices: []device.Device{
			{UUID: uuid, Index: 0, Vendor: device.VendorNVIDIA, Model: "NVIDIA L4", MemoryMiB: 23034, Healthy: true}}, NRI: true})
		if err != nil {
			t.Fatal(err)
		}
		alloc, err := device.EncodeAllocation(&device.Allocation{Node: name, Containers: []device.ContainerAllocation{
			{Name: "c", Devices: []device.Share{{UUID: uuid, Vendor: device.VendorNVIDIA, MemoryMiB: 3000, Cores: 30}}}}})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1", Annotations: map[string]string{device.InventoryAnnotation: inv}}})
		pods = append(pods, &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("infer<%d>", i), Namespace: "team-a", UID: types.UID("u" + name), ResourceVersion: "1", Annotations: map[string]string{device.AllocationAnnotation: alloc}},
			Spec: v1.PodSpec{NodeName: name, Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{Limits: v1.ResourceList{
				device.ResourceNvidiaGPU: resource.MustParse("1"), device.ResourceNvidiaMem: resource.MustParse("3000"), device.ResourceNvidiaCores: resource.MustParse("30")}}}}},
		})
	}
	pods = append(pods, &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "waiting", Namespace: "team-b", UID: "waiting", ResourceVersion: "1"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{Limits: v1.ResourceList{
			device.ResourceNvidiaGPU: resource.MustParse("1"), device.ResourceNvidiaMem: resource.MustParse("90000")}}}}},
		Status: v1.PodStatus{Conditions: []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionFalse, Reason: v1.PodReasonUnschedulable, Message: "0/3 nodes are available: 3 insufficient GPU memory."}}},
	})
	return nodes, pods
}

type fixedLive struct{ u *LiveUsage }

func (f fixedLive) Usage(context.Context) (*LiveUsage, error) { return f.u, nil }

func source(t testing.TB, n int) Source {
	nodes, pods := cluster(t, n)
	live := NewLiveUsage()
	live.Cards["GPU-0000"] = CardUse{MemoryUsedBytes: 2000 * mib, Utilization: 0.2}
	live.AddContainer(ContainerCardKey{"team-a", "infer<0>", "c", "GPU-0000"}, Use{MemoryUsedBytes: 1500 * mib, Cores: 12})
	return Source{Nodes: func() []*v1.Node { return nodes }, Pods: func() []*v1.Pod { return pods },
		Defaults: device.DefaultNodeConfig(), SchedulerName: "mosaic-scheduler", Live: fixedLive{live}}
}

func get(t testing.TB, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func getJSON(t testing.TB, h http.Handler, path string, v any) {
	t.Helper()
	code, body := get(t, h, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

func TestOverviewTotalsAndLiveUse(t *testing.T) {
	h := Handler(source(t, 3))
	var o overviewWithOptions
	getJSON(t, h, "/api/overview", &o)
	tot := o.Total
	if o.Nodes != 3 || o.Pods != 3 || o.Pending != 1 || tot.Cards != 3 || tot.MemoryMiB != 3*23034 || tot.AllocatedMemoryMiB != 9000 ||
		tot.FreeMemoryMiB != 3*23034-9000 || tot.AllocatedCores != 90 || tot.AllocatedShares != 3 || tot.Shares != 30 {
		t.Errorf("overview = %+v", o)
	}
	if tot.UsedMemoryMiB == nil || *tot.UsedMemoryMiB != 2000 || tot.UsedCores == nil || *tot.UsedCores != 20 {
		t.Errorf("live totals = %v, %v; want 2000 MiB, 20 %%", tot.UsedMemoryMiB, tot.UsedCores)
	}
	if len(o.Models) != 1 || o.Models[0].Vendor != "NVIDIA" || o.Models[0].Model != "NVIDIA L4" {
		t.Errorf("models = %+v", o.Models)
	}
	if strings.Join(o.Namespaces, ",") != "team-a,team-b" {
		t.Errorf("namespaces = %v", o.Namespaces)
	}
	var nodes page[NodeView]
	getJSON(t, h, "/api/nodes?node=gpu-0000", &nodes)
	if nodes.Total != 1 {
		t.Fatalf("nodes = %+v", nodes)
	}
	hv := nodes.Items[0].Cards[0].Holders[0]
	if hv.Pod != "infer<0>" || hv.MemoryMiB != 3000 || hv.UsedMemoryMiB == nil || *hv.UsedMemoryMiB != 1500 || *hv.UsedCores != 12 {
		t.Errorf("holder = %+v", hv)
	}
	var pods page[PodView]
	getJSON(t, h, "/api/pods?pod=infer<0>", &pods)
	if pods.Total != 1 || pods.Items[0].Containers[0].Limits["nvidia.com/gpumem"] != "3000" || *pods.Items[0].Containers[0].Cards[0].UsedMemoryMiB != 1500 {
		t.Errorf("pods = %+v", pods)
	}
	var pending page[PendingPod]
	getJSON(t, h, "/api/pending", &pending)
	if pending.Total != 1 || pending.Items[0].Reason != "0/3 nodes are available: 3 insufficient GPU memory." || pending.Items[0].Request != "c: 1 × NVIDIA (90000 MiB)" {
		t.Errorf("pending = %+v", pending)
	}
}

func TestFiltersAndPages(t *testing.T) {
	h := Handler(source(t, 50))
	for _, tc := range []struct {
		path  string
		total int
		items int
	}{
		{"/api/nodes", 50, defaultLimit},
		{"/api/nodes?offset=40&limit=20", 50, 10},
		{"/api/nodes?q=GPU-0012", 1, 1},
		{"/api/nodes?q=infer<3", 11, 11}, // infer<3>, infer<30>..<39>
		{"/api/nodes?model=h100", 0, 0},
		{"/api/nodes?namespace=team-b", 0, 0},
		{"/api/pods?node=gpu-0007", 1, 1},
		{"/api/pods?namespace=TEAM-A&limit=200", 50, 50},
		{"/api/pending?q=insufficient", 1, 1},
		{"/api/pending?node=gpu-0001", 0, 0},
	} {
		var p page[json.RawMessage]
		getJSON(t, h, tc.path, &p)
		if p.Total != tc.total || len(p.Items) != tc.items {
			t.Errorf("GET %s: total %d, %d items; want %d, %d", tc.path, p.Total, len(p.Items), tc.total, tc.items)
		}
	}
	for _, path := range []string{"/api/nodes?limit=0", "/api/nodes?limit=201", "/api/pods?offset=-1", "/api/pending?offset=x"} {
		code, body := get(t, h, path)
		field := strings.TrimPrefix(strings.SplitN(strings.SplitN(path, "?", 2)[1], "=", 2)[0], "")
		if code != http.StatusBadRequest || !strings.HasPrefix(body, field+":") {
			t.Errorf("GET %s: %d %q, want 400 naming %s", path, code, body, field)
		}
	}
}

func TestPageAndAssets(t *testing.T) {
	h := Handler(source(t, 1))
	for _, path := range []string{"/", "/static/app.js", "/static/app.css", "/static/strings.js"} {
		if code, body := get(t, h, path); code != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: %d", path, code)
		}
	}
	// Every string key the page and script use is in the table.
	_, html := get(t, h, "/")
	_, table := get(t, h, "/static/strings.js")
	for _, attr := range []string{`data-i18n="`, `data-i18n-placeholder="`} {
		for _, part := range strings.Split(html, attr)[1:] {
			key := part[:strings.IndexByte(part, '"')]
			if !strings.Contains(table, "\n    "+key+": ") {
				t.Errorf("string %q of the page is not in strings.js", key)
			}
		}
	}
	if code, _ := get(t, h, "/nothing"); code != http.StatusNotFound {
		t.Errorf("GET /nothing: %d", code)
	}
}

func TestPodSpecHelper(t *testing.T) {
	h := Handler(source(t, 1))
	code, body := get(t, h, "/api/podspec?name=job&namespace=ml&model=NVIDIA%20L4&count=2&memory=8000&cores=25&numa=true")
	if code != http.StatusOK {
		t.Fatalf("podspec: %d %s", code, body)
	}
	var pod v1.Pod
	if err := yaml.UnmarshalStrict([]byte(body), &pod); err != nil {
		t.Fatal(err)
	}
	req, err := device.ParsePodRequest(&pod, device.ParseOptions{})
	if err != nil || req == nil {
		t.Fatalf("the spec's request: %v, %v", req, err)
	}
	if c := req.Containers[0]; c.Count != 2 || c.MemoryMiB != 8000 || c.Cores != 25 || !req.NUMABind || req.Selector.UseTypes[0] != "NVIDIA L4" {
		t.Errorf("request = %+v", req)
	}
	if pod.Spec.SchedulerName != "mosaic-scheduler" || pod.Name != "job" || pod.Namespace != "ml" {
		t.Errorf("pod = %+v", pod.ObjectMeta)
	}
	if !strings.Contains(body, `nvidia.com/gpumem: "8000"`) {
		t.Errorf("memory not written as an integer:\n%s", body)
	}
	for q, field := range map[string]string{"cores=101": "cores", "count=0": "count", "memory=x": "memory", "name=Bad_Name": "name", "vendor=AMD": "vendor"} {
		if code, body := get(t, h, "/api/podspec?"+q); code != http.StatusBadRequest || !strings.HasPrefix(body, field+":") {
			t.Errorf("podspec?%s: %d %q, want 400 naming %s", q, code, body, field)
		}
	}
}

// The event stream sends the current generation at once.
func TestEvents(t *testing.T) {
	srv := httptest.NewServer(Handler(source(t, 1)))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	first, _ := r.ReadString('\n')
	second, _ := r.ReadString('\n')
	if first != "event: change\n" || second != "data: 1\n" {
		t.Errorf("first event = %q %q", first, second)
	}
}

// BenchmarkFirstScreen1000Nodes is what the server does for the page's
// first screen at 1,000 nodes: the snapshot (built once per change) and
// the overview and first pages.
func BenchmarkFirstScreen1000Nodes(b *testing.B) {
	nodes, pods := cluster(b, 1000)
	b.ResetTimer()
	for b.Loop() {
		// A new source each time: a new snapshot.
		h := Handler(Source{Nodes: func() []*v1.Node { return nodes }, Pods: func() []*v1.Pod { return pods }, Defaults: device.DefaultNodeConfig()})
		for _, p := range []string{"/api/overview", "/api/nodes?limit=20", "/api/pods?limit=25", "/api/pending?limit=10"} {
			if code, _ := get(b, h, p); code != http.StatusOK {
				b.Fatal(p, code)
			}
		}
	}
}
