package mosaic

import (
	"fmt"
	"maps"

	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

const stateKey fwk.StateKey = Name

// cycleState is what PreFilter parsed, the dry-run adjustments of
// preemption, and the allocation Reserve chose.
type cycleState struct {
	req *device.PodRequest
	// id numbers the request and the policies for the views' memos
	// (memo.go); 0 remembers nothing.
	id uint64
	// policy is the node policy Score rates nodes by.
	policy device.Policy
	// added and removed hold, per node, the footprints of the pods that
	// preemption's AddPod/RemovePod moved in or out. Clone copies them.
	added, removed map[string]map[string]device.Usage
	// group: a pod-group cycle, where the NodeInfo says which bound pods
	// hold cards (holders.go).
	group bool
	// chosen is the allocation Reserve assumed, for Bind.
	chosen *device.Allocation
}

func (s *cycleState) Clone() fwk.StateData {
	c := *s
	c.added, c.removed = cloneDeltas(s.added), cloneDeltas(s.removed)
	return &c
}

func cloneDeltas(m map[string]map[string]device.Usage) map[string]map[string]device.Usage {
	out := make(map[string]map[string]device.Usage, len(m))
	for k, v := range m {
		out[k] = maps.Clone(v)
	}
	return out
}

// adjust adds a pod's footprint to the node's added or removed set.
func (s *cycleState) adjust(set map[string]map[string]device.Usage, node string, fp map[string]device.Usage) {
	m := set[node]
	if m == nil {
		m = map[string]device.Usage{}
		set[node] = m
	}
	for id, u := range fp {
		m[id] = m[id].Add(u)
	}
}

// deviceState is the cycle's device request, nil for a pod without one
// (PreFilter wrote none). The steps every pod passes through (PreScore,
// Reserve, Unreserve, Bind) ask it, so the common answer for a plain pod
// builds no error.
func deviceState(state fwk.CycleState) *cycleState {
	d, err := state.Read(stateKey)
	if err != nil {
		return nil
	}
	s, _ := d.(*cycleState)
	return s
}

// getState is the cycle's device request for the steps that only run for a
// device pod, where its absence is an error.
func getState(state fwk.CycleState) (*cycleState, error) {
	d, err := state.Read(stateKey)
	if err != nil {
		return nil, fmt.Errorf("reading %q from cycle state: %w", stateKey, err)
	}
	s, ok := d.(*cycleState)
	if !ok {
		return nil, fmt.Errorf("%+v convert to %s.cycleState error", d, Name)
	}
	return s, nil
}
