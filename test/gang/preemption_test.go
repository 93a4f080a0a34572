package gang

import (
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// A high-priority group whose cards low-priority pods hold preempts them
// as a whole: upstream's pod-group preemption removes the victims from
// the scheduler's snapshot and places the group again, and Mosaic's
// Filter and Reserve count the cards of the pods that snapshot holds. It
// preempts only what the group needs, the least important first: of two
// mid- and six low-priority pods holding one card each, the six lows go
// and the group's three 2-card pods bind whole. No card is over capacity
// at any moment the test looks.
func TestGangPreemptsForItsWholeNeed(t *testing.T) {
	e := newEnv(t, h200("gang-p"))
	e.priorityClass("gang-low", 10)
	e.priorityClass("gang-mid", 100)
	e.priorityClass("gang-high", 1000)
	var held []string
	for i := range 8 {
		name, prio := fmt.Sprintf("low-%d", i), "gang-low"
		if i < 2 {
			name, prio = fmt.Sprintf("mid-%d", i), "gang-mid"
		}
		e.podWith(name, "", 1, prio)
		held = append(held, name)
	}
	e.poll("the node's eight cards held", func(p map[string]*v1.Pod) bool { return bound(p, held...) == len(held) })
	if got := e.checkCapacity(); got != 8 {
		t.Fatalf("%d pods hold cards, want 8", got)
	}
	e.groupWith("train", 3, "gang-high")
	names := members("train", 3)
	for _, name := range names {
		e.podWith(name, "train", 2, "gang-high")
	}
	pods := e.poll("the group bound", func(p map[string]*v1.Pod) bool {
		e.checkCapacity()
		return e.whole(p, names)
	})
	var lows []string
	for name, p := range pods {
		if strings.HasPrefix(name, "low-") && p.Spec.NodeName != "" {
			lows = append(lows, name)
		}
	}
	if len(lows) != 0 {
		t.Errorf("low-priority pods %v still bound, want all six preempted", lows)
	}
	if got := bound(pods, "mid-0", "mid-1"); got != 2 {
		t.Errorf("%d of the two mid-priority pods bound, want both (the group needs six cards)", got)
	}
	if got := e.checkCapacity(); got != 5 {
		t.Errorf("%d pods hold cards, want the group's 3 and the 2 mids", got)
	}
}
