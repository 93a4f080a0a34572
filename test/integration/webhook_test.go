package integration

import (
	"context"
	"encoding/pem"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/webhook"
)

// The admission webhook, registered with the real API server: HAMi-style
// pods (resources only) are routed to Mosaic and scheduled; an invalid
// request is refused at creation with the field and limit; a user cannot
// edit a pod's allocation.
func TestAdmissionWebhook(t *testing.T) {
	e := newEnv(t, nil, a100("hooked", 2))
	logger, _ := ktesting.NewTestContext(t)
	srv := httptest.NewTLSServer(webhook.New(webhook.Config{SchedulerName: schedulerName, ParseOptions: device.ParseOptions{AscendModels: device.DefaultAscendModels()}}, logger))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	url := srv.URL + "/pods"
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "mosaic-" + e.ns},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "pods.mosaic.io",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": e.ns}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	if _, err := e.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(e.ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
	})

	// The API server picks the configuration up within a moment: wait until
	// an invalid request is refused, then check the message.
	invalid := e.pod(podSpec{name: "invalid", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpucores": "300"}})
	invalid.Spec.SchedulerName = ""
	var createErr error
	err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		_, createErr = e.cs.CoreV1().Pods(e.ns).Create(ctx, invalid, metav1.CreateOptions{})
		if createErr == nil {
			_ = e.cs.CoreV1().Pods(e.ns).Delete(ctx, invalid.Name, metav1.DeleteOptions{})
		}
		return createErr != nil, nil
	})
	if err != nil {
		t.Fatal("the webhook never refused an invalid request")
	}
	if !strings.Contains(createErr.Error(), "nvidia.com/gpucores=300 must be an integer in 0..100") {
		t.Errorf("refusal = %v", createErr)
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
