package perf

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	benchmark "k8s.io/kubernetes/test/integration/scheduler_perf"
)

// TestReportTakesMediansAndRatios writes result files as upstream's
// harness does (two rounds in one file, a third in another) and reads the
// table back.
func TestReportTakesMediansAndRatios(t *testing.T) {
	dir := t.TempDir()
	start := time.Now().Add(-time.Second)
	items := func(tc string, avgs ...float64) []benchmark.DataItem {
		var out []benchmark.DataItem
		for _, a := range avgs {
			name := "BenchmarkPerfScheduling/" + tc + "/1000Nodes_5000Pods/namespace-1"
			out = append(out,
				benchmark.DataItem{Labels: map[string]string{"Name": name, "Metric": "scheduler_scheduling_attempt_duration_seconds", "result": "scheduled"}, Data: map[string]float64{"Perc50": 10, "Perc99": 100}},
				benchmark.DataItem{Labels: map[string]string{"Name": name, "Metric": "scheduler_scheduling_attempt_duration_seconds", "result": "error"}, Data: map[string]float64{"Perc50": 999, "Perc99": 999}},
				benchmark.DataItem{Labels: map[string]string{"Name": name, "Metric": "SchedulingThroughput"}, Data: map[string]float64{"Average": a, "Perc50": a - 1}})
		}
		return out
	}
	write := func(file string, its ...[]benchmark.DataItem) {
		var all benchmark.DataItems
		for _, i := range its {
			all.DataItems = append(all.DataItems, i...)
		}
		b, err := json.Marshal(all)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// One call of the harness per round; -count puts two rounds of a
	// workload into one file.
	write("BenchmarkPerfScheduling_benchmark_mosaic_2026-12-02T01:00:00Z.json", items("PlainPods", 200, 300), items("MosaicGPUMix", 100, 150))
	write("BenchmarkPerfScheduling_benchmark_mosaic_2026-12-02T01:05:00Z.json", items("PlainPods#01", 250), items("MosaicGPUMix#01", 110))
	var out bytes.Buffer
	if err := printReport(&out, dir, start); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"| PlainPods/1000Nodes_5000Pods | 200.0, 300.0, 250.0 | 250.0 | 249.0 | 10.0 / 100.0 | 1.00 | 1.00, 1.00, 1.00 | – | not checked |",
		"| MosaicGPUMix/1000Nodes_5000Pods | 100.0, 150.0, 110.0 | 110.0 | 109.0 | 10.0 / 100.0 | 0.44 | 0.50, 0.50, 0.44 | – | not checked |",
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(got) != 4 || got[2] != want[0] || got[3] != want[1] {
		t.Errorf("report:\n%s\nwant rows:\n%s", out.String(), strings.Join(want, "\n"))
	}
}

// TestReferenceIsTheStockRun: upstream's test cases compare with their
// stock run, Mosaic's workloads with the stock scheduler on plain pods.
func TestReferenceIsTheStockRun(t *testing.T) {
	for name, want := range map[string]string{
		"MosaicSchedulingBasic/500Nodes":   "SchedulingBasic/500Nodes",
		"SchedulingBasic/500Nodes":         "SchedulingBasic/500Nodes",
		"MosaicGPUMix/1000Nodes_5000Pods":  "PlainPods/1000Nodes_5000Pods",
		"MosaicPlainPods/100Nodes_500Pods": "PlainPods/100Nodes_500Pods",
		"GPUCount/100Nodes_500Pods":        "PlainPods/100Nodes_500Pods",
	} {
		if got := reference(name); got != want {
			t.Errorf("reference(%s) = %s, want %s", name, got, want)
		}
	}
}
