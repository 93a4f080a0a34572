package integration

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mosaic-gpu/mosaic/config"
	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// Replacing default-scheduler with Mosaic's profile must leave ordinary
// pods as the stock scheduler places them. Each pod below has exactly one
// feasible node, each for a different stock plugin's reason, so the two
// schedulers' placements and refusals are compared without ties.
func TestOrdinaryPodsScheduleAsStock(t *testing.T) {
	stock := []byte("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: default-scheduler\n")
	results := map[string]map[string]string{}
	for name, cfg := range map[string][]byte{"stock": stock, "mosaic": config.DefaultScheduler} {
		t.Run(name, func(t *testing.T) {
			big, tainted, labelled := a100("big", 1), a100("tainted", 1), a100("labelled", 1)
			big.CPU = ptr(resource.MustParse("64"))
			tainted.Labels = map[string]string{"pool": "gpu"}
			labelled.Labels = map[string]string{"disk": "ssd"}
			// Tainted before the scheduler starts, which then never sees
			// the node without its taint.
			e := newStoppedEnv(t, cfg, big, tainted, labelled)
			taint(t, e, "tainted")
			e.startScheduler()
			out := map[string]string{}
			for _, p := range ordinaryPods(e.ns) {
				p.Spec.SchedulerName = v1.DefaultSchedulerName
				e.create(p)
				got := e.settle(p.Name)
				out[p.Name] = got.Spec.NodeName
				if got.Spec.NodeName == "" {
					out[p.Name] = "unschedulable: " + unschedulable(got)
				}
				if _, has := got.Annotations[device.AllocationAnnotation]; has {
					t.Errorf("ordinary pod %s carries a device allocation", p.Name)
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
			t.Errorf("pod %s: stock scheduler -> %q, Mosaic profile -> %q", pod, want, got)
		}
	}
	if results["stock"]["needs-40-cpu"] != "big" || results["stock"]["tolerates"] == "" {
		t.Errorf("unexpected stock placements: %v", results["stock"])
	}
}

func ptr[T any](v T) *T { return &v }

func taint(t *testing.T, e *env, node string) {
	n, err := e.cs.CoreV1().Nodes().Get(e.ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.Taints = []v1.Taint{{Key: "dedicated", Value: "gpu", Effect: v1.TaintEffectNoSchedule}}
	if _, err := e.cs.CoreV1().Nodes().Update(e.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func ordinaryPods(ns string) []*v1.Pod {
	mk := func(name string, f func(*v1.PodSpec)) *v1.Pod {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "x"}}}}
		f(&p.Spec)
		return p
	}
	return []*v1.Pod{
		mk("needs-40-cpu", func(s *v1.PodSpec) {
			s.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("40")}
		}),
		mk("selects-ssd", func(s *v1.PodSpec) { s.NodeSelector = map[string]string{"disk": "ssd"} }),
		mk("tolerates", func(s *v1.PodSpec) {
			s.NodeSelector = map[string]string{"pool": "gpu"}
			s.Tolerations = []v1.Toleration{{Key: "dedicated", Operator: v1.TolerationOpEqual, Value: "gpu", Effect: v1.TaintEffectNoSchedule}}
		}),
		mk("intolerant", func(s *v1.PodSpec) { s.NodeSelector = map[string]string{"pool": "gpu"} }),
		mk("too-big", func(s *v1.PodSpec) {
			s.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("100")}
		}),
		mk("named", func(s *v1.PodSpec) { s.Affinity = nodeNameAffinity("labelled") }),
	}
}

func nodeNameAffinity(node string) *v1.Affinity {
	return &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
		NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchFields: []v1.NodeSelectorRequirement{{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: []string{node}}}}},
	}}}
}
