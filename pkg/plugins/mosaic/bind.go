package mosaic

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// Bind binds a device pod with its allocation in one write: the API server
// copies a Binding's annotations onto the pod together with the node name,
// so no pod is ever bound without its cards, and no node-wide lock is
// needed. Other pods are left to the DefaultBinder.
func (p *Mosaic) Bind(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	s, err := getState(state)
	if err != nil {
		return fwk.NewStatus(fwk.Skip)
	}
	if s.chosen == nil || s.chosen.Node != nodeName {
		return fwk.AsStatus(fmt.Errorf("no device allocation reserved for node %s", nodeName))
	}
	raw, err := device.EncodeAllocation(s.chosen)
	if err != nil {
		return fwk.AsStatus(err)
	}
	ann := map[string]string{device.AllocationAnnotation: raw}
	if p.key != nil {
		ann[device.SignatureAnnotation] = device.Sign(p.key, string(pod.UID), raw)
	}
	binding := &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, Annotations: ann},
		Target:     v1.ObjectReference{Kind: "Node", Name: nodeName},
	}
	if err := p.handle.ClientSet().CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
		if !p.committed(ctx, pod, nodeName, raw) {
			return fwk.AsStatus(err)
		}
		klog.FromContext(ctx).Info("Binding failed on the client but committed", "pod", klog.KObj(pod), "node", nodeName, "err", err)
	}
	klog.FromContext(ctx).V(3).Info("Bound with devices", "pod", klog.KObj(pod), "node", nodeName)
	return nil
}

// committed reports whether the API server holds pod bound to node with
// exactly this allocation. A Binding whose response is lost (a timeout, a
// dropped connection) may have been written all the same; reporting it
// failed would have the scheduler release cards the pod holds and mark a
// bound pod unschedulable.
func (p *Mosaic) committed(ctx context.Context, pod *v1.Pod, node, alloc string) bool {
	got, err := p.handle.ClientSet().CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	return err == nil && got.UID == pod.UID && got.Spec.NodeName == node && got.Annotations[device.AllocationAnnotation] == alloc
}
