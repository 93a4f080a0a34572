package webhook

import (
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/klog/v2/ktesting"

	"github.com/mosaic-gpu/mosaic/config"
)

// The Ascend model the webhook reads the test configs with.
const customModel = `
      ascendModels:
      - name: Ascend910C
        memoryMiB: 131072
        aiCore: 24
        templates: [{name: vir06_1c_32g, memoryMiB: 32768, aiCore: 6}]`

// withMosaicArgs returns the shipped second-scheduler config with more
// Mosaic args.
func withMosaicArgs(t *testing.T, args string) []byte {
	t.Helper()
	const last = "deviceCoreScaling: 1.0"
	s := string(config.SecondScheduler)
	if !strings.Contains(s, last) {
		t.Fatalf("config/mosaic-scheduler.yaml has no %q", last)
	}
	return []byte(strings.Replace(s, last, last+args, 1))
}

func TestReadSchedulerConfig(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	npu := func(model string) *admissionv1.AdmissionRequest {
		return request(admissionv1.Create, podWith(map[string]string{"huawei.com/" + model: "1", "huawei.com/" + model + "-memory": "20000"}, nil, ""), nil)
	}
	// The shipped configs: the built-in models.
	for _, tc := range []struct {
		file, scheduler string
		data            []byte
	}{{"mosaic-scheduler.yaml", "mosaic-scheduler", config.SecondScheduler}, {"default-scheduler.yaml", "default-scheduler", config.DefaultScheduler}} {
		t.Run(tc.file, func(t *testing.T) {
			cfg := Config{SchedulerName: tc.scheduler}
			if err := cfg.ReadSchedulerConfig(tc.data); err != nil {
				t.Fatal(err)
			}
			if len(cfg.Profiles) != 1 {
				t.Fatalf("profiles = %v", cfg.Profiles)
			}
			h := New(cfg, logger)
			if rsp := h.Review(npu("Ascend910B")); !rsp.Allowed {
				t.Errorf("a built-in model refused: %v", rsp.Result)
			}
		})
	}

	cfg := Config{SchedulerName: "mosaic-scheduler"}
	if err := cfg.ReadSchedulerConfig(withMosaicArgs(t, customModel)); err != nil {
		t.Fatal(err)
	}
	h := New(cfg, logger)
	if rsp := h.Review(npu("Ascend910C")); !rsp.Allowed {
		t.Errorf("the configured model refused: %v", rsp.Result)
	}
	// The args replace the built-in models, as for the scheduler.
	if rsp := h.Review(npu("Ascend910B")); rsp.Allowed || !strings.Contains(rsp.Result.Message, "huawei.com/Ascend910B names an unknown Ascend model (known: Ascend910C)") {
		t.Errorf("a model the scheduler does not know: %+v", rsp.Result)
	}

	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"unknown arg":          {withMosaicArgs(t, "\n      ascendModel: []"), `Mosaic args: json: unknown field "ascendModel"`},
		"invalid arg":          {withMosaicArgs(t, "\n      defaultCores: 120"), "pluginConfig.Mosaic.args.defaultCores: Invalid value: 120"},
		"not a scheduler file": {[]byte("apiVersion: v1\nkind: ConfigMap\n"), "scheduler config"},
		"no such profile":      {[]byte(strings.Replace(string(config.SecondScheduler), "- schedulerName: mosaic-scheduler", "- schedulerName: gpu", 1)), "no profile mosaic-scheduler, which device pods are routed to (it has gpu)"},
	} {
		t.Run(name, func(t *testing.T) {
			c := Config{SchedulerName: "mosaic-scheduler"}
			if err := c.ReadSchedulerConfig(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// Each profile's pods are read with that profile's args; a pod the webhook
// routes, with those of the profile it routes to.
func TestReadSchedulerConfigProfiles(t *testing.T) {
	const two = `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: npu
  pluginConfig:
  - name: Mosaic
    args: {ascendModels: [{name: X1, memoryMiB: 1000, aiCore: 4}]}
- schedulerName: gpu
`
	cfg := Config{SchedulerName: "npu"}
	if err := cfg.ReadSchedulerConfig([]byte(two)); err != nil {
		t.Fatal(err)
	}
	logger, _ := ktesting.NewTestContext(t)
	h := New(cfg, logger)
	for scheduler, allowed := range map[string]bool{"npu": true, "": true, "default-scheduler": true, "gpu": false, "other": true} {
		rsp := h.Review(request(admissionv1.Create, podWith(map[string]string{"huawei.com/X1": "1"}, nil, scheduler), nil))
		if rsp.Allowed != allowed {
			t.Errorf("schedulerName %q: allowed %v (%v), want %v", scheduler, rsp.Allowed, rsp.Result, allowed)
		}
	}
}
