package mosaic

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// recorder is a PodActivator that records what it was asked to activate.
type recorder struct {
	mu  sync.Mutex
	got [][]string
}

func (r *recorder) Activate(_ klog.Logger, pods map[string]*v1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for name := range pods {
		names = append(names, name)
	}
	r.got = append(r.got, names)
}

func (r *recorder) calls() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.got...)
}

// A waiting group's pod is activated when a device pod leaves or an
// inventory changes, not when a pod without cards leaves, and no longer
// once it is bound.
func TestGroupWakerActivatesWaitingGroups(t *testing.T) {
	logger := klog.Background()
	r := &recorder{}
	w := groupWaker{delay: time.Hour} // the follow-ups do not come during the test
	w.setActivator(r)
	group := "train"
	member := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "train-0", UID: "m"},
		Spec: v1.PodSpec{SchedulingGroup: &v1.PodSchedulingGroup{PodGroupName: &group}}}
	w.waiting(member)
	w.waiting(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "lone", UID: "l"}}) // no group: never woken

	plain := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "plain", UID: types.UID("p")}, Spec: v1.PodSpec{NodeName: "n"}}
	w.podDeleted(logger, plain)
	if got := r.calls(); len(got) != 0 {
		t.Fatalf("a pod without cards left and groups were activated: %v", got)
	}
	holder := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "holder", UID: "h", Annotations: map[string]string{device.AllocationAnnotation: "{}"}},
		Spec: v1.PodSpec{NodeName: "n"}}
	w.podDeleted(logger, holder)
	if diff := cmp.Diff([][]string{{"ns/train-0"}}, r.calls()); diff != "" {
		t.Errorf("activations after a device pod left (-want,+got):\n%s", diff)
	}
	inv := func(raw string) *v1.Node {
		return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Annotations: map[string]string{device.InventoryAnnotation: raw}}}
	}
	w.nodeEvent(logger, inv("a"), inv("a"))
	w.nodeEvent(logger, inv("a"), inv("b"))
	if got := len(r.calls()); got != 2 {
		t.Errorf("%d activations after an unchanged and a changed inventory, want 2", got)
	}
	bound := member.DeepCopy()
	bound.Spec.NodeName = "n"
	w.podEvent(logger, member, bound)
	w.podDeleted(logger, holder)
	if got := len(r.calls()); got != 2 {
		t.Errorf("%d activations, want still 2: the member is bound", got)
	}
}
