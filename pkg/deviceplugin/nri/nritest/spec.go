package nritest

import (
	"context"
	"slices"
	"strings"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/runtime-tools/generate"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
)

// CreateContainerSpec creates ctr as CreateContainer does and returns what
// the container would start with: its own environment and mounts (from the
// image and the pod spec) with the plugins' adjustment applied by NRI's
// spec generator, the code containerd applies adjustments with.
func (rt *Runtime) CreateContainerSpec(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) (*rspec.Spec, *api.ContainerAdjustment, error) {
	// The adaptation rewrites ctr as later plugins should see it; the
	// runtime's spec is what it was before.
	spec := &rspec.Spec{Process: &rspec.Process{Env: slices.Clone(ctr.GetEnv())}}
	for _, m := range ctr.GetMounts() {
		spec.Mounts = append(spec.Mounts, rspec.Mount{Destination: m.GetDestination(), Source: m.GetSource(), Type: m.GetType(), Options: m.GetOptions()})
	}
	adj, err := rt.CreateContainer(ctx, pod, ctr)
	if err != nil {
		return nil, nil, err
	}
	g := generate.SpecGenerator(&specEditor{spec: spec})
	g.AdjustEnv(adj.GetEnv())
	if err := g.AdjustMounts(adj.GetMounts()); err != nil {
		return nil, nil, err
	}
	return spec, adj, nil
}

// specEditor edits a bare spec's environment and mounts, the part of an
// OCI spec generator that NRI's AdjustEnv and AdjustMounts use. The
// embedded interface is nil: any other method panics.
type specEditor struct {
	generate.UnderlyingGenerator
	spec *rspec.Spec
}

func (e *specEditor) Spec() *rspec.Spec { return e.spec }

func (e *specEditor) ClearProcessEnv() { e.spec.Process.Env = nil }

// AddProcessEnv replaces name's value or appends it, as runtime-tools does.
func (e *specEditor) AddProcessEnv(name, value string) {
	kv := name + "=" + value
	for i, old := range e.spec.Process.Env {
		if strings.HasPrefix(old, name+"=") {
			e.spec.Process.Env[i] = kv
			return
		}
	}
	e.spec.Process.Env = append(e.spec.Process.Env, kv)
}

func (e *specEditor) Mounts() []rspec.Mount { return slices.Clone(e.spec.Mounts) }

func (e *specEditor) ClearMounts() { e.spec.Mounts = nil }

func (e *specEditor) AddMount(m rspec.Mount) { e.spec.Mounts = append(e.spec.Mounts, m) }

func (e *specEditor) RemoveMount(dest string) {
	e.spec.Mounts = slices.DeleteFunc(e.spec.Mounts, func(m rspec.Mount) bool { return m.Destination == dest })
}

// Env returns a spec's environment as a map.
func Env(spec *rspec.Spec) map[string]string {
	env := map[string]string{}
	for _, kv := range spec.Process.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}
