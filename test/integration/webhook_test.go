package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"

	"github.com/mosaic-gpu/mosaic/pkg/cluster"
	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/sim"
	"github.com/mosaic-gpu/mosaic/pkg/webhook"
)

// startWebhook serves the admission webhook with cfg and registers it with
// the API server for the env's namespace, with manifests/webhook.yaml's
// rules (pods and their ephemeral containers, fail closed). It returns once
// the API server calls it.
func startWebhook(t *testing.T, e *env, cfg webhook.Config) {
	t.Helper()
	logger, _ := ktesting.NewTestContext(t)
	stop, err := cluster.ServePodWebhook(e.ctx, e.cs, webhook.New(cfg, logger), e.ns, admissionregistrationv1.SideEffectClassNone)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	// The API server picks the configuration up within a moment: wait
	// until an invalid request is refused.
	probe := e.pod(podSpec{name: "webhook-probe", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpucores": "300"}})
	err = wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := e.cs.CoreV1().Pods(e.ns).Create(ctx, probe, metav1.CreateOptions{})
		if err == nil {
			_ = e.cs.CoreV1().Pods(e.ns).Delete(ctx, probe.Name, metav1.DeleteOptions{})
		}
		return err != nil && strings.Contains(err.Error(), "mosaic: invalid device request"), nil
	})
	if err != nil {
		t.Fatal("the webhook never refused an invalid request")
	}
}

// The admission webhook, registered with the real API server: HAMi-style
// pods (resources only) are routed to Mosaic and scheduled; an invalid
// request is refused at creation with the field and limit; a user cannot
// edit a pod's allocation.
func TestAdmissionWebhook(t *testing.T) {
	e := newEnv(t, nil, a100("hooked", 2))
	startWebhook(t, e, webhook.Config{SchedulerName: schedulerName, ParseOptions: webhook.DefaultParseOptions()})

	invalid := e.pod(podSpec{name: "invalid", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpucores": "300"}})
	invalid.Spec.SchedulerName = ""
	if _, err := e.cs.CoreV1().Pods(e.ns).Create(e.ctx, invalid, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "nvidia.com/gpucores=300 must be an integer in 0..100") {
		t.Errorf("refusal = %v", err)
	}

	// A pod with HAMi resources and no schedulerName reaches Mosaic.
	hami := e.pod(podSpec{name: "hami", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"},
		annotations: map[string]string{device.AllocationAnnotation: "copied"}})
	hami.Spec.SchedulerName = ""
	e.create(hami)
	p := e.settle("hami")
	if p.Spec.SchedulerName != schedulerName || p.Spec.NodeName != "hooked" {
		t.Fatalf("schedulerName %q, node %q", p.Spec.SchedulerName, p.Spec.NodeName)
	}
	allocation(t, p) // the scheduler's, not the copied one

	patch := []byte(`{"metadata":{"annotations":{"mosaic.io/allocation":"forged"}}}`)
	if _, err := e.cs.CoreV1().Pods(e.ns).Patch(e.ctx, "hami", types.MergePatchType, patch, metav1.PatchOptions{}); err == nil || !strings.Contains(err.Error(), "written by the scheduler only") {
		t.Errorf("editing the allocation: %v", err)
	}
}

// One KubeSchedulerConfiguration file configures the scheduler and the
// webhook (read as cmd/webhook reads its --config): a pod asking for an
// Ascend model only that file names is admitted and placed on a vNPU of
// it; a model it does not name is refused at creation, naming the models
// it knows.
func TestAdmissionWebhookReadsTheSchedulersConfig(t *testing.T) {
	cfg := withArgs(
		"deviceCoreScaling: 1.0", `deviceCoreScaling: 1.0
      ascendModels:
      - {name: Ascend910C, memoryMiB: 131072, aiCore: 24, templates: [{name: vir06_1c_32g, memoryMiB: 32768, aiCore: 6}]}`,
		// As for any Ascend model: the per-card amount is Mosaic's.
		"ignoredResources: [", "ignoredResources: [huawei.com/Ascend910C-memory, ")
	npu := sim.NodeSpec{Name: "npu-c", GPUs: []discovery.CardSpec{{Vendor: device.VendorAscend, Model: "Ascend910C", MemoryMiB: 131072, AICore: 24, Count: 1}}}
	e := newEnv(t, cfg, npu)
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	wc := webhook.Config{SchedulerName: schedulerName, ParseOptions: webhook.DefaultParseOptions()}
	if err := wc.ReadSchedulerConfig(data); err != nil {
		t.Fatal(err)
	}
	startWebhook(t, e, wc)

	custom := e.pod(podSpec{name: "custom", limits: map[string]string{"huawei.com/Ascend910C": "1", "huawei.com/Ascend910C-memory": "20000"}})
	custom.Spec.SchedulerName = ""
	e.create(custom)
	p := e.settle("custom")
	if p.Spec.NodeName != "npu-c" {
		t.Fatalf("pod with the configured model not placed: %s", unschedulable(p))
	}
	if s := allocation(t, p).Containers[0].Devices[0]; s.Template != "vir06_1c_32g" || s.MemoryMiB != 32768 || s.Cores != 25 {
		t.Errorf("share = %+v, want the configured vir06_1c_32g template", s)
	}

	unknown := e.pod(podSpec{name: "unknown", limits: map[string]string{"huawei.com/Ascend910B": "1"}})
	if _, err := e.cs.CoreV1().Pods(e.ns).Create(e.ctx, unknown, metav1.CreateOptions{}); err == nil ||
		!strings.Contains(err.Error(), "mosaic: invalid device request: container c0: huawei.com/Ascend910B names an unknown Ascend model (known: Ascend910C)") {
		t.Errorf("a model the scheduler is not configured with: %v", err)
	}
	if _, err := e.cs.CoreV1().Pods(e.ns).Get(e.ctx, "unknown", metav1.GetOptions{}); err == nil {
		t.Error("the refused pod exists")
	}
}
