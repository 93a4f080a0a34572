package integration

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MosaicNodeResourcesFit drops the resources its arguments ignore once per
// pod; every pod must land (or be refused, for the same reason) as under
// the stock NodeResourcesFit with the same arguments.
func TestFitWithoutIgnoredResourcesAsStock(t *testing.T) {
	const args = `
    args:
      ignoredResources: [example.com/ignored]
      ignoredResourceGroups: [example.org]`
	const head = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: default-scheduler\n"
	configs := map[string]string{
		"stock": head + "  pluginConfig:\n  - name: NodeResourcesFit" + args + "\n",
		"mosaic": head + `  plugins:
    multiPoint:
      enabled: [{name: MosaicNodeResourcesFit}]
      disabled: [{name: NodeResourcesFit}]
  pluginConfig:
  - name: MosaicNodeResourcesFit` + args + "\n",
	}
	results := map[string]map[string]string{}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, []byte(cfg), a100("fit-a", 1), a100("fit-b", 1))
			out := map[string]string{}
			for _, p := range extendedPods(e.ns) {
				e.create(p)
				got := e.settle(p.Name)
				out[p.Name] = "bound"
				if got.Spec.NodeName == "" {
					out[p.Name] = "unschedulable: " + unschedulable(got)
				}
			}
			results[name] = out
		})
	}
	if len(results) != 2 {
		t.Fatal("a scheduler run failed")
	}
	for pod, want := range results["stock"] {
		if got := results["mosaic"][pod]; got != want {
			t.Errorf("pod %s: stock NodeResourcesFit -> %q, MosaicNodeResourcesFit -> %q", pod, want, got)
		}
	}
	for pod, want := range map[string]string{
		"ignored": "bound", "ignored-group": "bound", "ignored-in-init": "bound",
		"absent": "Insufficient example.com/absent", "too-big": "Insufficient cpu",
		"ignored-and-absent": "Insufficient example.com/absent",
	} {
		if got := results["mosaic"][pod]; !strings.Contains(got, want) {
			t.Errorf("pod %s: %q, want %q", pod, got, want)
		}
	}
}

// extendedPods ask for extended resources no node has, ignored or not.
func extendedPods(ns string) []*v1.Pod {
	mk := func(name string, limits v1.ResourceList, init bool) *v1.Pod {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "x", Resources: v1.ResourceRequirements{Limits: limits}}}}}
		if init {
			p.Spec.Containers[0].Resources = v1.ResourceRequirements{}
			p.Spec.InitContainers = []v1.Container{{Name: "i", Image: "x", Resources: v1.ResourceRequirements{Limits: limits}}}
		}
		return p
	}
	one := resource.MustParse("1")
	return []*v1.Pod{
		mk("ignored", v1.ResourceList{"example.com/ignored": one}, false),
		mk("ignored-group", v1.ResourceList{"example.org/anything": one}, false),
		mk("ignored-in-init", v1.ResourceList{"example.com/ignored": one}, true),
		mk("absent", v1.ResourceList{"example.com/absent": one}, false),
		mk("ignored-and-absent", v1.ResourceList{"example.com/ignored": one, "example.com/absent": one}, false),
		mk("too-big", v1.ResourceList{v1.ResourceCPU: resource.MustParse("100"), "example.com/ignored": one}, false),
	}
}
