//go:build cgo

package discovery

import (
	"context"
	"fmt"
	"math"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

var _ TelemetrySource = &NVIDIA{}

// Telemetry reads every card's utilization, memory in use, power and
// temperature. A card whose handle or UUID cannot be read is left out; a
// query a card does not support leaves its value NaN.
func (n *NVIDIA) Telemetry(ctx context.Context) ([]Telemetry, error) {
	count, ret := n.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("counting devices: %v", ret)
	}
	out := make([]Telemetry, 0, count)
	for i := range count {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		h, ret := n.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue
		}
		uuid, ret := h.GetUUID()
		if ret != nvml.SUCCESS {
			continue
		}
		t := Telemetry{UUID: uuid, Utilization: math.NaN(), MemoryUtilization: math.NaN(), MemoryUsedBytes: math.NaN(),
			PowerWatts: math.NaN(), TemperatureCelsius: math.NaN()}
		if u, ret := h.GetUtilizationRates(); ret == nvml.SUCCESS {
			t.Utilization, t.MemoryUtilization = float64(u.Gpu)/100, float64(u.Memory)/100
		}
		if m, ret := h.GetMemoryInfo(); ret == nvml.SUCCESS {
			t.MemoryUsedBytes = float64(m.Used)
		}
		if mw, ret := h.GetPowerUsage(); ret == nvml.SUCCESS {
			t.PowerWatts = float64(mw) / 1000
		}
		if c, ret := h.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
			t.TemperatureCelsius = float64(c)
		}
		out = append(out, t)
	}
	return out, nil
}
