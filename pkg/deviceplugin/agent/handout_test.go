package agent

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
)

// The kubelet may admit the next pod before the agent's informer shows the
// label the agent itself put on the previous one. The informer's view is
// set by hand here, so that lag is forced, not hoped for: the previous pod
// must never be handed out again, and the next one gets its own cards.
func TestHandoutIgnoresItsOwnLabelNotYetSeen(t *testing.T) {
	pod := func(name, uuid string) *v1.Pod {
		raw, err := device.EncodeAllocation(&device.Allocation{Node: "n1", Containers: []device.ContainerAllocation{
			{Name: "c0", Devices: []device.Share{{UUID: uuid, Vendor: device.VendorNVIDIA, MemoryMiB: 1000}}}}})
		if err != nil {
			t.Fatal(err)
		}
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name),
			Annotations: map[string]string{device.AllocationAnnotation: raw}}, Spec: v1.PodSpec{NodeName: "n1", Containers: []v1.Container{{Name: "c0"}}}}
	}
	first, next := pod("first", "GPU-first"), pod("next", "GPU-next")
	client := fake.NewClientset(first.DeepCopy(), next.DeepCopy())
	var mu sync.Mutex
	var view []*v1.Pod // what the informer shows
	show := func(pods ...*v1.Pod) {
		mu.Lock()
		defer mu.Unlock()
		view = pods
	}
	logger, ctx := ktesting.NewTestContext(t)
	h := &handout{node: "n1", client: client, cfg: &nri.Config{NodeName: "n1", StateDir: t.TempDir()}, logger: logger,
		wait: 100 * time.Millisecond, done: map[types.UID]int{}, labelled: map[types.UID]bool{},
		pods: func() []*v1.Pod {
			mu.Lock()
			defer mu.Unlock()
			return view
		}}
	visible := func(rsp interface{ GetEnvs() map[string]string }) string {
		return rsp.GetEnvs()["NVIDIA_VISIBLE_DEVICES"]
	}

	show(first)
	rsp, err := h.Allocate(ctx, "nvidia.com/gpu", []string{"any::0"})
	if err != nil || visible(rsp) != "GPU-first" {
		t.Fatalf("first pod: %v, %v", rsp, err)
	}
	if p, err := client.CoreV1().Pods("ns").Get(ctx, "first", metav1.GetOptions{}); err != nil || p.Labels[device.HandedOutLabel] != "true" {
		t.Fatalf("first pod not labelled handed out: %v", err)
	}

	// The informer still shows the first pod unlabelled and not yet the
	// next one bound: nothing is waiting.
	if _, err := h.Allocate(ctx, "nvidia.com/gpu", []string{"any::0"}); err == nil || !strings.Contains(err.Error(), "no device pod") {
		t.Fatalf("handed out with only the labelled pod in view: %v", err)
	}
	// The next pod is in view, the first one's label still is not.
	show(first, next)
	rsp, err = h.Allocate(ctx, "nvidia.com/gpu", []string{"any::0"})
	if err != nil || visible(rsp) != "GPU-next" {
		t.Fatalf("next pod: %v, %v", rsp, err)
	}

	// Once the informer shows the labels, the agent forgets the pods.
	labelled := func(p *v1.Pod) *v1.Pod {
		p = p.DeepCopy()
		p.Labels = map[string]string{device.HandedOutLabel: "true"}
		return p
	}
	show(labelled(first), labelled(next))
	if _, err := h.Allocate(context.Background(), "nvidia.com/gpu", []string{"any::0"}); err == nil {
		t.Fatal("handed out with every pod labelled")
	}
	if len(h.labelled) != 0 {
		t.Errorf("labelled = %v after the informer showed both labels", h.labelled)
	}
}

// Without NRI the kubelet lets a pod spec's variables win over those
// Allocate returns, and Allocate does not see the container: it refuses a
// device container of a pod sharing a card by the pod's spec.
func TestHandoutRefusesOverrides(t *testing.T) {
	raw, err := device.EncodeAllocation(&device.Allocation{Node: "n1", Containers: []device.ContainerAllocation{
		{Name: "c0", Devices: []device.Share{{UUID: "GPU-a", Vendor: device.VendorNVIDIA, MemoryMiB: 1000}}}}})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]v1.Container{
		"is privileged":                     {Name: "c0", SecurityContext: &v1.SecurityContext{Privileged: ptr.To(true)}},
		`sets NVIDIA_VISIBLE_DEVICES="all"`: {Name: "c0", Env: []v1.EnvVar{{Name: "NVIDIA_VISIBLE_DEVICES", Value: "all"}}},
	} {
		t.Run(name, func(t *testing.T) {
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-p", Annotations: map[string]string{device.AllocationAnnotation: raw}},
				Spec: v1.PodSpec{NodeName: "n1", Containers: []v1.Container{c}}}
			logger, ctx := ktesting.NewTestContext(t)
			h := &handout{node: "n1", client: fake.NewClientset(pod.DeepCopy()), cfg: &nri.Config{NodeName: "n1", StateDir: t.TempDir()}, logger: logger,
				wait: time.Second, done: map[types.UID]int{}, labelled: map[types.UID]bool{}, pods: func() []*v1.Pod { return []*v1.Pod{pod} }}
			_, err := h.Allocate(ctx, "nvidia.com/gpu", []string{"any::0"})
			if err == nil || !strings.Contains(err.Error(), "container c0 "+name) {
				t.Fatalf("error = %v, want it to say the container %s", err, name)
			}
		})
	}
}
