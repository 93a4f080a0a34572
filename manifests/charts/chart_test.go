package charts

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	schedulerconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedulerscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/validation"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/config"
	"github.com/mosaic-gpu/mosaic/pkg/webhook"
)

// The plain YAML of manifests/ is the chart rendered with PlainValues:
// every file, and no file more. `make manifests` writes them.
func TestPlainManifestsAreRendered(t *testing.T) {
	want, err := Plain()
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, pattern := range []string{"../*.yaml", "../cert-manager/*.yaml"} {
		m, _ := filepath.Glob(pattern)
		onDisk = append(onDisk, m...)
	}
	for _, p := range onDisk {
		name := strings.TrimPrefix(filepath.ToSlash(p), "../")
		if _, ok := want[name]; !ok {
			t.Errorf("manifests/%s is rendered from no template; remove it or add it to PlainFiles", name)
		}
	}
	dash, err := os.ReadFile(filepath.Join("..", Dashboard))
	if err != nil {
		t.Fatal(err)
	}
	if chartDash, err := files.ReadFile(ChartDashboard); err != nil || string(chartDash) != string(dash) {
		t.Errorf("manifests/charts/%s is not a copy of manifests/%s (run make manifests): %v", ChartDashboard, Dashboard, err)
	}
	for name, text := range want {
		got, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Errorf("manifests/%s: %v (run make manifests)", name, err)
			continue
		}
		if d := cmp.Diff(text, string(got)); d != "" {
			t.Errorf("manifests/%s differs from the chart (run make manifests), -chart +file:\n%s", name, d)
		}
	}
}

// Object is one rendered document.
type object struct {
	template string
	obj      *unstructured.Unstructured
}

// objects splits rendered templates into their documents, in template
// name order.
func objects(t *testing.T, rendered map[string]string) []object {
	t.Helper()
	var names []string
	for n := range rendered {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []object
	for _, n := range names {
		dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(rendered[n]), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s: %v\n%s", n, err, rendered[n])
			}
			if len(u.Object) > 0 {
				out = append(out, object{n, u})
			}
		}
	}
	return out
}

func render(t *testing.T, variant string, apiVersions ...string) map[string]string {
	t.Helper()
	vals := map[string]any{}
	if variant != "" {
		var err error
		if vals, err = ValuesFile(variant); err != nil {
			t.Fatal(err)
		}
	}
	out, err := Render(PlainNamespace, vals, apiVersions...)
	if err != nil {
		t.Fatalf("%s: %v", variant, err)
	}
	return out
}

// schedulerConfig is the rendered mosaic-scheduler-config's config.yaml.
func schedulerConfig(t *testing.T, objs []object) []byte {
	t.Helper()
	for _, o := range objs {
		if o.obj.GetKind() == "ConfigMap" && o.obj.GetName() == "mosaic-scheduler-config" {
			s, _, _ := unstructured.NestedString(o.obj.Object, "data", "config.yaml")
			return []byte(s)
		}
	}
	t.Fatal("no mosaic-scheduler-config")
	return nil
}

// Every variant renders documents that decode into the API's typed objects
// (cert-manager's and the Prometheus Operator's aside), and a scheduler
// config that kube-scheduler's decoder and validation and the Mosaic
// plugin's args accept.
func TestVariantsRender(t *testing.T) {
	variants, err := Variants()
	if err != nil || len(variants) < 4 {
		t.Fatalf("variants %v, %v", variants, err)
	}
	for _, v := range variants {
		t.Run(filepath.Base(v), func(t *testing.T) {
			objs := objects(t, render(t, v))
			for _, o := range objs {
				switch o.obj.GroupVersionKind().Group {
				case "cert-manager.io", "monitoring.coreos.com":
					continue
				}
				js, _ := o.obj.MarshalJSON()
				if _, _, err := scheme.Codecs.UniversalDeserializer().Decode(js, nil, nil); err != nil {
					t.Errorf("%s %s/%s: %v", o.template, o.obj.GetKind(), o.obj.GetName(), err)
				}
			}
			data := schedulerConfig(t, objs)
			obj, _, err := schedulerscheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
			if err != nil {
				t.Fatalf("scheduler config: %v\n%s", err, data)
			}
			sc := obj.(*schedulerconfig.KubeSchedulerConfiguration)
			if err := validation.ValidateKubeSchedulerConfiguration(sc); err != nil {
				t.Errorf("scheduler config: %v", err)
			}
			wh := webhook.Config{SchedulerName: sc.Profiles[0].SchedulerName}
			if err := wh.ReadSchedulerConfig(data); err != nil {
				t.Errorf("Mosaic args: %v", err)
			}
		})
	}
}

// With the default values the scheduler's ConfigMap holds exactly the
// shipped config/ file of its mode.
func TestSchedulerConfigIsTheShippedOne(t *testing.T) {
	for variant, want := range map[string][]byte{"": config.SecondScheduler, "ci/replace-default-values.yaml": config.DefaultScheduler} {
		vals := map[string]any{}
		if variant != "" {
			vals = map[string]any{"scheduler": map[string]any{"replaceDefault": true}}
		}
		out, err := Render(PlainNamespace, vals)
		if err != nil {
			t.Fatal(err)
		}
		got := schedulerConfig(t, objects(t, out))
		var g, w any
		if err := sigsyaml.Unmarshal(got, &g); err != nil {
			t.Fatal(err)
		}
		_ = sigsyaml.Unmarshal(want, &w)
		if d := cmp.Diff(w, g); d != "" {
			t.Errorf("replaceDefault=%v: the ConfigMap's config differs from config/, -config +chart:\n%s", variant != "", d)
		}
	}
}

// The values HAMi users set reach the components under HAMi's names.
func TestHAMiValues(t *testing.T) {
	out, err := Render("gpu", map[string]any{
		"devicePlugin": map[string]any{"deviceSplitCount": 4, "deviceMemoryScaling": 1.5, "deviceCoreScaling": 2},
		"scheduler": map[string]any{"defaultMem": 2048, "defaultCores": 20,
			"defaultSchedulerPolicy": map[string]any{"nodeSchedulerPolicy": "spread", "gpuSchedulerPolicy": "binpack"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	objs := objects(t, out)
	var sc map[string]any
	if err := sigsyaml.Unmarshal(schedulerConfig(t, objs), &sc); err != nil {
		t.Fatal(err)
	}
	args := sc["profiles"].([]any)[0].(map[string]any)["pluginConfig"].([]any)[0].(map[string]any)["args"]
	want := map[string]any{"nodePolicy": "spread", "gpuPolicy": "binpack", "numaPolicy": "best-effort", "deviceSplitCount": 4.0,
		"deviceMemoryScaling": 1.5, "deviceCoreScaling": 2.0, "defaultMemoryMiB": 2048.0, "defaultCores": 20.0}
	if d := cmp.Diff(want, args); d != "" {
		t.Errorf("Mosaic args, -want +got:\n%s", d)
	}
	for _, o := range objs {
		if o.obj.GetKind() == "ConfigMap" && o.obj.GetName() == "mosaic-sharing" {
			s, _, _ := unstructured.NestedString(o.obj.Object, "data", "config.yaml")
			if !strings.Contains(s, "default: {splitCount: 4, memoryScaling: 1.5, coreScaling: 2}") {
				t.Errorf("mosaic-sharing config.yaml = %s", s)
			}
		}
		if o.obj.GetNamespace() != "" && o.obj.GetNamespace() != "gpu" && o.obj.GetName() != "mosaic-scheduler-extension-apiserver-authentication-reader" {
			t.Errorf("%s %s in namespace %s, want the release's", o.obj.GetKind(), o.obj.GetName(), o.obj.GetNamespace())
		}
	}
	if !bytes.Contains([]byte(out["templates/admission-policy.yaml"]), []byte("'system:serviceaccount:gpu:mosaic-scheduler'")) {
		t.Error("the admission policy does not name the release namespace's scheduler")
	}
}

// Values Mosaic cannot honour stop the render with the key's name.
func TestBadValuesStopTheRender(t *testing.T) {
	for _, c := range []struct {
		vals map[string]any
		want string
	}{
		{map[string]any{"resourceName": "example.com/vgpu"}, `resourceName: "example.com/vgpu"`},
		{map[string]any{"resourceCores": "nvidia.com/cores"}, `resourceCores: "nvidia.com/cores"`},
		{map[string]any{"devicePlugin": map[string]any{"deviceSplitCount": 0}}, "devicePlugin.deviceSplitCount: 0, want an integer in 1..1024"},
		{map[string]any{"devicePlugin": map[string]any{"deviceSplitCount": 2.5}}, "devicePlugin.deviceSplitCount: 2.5"},
		{map[string]any{"devicePlugin": map[string]any{"deviceMemoryScaling": 200}}, "devicePlugin.deviceMemoryScaling: 200, want 0.01..100"},
		{map[string]any{"scheduler": map[string]any{"defaultSchedulerPolicy": map[string]any{"gpuSchedulerPolicy": "pack"}}}, `scheduler.defaultSchedulerPolicy.gpuSchedulerPolicy: "pack", want binpack or spread`},
		{map[string]any{"scheduler": map[string]any{"numaPolicy": "strict"}}, `scheduler.numaPolicy: "strict"`},
		{map[string]any{"webhook": map[string]any{"overridePolicy": "allow"}}, `webhook.overridePolicy: "allow"`},
		{map[string]any{"webhook": map[string]any{"certificates": map[string]any{"certManager": "maybe"}}}, `webhook.certificates.certManager: "maybe"`},
	} {
		_, err := Render(PlainNamespace, c.vals)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error saying %q", c.vals, err, c.want)
		}
	}
}

// certManager: auto takes cert-manager's Certificate where its API is
// served and generates the certificate otherwise; a generated one is the
// CA the webhook configuration trusts.
func TestWebhookCertificates(t *testing.T) {
	kinds := func(out map[string]string) map[string]bool {
		k := map[string]bool{}
		for _, o := range objects(t, out) {
			k[o.obj.GetKind()+"/"+o.obj.GetName()] = true
		}
		return k
	}
	withCM := kinds(render(t, "", "cert-manager.io/v1"))
	if !withCM["Certificate/mosaic-webhook"] || withCM["Secret/mosaic-webhook-tls"] {
		t.Errorf("with cert-manager: %v", withCM)
	}
	out := render(t, "")
	without := kinds(out)
	if without["Certificate/mosaic-webhook"] || !without["Secret/mosaic-webhook-tls"] || !without["Secret/mosaic-allocation-key"] {
		t.Errorf("without cert-manager: %v", without)
	}
	var ca, bundle string
	for _, o := range objects(t, out) {
		switch o.obj.GetKind() + "/" + o.obj.GetName() {
		case "Secret/mosaic-webhook-tls":
			ca, _, _ = unstructured.NestedString(o.obj.Object, "data", "ca.crt")
		case "MutatingWebhookConfiguration/mosaic-webhook":
			if o.obj.GetAnnotations()["helm.sh/hook"] != "" {
				continue
			}
			hooks, _, _ := unstructured.NestedSlice(o.obj.Object, "webhooks")
			bundle, _, _ = unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "caBundle")
		}
	}
	if ca == "" || ca != bundle {
		t.Errorf("the webhook trusts CA %.20q, the Secret holds %.20q", bundle, ca)
	}
}

// The dashboard's ConfigMap holds the dashboard as JSON, its data source
// the one named, none left to ask for.
func TestGrafanaDashboardConfigMap(t *testing.T) {
	out, err := Render(PlainNamespace, map[string]any{"grafanaDashboard": map[string]any{"enabled": true, "datasourceUid": "prom-1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objects(t, out) {
		if o.obj.GetKind() != "ConfigMap" || o.obj.GetName() != "mosaic-grafana-dashboard" {
			continue
		}
		if o.obj.GetLabels()["grafana_dashboard"] != "1" {
			t.Errorf("labels %v", o.obj.GetLabels())
		}
		s, _, _ := unstructured.NestedString(o.obj.Object, "data", "mosaic.json")
		var d map[string]any
		if err := json.Unmarshal([]byte(s), &d); err != nil {
			t.Fatalf("mosaic.json: %v", err)
		}
		if strings.Contains(s, "${DS_PROMETHEUS}") || !strings.Contains(s, `"uid": "prom-1"`) {
			t.Error("the dashboard's data source is not the one named")
		}
		return
	}
	t.Error("no mosaic-grafana-dashboard ConfigMap")
}
