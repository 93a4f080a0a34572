package manifests

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/config"
)

// Every manifest decodes into typed Kubernetes objects, and the scheduler
// ConfigMap carries exactly the shipped second-scheduler config.
func TestManifestsDecode(t *testing.T) {
	files, _ := filepath.Glob("*.yaml")
	if len(files) < 2 {
		t.Fatalf("manifests = %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for i := 0; ; i++ {
			var u unstructured.Unstructured
			if err := dec.Decode(&u.Object); err != nil {
				if err.Error() == "EOF" {
					break
				}
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			js, _ := u.MarshalJSON()
			if _, _, err := scheme.Codecs.UniversalDeserializer().Decode(js, nil, nil); err != nil {
				t.Errorf("%s document %d (%s): %v", f, i, u.GetKind(), err)
			}
			if u.GetKind() == "ConfigMap" && u.GetName() == "mosaic-scheduler-config" {
				data, _, _ := unstructured.NestedString(u.Object, "data", "config.yaml")
				var got, want any
				if err := sigsyaml.Unmarshal([]byte(data), &got); err != nil {
					t.Fatal(err)
				}
				_ = sigsyaml.Unmarshal(config.SecondScheduler, &want)
				gj, _ := sigsyaml.Marshal(got)
				wj, _ := sigsyaml.Marshal(want)
				if !strings.EqualFold(string(gj), string(wj)) {
					t.Errorf("mosaic-scheduler-config differs from config/mosaic-scheduler.yaml:\n%s\nvs\n%s", gj, wj)
				}
			}
		}
	}
}

// The webhook reads the file the scheduler reads: its --config is the
// config.yaml of the scheduler's ConfigMap, mounted, and its override
// policy is spelled out.
func TestWebhookReadsTheSchedulersConfig(t *testing.T) {
	deployment := func(file, name string) *appsv1.Deployment {
		t.Helper()
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var d appsv1.Deployment
			if err := dec.Decode(&d); err != nil {
				t.Fatalf("%s: no Deployment %s (%v)", file, name, err)
			}
			if d.Kind == "Deployment" && d.Name == name {
				return &d
			}
		}
	}
	// configFile is the --config of the deployment's first container and
	// the ConfigMap mounted where it points.
	configFile := func(d *appsv1.Deployment) (path, configMap string) {
		t.Helper()
		c := d.Spec.Template.Spec.Containers[0]
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, "--config="); ok {
				path = v
			}
		}
		for _, m := range c.VolumeMounts {
			if m.MountPath != filepath.Dir(path) {
				continue
			}
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Name == m.Name && v.ConfigMap != nil {
					configMap = v.ConfigMap.Name
				}
			}
		}
		return path, configMap
	}
	sPath, sCM := configFile(deployment("scheduler.yaml", "mosaic-scheduler"))
	wPath, wCM := configFile(deployment("webhook.yaml", "mosaic-webhook"))
	if wCM != "mosaic-scheduler-config" || filepath.Base(wPath) != "config.yaml" || wCM != sCM || filepath.Base(wPath) != filepath.Base(sPath) {
		t.Errorf("webhook --config=%s from ConfigMap %q; the scheduler reads %s from %q", wPath, wCM, sPath, sCM)
	}
	if args := strings.Join(deployment("webhook.yaml", "mosaic-webhook").Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(args, "--override-policy=deny") {
		t.Errorf("webhook args %s do not spell out --override-policy=deny", args)
	}
}

// Objects reads the files as the tests apply them.
func TestObjects(t *testing.T) {
	objs, err := Objects("admission-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetObjectKind().GroupVersionKind().Kind)
	}
	want := strings.Repeat("ValidatingAdmissionPolicy,ValidatingAdmissionPolicyBinding,", 3)
	want = want[:len(want)-1]
	if got := strings.Join(kinds, ","); got != want {
		t.Errorf("admission-policy.yaml kinds = %s, want %s", got, want)
	}
	if _, err := Objects("absent.yaml"); err == nil {
		t.Error("a missing file decoded")
	}
}
