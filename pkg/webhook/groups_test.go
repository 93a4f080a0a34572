package webhook

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	schedulingv1beta1 "k8s.io/api/scheduling/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// Other gang schedulers' group annotations: Koordinator's map onto a
// PodGroup the webhook creates; the coscheduling label and Volcano's
// annotation only onto an existing one; bad minimums are refused naming
// the annotation and the limit.
func TestGroupAnnotations(t *testing.T) {
	gpu := map[string]string{"nvidia.com/gpu": "2"}
	koord := func(name, min string) map[string]string {
		a := map[string]string{KoordinatorGangName: name}
		if min != "" {
			a[KoordinatorGangMinAvailable] = min
		}
		return a
	}
	existing := &schedulingv1beta1.PodGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "have"},
		Spec: schedulingv1beta1.PodGroupSpec{SchedulingPolicy: schedulingv1beta1.PodGroupSchedulingPolicy{Gang: &schedulingv1beta1.GangSchedulingPolicy{MinCount: 2}}}}
	group := `{"op":"add","path":"/spec/schedulingGroup","value":{"podGroupName":"%s"}}`
	routed := `{"op":"add","path":"/spec/schedulerName","value":"mosaic-scheduler"}`
	tests := []struct {
		name      string
		ann       map[string]string
		labels    map[string]string
		scheduler string
		dryRun    bool
		message   string
		patch     string
		warnings  int
		created   int32 // the minCount of the PodGroup "train" created, 0 for none
	}{
		{name: "koordinator gang mapped and created", ann: koord("train", "4"), patch: "[" + routed + "," + strings.Replace(group, "%s", "train", 1) + "]", created: 4},
		{name: "koordinator gang on an existing group", ann: koord("have", "2"), scheduler: "mosaic-scheduler", patch: "[" + strings.Replace(group, "%s", "have", 1) + "]"},
		{name: "koordinator gang, existing group differs", ann: koord("have", "3"), scheduler: "mosaic-scheduler", patch: "[" + strings.Replace(group, "%s", "have", 1) + "]", warnings: 1},
		{name: "dry run creates nothing", ann: koord("train", "4"), scheduler: "mosaic-scheduler", dryRun: true, patch: "[" + strings.Replace(group, "%s", "train", 1) + "]"},
		{name: "min-available not an integer", ann: koord("train", "four"), message: `annotation gang.scheduling.koordinator.sh/min-available="four" must be an integer in 1..2147483647`},
		{name: "min-available negative", ann: koord("train", "-1"), message: `annotation gang.scheduling.koordinator.sh/min-available="-1" must be an integer in 1..2147483647`},
		{name: "min-available zero", ann: koord("train", "0"), message: "must be an integer in 1..2147483647"},
		{name: "min-available too large", ann: koord("train", "4294967296"), message: "must be an integer in 1..2147483647"},
		{name: "min-available missing", ann: koord("train", ""), message: "annotation gang.scheduling.koordinator.sh/min-available is required with gang.scheduling.koordinator.sh/name"},
		{name: "bad group name", ann: koord("Train_0", "2"), message: `annotation gang.scheduling.koordinator.sh/name="Train_0" is not a valid PodGroup name`},
		{name: "coscheduling label onto an existing group", labels: map[string]string{CoschedulingPodGroupLabel: "have"}, scheduler: "mosaic-scheduler", patch: "[" + strings.Replace(group, "%s", "have", 1) + "]"},
		{name: "coscheduling label without an upstream group", labels: map[string]string{CoschedulingPodGroupLabel: "nope"}, scheduler: "mosaic-scheduler", warnings: 1},
		{name: "volcano annotation onto an existing group", ann: map[string]string{VolcanoGroupName: "have"}, scheduler: "mosaic-scheduler", patch: "[" + strings.Replace(group, "%s", "have", 1) + "]"},
		{name: "other schedulers' pods left alone", ann: koord("train", "four"), scheduler: "volcano"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logger, _ := ktesting.NewTestContext(t)
			cs := fake.NewClientset(existing)
			h := New(Config{SchedulerName: "mosaic-scheduler", ParseOptions: DefaultParseOptions(), PodGroups: cs.SchedulingV1beta1().PodGroups}, logger)
			pod := podWith(gpu, tc.ann, tc.scheduler)
			pod.Namespace, pod.Labels = "ns", tc.labels
			req := request(admissionv1.Create, pod, nil)
			req.DryRun = ptr.To(tc.dryRun)
			rsp := h.Review(req)
			if tc.message != "" {
				if rsp.Allowed || !strings.Contains(rsp.Result.Message, tc.message) {
					t.Fatalf("got allowed=%v %+v, want refused with %q", rsp.Allowed, rsp.Result, tc.message)
				}
				return
			}
			if !rsp.Allowed {
				t.Fatalf("refused: %s", rsp.Result.Message)
			}
			if string(rsp.Patch) != tc.patch {
				t.Errorf("patch %s, want %s", rsp.Patch, tc.patch)
			}
			if len(rsp.Warnings) != tc.warnings {
				t.Errorf("warnings %q, want %d", rsp.Warnings, tc.warnings)
			}
			pg, err := cs.SchedulingV1beta1().PodGroups("ns").Get(context.Background(), "train", metav1.GetOptions{})
			switch {
			case tc.created == 0 && err == nil:
				t.Errorf("PodGroup train created: %+v", pg.Spec)
			case tc.created != 0 && err != nil:
				t.Errorf("PodGroup train not created: %v", err)
			case tc.created != 0 && (pg.Spec.SchedulingPolicy.Gang == nil || pg.Spec.SchedulingPolicy.Gang.MinCount != tc.created):
				t.Errorf("PodGroup train has %+v, want minCount %d", pg.Spec.SchedulingPolicy, tc.created)
			}
		})
	}
}

// Without a PodGroup client the annotations are left alone.
func TestGroupAnnotationsOff(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	h := New(Config{SchedulerName: "mosaic-scheduler", ParseOptions: device.ParseOptions{AscendModels: device.DefaultAscendModels()}}, logger)
	pod := podWith(map[string]string{"nvidia.com/gpu": "1"}, map[string]string{KoordinatorGangName: "train", KoordinatorGangMinAvailable: "x"}, "mosaic-scheduler")
	if rsp := h.Review(request(admissionv1.Create, pod, nil)); !rsp.Allowed || len(rsp.Patch) != 0 {
		t.Errorf("got allowed=%v patch=%s, want allowed untouched", rsp.Allowed, rsp.Patch)
	}
}
