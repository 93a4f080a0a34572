// Package agent is Mosaic's node agent: it discovers the node's cards,
// publishes them for the scheduler, serves the kubelet device plugin API,
// and hands containers their cards through NRI.
package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

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
	informers informers.SharedInformerFactory
	handout   *handout

	// refreshing serializes refresh, which the ticker and health changes
	// both run.
	refreshing sync.Mutex

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
	a := &Agent{
		opts:      opts,
		logger:    logger,
		unhealthy: map[string]bool{},
		servers:   map[string]*kubelet.Server{},
		publisher: &inventory.Publisher{Client: opts.Client, NodeName: opts.NodeName, Backend: opts.Backend, NRI: opts.NRISocket != ""},
	}
	// The pods bound to this node: for metrics, and for handing out
	// devices in Allocate when the runtime has no NRI.
	a.informers = informers.NewSharedInformerFactoryWithOptions(opts.Client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", opts.NodeName).String()
	}))
	lister := a.informers.Core().V1().Pods().Lister()
	a.pods = func() []*corev1.Pod {
		pods, _ := lister.List(labels.Everything())
		return pods
	}
	if opts.NRISocket == "" {
		a.handout = &handout{node: opts.NodeName, client: opts.Client, pods: a.pods, cfg: &a.opts.NRI, logger: logger.WithName("handout"), wait: 10 * time.Second, done: map[types.UID]int{}, labelled: map[types.UID]bool{}}
	}
	return a, nil
}

// Pods lists the pods bound to this node, from the agent's informer.
func (a *Agent) Pods() []*corev1.Pod { return a.pods() }

// Run serves until ctx ends. A node without a driver runs with no devices
// and says so; it does not crash-loop.
func (a *Agent) Run(ctx context.Context) error {
	a.serverCtx = ctx
	a.informers.Start(ctx.Done())
	a.informers.WaitForCacheSync(ctx.Done())
	if a.opts.NRISocket != "" {
		p, err := nri.New(a.opts.NRI, a.logger.WithName("nri"), a.opts.NRISocket)
		if err != nil {
			return err
		}
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
		a.refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// OnPublish registers f to receive the cards and config at each refresh.
func (a *Agent) OnPublish(f func([]device.Device, device.NodeConfig)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onPublish = append(a.onPublish, f)
}

// runNRI keeps the NRI connection up across runtime restarts.
func (a *Agent) runNRI(ctx context.Context, p *nri.Plugin) {
	for ctx.Err() == nil {
		if err := p.Run(ctx); err != nil && ctx.Err() == nil {
			a.logger.Error(err, "NRI connection closed; reconnecting")
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
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
	if err != nil {
		a.logger.Error(err, "Reading the sharing config; keeping the last one")
		cfg = a.publisher.Config
	}
	a.publisher.Config = cfg
	devs, err := a.opts.Backend.Devices(ctx)
	if errors.Is(err, discovery.ErrNoDriver) {
		a.logger.Info("No device driver on this node; running with no devices", "backend", a.opts.Backend.Name(), "err", err)
		devs, err = nil, nil
	}
	if err != nil {
		a.logger.Error(err, "Discovering devices")
		return
	}
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
	a.serve(ctx, devs, cfg.SplitCount)
}

// serve gives each resource name its kubelet server.
func (a *Agent) serve(ctx context.Context, devs []device.Device, split int) {
	if split == 0 {
		split = defaultSplit
	}
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
			if a.handout != nil {
				s.Handout = a.handout.Allocate
			}
			a.servers[res] = s
			go func() {
				if err := s.Run(ctx); err != nil {
					a.logger.Error(err, "Device plugin server stopped", "resource", res)
				}
			}()
		}
		s.SetDevices(kubelet.Shares(cards, split))
	}
	for res, s := range a.servers {
		if _, ok := byResource[res]; !ok {
			s.SetDevices(nil)
		}
	}
}

// defaultSplit matches the scheduler's default deviceSplitCount.
const defaultSplit = 10

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
