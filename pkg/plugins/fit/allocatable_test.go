package fit

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"
)

// A node's new object is read anew: what the old one made allocatable
// is not taken for it.
func TestAllocatableFollowsTheNodeObject(t *testing.T) {
	ours, err := newPlugin(context.Background(), fitArgs(t), nil, feature.Features{})
	if err != nil {
		t.Fatal(err)
	}
	pod := podOf(nil, []v1.ResourceList{list("nvidia.com/gpu", 4)})
	before := node(list("nvidia.com/gpu", 8, "pods", 10))
	if st := run(t, ours, pod, before); !st.IsSuccess() {
		t.Fatalf("8 cards: %v", st)
	}
	after := framework.NewNodeInfo()
	next := before.Node().DeepCopy()
	next.Status.Allocatable = list("nvidia.com/gpu", 2, "pods", 10)
	after.SetNode(next)
	if st := run(t, ours, pod, after); st.IsSuccess() || reasons(st)[0] != "Insufficient nvidia.com/gpu" {
		t.Errorf("the node's new object makes 2 cards allocatable: %v %q", st.Code(), reasons(st))
	}
}

// More extended resources than the plugin keeps per node are checked as
// the stock plugin checks them.
func TestAllocatableBeyondWhatIsKept(t *testing.T) {
	stock, err := noderesources.NewFit(context.Background(), fitArgs(t), nil, feature.Features{})
	if err != nil {
		t.Fatal(err)
	}
	ours, err := newPlugin(context.Background(), fitArgs(t), nil, feature.Features{})
	if err != nil {
		t.Fatal(err)
	}
	var ask, roomy, short []any
	for i := range maxKept + 4 {
		name := fmt.Sprintf("vendor%d.com/dev", i)
		ask = append(ask, name, 1)
		roomy = append(roomy, name, 2)
		short = append(short, name, i%2) // every other one missing
	}
	roomy, short = append(roomy, "pods", 10), append(short, "pods", 10)
	pod := podOf(nil, []v1.ResourceList{list(ask...)})
	for name, ni := range map[string]*framework.NodeInfo{"roomy": node(list(roomy...)).(*framework.NodeInfo), "short": node(list(short...)).(*framework.NodeInfo)} {
		for range 2 { // kept, then read from what was kept
			want := run(t, stock.(*noderesources.Fit), pod, ni)
			got := run(t, ours, pod, ni)
			if got.Code() != want.Code() || !sameReasons(reasons(got), reasons(want)) {
				t.Errorf("%s node: %v %q, stock %v %q", name, got.Code(), reasons(got), want.Code(), reasons(want))
			}
		}
	}
	if n := len(ours.allocatable.names); n != maxKept {
		t.Errorf("%d resources numbered, bound %d", n, maxKept)
	}
}

// Entries of Node objects the informers replaced are dropped once they
// outnumber the nodes.
func TestAllocatableBound(t *testing.T) {
	var a allocatables
	a.live.Store(10)
	i, name := a.number("nvidia.com/gpu")
	for range 1000 {
		if got := a.of(node(list("nvidia.com/gpu", 3)), name, i); got != 3 {
			t.Fatalf("allocatable %d, want 3", got)
		}
	}
	if n := a.nodes.Len(); n > 2*10+64+1 {
		t.Errorf("%d node objects kept for 10 nodes", n)
	}
}
