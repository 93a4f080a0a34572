package usage

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// Check reads every node and the pods of namespace from the API server
// and returns, one line each, the cards that hold more than they offer
// (memory, cores, slots, exclusivity), and how many of the pods hold
// cards. It is the capacity invariant the tests and benchmarks check after
// every run, from the API objects alone.
func Check(ctx context.Context, cs kubernetes.Interface, namespace string, defaults device.NodeConfig) (over []string, holding int, err error) {
	nl, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, 0, err
	}
	pl, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, 0, err
	}
	nodes := make([]*v1.Node, len(nl.Items))
	for i := range nl.Items {
		nodes[i] = &nl.Items[i]
	}
	pods := make([]*v1.Pod, len(pl.Items))
	for i := range pl.Items {
		pods[i] = &pl.Items[i]
		if _, _, ok, err := device.PodFootprint(pods[i]); err != nil {
			return nil, 0, fmt.Errorf("pod %s: %w", pods[i].Name, err)
		} else if ok {
			holding++
		}
	}
	for _, n := range Compute(nodes, pods, defaults) {
		for _, c := range n.Cards {
			if c.OverCommitted() {
				over = append(over, fmt.Sprintf("node %s card %d over capacity: %+v", n.Name, c.Index, c))
			}
		}
	}
	return over, holding, nil
}
