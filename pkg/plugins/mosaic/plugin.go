// Package mosaic is the scheduler plugin that places fractional GPUs and
// NPUs. It is a thin adapter: pkg/device parses requests and encodes the
// allocation, pkg/placement decides, and this package keeps the node state
// and speaks the framework's extension points.
package mosaic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/cache"
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
const Name = "Mosaic"

// Mosaic places vGPU requests on nodes' cards.
type Mosaic struct {
	handle    fwk.Handle
	args      config.MosaicArgs
	parseOpts device.ParseOptions
	placeOpts placement.Options
	cache     *usageCache
	synced    []cache.InformerSynced
	// key signs allocations; nil when allocationKeyFile is unset.
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
		handle: h,
		args:   *args,
		parseOpts: device.ParseOptions{
			DefaultMemoryMiB: args.DefaultMemoryMiB,
			DefaultCores:     args.DefaultCores,
			AscendModels:     args.AscendModels,
		},
		placeOpts: placement.Options{GPUPolicy: args.GPUPolicy, NUMA: placement.NUMAPolicy(args.NUMAPolicy)},
	}
	if args.AllocationKeyFile != "" {
		if p.key, err = device.LoadKey(args.AllocationKeyFile); err != nil {
			return nil, fmt.Errorf("%s args allocationKeyFile: %w", Name, err)
		}
	}
	shared, err := cacheFor(ctx, h.SharedInformerFactory(), h.ProfileName(), args.NodeDefaults())
	if err != nil {
		return nil, err
	}
	p.cache, p.synced = shared.cache, shared.synced
	return p, nil
}

// decodeArgs accepts the args as the scheduler hands them to out-of-tree
// plugins (raw JSON) and rejects unknown fields, so that a typo in the
// config fails the start instead of being silently ignored.
func decodeArgs(obj runtime.Object) (*config.MosaicArgs, error) {
	args := &config.MosaicArgs{}
	switch o := obj.(type) {
	case nil:
	case *runtime.Unknown:
		if len(o.Raw) > 0 {
			dec := json.NewDecoder(bytes.NewReader(o.Raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(args); err != nil {
				return nil, fmt.Errorf("%s args: %w", Name, err)
			}
		}
	case *config.MosaicArgs:
		*args = *o
	default:
		return nil, fmt.Errorf("want args to be of type MosaicArgs, got %T", obj)
	}
	config.SetDefaultsMosaicArgs(args)
	if err := config.ValidateMosaicArgs(field.NewPath("pluginConfig", Name, "args"), args); err != nil {
		return nil, err
	}
	return args, nil
}

// Name returns the plugin's name.
func (p *Mosaic) Name() string { return Name }
