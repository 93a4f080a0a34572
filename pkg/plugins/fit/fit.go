// Package fit is the stock NodeResourcesFit plugin, with the pod's extended
// resources sorted out once per pod instead of on every node.
//
// The stock Filter walks every extended resource of the pod on every node,
// validates its name (fmt.Sprintf and a regular expression), then looks it
// up among the ignored ones and asks whether DRA serves it. A device pod
// carries two or three extended resources that Mosaic places card by card
// and the shipped profiles ignore (nvidia.com/gpumem, nvidia.com/gpucores,
// ...), and nvidia.com/gpu, which the kubelet counts: at 1,000 nodes those
// checks were a quarter, then (nvidia.com/gpu alone) a tenth of the
// scheduler's CPU. This plugin takes the same arguments; its PreFilter
// gives the stock plugin the pod without any extended resource, and keeps
// the ones not ignored, with whether DRA could serve each, for its Filter
// to compare with the node's allocatable and requested amounts as the
// stock Filter does (same reasons, same codes), reading the allocatable
// amounts from a small table kept per Node object (allocatable.go)
// rather than from each node's map. Score, queueing hints and
// signatures are upstream's, and a pod without extended resources is not
// copied. A pod already bound to the node (preemption after an in-place
// resize) takes the stock path whole: its requests there are the stock
// plugin's to reconcile.
package fit

import (
	"context"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	resourcehelper "k8s.io/component-helpers/resource"
	configv1 "k8s.io/kube-scheduler/config/v1"
	fwk "k8s.io/kube-scheduler/framework"
	v1helper "k8s.io/kubernetes/pkg/apis/core/v1/helper"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
)

// Name is the plugin's name in a KubeSchedulerConfiguration. A profile
// enables it in NodeResourcesFit's place and gives it NodeResourcesFit's
// arguments (NodeResourcesFitArgs).
const Name = "MosaicNodeResourcesFit"

// Plugin is NodeResourcesFit under its own name, with its own PreFilter
// and the extended resources' part of Filter.
type Plugin struct {
	*noderesources.Fit
	handle        fwk.Handle
	fts           feature.Features
	ignored       sets.Set[string]
	ignoredGroups sets.Set[string]
	allocatable   allocatables
}

var (
	_ fwk.PreFilterPlugin   = &Plugin{}
	_ fwk.FilterPlugin      = &Plugin{}
	_ fwk.ScorePlugin       = &Plugin{}
	_ fwk.PreScorePlugin    = &Plugin{}
	_ fwk.EnqueueExtensions = &Plugin{}
)

// New builds the plugin from NodeResourcesFitArgs (defaulted and validated
// as the stock plugin's are).
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := DecodeArgs(obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	return newPlugin(ctx, args, h, feature.NewSchedulerFeaturesFromGates(utilfeature.DefaultFeatureGate))
}

func newPlugin(ctx context.Context, args *config.NodeResourcesFitArgs, h fwk.Handle, fts feature.Features) (*Plugin, error) {
	pl, err := noderesources.NewFit(ctx, args, h, fts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	return &Plugin{
		Fit:           pl.(*noderesources.Fit),
		handle:        h,
		fts:           fts,
		ignored:       sets.New(args.IgnoredResources...),
		ignoredGroups: sets.New(args.IgnoredResourceGroups...),
	}, nil
}

// DecodeArgs reads the plugin's arguments as the scheduler reads the stock
// plugin's: v1 NodeResourcesFitArgs, defaulted, converted to the internal
// type (NewFit validates them).
func DecodeArgs(obj runtime.Object) (*config.NodeResourcesFitArgs, error) {
	var in configv1.NodeResourcesFitArgs
	if err := frameworkruntime.DecodeInto(obj, &in); err != nil {
		return nil, fmt.Errorf("args: %w", err)
	}
	scheme.Scheme.Default(&in)
	var out config.NodeResourcesFitArgs
	if err := scheme.Scheme.Convert(&in, &out, nil); err != nil {
		return nil, fmt.Errorf("args: %w", err)
	}
	return &out, nil
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// PreFilter computes the stock plugin's state for the pod without its
// extended resources and records those that Filter checks (extended.go).
func (p *Plugin) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	if pod.Spec.NodeName != "" {
		return p.Fit.PreFilter(ctx, state, p.withoutIgnored(pod), nodes)
	}
	stripped := p.withoutExtended(pod)
	p.allocatable.live.Store(int64(len(nodes)))
	if stripped != pod {
		state.Write(extendedKey, p.extendedWants(p.withoutIgnored(pod)))
	}
	return p.Fit.PreFilter(ctx, state, stripped, nodes)
}

// Filter is the stock Filter on what PreFilter left it, and the extended
// resources PreFilter kept, with the stock Filter's reasons and codes.
func (p *Plugin) Filter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	status := p.Fit.Filter(ctx, state, pod, nodeInfo)
	d, err := state.Read(extendedKey)
	if err != nil {
		return status // the pod has none, or took the stock path
	}
	if status.Code() == fwk.Error {
		return status
	}
	return d.(*extendedState).filter(status, &p.allocatable, nodeInfo)
}

// ignores says whether the stock Filter skips the resource: an extended
// resource named in the arguments, or in one of their groups.
func (p *Plugin) ignores(name v1.ResourceName) bool {
	if !v1helper.IsExtendedResourceName(name) {
		return false
	}
	if p.ignored.Has(string(name)) {
		return true
	}
	group, _, _ := strings.Cut(string(name), "/")
	return p.ignoredGroups.Has(group)
}

// withoutIgnored returns the pod itself when none of its requests is
// ignored, else a copy without them (the pod is the scheduler's, shared:
// it is never changed).
func (p *Plugin) withoutIgnored(pod *v1.Pod) *v1.Pod {
	if p.ignored.Len() == 0 && p.ignoredGroups.Len() == 0 {
		return pod
	}
	return without(pod, p.ignores)
}

// withoutExtended returns the pod without any extended resource.
func (p *Plugin) withoutExtended(pod *v1.Pod) *v1.Pod {
	return without(pod, v1helper.IsExtendedResourceName)
}

// without returns pod itself when drop matches none of its resources,
// else a copy without those.
func without(pod *v1.Pod, drop func(v1.ResourceName) bool) *v1.Pod {
	if !anyOf(pod, drop) {
		return pod
	}
	out := *pod
	out.Spec.Containers = strip(pod.Spec.Containers, drop)
	out.Spec.InitContainers = strip(pod.Spec.InitContainers, drop)
	if pod.Spec.Resources != nil {
		r := *pod.Spec.Resources
		r.Requests, r.Limits = filter(r.Requests, drop), filter(r.Limits, drop)
		out.Spec.Resources = &r
	}
	return &out
}

func anyOf(pod *v1.Pod, drop func(v1.ResourceName) bool) bool {
	in := func(l v1.ResourceList) bool {
		for name := range l {
			if drop(name) {
				return true
			}
		}
		return false
	}
	for _, cs := range [][]v1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range cs {
			if in(cs[i].Resources.Requests) || in(cs[i].Resources.Limits) {
				return true
			}
		}
	}
	return pod.Spec.Resources != nil && (in(pod.Spec.Resources.Requests) || in(pod.Spec.Resources.Limits))
}

func strip(cs []v1.Container, drop func(v1.ResourceName) bool) []v1.Container {
	if cs == nil {
		return nil
	}
	out := make([]v1.Container, len(cs))
	for i := range cs {
		out[i] = cs[i]
		out[i].Resources.Requests = filter(cs[i].Resources.Requests, drop)
		out[i].Resources.Limits = filter(cs[i].Resources.Limits, drop)
	}
	return out
}

func filter(l v1.ResourceList, drop func(v1.ResourceName) bool) v1.ResourceList {
	if l == nil {
		return nil
	}
	out := make(v1.ResourceList, len(l))
	for name, q := range l {
		if !drop(name) {
			out[name] = q
		}
	}
	return out
}

// extendedWants is what pod (without its ignored resources) asks of each
// extended resource, as the stock PreFilter computes it, and whether DRA
// could serve the resource on a node that does not advertise it.
func (p *Plugin) extendedWants(pod *v1.Pod) *extendedState {
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{SkipPodLevelResources: !p.fts.EnablePodLevelResources})
	var resolver fwk.DeviceClassResolver
	if p.fts.EnableDRAExtendedResource && p.handle != nil {
		if m := p.handle.SharedDRAManager(); m != nil {
			resolver = m.DeviceClassResolver()
		}
	}
	s := &extendedState{}
	for name, q := range reqs {
		if !v1helper.IsExtendedResourceName(name) || q.Value() == 0 {
			continue
		}
		w := want{qty: q.Value(), reason: fmt.Sprintf("Insufficient %v", name)}
		w.number, w.name = p.allocatable.number(name)
		w.dra = resolver != nil && resolver.GetDeviceClass(name) != nil
		s.wants = append(s.wants, w)
	}
	return s
}
