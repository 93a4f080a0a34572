package fit

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
)

func TestDecodeArgs(t *testing.T) {
	args, err := DecodeArgs(nil)
	if err != nil {
		t.Fatal(err)
	}
	if args.ScoringStrategy == nil || args.ScoringStrategy.Type != config.LeastAllocated || len(args.ScoringStrategy.Resources) != 2 {
		t.Errorf("defaults = %+v, want the stock LeastAllocated over cpu and memory", args.ScoringStrategy)
	}
	args, err = DecodeArgs(&runtime.Unknown{Raw: []byte(`{"ignoredResources":["example.com/x"],"ignoredResourceGroups":["example.org"]}`), ContentType: runtime.ContentTypeJSON})
	if err != nil {
		t.Fatal(err)
	}
	if len(args.IgnoredResources) != 1 || len(args.IgnoredResourceGroups) != 1 {
		t.Errorf("args = %+v", args)
	}
	if _, err := DecodeArgs(&runtime.Unknown{Raw: []byte(`{"ignoredResources": 3}`), ContentType: runtime.ContentTypeJSON}); err == nil {
		t.Error("a number for ignoredResources was accepted")
	}
}

// Arguments the stock plugin refuses are refused, naming the field, before
// the plugin needs its handle.
func TestNewRefusesBadArgs(t *testing.T) {
	_, err := New(context.Background(), &runtime.Unknown{Raw: []byte(`{"scoringStrategy":{"type":"Bogus"}}`), ContentType: runtime.ContentTypeJSON}, nil)
	if err == nil || !strings.Contains(err.Error(), "scoringStrategy.type") || !strings.Contains(err.Error(), Name) {
		t.Errorf("err = %v, want one naming %s and scoringStrategy.type", err, Name)
	}
}

func TestWithoutIgnored(t *testing.T) {
	p := &Plugin{ignored: sets.New("nvidia.com/gpumem"), ignoredGroups: sets.New("example.org")}
	q := resource.MustParse("1")
	plain := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Resources: v1.ResourceRequirements{
		Limits: v1.ResourceList{"nvidia.com/gpu": q, v1.ResourceCPU: q}}}}}}
	if p.withoutIgnored(plain) != plain {
		t.Error("a pod with nothing ignored was copied")
	}
	pod := &v1.Pod{Spec: v1.PodSpec{
		InitContainers: []v1.Container{{Resources: v1.ResourceRequirements{Requests: v1.ResourceList{"example.org/a": q}}}},
		Containers: []v1.Container{{Resources: v1.ResourceRequirements{
			Requests: v1.ResourceList{"nvidia.com/gpu": q, "nvidia.com/gpumem": q, v1.ResourceCPU: q},
			Limits:   v1.ResourceList{"nvidia.com/gpu": q, "nvidia.com/gpumem": q}}}},
		Resources: &v1.ResourceRequirements{Requests: v1.ResourceList{"example.org/b": q, v1.ResourceMemory: q}},
	}}
	got := p.withoutIgnored(pod)
	c := got.Spec.Containers[0].Resources
	if _, ok := c.Requests["nvidia.com/gpumem"]; ok || len(c.Requests) != 2 || len(c.Limits) != 1 {
		t.Errorf("container resources %v", c)
	}
	if len(got.Spec.InitContainers[0].Resources.Requests) != 0 || len(got.Spec.Resources.Requests) != 1 {
		t.Errorf("init %v, pod-level %v", got.Spec.InitContainers[0].Resources.Requests, got.Spec.Resources.Requests)
	}
	if len(pod.Spec.Containers[0].Resources.Requests) != 3 || len(pod.Spec.InitContainers[0].Resources.Requests) != 1 ||
		len(pod.Spec.Resources.Requests) != 2 {
		t.Error("the scheduler's pod was changed")
	}
}
