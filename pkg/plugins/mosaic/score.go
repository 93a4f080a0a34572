package mosaic

import (
	"context"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// PreScore skips scoring for pods without device requests.
func (p *Mosaic) PreScore(_ context.Context, state fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	if _, err := getState(state); err != nil {
		return fwk.NewStatus(fwk.Skip)
	}
	return nil
}

// score rates a node by the node policy: binpack prefers the node whose
// cards are fullest after placing the pod, spread the emptiest. Like
// Filter it reads the node's view and allocates nothing; it scores the
// cards Place would choose, recomputed (which costs less than keeping
// Filter's choice for every node), or the view's memo of it.
func (p *Mosaic) score(_ context.Context, state fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	s, err := getState(state)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	obj := nodeInfo.Node()
	name := obj.Name
	v := p.cache.viewOf(obj)
	node, status := s.node(v, name, nodeInfo)
	if status != nil {
		return 0, nil
	}
	own := node == &v.node && s.id != 0
	if own {
		if score, ok := v.memo.score(s.id); ok {
			return score, nil
		}
	}
	policy := p.args.NodePolicy
	if s.req.NodePolicy != "" {
		policy = s.req.NodePolicy
	}
	score, _ := placement.ScoreFit(node, s.req, p.placeOpts, policy)
	if own {
		v.memo.putScore(s.id, score)
	}
	return score, nil
}

// ScoreExtensions: scores are already on the framework's 0..100 scale.
func (p *Mosaic) ScoreExtensions() fwk.ScoreExtensions { return nil }
