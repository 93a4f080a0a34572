package perf

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/test/utils/client-go/ktesting"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/usage"
)

// checkAfterWorkload is the harness's prepare hook: it runs once the
// workload's API server and scheduler are up and registers checkWorkload
// to run when the workload is done. Cleanups run last-registered first, so
// the check comes after the harness has stopped its own goroutines for
// the workload and before it stops the scheduler and the API server.
func checkAfterWorkload(tCtx ktesting.TContext) error {
	tCtx.TB().Cleanup(func() {
		if !tCtx.TB().Failed() {
			checkWorkload(tCtx)
		}
	})
	return nil
}

// checkWorkload verifies, from the API objects alone, what the harness
// does not: every pod is bound (the harness counts scheduled pods per
// namespace), no card holds more than it offers (usage.Check: memory,
// cores, slots, exclusivity), and under Mosaic every pod that asks for
// devices holds an allocation.
func checkWorkload(tCtx ktesting.TContext) {
	pods, err := tCtx.Client().CoreV1().Pods("").List(tCtx, metav1.ListOptions{})
	if err != nil {
		tCtx.Errorf("listing pods: %v", err)
		return
	}
	asking := 0
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName == "" {
			tCtx.Errorf("pod %s/%s is not bound", p.Namespace, p.Name)
		}
		if r, err := device.ParsePodRequest(p, device.ParseOptions{}); err != nil {
			tCtx.Errorf("pod %s/%s: %v", p.Namespace, p.Name, err)
		} else if r != nil {
			asking++
		}
	}
	over, holding, err := usage.Check(tCtx, tCtx.Client(), "", device.DefaultNodeConfig())
	if err != nil {
		tCtx.Errorf("capacity check: %v", err)
		return
	}
	for _, line := range over {
		tCtx.Error(line)
	}
	// Only Mosaic gives pods allocations; the stock scheduler counts
	// nvidia.com/gpu as an extended resource.
	if mosaicRun(tCtx.Name()) && holding != asking {
		tCtx.Errorf("%d of %d pods that ask for devices hold an allocation", holding, asking)
	}
	checked[workloadName(tCtx.Name())] = fmt.Sprintf("%d / %d", len(pods.Items), holding)
}

// checked records, per workload ("<test case>/<workload>"), the pods that
// its last check found bound and those holding cards, for the report.
// Benchmarks run one at a time.
var checked = map[string]string{}

// workloadName is "<test case>/<workload>" of a benchmark's name.
func workloadName(name string) string {
	parts := strings.Split(name, "/")
	if len(parts) > 0 && strings.HasPrefix(parts[0], "Benchmark") {
		parts = parts[1:]
	}
	for i := range parts {
		parts[i] = repeated.ReplaceAllString(parts[i], "")
	}
	return strings.Join(parts, "/")
}

// mosaicRun tells from a benchmark's name (BenchmarkPerfScheduling/<test
// case>/<workload>) whether Mosaic schedules it.
func mosaicRun(name string) bool {
	parts := strings.Split(name, "/")
	return len(parts) > 1 && strings.HasPrefix(parts[1], mosaicPrefix)
}
