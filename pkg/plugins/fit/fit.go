// Package fit is the stock NodeResourcesFit plugin, with the resources its
// arguments ignore dropped once per pod instead of tested on every node.
//
// The stock Filter walks every extended resource of the pod on every node
// and validates its name (a regular expression) before it looks the name up
// among the ignored ones. A device pod carries two or three extended
// resources that Mosaic places card by card and the shipped profiles
// ignore (nvidia.com/gpumem, nvidia.com/gpucores, ...): at 1,000 nodes that
// validation was a quarter of the scheduler's CPU. This plugin takes the
// same arguments, computes its PreFilter state from the pod without those
// resources, and is otherwise the stock plugin: Filter, Score, queueing
// hints and signatures are upstream's, and a pod whose resources it does
// not ignore is not copied.
package fit

import (
	"context"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
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

// Plugin is NodeResourcesFit under its own name, with its own PreFilter.
type Plugin struct {
	*noderesources.Fit
	ignored       sets.Set[string]
	ignoredGroups sets.Set[string]
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
	pl, err := noderesources.NewFit(ctx, args, h, feature.NewSchedulerFeaturesFromGates(utilfeature.DefaultFeatureGate))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	return &Plugin{
		Fit:           pl.(*noderesources.Fit),
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

// PreFilter computes the stock plugin's state for the pod without the
// extended resources the arguments ignore: the stock Filter would skip
// them on every node after validating their names.
func (p *Plugin) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	return p.Fit.PreFilter(ctx, state, p.withoutIgnored(pod), nodes)
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
	if (p.ignored.Len() == 0 && p.ignoredGroups.Len() == 0) || !p.anyIgnored(pod) {
		return pod
	}
	out := *pod
	out.Spec.Containers = p.strip(pod.Spec.Containers)
	out.Spec.InitContainers = p.strip(pod.Spec.InitContainers)
	if pod.Spec.Resources != nil {
		r := *pod.Spec.Resources
		r.Requests, r.Limits = p.filter(r.Requests), p.filter(r.Limits)
		out.Spec.Resources = &r
	}
	return &out
}

func (p *Plugin) anyIgnored(pod *v1.Pod) bool {
	in := func(l v1.ResourceList) bool {
		for name := range l {
			if p.ignores(name) {
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

func (p *Plugin) strip(cs []v1.Container) []v1.Container {
	if cs == nil {
		return nil
	}
	out := make([]v1.Container, len(cs))
	for i := range cs {
		out[i] = cs[i]
		out[i].Resources.Requests = p.filter(cs[i].Resources.Requests)
		out[i].Resources.Limits = p.filter(cs[i].Resources.Limits)
	}
	return out
}

func (p *Plugin) filter(l v1.ResourceList) v1.ResourceList {
	if l == nil {
		return nil
	}
	out := make(v1.ResourceList, len(l))
	for name, q := range l {
		if !p.ignores(name) {
			out[name] = q
		}
	}
	return out
}
