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
	"k8s.io/utils/ptr"

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
		{name: "invalid topology refused", req: request(admissionv1.Create, podWith(map[string]string{"nvidia.com/gpu": "2"}, map[string]string{device.GPUTopologyAnnotation: "pcie"}, ""), nil),
			message: `annotation mosaic.io/gpu-topology: "pcie" is not one of best-effort, nvlink`},
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

// A pod that shares a card is refused, or admitted with a warning in warn
// mode, for each container that defeats the enforcer; ephemeral containers
// are checked as they are added.
func TestReviewOverrides(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	shared := map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}
	exclusive := map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpucores": "100"}
	with := func(limits map[string]string, edit func(c *v1.Container)) *v1.Pod {
		p := podWith(limits, nil, "mosaic-scheduler")
		edit(&p.Spec.Containers[0])
		return p
	}
	privileged := func(c *v1.Container) { c.SecurityContext = &v1.SecurityContext{Privileged: ptr.To(true)} }
	debug := func(base *v1.Pod, sc *v1.SecurityContext) *v1.Pod {
		p := base.DeepCopy()
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, v1.EphemeralContainer{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "debugger", SecurityContext: sc}})
		return p
	}
	ordinary := podWith(shared, nil, "mosaic-scheduler")
	ephemeral := func(pod, old *v1.Pod) *admissionv1.AdmissionRequest {
		r := request(admissionv1.Update, pod, old)
		r.SubResource = "ephemeralcontainers"
		return r
	}
	tests := []struct {
		name string
		req  *admissionv1.AdmissionRequest
		want string // the refusal with deny, the warning with warn; empty: admitted as it is
	}{
		{name: "privileged", req: request(admissionv1.Create, with(shared, privileged), nil), want: "container c is privileged, and its pod shares a card"},
		{name: "privileged init container", req: request(admissionv1.Create, func() *v1.Pod {
			p := podWith(shared, nil, "mosaic-scheduler")
			p.Spec.InitContainers = []v1.Container{{Name: "setup", SecurityContext: &v1.SecurityContext{Privileged: ptr.To(true)}}}
			return p
		}(), nil), want: "container setup is privileged"},
		{name: "every card", req: request(admissionv1.Create, with(shared, func(c *v1.Container) { c.Env = []v1.EnvVar{{Name: "NVIDIA_VISIBLE_DEVICES", Value: "all"}} }), nil),
			want: `container c sets NVIDIA_VISIBLE_DEVICES="all"`},
		{name: "HAMi-core off", req: request(admissionv1.Create, with(shared, func(c *v1.Container) { c.Env = []v1.EnvVar{{Name: "CUDA_DISABLE_CONTROL", Value: "true"}} }), nil),
			want: "container c sets CUDA_DISABLE_CONTROL"},
		{name: "own preload", req: request(admissionv1.Create, with(shared, func(c *v1.Container) { c.Env = []v1.EnvVar{{Name: "LD_PRELOAD", Value: "/x.so"}} }), nil),
			want: "container c sets LD_PRELOAD"},
		{name: "preload file", req: request(admissionv1.Create, with(shared, func(c *v1.Container) { c.VolumeMounts = []v1.VolumeMount{{Name: "v", MountPath: "/etc/ld.so.preload"}} }), nil),
			want: `container c mounts "/etc/ld.so.preload" over Mosaic's /etc/ld.so.preload`},
		{name: "limits file", req: request(admissionv1.Create, with(shared, func(c *v1.Container) {
			c.VolumeMounts = []v1.VolumeMount{{Name: "v", MountPath: "/run/mosaic/limits.conf"}}
		}), nil),
			want: `mounts "/run/mosaic/limits.conf" over Mosaic's /run/mosaic`},
		// A plain nvidia.com/gpu time-shares the card's compute.
		{name: "cards only", req: request(admissionv1.Create, with(map[string]string{"nvidia.com/gpu": "1"}, privileged), nil), want: "is privileged"},
		{name: "privileged debug container", req: ephemeral(debug(ordinary, &v1.SecurityContext{Privileged: ptr.To(true)}), ordinary), want: "container debugger is privileged"},
		{name: "ordinary shared pod", req: request(admissionv1.Create, ordinary, nil)},
		{name: "privileged on cards of its own", req: request(admissionv1.Create, with(exclusive, privileged), nil)},
		{name: "privileged without devices", req: request(admissionv1.Create, with(map[string]string{"cpu": "1"}, privileged), nil)},
		{name: "ordinary debug container", req: ephemeral(debug(ordinary, nil), ordinary)},
		{name: "debug container of an exclusive pod", req: ephemeral(debug(with(exclusive, privileged), &v1.SecurityContext{Privileged: ptr.To(true)}), with(exclusive, privileged))},
	}
	for _, policy := range []OverridePolicy{"", OverrideDeny, OverrideWarn} {
		h := New(Config{ParseOptions: DefaultParseOptions(), OverridePolicy: policy}, logger)
		for _, tc := range tests {
			t.Run(string(policy)+"/"+tc.name, func(t *testing.T) {
				rsp := h.Review(tc.req)
				switch {
				case tc.want == "":
					if !rsp.Allowed || len(rsp.Warnings) != 0 {
						t.Fatalf("allowed %v (%v), warnings %v; want admitted as it is", rsp.Allowed, rsp.Result, rsp.Warnings)
					}
				case policy == OverrideWarn:
					if !rsp.Allowed || len(rsp.Warnings) != 1 || !strings.Contains(rsp.Warnings[0], tc.want) || !strings.Contains(rsp.Warnings[0], "node agent will refuse") {
						t.Fatalf("allowed %v (%v), warnings %q; want one containing %q", rsp.Allowed, rsp.Result, rsp.Warnings, tc.want)
					}
				default:
					if rsp.Allowed || rsp.Result.Code != 403 || !strings.Contains(rsp.Result.Message, tc.want) {
						t.Fatalf("allowed %v, result %+v; want refused with %q", rsp.Allowed, rsp.Result, tc.want)
					}
				}
			})
		}
	}
}

func TestParseOverridePolicy(t *testing.T) {
	for _, s := range []string{"deny", "warn"} {
		if p, err := ParseOverridePolicy(s); err != nil || string(p) != s {
			t.Errorf("%s: %v, %v", s, p, err)
		}
	}
	if _, err := ParseOverridePolicy("Warn"); err == nil || !strings.Contains(err.Error(), `"Warn" is not one of deny, warn`) {
		t.Errorf("Warn: %v", err)
	}
}
