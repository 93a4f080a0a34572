package mosaic

import (
	"sync"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// pendingPods holds the pods that no node has been chosen for, as the pod
// informer handler last saw them, so that a metrics scrape counts the
// device pods among them without listing and parsing every pod of the
// cluster (a scrape every second, as upstream's benchmark harness does,
// walked all 5,000 pods each time). Bound and finished pods leave it on
// their event. Which pods count (the scheduler's Mosaic profiles, the parse
// options) is decided at scrape time, as the profiles join after the
// handlers are registered.
type pendingPods struct {
	mu   sync.Mutex
	pods map[types.UID]*pendingPod
}

// pendingPod is one version of a waiting pod and whether it asks for
// devices, parsed by the first scrape that counts it: 0 not yet parsed,
// 1 no devices, 2 devices (or an invalid request, which waits too).
type pendingPod struct {
	pod    *v1.Pod
	device atomic.Int32
}

const (
	pendingUnparsed int32 = iota
	pendingPlain
	pendingDevice
)

// update records the pod's latest version.
func (p *pendingPods) update(pod *v1.Pod) {
	waiting := pod.Spec.NodeName == "" && pod.Status.Phase != v1.PodSucceeded && pod.Status.Phase != v1.PodFailed
	p.mu.Lock()
	defer p.mu.Unlock()
	if !waiting {
		delete(p.pods, pod.UID)
		return
	}
	if p.pods == nil {
		p.pods = map[types.UID]*pendingPod{}
	}
	if e := p.pods[pod.UID]; e == nil || e.pod != pod {
		p.pods[pod.UID] = &pendingPod{pod: pod}
	}
}

// remove forgets a deleted pod.
func (p *pendingPods) remove(uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pods, uid)
}

// count returns how many waiting pods of the given profiles ask for
// devices. Pods are parsed outside the lock, once per version, so that the
// informer handler never waits for a scrape's parsing.
func (p *pendingPods) count(profiles map[string]bool, opts device.ParseOptions) int {
	p.mu.Lock()
	waiting := make([]*pendingPod, 0, len(p.pods))
	for _, e := range p.pods {
		if profiles[e.pod.Spec.SchedulerName] {
			waiting = append(waiting, e)
		}
	}
	p.mu.Unlock()
	n := 0
	for _, e := range waiting {
		kind := e.device.Load()
		if kind == pendingUnparsed {
			kind = pendingPlain
			if req, err := device.ParsePodRequest(e.pod, opts); err != nil || req != nil {
				kind = pendingDevice
			}
			e.device.Store(kind)
		}
		if kind == pendingDevice {
			n++
		}
	}
	return n
}
