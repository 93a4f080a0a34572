package mosaic

import (
	"context"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// PreScore skips scoring for pods without device requests.
func (p *Mosaic) PreScore(_ context.Context, state fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	if _, err := getState(state); err != nil {
		return fwk.NewStatus(fwk.Skip)
	}
	return nil
}

// Score rates a node by the node policy: binpack prefers the node whose
// cards are fullest after placing the pod, spread the emptiest.
func (p *Mosaic) Score(_ context.Context, state fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	s, err := getState(state)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	name := nodeInfo.Node().Name
	var alloc *device.Allocation
	if v, ok := s.placements.Load(name); ok {
		alloc = v.(*device.Allocation)
	} else if alloc, _ = p.place(s, name); alloc == nil {
		return 0, nil
	}
	node, err := p.cache.view(name, s.added[name], s.removed[name])
	if err != nil {
		return 0, nil
	}
	policy := p.args.NodePolicy
	if s.req.NodePolicy != "" {
		policy = s.req.NodePolicy
	}
	return placement.Score(node, alloc, policy), nil
}

// ScoreExtensions: scores are already on the framework's 0..100 scale.
func (p *Mosaic) ScoreExtensions() fwk.ScoreExtensions { return nil }
