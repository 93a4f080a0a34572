package nri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// Plugin is the NRI plugin: thin around Decide. It implements only the
// events it needs; the stub derives the subscription from its methods.
type Plugin struct {
	cfg    Config
	logger klog.Logger
	stub   stub.Stub

	// OnConnection, when set before Run, is told each time the plugin
	// becomes connected to the runtime (synchronized: the runtime now
	// asks it about every container it creates) and each time that
	// connection is lost. The node agent publishes this, not whether NRI
	// is configured: a configured but unconnected NRI hands out nothing.
	OnConnection func(connected bool)
	// Events, when set before Run, records on a pod why its containers
	// got no card (Decision.Unverified).
	Events events.EventRecorder

	// Pods, when set before Run, finds a pod in the node agent's view of
	// the API server (its informer), nil when it has none. NRI does not
	// pass a container's security context to plugins, so Decide reads it
	// from the pod's spec; without Pods, or while it does not show the
	// pod, every container of a pod that shares a card is refused.
	Pods func(namespace, name string) *corev1.Pod

	mu        sync.Mutex
	connected bool
}

// New connects a plugin to the runtime's NRI socket (empty: the default).
func New(cfg Config, logger klog.Logger, socket string) (*Plugin, error) {
	p := &Plugin{cfg: cfg, logger: logger}
	opts := []stub.Option{stub.WithPluginName("mosaic"), stub.WithPluginIdx("50"),
		// The runtime closing the connection (a restart, NRI
		// switched off) must reach the agent at once, not only when
		// Run returns.
		stub.WithOnClose(func() { p.setConnected(false) })}
	if socket != "" {
		opts = append(opts, stub.WithSocketPath(socket))
	}
	s, err := stub.New(p, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating NRI plugin: %w", err)
	}
	p.stub = s
	return p, nil
}

// Run serves until ctx ends or the runtime closes the connection. The
// plugin counts as disconnected once Run returns, whatever the stub said.
func (p *Plugin) Run(ctx context.Context) error {
	defer p.setConnected(false)
	return p.stub.Run(ctx)
}

// Connected reports whether the runtime has synchronized the plugin and
// not closed the connection since.
func (p *Plugin) Connected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connected
}

// setConnected records the state and tells OnConnection of a change. The
// lock is held across the call so that the changes reach it in order.
func (p *Plugin) setConnected(c bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.connected == c {
		return
	}
	p.connected = c
	p.logger.Info("NRI connection changed", "connected", c)
	if p.OnConnection != nil {
		p.OnConnection(c)
	}
}

// Synchronize is the runtime's last step of registering the plugin: from
// its return on, the runtime calls the plugin for every container it
// creates. The plugin keeps no per-container state, so there is nothing
// to update.
func (p *Plugin) Synchronize(context.Context, []*api.PodSandbox, []*api.Container) ([]*api.ContainerUpdate, error) {
	p.setConnected(true)
	return nil, nil
}

// Stop disconnects from the runtime.
func (p *Plugin) Stop() { p.stub.Stop() }

// CreateContainer gives a device container its cards, limits and
// enforcer, and any other container no card.
func (p *Plugin) CreateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	c := Container{Name: ctr.GetName(), Env: ctr.GetEnv()}
	for _, m := range ctr.GetMounts() {
		c.Mounts = append(c.Mounts, Mount{Host: m.GetSource(), Container: m.GetDestination(), ReadOnly: slices.Contains(m.GetOptions(), "ro")})
	}
	// Only a pod with an allocation can share a card.
	if _, ok := pod.GetAnnotations()[device.AllocationAnnotation]; ok {
		c.Spec = p.containerSpec(ctx, pod, c.Name)
	}
	d, err := Decide(&p.cfg, Pod{UID: pod.GetUid(), Namespace: pod.GetNamespace(), Annotations: pod.GetAnnotations()}, c)
	if err != nil {
		p.logger.Error(err, "Refusing container", "pod", klog.KRef(pod.GetNamespace(), pod.GetName()), "container", ctr.GetName())
		return nil, nil, fmt.Errorf("mosaic: pod %s/%s: %w", pod.GetNamespace(), pod.GetName(), err)
	}
	if d == nil {
		return nil, nil, nil
	}
	if d.Unverified != nil {
		p.logger.Error(d.Unverified, "Container gets no device", "pod", klog.KRef(pod.GetNamespace(), pod.GetName()), "container", ctr.GetName())
		ReportUnverified(p.Events, pod.GetNamespace(), pod.GetName(), types.UID(pod.GetUid()), ctr.GetName(), d.Unverified)
	}
	if err := d.WriteFiles(); err != nil {
		return nil, nil, fmt.Errorf("mosaic: preparing container %s: %w", ctr.GetName(), err)
	}
	p.logger.V(2).Info("Adjusted container", "pod", klog.KRef(pod.GetNamespace(), pod.GetName()), "container", ctr.GetName(), "env", len(d.Env), "mounts", len(d.Mounts))
	return d.Adjustment(), nil, nil
}

// specWait bounds how long CreateContainer waits for the agent's informer
// to show a pod or an ephemeral container the kubelet already saw. It stays
// well inside NRI's request timeout (2 s), past which the runtime drops
// the plugin; a container refused for want of its spec is retried by the
// kubelet.
const specWait = 500 * time.Millisecond

// containerSpec reads the container's settings from its pod's spec, nil
// when the agent's view does not show them.
func (p *Plugin) containerSpec(ctx context.Context, pod *api.PodSandbox, name string) *device.ContainerSettings {
	if p.Pods == nil {
		return nil
	}
	var spec *device.ContainerSettings
	_ = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, specWait, true, func(context.Context) (bool, error) {
		if po := p.Pods(pod.GetNamespace(), pod.GetName()); po != nil && string(po.UID) == pod.GetUid() {
			if s, ok := device.ContainerSpecSettings(po, name); ok {
				spec = &s
			}
		}
		return spec != nil, nil
	})
	return spec
}

// RemovePodSandbox removes the pod's state on the host.
func (p *Plugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	if uid := pod.GetUid(); uid != "" && p.cfg.StateDir != "" {
		return os.RemoveAll(ContainerStateDir(p.cfg.StateDir, uid))
	}
	return nil
}

// WriteFiles creates the decision's host directories and files.
func (d *Decision) WriteFiles() error {
	for _, dir := range d.Dirs {
		// World-writable: the container's processes, whatever their user,
		// share one accounting file here.
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return err
		}
		if err := os.Chmod(dir, 0o1777); err != nil {
			return err
		}
	}
	for path, content := range d.Files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o444); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return nil
}

// Adjustment renders the decision in NRI's terms, in a stable order.
func (d *Decision) Adjustment() *api.ContainerAdjustment {
	a := &api.ContainerAdjustment{}
	keys := make([]string, 0, len(d.Env))
	for k := range d.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a.AddEnv(k, d.Env[k])
	}
	for _, m := range d.Mounts {
		opts := []string{"rbind", "rw"}
		if m.ReadOnly {
			opts = []string{"rbind", "ro"}
		}
		a.AddMount(&api.Mount{Source: m.Host, Destination: m.Container, Type: "bind", Options: opts})
	}
	for _, m := range slices.Sorted(slices.Values(d.RemoveMounts)) {
		a.RemoveMount(m)
	}
	return a
}
