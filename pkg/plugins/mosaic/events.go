package mosaic

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// EventsToRegister requeues a pod that Mosaic rejected only on events that
// can free or add cards: a device pod leaving (deleted, or finished, which
// the scheduler's informer reports as a delete), a reservation released
// after its binding failed (which the scheduler reports as a delete of its
// copy of the pod), and a node whose inventory appears or changes. The pod
// is retried after its backoff, not after the five-minute unschedulable
// flush.
//
// The hints also apply the event to the cache. The scheduler calls them
// from its own event handler before it requeues the pod, while the cache's
// informer handler runs on another goroutine and may not have seen the
// event yet; applying it here guarantees the retry sees the freed cards.
// The cache orders both writers by resourceVersion (cache.go), so a hint
// that runs late never undoes what the handler applied since.
func (p *Mosaic) EventsToRegister(context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Delete}, QueueingHintFn: counted(eventPodDeleted, p.isDevicePodDeleted)},
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAnnotation}, QueueingHintFn: counted(eventInventoryChanged, p.isInventoryChanged)},
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.UpdatePodLabel}, QueueingHintFn: counted(eventHandedOut, p.isHandedOut)},
	}, nil
}

func (p *Mosaic) isDevicePodDeleted(logger klog.Logger, waiting *v1.Pod, oldObj, _ any) (fwk.QueueingHint, error) {
	pod, ok := unwrap(oldObj).(*v1.Pod)
	if !ok {
		return fwk.Queue, nil
	}
	p.cache.hintDeletePod(pod)
	if pod.Spec.NodeName == "" {
		return fwk.QueueSkip, nil
	}
	_, has := pod.Annotations[device.AllocationAnnotation]
	if !has {
		// A failed binding: the scheduler's copy is assigned to the node
		// but has no allocation, which only the Binding carried.
		// Unreserve has released its cards.
		if req, err := device.ParsePodRequest(pod, p.parseOpts); err != nil || req == nil {
			return fwk.QueueSkip, nil
		}
	}
	if !p.fitsFreed(waiting, pod.Spec.NodeName) {
		logger.V(5).Info("Cards freed where the pod does not fit; not retrying", "pod", klog.KObj(waiting), "freed", klog.KObj(pod))
		return fwk.QueueSkip, nil
	}
	logger.V(5).Info("Cards freed; retrying", "pod", klog.KObj(waiting), "freed", klog.KObj(pod))
	return fwk.Queue, nil
}

// fitsFreed reports whether the waiting pod's devices fit the node's cards
// as the cache holds them, the freed share released (the hint applied the
// delete first). Cards elsewhere did not change, so a pod that does not
// fit here can fit nowhere it did not before. Members of a pod group are
// always retried: their cycle counts holders the NodeInfo lacks
// (holders.go), which the view alone does not show. Anything not known
// (no pod, an unknown node) retries.
func (p *Mosaic) fitsFreed(waiting *v1.Pod, node string) bool {
	if waiting == nil || waiting.Spec.SchedulingGroup != nil {
		return true
	}
	req, err := device.ParsePodRequest(waiting, p.parseOpts)
	if err != nil || req == nil {
		return err == nil // an invalid request fits nowhere, whatever frees
	}
	v := p.cache.nodeView(node)
	if v.err != nil {
		return false
	}
	if v == &noCards {
		return true
	}
	return placement.Check(&v.node, req, p.placeOpts).Fits
}

func (p *Mosaic) isInventoryChanged(logger klog.Logger, _ *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	n, ok := newObj.(*v1.Node)
	if !ok {
		return fwk.Queue, nil
	}
	p.cache.setNode(logger, n)
	now, has := n.Annotations[device.InventoryAnnotation]
	if !has {
		return fwk.QueueSkip, nil
	}
	if o, ok := oldObj.(*v1.Node); ok && o.Annotations[device.InventoryAnnotation] == now {
		return fwk.QueueSkip, nil
	}
	return fwk.Queue, nil
}

// isHandedOut requeues when the node agent of a node without NRI marks a
// pod's devices handed out: the node takes the next device pod.
func (p *Mosaic) isHandedOut(logger klog.Logger, _ *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	pod, ok := newObj.(*v1.Pod)
	if !ok {
		return fwk.Queue, nil
	}
	if old, ok := oldObj.(*v1.Pod); ok && old.Labels[device.HandedOutLabel] == pod.Labels[device.HandedOutLabel] {
		return fwk.QueueSkip, nil
	}
	if pod.Labels[device.HandedOutLabel] != "true" {
		return fwk.QueueSkip, nil
	}
	p.cache.hintUpdatePod(logger, pod)
	return fwk.Queue, nil
}
