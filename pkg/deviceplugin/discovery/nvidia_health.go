//go:build cgo

package discovery

import (
	"context"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"
)

// healthWaitMs bounds one wait for an NVML event, so a cancelled context
// ends WatchHealth within about a second.
const healthWaitMs = 1000

// WatchHealth reports cards that turn unhealthy until ctx is done: a
// critical XID event other than an application's (see applicationXIDs)
// marks its card unhealthy, an XID event that names no card marks them
// all. NVML has no event for a recovery, so healthy is reported true only
// by a later Devices call; a reset card comes back with the agent's next
// discovery. Cards that do not support XID events are not watched.
// It returns nil when ctx is done, or the error that stopped it.
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
		mask, ret := h.GetSupportedEventTypes()
		if ret == nvml.SUCCESS {
			if mask&nvml.EventTypeXidCriticalError == 0 {
				ret = nvml.ERROR_NOT_SUPPORTED
			} else {
				ret = h.RegisterEvents(nvml.EventTypeXidCriticalError, set)
			}
		}
		switch ret {
		case nvml.SUCCESS:
		case nvml.ERROR_NOT_SUPPORTED:
			log.Info("GPU does not report XID events; its health is not watched", "uuid", uuid)
		default:
			// A card that cannot even register for events is not to be trusted.
			log.Error(ret, "Registering for XID events; marking the GPU unhealthy", "uuid", uuid)
			report(uuid, false)
		}
	}

	for ctx.Err() == nil {
		e, ret := set.Wait(healthWaitMs)
		if ret == nvml.ERROR_TIMEOUT {
			continue
		}
		if ret != nvml.SUCCESS {
			for _, uuid := range watched {
				report(uuid, false)
			}
			return fmt.Errorf("waiting for NVML events: %v", ret)
		}
		if e.EventType != nvml.EventTypeXidCriticalError || !xidIsFatal(e.EventData) {
			continue
		}
		uuid := ""
		if e.Device != nil {
			uuid, _ = e.Device.GetUUID()
		}
		if uuid == "" {
			log.Info("XID event without a GPU; marking all GPUs unhealthy", "xid", e.EventData)
			for _, u := range watched {
				report(u, false)
			}
			continue
		}
		log.Info("XID event; marking the GPU unhealthy", "uuid", uuid, "xid", e.EventData)
		report(uuid, false)
	}
	return nil
}
