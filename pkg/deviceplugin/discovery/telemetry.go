package discovery

import "context"

// Telemetry is what a card's driver says of its use at one moment. A value
// the driver does not report is NaN.
type Telemetry struct {
	UUID string
	// Utilization is the fraction of the driver's last sample period
	// during which a kernel ran on the card, MemoryUtilization the
	// fraction during which its memory was read or written (NVML's
	// utilization rates, 0-1). Time, not throughput: clocks boost at
	// partial load.
	Utilization, MemoryUtilization float64
	// MemoryUsedBytes is the card's memory in use by every process.
	MemoryUsedBytes float64
	PowerWatts      float64
	// TemperatureCelsius is the GPU die's.
	TemperatureCelsius float64
}

// TelemetrySource is a Backend that reads its cards' live use.
type TelemetrySource interface {
	Telemetry(ctx context.Context) ([]Telemetry, error)
}
