package mosaic

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// The waiting pods a scrape counts: device pods (and invalid requests) of
// the given profiles, not yet bound, not finished; a pod leaves on binding,
// finishing or deletion, and a new version of it is parsed again.
func TestPendingPodsCount(t *testing.T) {
	profiles := map[string]bool{"default-scheduler": true}
	opts := device.ParseOptions{}
	var p pendingPods
	withScheduler := func(pod *v1.Pod, name string) *v1.Pod {
		pod.Spec.SchedulerName = name
		return pod
	}
	plain := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "plain", UID: "uid-plain"}, Spec: v1.PodSpec{SchedulerName: "default-scheduler",
		Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")}}}}}}
	invalid := withScheduler(gpuPod("invalid", "-1"), "default-scheduler")
	a := withScheduler(gpuPod("a", "1000"), "default-scheduler")
	other := withScheduler(gpuPod("other", "1000"), "another-scheduler")
	for _, pod := range []*v1.Pod{plain, invalid, a, other} {
		p.update(pod)
	}
	if got := p.count(profiles, opts); got != 2 {
		t.Fatalf("pending device pods: %d, want 2 (a and the invalid request; not the plain pod or another scheduler's)", got)
	}
	// A second scrape answers the same from the parsed versions.
	if got := p.count(profiles, opts); got != 2 {
		t.Fatalf("pending device pods, second scrape: %d, want 2", got)
	}
	bound := a.DeepCopy()
	bound.Spec.NodeName = "n"
	p.update(bound)
	if got := p.count(profiles, opts); got != 1 {
		t.Fatalf("after a is bound: %d, want 1", got)
	}
	finished := invalid.DeepCopy()
	finished.Status.Phase = v1.PodFailed
	p.update(finished)
	if got := p.count(profiles, opts); got != 0 {
		t.Fatalf("after the invalid request failed: %d, want 0", got)
	}
	// A new version of a waiting pod replaces the parsed one.
	asks := plain.DeepCopy()
	asks.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"] = resource.MustParse("1")
	p.update(asks)
	if got := p.count(profiles, opts); got != 1 {
		t.Fatalf("after the plain pod's new version asks for a card: %d, want 1", got)
	}
	p.remove(k8stypes.UID("uid-plain"))
	if got := p.count(profiles, opts); got != 0 {
		t.Fatalf("after its deletion: %d, want 0", got)
	}
	if got := p.count(map[string]bool{"another-scheduler": true}, opts); got != 1 {
		t.Fatalf("another scheduler's profiles: %d, want 1", got)
	}
}
