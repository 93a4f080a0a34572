package perf

import (
	"flag"
	"testing"

	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	benchmark "k8s.io/kubernetes/test/integration/scheduler_perf"

	"github.com/mosaic-gpu/mosaic/pkg/plugins/fit"
	"github.com/mosaic-gpu/mosaic/pkg/plugins/mosaic"
)

// rounds is registered before TestMain; upstream's InitTests keeps it.
var rounds = flag.Int("rounds", 1, "run the selected workloads this many times, in turn")

// BenchmarkPerfScheduling runs performance-config.yaml's test cases and
// upstream's (upstreamCases) in upstream's harness, each workload on a
// fresh etcd and API server, with Mosaic's plugins registered for the
// test cases whose profile names them. It needs an etcd binary on PATH
// (make bench builds one). For example:
//
//	go test ./test/perf -run '^$' -benchtime 1x -rounds 3 -perf-scheduling-label-filter= \
//	  -bench 'BenchmarkPerfScheduling/^(PlainPods|MosaicPlainPods|MosaicGPUMix)(#|$)/^1000Nodes_5000Pods$'
//
// Each of the -rounds runs every selected workload once, in the file's
// order, so that stock and Mosaic alternate (go test -count would run each
// workload its times in a row). From the second round on go test names
// the test cases PlainPods#01 and so on: end their pattern with (#|$).
// After every workload the pods and the capacity of every card are
// checked from the API objects (checkWorkload); after the last round a
// table of every workload's medians and its ratio to stock is printed
// (report_test.go).
func BenchmarkPerfScheduling(b *testing.B) {
	if *rounds < 1 {
		b.Fatalf("-rounds %d: want at least 1", *rounds)
	}
	registry := frameworkruntime.Registry{mosaic.Name: mosaic.New, fit.Name: fit.New}
	for range *rounds {
		benchmark.RunBenchmarkPerfScheduling(b, "performance-config.yaml", "mosaic", registry, benchmark.WithPrepareFn(checkAfterWorkload))
	}
}
