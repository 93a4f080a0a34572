//go:build cgo

package discovery

import (
	"context"
	"errors"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"
)

// healthWaitMs bounds one wait for an NVML event, so a cancelled context
// ends WatchHealth within about a second, and a card due to recover is
// probed within about a second of its window's end.
const healthWaitMs = 1000

// WatchHealth reports card health until ctx is done.
//
// A critical XID event other than an application's (see applicationXIDs)
// marks its card unhealthy; one that names no card marks them all, since
// NVML cannot tell which failed. So does a card's failing to register for
// XID events. A card so marked is reported healthy again once it has gone
// a recovery window (NVIDIAOptions.HealthRecovery) without another
// critical XID and then passes a probe (see probeCard); a failed probe
// starts the window again. Cards that do not support XID events are not
// watched; their health comes from Devices alone.
//
// It returns nil when ctx is done, or the error that stopped it. An error
// of the event wait itself says nothing about the cards and marks none;
// the caller runs WatchHealth again, and the marked cards, kept by the
// backend, go on to recover.
func (n *NVIDIA) WatchHealth(ctx context.Context, report func(uuid string, healthy bool)) error {
	log := klog.FromContext(ctx)
	set, ret := n.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("creating an NVML event set: %v", ret)
	}
	defer set.Free()

	count, ret := n.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("counting GPUs: %v", ret)
	}
	var watched []string
	unregistered := map[string]bool{}
	for i := range count {
		h, ret := n.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue // Devices leaves it out too
		}
		uuid, ret := h.GetUUID()
		if ret != nvml.SUCCESS {
			continue
		}
		watched = append(watched, uuid)
		switch err := registerXIDs(h, set); {
		case err == nil:
		case errors.Is(err, nvml.ERROR_NOT_SUPPORTED):
			log.Info("GPU does not report XID events; its health is not watched", "uuid", uuid)
		default:
			// A card that cannot even register for events is not to be trusted.
			log.Error(err, "Registering for XID events; marking the GPU unhealthy", "uuid", uuid)
			unregistered[uuid] = true
			n.markFailed(uuid, report)
		}
	}

	for ctx.Err() == nil {
		e, ret := set.Wait(healthWaitMs)
		switch {
		case ret == nvml.ERROR_TIMEOUT:
		case ret != nvml.SUCCESS:
			return fmt.Errorf("waiting for NVML events: %v", ret)
		case e.EventType != nvml.EventTypeXidCriticalError || !xidIsFatal(e.EventData):
		default:
			uuid := ""
			if e.Device != nil {
				uuid, _ = e.Device.GetUUID()
			}
			if uuid == "" {
				log.Info("XID event without a GPU; marking all GPUs unhealthy", "xid", e.EventData)
				for _, u := range watched {
					n.markFailed(u, report)
				}
				break
			}
			log.Info("XID event; marking the GPU unhealthy", "uuid", uuid, "xid", e.EventData)
			n.markFailed(uuid, report)
		}
		n.probeDue(ctx, set, unregistered, report)
	}
	return nil
}

// registerXIDs registers h for critical XID events on set.
func registerXIDs(h nvml.Device, set nvml.EventSet) error {
	mask, ret := h.GetSupportedEventTypes()
	if ret == nvml.SUCCESS {
		if mask&nvml.EventTypeXidCriticalError == 0 {
			ret = nvml.ERROR_NOT_SUPPORTED
		} else {
			ret = h.RegisterEvents(nvml.EventTypeXidCriticalError, set)
		}
	}
	if ret != nvml.SUCCESS {
		return ret
	}
	return nil
}

// markFailed marks a card unhealthy and starts its recovery window again.
func (n *NVIDIA) markFailed(uuid string, report func(string, bool)) {
	n.healthMu.Lock()
	n.failed[uuid] = n.clock.Now()
	n.healthMu.Unlock()
	report(uuid, false)
}

// probeDue probes the marked cards whose window has passed and reports
// those that pass healthy. A card that could not register for events must
// register now to pass.
func (n *NVIDIA) probeDue(ctx context.Context, set nvml.EventSet, unregistered map[string]bool, report func(string, bool)) {
	n.healthMu.Lock()
	var due []string
	for uuid, since := range n.failed {
		if n.clock.Since(since) >= n.recovery {
			due = append(due, uuid)
		}
	}
	n.healthMu.Unlock()
	for _, uuid := range due {
		h, err := n.probeCard(uuid)
		if err == nil && unregistered[uuid] {
			err = registerXIDs(h, set)
		}
		n.healthMu.Lock()
		if err != nil {
			n.failed[uuid] = n.clock.Now()
		} else {
			delete(n.failed, uuid)
			delete(unregistered, uuid)
		}
		n.healthMu.Unlock()
		if err != nil {
			klog.FromContext(ctx).V(2).Info("GPU still unhealthy", "uuid", uuid, "err", err)
			continue
		}
		klog.FromContext(ctx).Info("GPU passed its health probe; marking it healthy", "uuid", uuid)
		report(uuid, true)
	}
}

// probeCard tells whether a card answers NVML and reports no memory fault
// that only a reset clears, and returns its handle: it opens the card
// afresh by UUID, reads its memory info, and requires no pending or failed
// row remapping and no pending page retirement where the card reports
// them.
func (n *NVIDIA) probeCard(uuid string) (nvml.Device, error) {
	h, ret := n.lib.DeviceGetHandleByUUID(uuid)
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("opening the GPU: %v", ret)
	}
	if _, ret := h.GetMemoryInfo(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("reading its memory info: %v", ret)
	}
	switch _, _, pending, failed, ret := h.GetRemappedRows(); {
	case ret == nvml.SUCCESS && (pending || failed):
		return nil, errors.New("a row remapping is pending or has failed: the GPU needs a reset")
	case ret != nvml.SUCCESS && ret != nvml.ERROR_NOT_SUPPORTED:
		return nil, fmt.Errorf("reading its remapped rows: %v", ret)
	}
	switch pending, ret := h.GetRetiredPagesPendingStatus(); {
	case ret == nvml.SUCCESS && pending == nvml.FEATURE_ENABLED:
		return nil, errors.New("a page retirement is pending: the GPU needs a reset")
	case ret != nvml.SUCCESS && ret != nvml.ERROR_NOT_SUPPORTED:
		return nil, fmt.Errorf("reading its pending page retirements: %v", ret)
	}
	return h, nil
}
