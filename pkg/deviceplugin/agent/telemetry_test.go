//go:build cgo

package agent

import (
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery/nvidiatest"
)

// A scrape reads each card's live use from NVML (go-nvml's H200 server):
// utilization as a ratio, memory in use, power in watts, temperature; a
// query a card does not support leaves that metric out, not a zero.
func TestCollectorReadsNVMLTelemetry(t *testing.T) {
	s := nvidiatest.NewH200()
	for i, d := range s.Devices {
		md := d.(*server.Device)
		md.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: uint32(30 + i), Memory: 12}, nvml.SUCCESS
		}
		md.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{Used: 4 << 30}, nvml.SUCCESS }
		md.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 251500, nvml.SUCCESS }
		md.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 41, nvml.SUCCESS }
	}
	s.Devices[1].(*server.Device).GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	backend, err := discovery.NewNVIDIAFrom(s, discovery.NVIDIAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u0, u1 := nvidiatest.UUID(s, 0), nvidiatest.UUID(s, 1)
	c := NewCollector("n1", "", func() []*v1.Pod { return nil })
	c.SetCards([]device.Device{{UUID: u0, Index: 0, Model: "H200", MemoryMiB: 1000, Healthy: true}, {UUID: u1, Index: 1, Model: "H200", MemoryMiB: 1000, Healthy: true}}, device.NodeConfig{SplitCount: 4})
	c.SetTelemetry(backend)
	want := `
# HELP mosaic_card_power_watts Card power draw.
# TYPE mosaic_card_power_watts gauge
mosaic_card_power_watts{index="0",model="H200",node="n1",uuid="` + u0 + `"} 251.5
# HELP mosaic_card_utilization_ratio Fraction of the driver's last sample period during which a kernel ran on the card (NVML).
# TYPE mosaic_card_utilization_ratio gauge
mosaic_card_utilization_ratio{index="0",model="H200",node="n1",uuid="` + u0 + `"} 0.3
mosaic_card_utilization_ratio{index="1",model="H200",node="n1",uuid="` + u1 + `"} 0.31
# HELP mosaic_card_memory_used_bytes Card memory in use by every process, as the driver reports it.
# TYPE mosaic_card_memory_used_bytes gauge
mosaic_card_memory_used_bytes{index="0",model="H200",node="n1",uuid="` + u0 + `"} 4.294967296e+09
mosaic_card_memory_used_bytes{index="1",model="H200",node="n1",uuid="` + u1 + `"} 4.294967296e+09
# HELP mosaic_card_temperature_celsius GPU die temperature.
# TYPE mosaic_card_temperature_celsius gauge
mosaic_card_temperature_celsius{index="0",model="H200",node="n1",uuid="` + u0 + `"} 41
mosaic_card_temperature_celsius{index="1",model="H200",node="n1",uuid="` + u1 + `"} 41
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "mosaic_card_power_watts", "mosaic_card_utilization_ratio",
		"mosaic_card_memory_used_bytes", "mosaic_card_temperature_celsius"); err != nil {
		t.Error(err)
	}
}
