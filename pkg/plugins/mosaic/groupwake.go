package mosaic

import (
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// A pod group that failed its cycle does not wait in the scheduler's
// unschedulable pool, where queueing hints would requeue it on Mosaic's
// events: 1.37 puts it straight back in the backoff queue, with no
// rejecting plugin recorded, so it is retried only once its backoff ends
// (up to podMaxBackoffSeconds times the square root of its size, 20 s for
// four pods by default), whatever frees meanwhile. The scheduler's
// activation, which plugins use to move pods out of backoff (the gang
// plugin does it for a group's members), takes it up at once: groupWaker
// keeps the device pods of groups that Mosaic has seen and that are not
// bound yet, and activates them when the cache's informer handlers see
// cards free (a device pod gone, an inventory changed, devices handed
// out). The cache is updated before the activation, so the retry sees the
// freed cards. The frees of a group's own revert (Unreserve) wake nobody:
// only the informers' events do.
//
// An activation that finds the group in its cycle is lost: the queue puts
// a group that failed back in backoff without looking at what happened
// meanwhile. So each wake is followed by one more, followUp later (one
// pending at a time), which takes up a group that was in its cycle when
// the cards freed and failed on the state before.
type groupWaker struct {
	mu       sync.Mutex
	activate func(klog.Logger, map[string]*v1.Pod)
	pods     map[types.UID]*v1.Pod
	// following is true while a follow-up wake is pending.
	following bool
	// delay overrides followUp (tests).
	delay time.Duration
}

// followUp is how long after a wake the follow-up comes: longer than a
// group's cycle usually takes, far shorter than its backoff.
const followUp = 250 * time.Millisecond

// setActivator gives the waker the scheduler's queue, once.
func (w *groupWaker) setActivator(a fwk.PodActivator) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.activate == nil && a != nil {
		w.activate = a.Activate
	}
}

// waiting records a group's device pod that PreFilter saw.
func (w *groupWaker) waiting(pod *v1.Pod) {
	if pod.Spec.SchedulingGroup == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pods == nil {
		w.pods = map[types.UID]*v1.Pod{}
	}
	w.pods[pod.UID] = pod
}

// done forgets a pod that is bound or deleted.
func (w *groupWaker) done(uid types.UID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.pods, uid)
}

// wake activates the waiting groups' pods now and once more followUp
// later.
func (w *groupWaker) wake(logger klog.Logger, why string) {
	if w.activateWaiting(logger, why) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if !w.following {
			w.following = true
			delay := followUp
			if w.delay != 0 {
				delay = w.delay
			}
			time.AfterFunc(delay, func() {
				w.mu.Lock()
				w.following = false
				w.mu.Unlock()
				w.activateWaiting(logger, "follow-up of "+why)
			})
		}
	}
}

// activateWaiting activates the waiting groups' pods; false when there
// are none.
func (w *groupWaker) activateWaiting(logger klog.Logger, why string) bool {
	w.mu.Lock()
	if w.activate == nil || len(w.pods) == 0 {
		w.mu.Unlock()
		return false
	}
	pods := make(map[string]*v1.Pod, len(w.pods))
	for _, p := range w.pods {
		pods[p.Namespace+"/"+p.Name] = p
	}
	activate := w.activate
	w.mu.Unlock()
	logger.V(5).Info("Cards freed; activating waiting pod groups", "reason", why, "pods", len(pods))
	activate(logger, pods)
	return true
}

// podEvent updates the waker from a pod the informer saw added or
// updated, and wakes the groups when it frees cards: it finished, or its
// node agent handed its devices out (a node without NRI takes the next
// device pod then).
func (w *groupWaker) podEvent(logger klog.Logger, old, pod *v1.Pod) {
	if pod.Spec.NodeName != "" {
		w.done(pod.UID)
	}
	if !holdsCards(pod) {
		return
	}
	switch {
	case pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed:
		if old == nil || old.Status.Phase != pod.Status.Phase {
			w.wake(logger, "device pod finished")
		}
	case pod.Labels[device.HandedOutLabel] == "true" && old != nil && old.Labels[device.HandedOutLabel] != "true":
		w.wake(logger, "devices handed out")
	}
}

// podDeleted forgets a deleted pod and wakes the groups if it held cards.
func (w *groupWaker) podDeleted(logger klog.Logger, pod *v1.Pod) {
	w.done(pod.UID)
	if holdsCards(pod) {
		w.wake(logger, "device pod deleted")
	}
}

// nodeEvent wakes the groups when a node's inventory appears or changes.
func (w *groupWaker) nodeEvent(logger klog.Logger, old, node *v1.Node) {
	now, has := node.Annotations[device.InventoryAnnotation]
	if !has || (old != nil && old.Annotations[device.InventoryAnnotation] == now) {
		return
	}
	w.wake(logger, "device inventory changed")
}

// holdsCards reports whether pod is bound with an allocation.
func holdsCards(pod *v1.Pod) bool {
	_, has := pod.Annotations[device.AllocationAnnotation]
	return has && pod.Spec.NodeName != ""
}
