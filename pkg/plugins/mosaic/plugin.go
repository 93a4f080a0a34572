// Package mosaic is the scheduler plugin that places fractional GPUs and
// NPUs. It is a thin adapter: pkg/device parses requests and encodes the
// allocation, pkg/placement decides, and this package keeps the node state
// and speaks the framework's extension points.
package mosaic

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/apis/config"
	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

var (
	_ fwk.PreFilterPlugin     = &Mosaic{}
	_ fwk.FilterPlugin        = &Mosaic{}
	_ fwk.PreScorePlugin      = &Mosaic{}
	_ fwk.ScorePlugin         = &Mosaic{}
	_ fwk.ReservePlugin       = &Mosaic{}
	_ fwk.BindPlugin          = &Mosaic{}
	_ fwk.EnqueueExtensions   = &Mosaic{}
	_ fwk.PreFilterExtensions = &Mosaic{}
	_ fwk.SignPlugin          = &Mosaic{}
)

// Name is the plugin's name in KubeSchedulerConfiguration.
const Name = config.PluginName

// Mosaic places vGPU requests on nodes' cards.
type Mosaic struct {
	handle    fwk.Handle
	args      config.MosaicArgs
	parseOpts device.ParseOptions
	placeOpts placement.Options
	cache     *usageCache
	synced    []cache.InformerSynced
	// key signs allocations; nil only with unsignedAllocations.
	key []byte
}

// New builds the plugin from its args and joins the scheduler's device
// cache, fed by the scheduler's shared informers (which the scheduler
// starts); the first profile that enables Mosaic creates it (shared.go).
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := decodeArgs(obj)
	if err != nil {
		return nil, err
	}
	p := &Mosaic{
		handle:    h,
		args:      *args,
		parseOpts: args.ParseOptions(),
		placeOpts: placement.Options{GPUPolicy: args.GPUPolicy, NUMA: placement.NUMAPolicy(args.NUMAPolicy)},
	}
	// A missing key stops the start: it must not quietly turn signing
	// off, since node agents then give signed pods no card.
	if !args.UnsignedAllocations {
		if p.key, err = device.LoadKey(args.AllocationKeyFile); err != nil {
			return nil, fmt.Errorf("pluginConfig.%s.args.allocationKeyFile: %w (mount the mosaic-allocation-key Secret, see docs/security.md, or set unsignedAllocations: true)", Name, err)
		}
		klog.FromContext(ctx).Info("Signing allocations", "allocationKeyFile", args.AllocationKeyFile)
	} else {
		klog.FromContext(ctx).Info("Allocations are not signed (unsignedAllocations): node agents that check signatures give these pods no card")
	}
	shared, err := cacheFor(ctx, h.SharedInformerFactory(), h.ProfileName(), args.NodeDefaults())
	if err != nil {
		return nil, err
	}
	p.cache, p.synced = shared.cache, shared.synced
	p.cache.waker.setActivator(h)
	shared.join(h.ProfileName(), p.parseOpts)
	registerAll()
	return p, nil
}

// decodeArgs reads the args as the admission webhook does.
func decodeArgs(obj runtime.Object) (*config.MosaicArgs, error) { return config.DecodeMosaicArgs(obj) }

// Name returns the plugin's name.
func (p *Mosaic) Name() string { return Name }
