package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
)

// handout gives containers their cards in the kubelet's Allocate, for
// runtimes without NRI. Allocate names device IDs, not the pod; the
// scheduler therefore keeps at most one device pod per such node waiting
// (pods without HandedOutLabel), so the waiting pod is the one being
// admitted. Its containers are handed out in allocation order, and the pod
// is labelled once all are done, which lets the scheduler place the next.
type handout struct {
	node   string
	client kubernetes.Interface
	pods   func() []*v1.Pod
	cfg    *nri.Config
	logger klog.Logger
	// events records on a pod why it got no card; set by Agent.Run.
	events events.EventRecorder
	// wait bounds how long Allocate waits for the pod informer to show
	// the pod the kubelet is admitting.
	wait time.Duration

	mu   sync.Mutex
	done map[types.UID]int // containers handed out per pod
	// labelled holds the pods this agent has marked handed out and whose
	// label the informer may not show yet: the kubelet can admit the next
	// pod before the informer delivers our own label update, and the pod
	// it still shows waiting is then not the one being admitted.
	labelled map[types.UID]bool
}

// Allocate implements kubelet.Server.Handout.
func (h *handout) Allocate(ctx context.Context, resource string, ids []string) (*pluginapi.ContainerAllocateResponse, error) {
	pod, err := h.awaitingPod(ctx)
	if err != nil {
		return nil, err
	}
	alloc, err := device.DecodeAllocation(pod.Annotations[device.AllocationAnnotation])
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	h.mu.Lock()
	i := h.done[pod.UID]
	h.mu.Unlock()
	if i >= len(alloc.Containers) {
		return nil, fmt.Errorf("pod %s/%s: the kubelet asks for more device containers than its allocation lists (%d)", pod.Namespace, pod.Name, len(alloc.Containers))
	}
	c := &alloc.Containers[i]
	if len(c.Devices) != len(ids) {
		return nil, fmt.Errorf("pod %s/%s container %s: the kubelet asks for %d %s, the allocation lists %d cards", pod.Namespace, pod.Name, c.Name, len(ids), resource, len(c.Devices))
	}
	// Allocate does not show the container, only its pod: the spec is all
	// there is to check, and the kubelet lets its variables win over ours.
	ctr := nri.Container{Name: c.Name}
	if s, ok := device.ContainerSpecSettings(pod, c.Name); ok {
		ctr.Spec = &s
	}
	d, err := nri.Decide(h.cfg, nri.Pod{UID: string(pod.UID), Namespace: pod.Namespace, Annotations: pod.Annotations}, ctr)
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if d.Unverified != nil {
		// The pod is still marked handed out below: it got its answer
		// (no card), and the scheduler may send the node the next pod.
		h.logger.Error(d.Unverified, "Container gets no device", "pod", klog.KObj(pod), "container", c.Name)
		nri.ReportUnverified(h.events, pod.Namespace, pod.Name, pod.UID, c.Name, d.Unverified)
	}
	if err := d.WriteFiles(); err != nil {
		return nil, err
	}
	rsp := &pluginapi.ContainerAllocateResponse{Envs: map[string]string{nri.RequestEnv: resource}}
	for k, v := range d.Env {
		rsp.Envs[k] = v
	}
	for _, m := range d.Mounts {
		rsp.Mounts = append(rsp.Mounts, &pluginapi.Mount{ContainerPath: m.Container, HostPath: m.Host, ReadOnly: m.ReadOnly})
	}
	h.mu.Lock()
	h.done[pod.UID] = i + 1
	last := i+1 == len(alloc.Containers)
	h.mu.Unlock()
	h.logger.V(2).Info("Handed out devices", "pod", klog.KObj(pod), "container", c.Name, "cards", len(c.Devices))
	if last {
		if err := h.markHandedOut(ctx, pod); err != nil {
			return nil, err
		}
	}
	return rsp, nil
}

// awaitingPod finds the one device pod on this node still waiting for its
// devices, waiting briefly for the informer to catch up with the binding.
func (h *handout) awaitingPod(ctx context.Context) (*v1.Pod, error) {
	deadline := time.Now().Add(h.wait)
	for {
		waiting := h.waiting()
		switch {
		case len(waiting) == 1:
			return waiting[0], nil
		case len(waiting) > 1:
			names := make([]string, len(waiting))
			for i, p := range waiting {
				names[i] = p.Namespace + "/" + p.Name
			}
			sort.Strings(names)
			return nil, fmt.Errorf("%d device pods wait for devices on node %s (%v); without NRI only one may: were they scheduled by mosaic-scheduler?", len(waiting), h.node, names)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no device pod bound to node %s is waiting for devices: was the pod scheduled by mosaic-scheduler?", h.node)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waiting lists the device pods on this node that the informer shows
// waiting for their devices, leaving out those this agent has labelled.
func (h *handout) waiting() []*v1.Pod {
	pods := h.pods()
	h.mu.Lock()
	defer h.mu.Unlock()
	listed := map[types.UID]bool{}
	var waiting []*v1.Pod
	for _, p := range pods {
		listed[p.UID] = true
		if p.Labels[device.HandedOutLabel] == "true" {
			delete(h.labelled, p.UID) // the informer caught up
			continue
		}
		if p.Spec.NodeName == h.node && !h.labelled[p.UID] && p.DeletionTimestamp == nil &&
			p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed && p.Annotations[device.AllocationAnnotation] != "" {
			waiting = append(waiting, p)
		}
	}
	for uid := range h.labelled {
		if !listed[uid] {
			delete(h.labelled, uid) // gone
		}
	}
	return waiting
}

func (h *handout) markHandedOut(ctx context.Context, pod *v1.Pod) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{device.HandedOutLabel: "true"}}})
	if _, err := h.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("marking pod %s/%s handed out: %w", pod.Namespace, pod.Name, err)
	}
	h.mu.Lock()
	delete(h.done, pod.UID)
	h.labelled[pod.UID] = true
	h.mu.Unlock()
	return nil
}
