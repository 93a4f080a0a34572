package integration

import (
	"fmt"
	"testing"
)

var small = map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "2000"}

func TestNodePolicy(t *testing.T) {
	for _, tc := range []struct {
		policy    string
		wantNodes int // distinct nodes used by 3 pods on 3 empty, identical nodes
	}{
		{"binpack", 1},
		{"spread", 3},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			e := newEnv(t, withArgs("nodePolicy: binpack", "nodePolicy: "+tc.policy), a100("np-"+tc.policy, 2), a100("nq-"+tc.policy, 2), a100("nr-"+tc.policy, 2))
			nodes := map[string]bool{}
			for i := range 3 {
				p, _ := e.mustBind(podSpec{name: fmt.Sprintf("p%d", i), limits: small})
				nodes[p.Spec.NodeName] = true
			}
			if len(nodes) != tc.wantNodes {
				t.Errorf("%s placed 3 pods on %d nodes %v, want %d", tc.policy, len(nodes), nodes, tc.wantNodes)
			}
		})
	}
}

func TestGPUPolicy(t *testing.T) {
	for _, tc := range []struct {
		name      string
		config    []byte
		ann       map[string]string
		wantCards int // distinct cards used by 3 pods on one 4-card node
	}{
		{"args-binpack", withArgs("gpuPolicy: spread", "gpuPolicy: binpack"), nil, 1},
		{"args-spread", nil, nil, 3},
		// The per-pod annotation (HAMi's key) overrides the args.
		{"annotation-binpack", nil, map[string]string{"hami.io/gpu-scheduler-policy": "binpack"}, 1},
		{"annotation-spread", withArgs("gpuPolicy: spread", "gpuPolicy: binpack"), map[string]string{"mosaic.io/gpu-scheduler-policy": "spread"}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.config, a100("gp-"+tc.name, 4))
			used := map[string]bool{}
			for i := range 3 {
				_, a := e.mustBind(podSpec{name: fmt.Sprintf("p%d", i), limits: small, annotations: tc.ann})
				used[a.Containers[0].Devices[0].UUID] = true
			}
			if len(used) != tc.wantCards {
				t.Errorf("3 pods on %d cards, want %d", len(used), tc.wantCards)
			}
		})
	}
}

func TestNodePolicyAnnotationOverridesArgs(t *testing.T) {
	e := newEnv(t, nil, a100("na", 2), a100("nb", 2))
	ann := map[string]string{"hami.io/node-scheduler-policy": "spread"}
	p0, _ := e.mustBind(podSpec{name: "p0", limits: small, annotations: ann})
	p1, _ := e.mustBind(podSpec{name: "p1", limits: small, annotations: ann})
	if p0.Spec.NodeName == p1.Spec.NodeName {
		t.Errorf("spread annotation put both pods on %s", p0.Spec.NodeName)
	}
}
