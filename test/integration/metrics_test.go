package integration

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/component-base/metrics/testutil"

	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// sample is one series of the process's metrics registry: a counter's or
// gauge's value, a histogram's count; 0 when the series does not exist.
func sample(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		total := 0.0
		for _, m := range mf.GetMetric() {
			if !testutil.LabelsMatch(m, labels) {
				continue
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				total += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				total += m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				total += float64(m.GetHistogram().GetSampleCount())
			}
		}
		return total
	}
	return 0
}

// waitSample waits until the series has the value: the scheduler updates
// some metrics after the API shows the outcome (a bind is counted once
// the Binding call returns, a gauge follows the informers).
func waitSample(t testing.TB, name string, labels map[string]string, want float64) {
	t.Helper()
	var got float64
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, waitTimeout, true, func(context.Context) (bool, error) {
		got = sample(t, name, labels)
		return got == want, nil
	})
	if err != nil {
		t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// TestSchedulerMetrics schedules known pods on one card and reads the
// scheduler's Mosaic metrics back from the registry kube-scheduler serves.
func TestSchedulerMetrics(t *testing.T) {
	const model = "NVIDIA A100-SXM4-80GB"
	e := newEnv(t, nil, a100("metrics-a", 1))
	byModel := map[string]string{"vendor": "NVIDIA", "model": model}
	bound := map[string]string{"result": "bound"}
	memory := map[string]string{"extension_point": "Filter", "reason": placement.ReasonMemory}
	deleted := map[string]string{"event": "DevicePodDeleted", "hint": "Queue"}
	preFilterTime := map[string]string{"extension_point": "PreFilter"}
	bindTime := map[string]string{"extension_point": "Bind"}
	// Counters are the process's: earlier tests counted too.
	binds0, memory0 := sample(t, "mosaic_scheduler_device_pod_binds_total", bound), sample(t, "mosaic_scheduler_allocation_failures_total", memory)
	deleted0 := sample(t, "mosaic_scheduler_queueing_hints_total", deleted)
	preFilter0, bind0 := sample(t, "mosaic_scheduler_extension_point_duration_seconds", preFilterTime), sample(t, "mosaic_scheduler_extension_point_duration_seconds", bindTime)

	share := func(name, mem string) podSpec {
		return podSpec{name: name, limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": mem, "nvidia.com/gpucores": "30"}}
	}
	e.mustBind(share("a", "30000"))
	e.mustBind(share("b", "30000"))
	e.mustReject(share("big", "40000"), placement.ReasonMemory)

	waitSample(t, "mosaic_scheduler_device_pods", map[string]string{"phase": "bound"}, 2)
	waitSample(t, "mosaic_scheduler_device_pods", map[string]string{"phase": "pending"}, 1)
	waitSample(t, "mosaic_scheduler_device_pods", map[string]string{"phase": "binding"}, 0)
	waitSample(t, "mosaic_scheduler_device_pod_binds_total", bound, binds0+2)
	waitSample(t, "mosaic_scheduler_cards", byModel, 1)
	waitSample(t, "mosaic_scheduler_memory_mib", byModel, 81920)
	waitSample(t, "mosaic_scheduler_allocated_cards", byModel, 1)
	waitSample(t, "mosaic_scheduler_allocated_shares", byModel, 2)
	waitSample(t, "mosaic_scheduler_allocated_memory_mib", byModel, 60000)
	waitSample(t, "mosaic_scheduler_allocated_cores_percent", byModel, 60)
	if got := sample(t, "mosaic_scheduler_allocation_failures_total", memory); got < memory0+1 {
		t.Errorf("allocation failures for %q: %v, want at least %v", placement.ReasonMemory, got, memory0+1)
	}
	// PreFilter ran for each pod at least once; Bind once for each bound
	// pod.
	if got := sample(t, "mosaic_scheduler_extension_point_duration_seconds", preFilterTime); got < preFilter0+3 {
		t.Errorf("PreFilter observations: %v, want at least %v", got, preFilter0+3)
	}
	waitSample(t, "mosaic_scheduler_extension_point_duration_seconds", bindTime, bind0+2)

	// Deleting a holder frees the card: the hint requeues the waiting pod,
	// which binds.
	e.delete("a")
	if e.settleBound("big") == nil {
		t.Fatal("pod big not bound after pod a was deleted")
	}
	if got := sample(t, "mosaic_scheduler_queueing_hints_total", deleted); got < deleted0+1 {
		t.Errorf("queueing hints %v: %v, want at least %v", deleted, got, deleted0+1)
	}
	waitSample(t, "mosaic_scheduler_device_pods", map[string]string{"phase": "pending"}, 0)
	waitSample(t, "mosaic_scheduler_device_pods", map[string]string{"phase": "bound"}, 2)
	waitSample(t, "mosaic_scheduler_allocated_memory_mib", byModel, 70000)
	waitSample(t, "mosaic_scheduler_device_pod_binds_total", bound, binds0+3)
}
