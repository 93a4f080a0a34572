package mosaic

import (
	"cmp"
	"context"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// preFilter parses the pod's device request once per cycle. Pods that ask
// for no devices skip every Mosaic step. A pod that fits no node's cards
// and could not preempt its way onto any is rejected here as unresolvable,
// in microseconds: otherwise its every retry (freed cards requeue every pod
// that fits them, and the first takes them) filtered every node and ran
// DefaultPreemption's dry run on each, ~40 ms at 1,000 nodes. The nodes
// are the scheduler's (its snapshot, as Filter would see them). Pod groups
// take the full path: their cycles count holders differently (holders.go).
func (p *Mosaic) preFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	req, err := device.ParsePodRequest(pod, p.parseOpts)
	if err != nil {
		// An invalid request never fits anywhere; the message names the
		// field and limit and shows up in the pod's events.
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "invalid device request: "+err.Error())
	}
	if req == nil {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	if s := p.waitSynced(ctx); s != nil {
		return nil, s
	}
	p.cache.waker.waiting(pod)
	policy := p.args.NodePolicy
	if req.NodePolicy != "" {
		policy = req.NodePolicy
	}
	s := &cycleState{
		req:     req,
		id:      requestID(requestKey(req, p.placeOpts, policy)),
		policy:  policy,
		added:   map[string]map[string]device.Usage{},
		removed: map[string]map[string]device.Usage{},
		group:   state.IsPodGroupSchedulingCycle(),
	}
	state.Write(stateKey, s)
	if !s.group && pod.Spec.SchedulingGroup == nil && len(nodes) > 0 {
		if fits, refusals := p.cache.fitsSomewhere(nodes, s.id, req, p.placeOpts, preemptsBelow(pod)); !fits {
			countRefusals(refusals)
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, noRoomReasons(refusals)...)
		}
	}
	return nil, nil
}

// reasonNoPreemption ends the reasons of a pod that PreFilter found fits
// no node's cards, where no pod holding cards could be preempted for it.
const reasonNoPreemption = "no pod of lower priority holds cards"

// noRoomReasons words PreFilter's rejection as the framework words
// Filter's: "<nodes> <reason>", the most frequent first.
func noRoomReasons(refusals map[string]int) []string {
	reasons := slices.Collect(maps.Keys(refusals))
	slices.SortFunc(reasons, func(a, b string) int { return cmp.Or(refusals[b]-refusals[a], strings.Compare(a, b)) })
	for i, r := range reasons {
		reasons[i] = strconv.Itoa(refusals[r]) + " " + r
	}
	return append(reasons, reasonNoPreemption)
}

// noRoomAnywhere reports whether s is PreFilter's rejection of a pod that
// fits no node.
func noRoomAnywhere(s *fwk.Status) bool {
	if s.Code() != fwk.UnschedulableAndUnresolvable {
		return false
	}
	r := s.Reasons()
	return len(r) > 0 && r[len(r)-1] == reasonNoPreemption
}

// preemptsBelow is the priority below which the pod may preempt pods;
// math.MinInt32 when it may not preempt at all.
func preemptsBelow(pod *v1.Pod) int32 {
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == v1.PreemptNever {
		return math.MinInt32
	}
	return corev1helpers.PodPriority(pod)
}

// PreFilterExtensions lets preemption's dry runs add and remove pods.
func (p *Mosaic) PreFilterExtensions() fwk.PreFilterExtensions { return p }

// AddPod counts a pod's shares on the node for a preemption dry run.
func (p *Mosaic) AddPod(_ context.Context, state fwk.CycleState, _ *v1.Pod, podInfo fwk.PodInfo, nodeInfo fwk.NodeInfo) *fwk.Status {
	return p.dryRun(state, podInfo.GetPod(), nodeInfo, true)
}

// RemovePod releases a pod's shares on the node for a preemption dry run.
func (p *Mosaic) RemovePod(_ context.Context, state fwk.CycleState, _ *v1.Pod, podInfo fwk.PodInfo, nodeInfo fwk.NodeInfo) *fwk.Status {
	return p.dryRun(state, podInfo.GetPod(), nodeInfo, false)
}

func (p *Mosaic) dryRun(state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo, add bool) *fwk.Status {
	s, err := getState(state)
	if err != nil {
		return fwk.AsStatus(err)
	}
	node := nodeInfo.Node().Name
	if s.group && p.cache.boundOn(pod.UID, node) {
		return nil // the NodeInfo says it (holders.go)
	}
	fp := p.podFootprint(pod)
	if fp == nil && add {
		// A nominated pod (preemption made room for it, it is not bound
		// yet) has no allocation: hold what it would take here, so that
		// lower-priority pods do not take the cards it preempted for.
		fp = p.wouldTake(s, pod, node, nodeInfo)
	}
	if fp == nil {
		return nil
	}
	set := s.removed
	if add {
		set = s.added
	}
	s.adjust(set, node, fp)
	return nil
}

// wouldTake is the footprint pod would have on node under this cycle's
// adjustments, or nil when it asks for no devices or does not fit.
func (p *Mosaic) wouldTake(s *cycleState, pod *v1.Pod, node string, nodeInfo fwk.NodeInfo) map[string]device.Usage {
	req, err := device.ParsePodRequest(pod, p.parseOpts)
	if err != nil || req == nil {
		return nil
	}
	view, status := s.node(p.cache.nodeView(node), node, nodeInfo)
	if status != nil {
		return nil
	}
	alloc, fail := placement.Place(view, req, p.placeOpts)
	if fail != nil {
		return nil
	}
	return alloc.Footprint()
}

// podFootprint is what pod holds: the cache knows pods it assumed or saw
// bound; a pod it has not seen yet carries its allocation.
func (p *Mosaic) podFootprint(pod *v1.Pod) map[string]device.Usage {
	if _, fp, ok := p.cache.footprint(pod.UID); ok {
		return fp
	}
	if raw, ok := pod.Annotations[device.AllocationAnnotation]; ok {
		if a, err := device.DecodeAllocation(raw); err == nil {
			return a.Footprint()
		}
	}
	return nil
}

// SignPod lets pods be batched: the scheduler may then place a pod like the
// one before it on the next node of that pod's ranking, after Filter has
// checked the node again, instead of filtering and scoring every node
// anew. A pod's fit and score on a node depend on its device request
// (resources, selectors, policies, NUMA binding) and on the node's cards
// alone, so the parsed request is the pod's part of the signature; pods
// without devices contribute nothing. Batching itself re-filters and
// re-scores the node the previous pod took, the only one whose cards it
// changed.
func (p *Mosaic) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	req, err := device.ParsePodRequest(pod, p.parseOpts)
	if err != nil {
		return nil, fwk.NewStatus(fwk.Unschedulable, "invalid device request: "+err.Error())
	}
	if req == nil {
		return nil, nil
	}
	return []fwk.SignFragment{{Key: requestSignerName, Value: req}}, nil
}

// requestSignerName names Mosaic's fragment of a pod's signature.
const requestSignerName = "mosaic.io/DeviceRequest()"
