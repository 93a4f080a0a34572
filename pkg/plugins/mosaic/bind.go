package mosaic

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// bindPod binds a device pod with its allocation in one write: the API server
// copies a Binding's annotations onto the pod together with the node name,
// so no pod is ever bound without its cards, and no node-wide lock is
// needed. Other pods are left to the DefaultBinder.
func (p *Mosaic) bindPod(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	s := deviceState(state)
	if s == nil {
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
	if err := p.bind(ctx, binding, raw); err != nil {
		return fwk.AsStatus(err)
	}
	klog.FromContext(ctx).V(3).Info("Bound with devices", "pod", klog.KObj(pod), "node", nodeName)
	return nil
}

// bind posts the Binding until the API server has answered for sure. A
// Binding whose answer is lost (a timeout, a dropped connection, a server
// error) may have committed, or may still commit: reporting it failed
// would release cards the pod then holds, for another pod to take. So after
// any error the pod is read back, and a pod bound here with this
// allocation is a success; while the outcome stays unknown the same
// Binding is posted again, which is safe because the API server binds a
// pod at most once: a retry either binds the pod or learns (by the
// refusal, then the read) that an earlier attempt did. Only a definite
// refusal, or an outcome still unknown after the retries, fails; a Binding
// that commits even later is counted once the informer sees it.
func (p *Mosaic) bind(ctx context.Context, binding *v1.Binding, alloc string) error {
	pods := p.handle.ClientSet().CoreV1().Pods(binding.Namespace)
	unknown := func(err error) bool { return ctx.Err() == nil && !refused(err) }
	return retry.OnError(retry.DefaultBackoff, unknown, func() error {
		err := pods.Bind(ctx, binding, metav1.CreateOptions{})
		if err == nil {
			return nil
		}
		got, gerr := pods.Get(ctx, binding.Name, metav1.GetOptions{})
		if gerr == nil && got.UID == binding.UID && got.Spec.NodeName == binding.Target.Name && got.Annotations[device.AllocationAnnotation] == alloc {
			klog.FromContext(ctx).Info("Binding answered with an error but committed", "pod", klog.KObj(binding), "node", binding.Target.Name, "err", err)
			return nil
		}
		return err
	})
}

// refused reports whether the API server answered a request with a client
// error, which it sends only for a request it did not carry out.
func refused(err error) bool {
	var s apierrors.APIStatus
	if !errors.As(err, &s) {
		return false
	}
	code := s.Status().Code
	return code >= 400 && code < 500 && code != http.StatusRequestTimeout
}
