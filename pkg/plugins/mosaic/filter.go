package mosaic

import (
	"context"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// Filter checks that the pod's containers fit the node's cards. It only
// reads the cache: no API calls, no locks held across nodes.
func (p *Mosaic) Filter(_ context.Context, state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := getState(state)
	if err != nil {
		return fwk.AsStatus(err)
	}
	name := nodeInfo.Node().Name
	if p.cache.handoutBusy(name, pod.UID) {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, placement.ReasonHandoutBusy)
	}
	alloc, status := p.place(s, name)
	if alloc != nil {
		s.placements.Store(name, alloc)
	}
	return status
}

// place runs the placement for one node under this cycle's adjustments.
func (p *Mosaic) place(s *cycleState, nodeName string) (*device.Allocation, *fwk.Status) {
	node, err := p.cache.view(nodeName, s.added[nodeName], s.removed[nodeName])
	if err != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "node device inventory is invalid: "+err.Error())
	}
	alloc, fail := placement.Place(node, s.req, p.placeOpts)
	if fail != nil {
		code := fwk.Unschedulable
		if fail.Unresolvable {
			code = fwk.UnschedulableAndUnresolvable
		}
		return nil, fwk.NewStatus(code, fail.Reasons...)
	}
	return alloc, nil
}
