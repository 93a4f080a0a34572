package cluster

import (
	"context"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// RunKubelet stands in for the kubelets of API-only nodes in the one duty
// the scheduler relies on: a bound pod that is deleted (by a user or by
// preemption) stays Terminating until its kubelet confirms it stopped.
// This confirms at once, as a kubelet does for a pod with nothing to stop.
func (cp *ControlPlane) RunKubelet(ctx context.Context) error {
	f := informers.NewSharedInformerFactory(cp.Client, 0)
	confirm := func(obj any) {
		pod, ok := obj.(*v1.Pod)
		if !ok || pod.DeletionTimestamp == nil || pod.Spec.NodeName == "" {
			return
		}
		zero := int64(0)
		err := cp.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &pod.UID}})
		if err != nil && ctx.Err() == nil {
			klog.FromContext(ctx).V(4).Info("Confirming pod deletion", "pod", klog.KObj(pod), "err", err)
		}
	}
	_, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    confirm,
		UpdateFunc: func(_, obj any) { confirm(obj) },
	})
	if err != nil {
		return err
	}
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	return nil
}
