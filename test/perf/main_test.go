package perf

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "k8s.io/component-base/logs/json/register"
	benchmark "k8s.io/kubernetes/test/integration/scheduler_perf"

	"github.com/mosaic-gpu/mosaic/pkg/plugins/fit"
	"github.com/mosaic-gpu/mosaic/pkg/plugins/mosaic"
)

// runDir is where the benchmarks run (the process's working directory
// while they do): the paths of performance-config.yaml are relative to
// it. setupRunDir fills it.
var runDir string

func TestMain(m *testing.M) {
	if err := benchmark.InitTests(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Upstream collects plugin timings only for the plugins it names.
	benchmark.PluginNames = append(benchmark.PluginNames, mosaic.Name, fit.Name)
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// Only the benchmarks need the run directory (and an etcd on PATH);
	// the tests of this package check its files without them.
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		return m.Run()
	}
	pkg, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	runDir, err = os.MkdirTemp("", "mosaic-perf-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(runDir)
	if err := setupRunDir(pkg, runDir); err != nil {
		fmt.Fprintln(os.Stderr, "setting up the benchmark:", err)
		return 1
	}
	// Upstream writes each workload's log to $ARTIFACTS/<name>.log, kept
	// only when the workload fails; without it the whole log is printed.
	if os.Getenv("ARTIFACTS") == "" {
		os.Setenv("ARTIFACTS", filepath.Join(os.TempDir(), "mosaic-perf-logs"))
	}
	if err := os.MkdirAll(os.Getenv("ARTIFACTS"), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.Chdir(runDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	start := time.Now()
	code := m.Run()
	// Upstream writes one JSON file of results per BenchmarkPerfScheduling
	// call (per -count round); the table reads this run's.
	dir := runDir
	if f := flag.Lookup("data-items-dir"); f != nil && f.Value.String() != "" {
		dir = f.Value.String()
	}
	if err := printReport(os.Stdout, dir, start); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		return 1
	}
	return code
}
