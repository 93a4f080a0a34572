package perf

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	benchmark "k8s.io/kubernetes/test/integration/scheduler_perf"
)

// stockPlain is the reference of the device workloads, which have no
// stock counterpart of their own: the stock scheduler on plain pods, on
// the same nodes.
const stockPlain = "PlainPods"

// round is one workload's figures from one run of it.
type round struct {
	throughputAvg, throughputP50 float64 // pods/s
	attemptP50, attemptP99       float64 // ms, scheduled attempts
}

// printReport reads the result files that upstream's harness wrote into
// dir since start and prints, per workload, the medians over the rounds
// and the ratio of the median average throughput to the stock run of the
// same workload (reference), then each round's ratio to the reference's
// run in the same round: the rounds alternate the workloads, so a pair
// ran minutes apart, while a machine's speed can drift by more than the
// difference measured between rounds. The last column is what
// checkWorkload found after the workload's last round.
func printReport(w io.Writer, dir string, start time.Time) error {
	runs, names, err := readRounds(dir, start)
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		return nil
	}
	median := func(rs []round, f func(round) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	avg := func(r round) float64 { return r.throughputAvg }
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| workload | SchedulingThroughput average, per round (pods/s) | median average | median p50 | attempt p50 / p99 (ms) | × stock | × stock, round by round | upstream threshold | pods bound / holding cards |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, n := range names {
		rs := runs[n]
		var each []string
		for _, r := range rs {
			each = append(each, fmt.Sprintf("%.1f", r.throughputAvg))
		}
		ratio, paired := "–", "–"
		if ref, ok := runs[reference(n)]; ok && median(ref, avg) > 0 && median(rs, avg) > 0 {
			ratio = fmt.Sprintf("%.2f", median(rs, avg)/median(ref, avg))
			var pairs []string
			for i := 0; i < len(rs) && i < len(ref); i++ {
				if ref[i].throughputAvg > 0 {
					pairs = append(pairs, fmt.Sprintf("%.2f", rs[i].throughputAvg/ref[i].throughputAvg))
				}
			}
			if len(pairs) > 0 {
				paired = strings.Join(pairs, ", ")
			}
		}
		threshold := "–"
		if t, ok := thresholds[strings.TrimPrefix(n, mosaicPrefix)]; ok {
			threshold = fmt.Sprintf("%.0f", t)
		}
		check := checked[n]
		if check == "" {
			check = "not checked"
		}
		fmt.Fprintf(w, "| %s | %s | %.1f | %.1f | %.1f / %.1f | %s | %s | %s | %s |\n", n, strings.Join(each, ", "),
			median(rs, avg), median(rs, func(r round) float64 { return r.throughputP50 }),
			median(rs, func(r round) float64 { return r.attemptP50 }), median(rs, func(r round) float64 { return r.attemptP99 }),
			ratio, paired, threshold, check)
	}
	return nil
}

// reference names the stock run that workload name ("<test
// case>/<workload>") is compared with: upstream's test cases with their
// stock run, those of performance-config.yaml with PlainPods.
func reference(name string) string {
	tc, workload, _ := strings.Cut(name, "/")
	stock := strings.TrimPrefix(tc, mosaicPrefix)
	for _, topic := range upstreamTopics {
		if slices.Contains(upstreamCases[topic], stock) {
			return stock + "/" + workload
		}
	}
	return stockPlain + "/" + workload
}

// repeated is the "#01" that go test appends to a repeated name.
var repeated = regexp.MustCompile(`#\d+$`)

// readRounds collects the rounds of every workload ("<test
// case>/<workload>") from upstream's result files (DataItems JSON) in dir
// written since start, and the workloads in the order they first ran.
func readRounds(dir string, start time.Time) (runs map[string][]round, order []string, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "BenchmarkPerfScheduling*_benchmark_mosaic_*.json"))
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(files) // by time: the names end in it
	runs = map[string][]round{}
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.ModTime().Before(start) {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		var items benchmark.DataItems
		if err := json.Unmarshal(b, &items); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f, err)
		}
		// A workload's items are contiguous and share their Name label,
		// [Benchmark.../]<test case>/<workload>/<namespace>; a second
		// item of one metric starts the workload's next round (go test
		// -count).
		var cur *round
		curName, seen := "", map[string]bool{}
		flush := func() {
			if cur != nil {
				if runs[curName] == nil {
					order = append(order, curName)
				}
				runs[curName] = append(runs[curName], *cur)
			}
		}
		for _, it := range items.DataItems {
			full := it.Labels["Name"]
			name := workloadName(full[:max(strings.LastIndex(full, "/"), 0)])
			metric := it.Labels["Metric"]
			if metric == "scheduler_scheduling_attempt_duration_seconds" {
				if it.Labels["result"] != "scheduled" {
					continue
				}
			} else if metric != "SchedulingThroughput" {
				continue
			}
			if name != curName || seen[metric] {
				flush()
				cur, curName, seen = &round{}, name, map[string]bool{}
			}
			seen[metric] = true
			if metric == "SchedulingThroughput" {
				cur.throughputAvg, cur.throughputP50 = it.Data["Average"], it.Data["Perc50"]
			} else {
				cur.attemptP50, cur.attemptP99 = it.Data["Perc50"], it.Data["Perc99"]
			}
		}
		flush()
	}
	return runs, order, nil
}
