//go:build cgo

package discovery

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

var _ Backend = &NVIDIA{}

// NVIDIA discovers GPUs through NVML. It initializes NVML once, in
// NewNVIDIA, and shuts it down in Close; NVML calls are thread-safe, so
// Devices and WatchHealth may run at the same time.
type NVIDIA struct {
	lib       nvml.Interface
	sysfsRoot string
	closeOnce sync.Once
	closeErr  error

	recovery time.Duration
	clock    clock.PassiveClock
	healthMu sync.Mutex
	// failed holds the cards WatchHealth marked unhealthy, since when;
	// it outlives one WatchHealth so that a restarted watcher recovers
	// them.
	failed map[string]time.Time
}

// NewNVIDIA loads libnvidia-ml and initializes NVML. On a node without the
// driver the error wraps ErrNoDriver.
func NewNVIDIA(opts NVIDIAOptions) (*NVIDIA, error) {
	var libOpts []nvml.LibraryOption
	if opts.LibraryPath != "" {
		libOpts = append(libOpts, nvml.WithLibraryPath(opts.LibraryPath))
	}
	return NewNVIDIAFrom(nvml.New(libOpts...), opts)
}

// NewNVIDIAFrom runs the backend on an NVML implementation: go-nvml's
// library, or one of its mock servers (see nvidiatest) in tests.
// opts.LibraryPath is not used.
func NewNVIDIAFrom(lib nvml.Interface, opts NVIDIAOptions) (*NVIDIA, error) {
	if opts.HealthRecovery < 0 {
		return nil, fmt.Errorf("healthRecovery: %v must be >= 0 (0: %v)", opts.HealthRecovery, DefaultHealthRecovery)
	}
	switch ret := lib.Init(); ret {
	case nvml.SUCCESS:
	case nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_DRIVER_NOT_LOADED:
		return nil, fmt.Errorf("%w: initializing NVML: %v", ErrNoDriver, ret)
	default:
		return nil, fmt.Errorf("initializing NVML: %v", ret)
	}
	recovery := opts.HealthRecovery
	if recovery == 0 {
		recovery = DefaultHealthRecovery
	}
	return &NVIDIA{lib: lib, sysfsRoot: opts.SysfsRoot, recovery: recovery, clock: clock.RealClock{}, failed: map[string]time.Time{}}, nil
}

func (n *NVIDIA) Name() string { return "nvidia" }

// Close shuts NVML down; the backend is unusable afterwards.
func (n *NVIDIA) Close() error {
	n.closeOnce.Do(func() {
		if ret := n.lib.Shutdown(); ret != nvml.SUCCESS {
			n.closeErr = fmt.Errorf("shutting NVML down: %v", ret)
		}
	})
	return n.closeErr
}

// nvidiaCard is a discovered card with the handle its links are read from.
type nvidiaCard struct {
	dev    device.Device
	handle nvml.Device
}

// Devices lists the GPUs in NVML index order. A card that answers its UUID
// but fails other basic queries is listed unhealthy; one that cannot even
// be identified is logged and left out, since it cannot be named to the
// scheduler.
func (n *NVIDIA) Devices(ctx context.Context) ([]device.Device, error) {
	count, ret := n.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("counting GPUs: %v", ret)
	}
	log := klog.FromContext(ctx)
	cards := make([]nvidiaCard, 0, count)
	for i := range count {
		h, ret := n.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			log.Error(ret, "Leaving out a GPU that NVML cannot open", "index", i)
			continue
		}
		d, err := n.readDevice(i, h)
		if err != nil {
			log.Error(err, "Leaving out a GPU that NVML cannot identify", "index", i)
			continue
		}
		cards = append(cards, nvidiaCard{dev: d, handle: h})
	}
	addNVIDIALinks(cards)
	devs := make([]device.Device, len(cards))
	for i := range cards {
		devs[i] = cards[i].dev
	}
	return devs, nil
}
