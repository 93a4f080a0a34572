package fit

import (
	"slices"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

const extendedKey fwk.StateKey = "PreFilter" + Name + "/extended"

// extendedState is the pod's extended resources that the stock plugin was
// not given: what Filter compares with each node. It is never written
// after PreFilter, so clones share it.
type extendedState struct {
	wants []want
}

type want struct {
	name   v1.ResourceName
	number int // among the resources kept per node (allocatable.go)
	qty    int64
	reason string // the stock Filter's, built once
	// dra: DRA has a device class for the resource, so a node that does
	// not advertise it leaves it to the DynamicResources plugin.
	dra bool
}

func (s *extendedState) Clone() fwk.StateData { return s }

// filter adds to the stock Filter's status the extended resources that
// the node cannot give, exactly as the stock Filter reports them: reason
// "Insufficient <name>", unresolvable when the node's allocatable amount
// is below the request.
func (s *extendedState) filter(status *fwk.Status, allocatable *allocatables, nodeInfo fwk.NodeInfo) *fwk.Status {
	var reasons []string
	unresolvable := false
	requested := nodeInfo.GetRequested().GetScalarResources()
	for i := range s.wants {
		w := &s.wants[i]
		have := allocatable.of(nodeInfo, w.name, w.number)
		if have == 0 && w.dra {
			continue
		}
		if w.qty > have-requested[w.name] {
			reasons = append(reasons, w.reason)
			unresolvable = unresolvable || w.qty > have
		}
	}
	if len(reasons) == 0 {
		return status
	}
	code := fwk.Unschedulable
	if unresolvable || status.Code() == fwk.UnschedulableAndUnresolvable {
		code = fwk.UnschedulableAndUnresolvable
	}
	if status != nil {
		reasons = append(slices.Clip(status.Reasons()), reasons...)
	}
	return fwk.NewStatus(code, reasons...)
}
