package mosaic

import (
	"context"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// filter checks that the pod's containers fit the node's cards. It runs
// for every node and every device pod, so it only reads the node's view in
// the cache (no API calls, no lock held across nodes) and, for a node that
// fits, allocates nothing: placement.Check decides as Place would without
// building the allocation, which Reserve builds once for the chosen node.
// A view answers a request it has seen from the known-answers table
// (fits.go) or its memo (memo.go).
func (p *Mosaic) filter(_ context.Context, state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := getState(state)
	if err != nil {
		return fwk.AsStatus(err)
	}
	obj := nodeInfo.Node()
	name := obj.Name
	ref := p.cache.viewOf(obj)
	quick := ref.quick && s.unadjusted(name)
	if quick {
		if _, ok := p.cache.knownFit(ref, s.id); ok {
			return nil
		}
		if r, ok := p.cache.knownRefusal(ref, s.id); ok {
			return r.status()
		}
	}
	v := ref.v
	if v.handoutBusy(pod.UID) {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, placement.ReasonHandoutBusy)
	}
	node, status := s.node(v, name, nodeInfo)
	if status != nil {
		return status
	}
	own := node == &v.node && s.id != 0 // not adjusted: the view's answers hold
	var verdict placement.Verdict
	if own {
		verdict = v.verdict(s.id, s.req, p.placeOpts)
	} else {
		verdict = placement.Check(node, s.req, p.placeOpts)
	}
	if verdict.Fits {
		if own && quick {
			p.cache.rememberFit(ref, s.id, v.score(s.id, s.req, p.placeOpts, s.policy))
		}
		return nil
	}
	if own && quick {
		p.cache.rememberRefusal(ref, s.id, verdict)
	}
	return refusal{unresolvable: verdict.Unresolvable, reasons: verdict.Reasons}.status()
}

// unadjusted says that the cycle sees the node's cards as the cache holds
// them, as node would return them, without reading the view.
func (s *cycleState) unadjusted(name string) bool {
	return !s.group && len(s.added[name]) == 0 && len(s.removed[name]) == 0
}

// node is the node's cards under this cycle's adjustments; in a pod-group
// cycle, without the bound pods that nodeInfo lacks (holders.go).
func (s *cycleState) node(v *nodeView, name string, nodeInfo fwk.NodeInfo) (*placement.Node, *fwk.Status) {
	if v.err != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "node device inventory is invalid: "+v.err.Error())
	}
	added, removed := s.added[name], s.removed[name]
	if s.group {
		if gone := v.absentFrom(nodeInfo); gone != nil {
			removed = withRemoved(removed, gone)
		}
	}
	if len(added) == 0 && len(removed) == 0 {
		return &v.node, nil
	}
	return v.adjusted(added, removed), nil
}

// place runs the placement for one node under this cycle's adjustments.
func (p *Mosaic) place(s *cycleState, nodeName string) (*device.Allocation, *fwk.Status) {
	node, status := s.node(p.cache.nodeView(nodeName), nodeName, p.snapshotNode(s, nodeName))
	if status != nil {
		return nil, status
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

// snapshotNode is the scheduler's NodeInfo of node in a pod-group cycle,
// which Reserve is not given but must honour as Filter did; nil otherwise.
func (p *Mosaic) snapshotNode(s *cycleState, node string) fwk.NodeInfo {
	if !s.group || p.handle == nil {
		return nil
	}
	ni, err := p.handle.SnapshotSharedLister().NodeInfos().Get(node)
	if err != nil {
		return nil
	}
	return ni
}
