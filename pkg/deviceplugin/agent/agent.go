// Package agent is Mosaic's node agent: it discovers the node's cards,
// publishes them for the scheduler, serves the kubelet device plugin API,
// and hands containers their cards through NRI.
package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/inventory"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/kubelet"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
)

// Options configure the agent; cmd/device-plugin fills them from flags.
type Options struct {
	NodeName string
	Client   kubernetes.Interface
	Backend  discovery.Backend
	// Sharing is the node config when no ConfigMap is used.
	Sharing device.NodeConfig
	// ConfigMap, "namespace/name", holds a SharingConfig; empty: none.
	ConfigMap string
	// KubeletDir is the kubelet's device-plugins directory.
	KubeletDir string
	// NRISocket is the runtime's NRI socket; NRI is off when empty.
	NRISocket string
	NRI       nri.Config
	// Refresh is how often cards and config are read again.
	Refresh time.Duration
}

// Agent runs the node's parts until its context ends.
type Agent struct {
	opts      Options
	logger    klog.Logger
	publisher *inventory.Publisher

	pods      func() []*corev1.Pod
	podLister corev1listers.PodLister
	informers informers.SharedInformerFactory
	handout   *handout
	// nriConnected is whether the NRI plugin is connected to the runtime
	// now. It, not whether NRI is configured, decides both what the
	// inventory says and who hands out the cards in Allocate.
	nriConnected atomic.Bool
	// nriWasUp is set on each connection, and cleared by runNRI when it
	// lost one, to reset the backoff.
	nriWasUp atomic.Bool

	// refreshing serializes refresh, which the ticker and health changes
	// both run.
	refreshing sync.Mutex

	// buses holds the cards' PCI bus IDs, by which the NRI decision
	// orders a container's cards (nri.Config.Buses).
	buses *cardBuses

	mu        sync.Mutex
	onPublish []func([]device.Device, device.NodeConfig)
	unhealthy map[string]bool
	servers   map[string]*kubelet.Server
	serverCtx context.Context
}

// New checks the options.
func New(opts Options, logger klog.Logger) (*Agent, error) {
	if opts.NodeName == "" {
		return nil, errors.New("node name is required (--node-name or NODE_NAME)")
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 30 * time.Second
	}
	opts.NRI.NodeName = opts.NodeName
	buses := &cardBuses{}
	opts.NRI.Buses = buses
	a := &Agent{
		opts:      opts,
		logger:    logger,
		buses:     buses,
		unhealthy: map[string]bool{},
		servers:   map[string]*kubelet.Server{},
		publisher: &inventory.Publisher{Client: opts.Client, NodeName: opts.NodeName, Backend: opts.Backend},
	}
	// The pods bound to this node: for metrics, and for handing out
	// devices in Allocate when NRI is off or not connected.
	a.informers = informers.NewSharedInformerFactoryWithOptions(opts.Client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", opts.NodeName).String()
	}))
	lister := a.informers.Core().V1().Pods().Lister()
	a.podLister = lister
	a.pods = func() []*corev1.Pod {
		pods, _ := lister.List(labels.Everything())
		return pods
	}
	// Even with an NRI socket configured: until the plugin is connected,
	// and whenever the connection drops, Allocate hands out the cards, so
	// that no device container starts with its image's selection.
	a.handout = &handout{node: opts.NodeName, client: opts.Client, pods: a.pods, cfg: &a.opts.NRI, logger: logger.WithName("handout"), wait: 10 * time.Second, done: map[types.UID]int{}, labelled: map[types.UID]bool{}}
	return a, nil
}

// EventsController is the reporting controller of the agent's events.
const EventsController = "mosaic-device-plugin"

// Pods lists the pods bound to this node, from the agent's informer.
func (a *Agent) Pods() []*corev1.Pod { return a.pods() }

// pod finds a pod bound to this node in the agent's informer.
func (a *Agent) pod(namespace, name string) *corev1.Pod {
	p, err := a.podLister.Pods(namespace).Get(name)
	if err != nil {
		return nil
	}
	return p
}

// Run serves until ctx ends. A node without a driver runs with no devices
// and says so; it does not crash-loop.
func (a *Agent) Run(ctx context.Context) error {
	a.serverCtx = ctx
	// Events tell a pod's owner why its containers got no card.
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: a.opts.Client.EventsV1()})
	if err := broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
		return err
	}
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, EventsController)
	a.handout.events = recorder
	a.informers.Start(ctx.Done())
	a.informers.WaitForCacheSync(ctx.Done())
	// Cards first: the NRI decision orders a container's cards by the
	// bus IDs discovery found.
	a.refresh(ctx)
	if a.opts.NRISocket != "" {
		p, err := nri.New(a.opts.NRI, a.logger.WithName("nri"), a.opts.NRISocket)
		if err != nil {
			return err
		}
		p.Events = recorder
		p.OnConnection = func(connected bool) { a.nriChanged(ctx, connected) }
		p.Pods = a.pod
		go a.runNRI(ctx, p)
	} else {
		a.logger.Info("NRI is off: the kubelet's Allocate hands out devices, and the scheduler sends this node one device pod at a time")
	}
	if w, ok := a.opts.Backend.(healthWatcher); ok {
		go a.watchHealth(ctx, w)
	}
	t := time.NewTicker(a.opts.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		a.refresh(ctx)
	}
}

// OnPublish registers f to receive the cards and config at each refresh.
func (a *Agent) OnPublish(f func([]device.Device, device.NodeConfig)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onPublish = append(a.onPublish, f)
}

// runNRI keeps the NRI connection up across runtime restarts, retrying
// with a backoff while the runtime does not listen (containerd 1.7 with
// NRI off never does); a connection that was up retries at once.
func (a *Agent) runNRI(ctx context.Context, p *nri.Plugin) {
	backoff := nriRetryMin
	for ctx.Err() == nil {
		err := p.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		if a.nriWasUp.Swap(false) {
			backoff = nriRetryMin
		}
		a.logger.Error(err, "NRI not connected; Allocate hands out the cards meanwhile", "retryIn", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, nriRetryMax)
	}
}

// The NRI reconnection backoff.
const (
	nriRetryMin = 500 * time.Millisecond
	nriRetryMax = 10 * time.Second
)

// nriChanged is the NRI plugin's OnConnection. The inventory is
// republished at once: while NRI is down the scheduler must send this
// node one device pod at a time, since Allocate now identifies the pod.
func (a *Agent) nriChanged(ctx context.Context, connected bool) {
	a.nriConnected.Store(connected)
	if connected {
		a.nriWasUp.Store(true)
	}
	// Not inline: the plugin calls this under its lock, from the
	// connection's goroutine, and a refresh talks to the API server.
	// Each change starts a refresh after the Store, and refresh reads
	// the state under its lock, so the last one publishes the latest.
	go a.refresh(ctx)
}

// allocate is the kubelet servers' Handout: the NRI plugin hands out the
// cards while it is connected; otherwise the agent does it here, as on a
// runtime without NRI.
func (a *Agent) allocate(ctx context.Context, resource string, ids []string) (*pluginapi.ContainerAllocateResponse, error) {
	if a.nriConnected.Load() {
		return kubelet.MarkOnly(resource), nil
	}
	return a.handout.Allocate(ctx, resource, ids)
}

func (a *Agent) setHealth(uuid string, healthy bool) {
	a.mu.Lock()
	changed := a.unhealthy[uuid] == healthy
	if healthy {
		delete(a.unhealthy, uuid)
	} else {
		a.unhealthy[uuid] = true
	}
	a.mu.Unlock()
	if changed {
		a.logger.Info("Card health changed", "uuid", uuid, "healthy", healthy)
		a.refresh(a.serverCtx)
	}
}

// refresh reads cards and config, publishes the inventory and updates the
// kubelet servers.
func (a *Agent) refresh(ctx context.Context) {
	a.refreshing.Lock()
	defer a.refreshing.Unlock()
	cfg, err := a.sharing(ctx)
	switch {
	case err == nil:
	case a.publisher.Config != (device.NodeConfig{}):
		a.logger.Error(err, "Reading the sharing config; keeping the last one")
		cfg = a.publisher.Config
	default:
		a.logger.Error(err, "Reading the sharing config; using the flags until it can be read")
		cfg = a.opts.Sharing
	}
	// What the kubelet is told and what the scheduler reads are one
	// config, complete: the scheduler's own defaults never decide how
	// many shares of this node's cards it places.
	cfg = cfg.Merge(device.DefaultNodeConfig())
	a.publisher.Config = cfg
	a.publisher.NRI = a.nriConnected.Load()
	devs, err := a.opts.Backend.Devices(ctx)
	if errors.Is(err, discovery.ErrNoDriver) {
		a.logger.Info("No device driver on this node; running with no devices", "backend", a.opts.Backend.Name(), "err", err)
		devs, err = nil, nil
	}
	if err != nil {
		a.logger.Error(err, "Discovering devices")
		return
	}
	a.buses.set(devs)
	a.mu.Lock()
	for i := range devs {
		if a.unhealthy[devs[i].UUID] {
			devs[i].Healthy = false
		}
	}
	a.mu.Unlock()
	if err := a.publisher.PublishDevices(ctx, devs); err != nil {
		a.logger.Error(err, "Publishing the inventory")
	}
	a.mu.Lock()
	hooks := a.onPublish
	a.mu.Unlock()
	for _, f := range hooks {
		f(devs, cfg)
	}
	a.serve(ctx, devs, cfg)
}

// serve gives each resource name its kubelet server.
func (a *Agent) serve(ctx context.Context, devs []device.Device, cfg device.NodeConfig) {
	byResource := map[string][]device.Device{}
	for _, d := range devs {
		byResource[kubelet.ResourceName(&d)] = append(byResource[kubelet.ResourceName(&d)], d)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for res, cards := range byResource {
		s := a.servers[res]
		if s == nil {
			s = kubelet.NewServer(res, a.opts.KubeletDir, a.logger)
			s.Handout = a.allocate
			a.servers[res] = s
			go func() {
				if err := s.Run(ctx); err != nil {
					a.logger.Error(err, "Device plugin server stopped", "resource", res)
				}
			}()
		}
		s.SetDevices(kubelet.Shares(cards, cfg))
	}
	for res, s := range a.servers {
		if _, ok := byResource[res]; !ok {
			s.SetDevices(nil)
		}
	}
}

func (a *Agent) sharing(ctx context.Context) (device.NodeConfig, error) {
	if a.opts.ConfigMap == "" {
		return a.opts.Sharing, nil
	}
	ns, name, err := cache.SplitMetaNamespaceKey(a.opts.ConfigMap)
	if err != nil || ns == "" || name == "" {
		return device.NodeConfig{}, fmt.Errorf("--config-map %q: want NAMESPACE/NAME", a.opts.ConfigMap)
	}
	cm, err := a.opts.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return a.opts.Sharing, nil
	}
	if err != nil {
		return device.NodeConfig{}, err
	}
	return sharingFrom(cm, a.opts.NodeName, a.opts.Sharing)
}

func sharingFrom(cm *corev1.ConfigMap, node string, flags device.NodeConfig) (device.NodeConfig, error) {
	sc, err := ParseSharingConfig([]byte(cm.Data[ConfigKey]))
	if err != nil {
		return device.NodeConfig{}, fmt.Errorf("configmap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return sc.For(node).Merge(flags), nil
}

// cardBuses is nri.Buses over the cards discovery last found. A card
// keeps its bus ID while it is in the node, so a container created between
// two refreshes is ordered as one created after.
type cardBuses struct {
	mu     sync.RWMutex
	byUUID device.PCIBuses
}

func (b *cardBuses) set(devs []device.Device) {
	m := device.BusesOf(devs)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.byUUID = m
}

// PCIBus implements nri.Buses.
func (b *cardBuses) PCIBus(uuid string) (string, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.byUUID.PCIBus(uuid)
}
