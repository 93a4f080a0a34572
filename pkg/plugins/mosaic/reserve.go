package mosaic

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// Reserve picks the exact cards on the chosen node and records them in the
// cache as assumed, so the next pods see them taken while this one binds.
func (p *Mosaic) Reserve(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	s, err := getState(state)
	if err != nil {
		return nil // not a device pod
	}
	alloc, status := p.place(s, nodeName)
	if alloc == nil {
		return status
	}
	p.cache.assume(pod.UID, alloc)
	s.chosen = alloc
	klog.FromContext(ctx).V(4).Info("Reserved devices", "pod", klog.KObj(pod), "node", nodeName, "containers", len(alloc.Containers))
	return nil
}

// Unreserve rolls back Reserve when a later step fails.
func (p *Mosaic) Unreserve(_ context.Context, state fwk.CycleState, pod *v1.Pod, _ string) {
	if s, err := getState(state); err == nil {
		s.chosen = nil
		p.cache.forget(pod.UID)
	}
}
