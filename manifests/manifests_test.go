package manifests

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
