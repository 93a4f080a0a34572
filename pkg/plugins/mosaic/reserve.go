package mosaic

import (
	"context"

	v1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// reserve picks the exact cards on the chosen node and records them in the
// cache as assumed, so the next pods see them taken while this one binds.
func (p *Mosaic) reserve(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	s := deviceState(state)
	if s == nil {
		return nil // not a device pod
	}
	alloc, status := p.place(p.withNominated(s, pod, nodeName), nodeName)
	if alloc == nil {
		return status
	}
	p.cache.assume(pod.UID, alloc, corev1helpers.PodPriority(pod))
	s.chosen = alloc
	klog.FromContext(ctx).V(4).Info("Reserved devices", "pod", klog.KObj(pod), "node", nodeName, "containers", len(alloc.Containers))
	return nil
}

// Unreserve rolls back Reserve when a later step fails.
func (p *Mosaic) Unreserve(_ context.Context, state fwk.CycleState, pod *v1.Pod, _ string) {
	if s := deviceState(state); s != nil {
		s.chosen = nil
		p.cache.forget(pod.UID)
	}
}

// withNominated is the cycle state with the node's nominated pods of at
// least pod's priority holding what they would take, as Filter saw them
// (the framework filters with those pods added). Without it Reserve could
// take the cards that preemption freed for a higher-priority pod.
func (p *Mosaic) withNominated(s *cycleState, pod *v1.Pod, node string) *cycleState {
	if p.handle == nil {
		return s
	}
	nominated := p.handle.NominatedPodsForNode(node)
	if len(nominated) == 0 {
		return s
	}
	c := s.Clone().(*cycleState)
	prio := corev1helpers.PodPriority(pod)
	for _, pi := range nominated {
		np := pi.GetPod()
		if np.UID == pod.UID || corev1helpers.PodPriority(np) < prio {
			continue
		}
		fp := p.podFootprint(np)
		if fp == nil {
			fp = p.wouldTake(c, np, node, p.snapshotNode(c, node))
		}
		if fp != nil {
			c.adjust(c.added, node, fp)
		}
	}
	return c
}
