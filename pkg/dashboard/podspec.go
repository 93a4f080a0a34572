package dashboard

import (
	"fmt"
	"net/url"
	"strconv"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// defaultImage is the helper's container image when none is given.
const defaultImage = "nvidia/cuda:12.4.1-base-ubuntu22.04"

// podSpecYAML writes the pod that asks for the share in q (vendor, model,
// count, memory MiB, cores %, numa) in the resource names and annotations
// of pkg/device. Errors name the parameter at fault.
func podSpecYAML(q url.Values, schedulerName string) ([]byte, error) {
	num := func(name string, def int64) (int64, error) {
		v := q.Get(name)
		if v == "" {
			return def, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not an integer", name, v)
		}
		return n, nil
	}
	count, err := num("count", 1)
	if err != nil {
		return nil, err
	}
	mem, err := num("memory", 0)
	if err != nil {
		return nil, err
	}
	cores, err := num("cores", 0)
	if err != nil {
		return nil, err
	}
	vendor := device.Vendor(q.Get("vendor"))
	if vendor == "" {
		vendor = device.VendorNVIDIA
	}
	share := device.ShareRequest{Vendor: vendor, Model: q.Get("model"), Count: int(count), MemoryMiB: mem, Cores: int(cores), NUMABind: q.Get("numa") == "true"}
	limits, ann, err := share.Resources()
	if err != nil {
		return nil, err
	}
	name, ns, image := q.Get("name"), q.Get("namespace"), q.Get("image")
	if name == "" {
		name = "gpu-job"
	}
	if ns == "" {
		ns = "default"
	}
	if image == "" {
		image = defaultImage
	}
	for _, f := range []struct{ field, v string }{{"name", name}, {"namespace", ns}} {
		if errs := validation.IsDNS1123Label(f.v); len(errs) > 0 {
			return nil, fmt.Errorf("%s: %q: %s", f.field, f.v, errs[0])
		}
	}
	if len(ann) == 0 {
		ann = nil
	}
	pod := v1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: ann},
		Spec: v1.PodSpec{
			SchedulerName: schedulerName,
			RestartPolicy: v1.RestartPolicyNever,
			Containers: []v1.Container{{
				Name: "main", Image: image, Command: []string{"sleep", "infinity"},
				Resources: v1.ResourceRequirements{Limits: limits},
			}},
		},
	}
	// Through a map, to leave out what a person would not write (an
	// empty status, a null creation time).
	raw, err := yaml.Marshal(pod)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	// Plain integers, as people write them (a Quantity prints 8000 as 8k).
	plain := map[string]any{}
	for k, q := range limits {
		plain[string(k)] = strconv.FormatInt(q.Value(), 10)
	}
	m["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["resources"] = map[string]any{"limits": plain}
	return yaml.Marshal(m)
}
