package mosaic

import (
	"context"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// PreScore skips scoring for pods without device requests.
func (p *Mosaic) PreScore(_ context.Context, state fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	if deviceState(state) == nil {
		return fwk.NewStatus(fwk.Skip)
	}
	return nil
}

// score rates a node by the node policy: binpack prefers the node whose
// cards are fullest after placing the pod, spread the emptiest. It scores
// the cards Place would choose, recomputed (which costs less than keeping
// Filter's choice for every node): the score Filter remembered with the
// node's fit (fits.go), else the view's memo of it, else placed.
// Like Filter it allocates nothing.
func (p *Mosaic) score(_ context.Context, state fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	s, err := getState(state)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	obj := nodeInfo.Node()
	name := obj.Name
	ref := p.cache.viewOf(obj)
	if ref.quick && s.unadjusted(name) {
		if score, ok := p.cache.knownFit(ref, s.id); ok {
			return score, nil
		}
	}
	v := ref.v
	node, status := s.node(v, name, nodeInfo)
	if status != nil {
		return 0, nil
	}
	if node == &v.node && s.id != 0 {
		return v.score(s.id, s.req, p.placeOpts, s.policy), nil
	}
	score, _ := placement.ScoreFit(node, s.req, p.placeOpts, s.policy)
	return score, nil
}

// ScoreExtensions: scores are already on the framework's 0..100 scale.
func (p *Mosaic) ScoreExtensions() fwk.ScoreExtensions { return nil }
