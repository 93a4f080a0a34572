package webhook

import (
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2/ktesting"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

func podWith(limits map[string]string, ann map[string]string, scheduler string) *v1.Pod {
	rl := v1.ResourceList{}
	for k, v := range limits {
		rl[v1.ResourceName(k)] = resource.MustParse(v)
	}
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: ann}, Spec: v1.PodSpec{SchedulerName: scheduler,
		Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{Limits: rl}}}}}
}

func request(op admissionv1.Operation, pod, old *v1.Pod) *admissionv1.AdmissionRequest {
	raw := func(p *v1.Pod) runtime.RawExtension {
		if p == nil {
			return runtime.RawExtension{}
		}
		b, _ := json.Marshal(p)
		return runtime.RawExtension{Raw: b}
	}
	return &admissionv1.AdmissionRequest{Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Operation: op, Object: raw(pod), OldObject: raw(old)}
}

func TestReview(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	h := New(Config{SchedulerName: "mosaic-scheduler", ParseOptions: device.ParseOptions{AscendModels: device.DefaultAscendModels()}}, logger)
	gpu := map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}
	tests := []struct {
		name     string
		req      *admissionv1.AdmissionRequest
		allowed  bool
		message  string
		patch    string
		warnings int
	}{
		{name: "plain pod untouched", req: request(admissionv1.Create, podWith(map[string]string{"cpu": "1"}, nil, ""), nil), allowed: true},
		{name: "device pod routed", req: request(admissionv1.Create, podWith(gpu, nil, ""), nil), allowed: true,
			patch: `[{"op":"add","path":"/spec/schedulerName","value":"mosaic-scheduler"}]`},
		{name: "other scheduler kept", req: request(admissionv1.Create, podWith(gpu, nil, "my-scheduler"), nil), allowed: true},
		{name: "invalid request refused", req: request(admissionv1.Create, podWith(map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpucores": "300"}, nil, ""), nil),
			message: "nvidia.com/gpucores=300 must be an integer in 0..100"},
		{name: "copied allocation stripped", req: request(admissionv1.Create, podWith(gpu, map[string]string{device.AllocationAnnotation: "{}", "x": "y"}, "mosaic-scheduler"), nil), allowed: true,
			patch: `[{"op":"remove","path":"/metadata/annotations/mosaic.io~1allocation"}]`, warnings: 1},
		{name: "allocation edit refused", req: request(admissionv1.Update, podWith(gpu, map[string]string{device.AllocationAnnotation: "forged"}, ""), podWith(gpu, map[string]string{device.AllocationAnnotation: "real"}, "")),
			message: "written by the scheduler only"},
		{name: "other updates allowed", req: request(admissionv1.Update, podWith(gpu, map[string]string{device.AllocationAnnotation: "a", "x": "1"}, ""), podWith(gpu, map[string]string{device.AllocationAnnotation: "a"}, "")), allowed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rsp := h.Review(tc.req)
			if rsp.Allowed != (tc.message == "") {
				t.Fatalf("allowed = %v (%v)", rsp.Allowed, rsp.Result)
			}
			if tc.message != "" && !strings.Contains(rsp.Result.Message, tc.message) {
				t.Errorf("message = %q, want %q", rsp.Result.Message, tc.message)
			}
			if string(rsp.Patch) != tc.patch {
				t.Errorf("patch = %s, want %s", rsp.Patch, tc.patch)
			}
			if len(rsp.Warnings) != tc.warnings {
				t.Errorf("warnings = %v", rsp.Warnings)
			}
		})
	}
}
