package gang

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// A group that can never fit (three 4-card pods on an 8-card node) is
// taken up, found infeasible and reverted in its pod-group cycle, before
// any member reaches Permit: upstream's gang timeout (Permit's fixed five
// minutes, configurable neither in GangScheduling's args nor on the
// PodGroup) never has to release anything. The group keeps waiting, no
// member is bound or carries an allocation, and a lone pod takes all
// eight cards, which it could not if Mosaic still held a reservation of
// the group's.
func TestGangThatNeverFitsHoldsNothing(t *testing.T) {
	e := newEnv(t, h200("gang-t"))
	names := e.gang("big", 3, 4)
	e.poll("the group rejected", func(p map[string]*v1.Pod) bool { return rejected(p, names...) })
	e.pod("filler", "", 8)
	pods := e.poll("filler bound", func(p map[string]*v1.Pod) bool { return bound(p, "filler") == 1 })
	for _, name := range names {
		if _, has := pods[name].Annotations[device.AllocationAnnotation]; has || pods[name].Spec.NodeName != "" {
			t.Errorf("%s bound to %q or carrying an allocation while its group cannot fit", name, pods[name].Spec.NodeName)
		}
	}
	if got := e.checkCapacity(); got != 1 {
		t.Errorf("%d pods hold cards, want the filler alone", got)
	}
	// With the cards free again the group is retried and still refused
	// whole: two of its pods would fit, none binds.
	e.delete("filler")
	e.poll("filler gone", func(p map[string]*v1.Pod) bool { return p["filler"] == nil })
	e.pod("probe", "", 1)
	pods = e.poll("probe bound", func(p map[string]*v1.Pod) bool { return bound(p, "probe") == 1 })
	if got := bound(pods, names...); got != 0 {
		t.Errorf("%d members of a group that cannot fit bound", got)
	}
	if got := e.checkCapacity(); got != 1 {
		t.Errorf("%d pods hold cards, want the probe alone", got)
	}
}
