package integration

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/mosaic-gpu/mosaic/config"
	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/sim"
)

// BenchmarkSchedulingThroughput measures pods bound per second by the real
// scheduler on the real API server: pods are created first, then the
// scheduler starts, so the API server's create rate is not measured.
//
//	go test ./test/integration -run '^$' -bench SchedulingThroughput -benchtime 1x
//
// Environment:
//
//	MOSAIC_BENCH_SIZE=1000x5000   nodes x pods (default 100x1000)
//	MOSAIC_BENCH_ROUNDS=3         run every workload this many times, the
//	                              workloads alternating, each round
//	                              starting one workload later (repeated
//	                              names get #01, #02: end a -bench
//	                              pattern without $)
//	MOSAIC_BENCH_CPUPROFILE=dir   write a CPU profile of each run's
//	                              scheduling window to dir (instead of
//	                              go test -cpuprofile, which would also
//	                              cover pod creation); the scheduler's
//	                              goroutines carry the label
//	                              component=scheduler, so
//	                              go tool pprof -tagfocus component=scheduler
//	                              leaves out the in-process API server
//
// Compare stock and Mosaic in the same run; runs differ by about 15 %.
// After each run of device pods the capacity of every card is checked from
// the API objects.
func BenchmarkSchedulingThroughput(b *testing.B) {
	nodes, pods := benchSize(b)
	rounds := benchInt(b, "MOSAIC_BENCH_ROUNDS", 1, math.MaxInt)
	stock := []byte("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: default-scheduler\n")
	spread := []byte(strings.Replace(string(config.DefaultScheduler), "nodePolicy: binpack", "nodePolicy: spread", 1))
	for r := range rounds {
		// Later runs of one process are slower (the API server's store
		// grows with every run), so each round starts one workload later.
		for i := range benchWorkloads {
			tc := benchWorkloads[(i+r)%len(benchWorkloads)]
			cfg := config.DefaultScheduler
			switch tc.config {
			case "stock":
				cfg = stock
			case "spread":
				cfg = spread
			}
			b.Run(tc.name, func(b *testing.B) {
				for range b.N {
					benchOnce(b, cfg, tc, nodes, pods, r)
				}
			})
		}
	}
}

// benchWorkload is one kind of pod, all pods of a run alike but for what
// pod(i) varies.
type benchWorkload struct {
	name   string
	config string // "stock", "binpack" (the shipped default-scheduler) or "spread"
	device bool   // the pods ask Mosaic for devices: check capacity after
	pod    func(i int, p *v1.Pod)
}

func gpuLimits(gpu, mem, cores string) v1.ResourceList {
	l := v1.ResourceList{"nvidia.com/gpu": resource.MustParse(gpu), "nvidia.com/gpucores": resource.MustParse(cores)}
	if mem != "" {
		l["nvidia.com/gpumem"] = resource.MustParse(mem)
	}
	return l
}

func setLimits(p *v1.Pod, l v1.ResourceList) { p.Spec.Containers[0].Resources.Limits = l }

var benchWorkloads = []benchWorkload{
	{"stock/plain-pods", "stock", false, func(int, *v1.Pod) {}},
	// nvidia.com/gpu as an extended resource the stock scheduler counts
	// (the node advertises cards x split count).
	{"stock/gpu-count", "stock", false, func(i int, p *v1.Pod) {
		setLimits(p, v1.ResourceList{"nvidia.com/gpu": resource.MustParse(fmt.Sprint(1 + i%2))})
	}},
	{"mosaic/plain-pods", "binpack", false, func(int, *v1.Pod) {}},
	// The mix: 1-2 cards, 2000-8000 MiB, 10 % of the cores; consecutive
	// pods differ.
	{"mosaic/gpu-pods", "binpack", true, func(i int, p *v1.Pod) {
		setLimits(p, gpuLimits(fmt.Sprint(1+i%2), fmt.Sprint(2000+i%7*1000), "10"))
	}},
	{"mosaic/gpu-small", "binpack", true, func(_ int, p *v1.Pod) { setLimits(p, gpuLimits("1", "4096", "10")) }},
	{"mosaic/gpu-small-spread", "spread", true, func(_ int, p *v1.Pod) { setLimits(p, gpuLimits("1", "4096", "10")) }},
	{"mosaic/gpu-whole", "binpack", true, func(_ int, p *v1.Pod) { setLimits(p, gpuLimits("1", "", "100")) }},
	{"mosaic/gpu-numa-pair", "binpack", true, func(_ int, p *v1.Pod) {
		setLimits(p, gpuLimits("2", "8000", "20"))
		p.Annotations = map[string]string{device.NUMABindAnnotation: "true"}
	}},
	{"mosaic/gpu-pods-spread", "spread", true, func(i int, p *v1.Pod) {
		setLimits(p, gpuLimits(fmt.Sprint(1+i%2), fmt.Sprint(2000+i%7*1000), "10"))
	}},
}

func benchSize(b *testing.B) (nodes, pods int) {
	s := os.Getenv("MOSAIC_BENCH_SIZE")
	if s == "" {
		return 100, 1000
	}
	if _, err := fmt.Sscanf(s, "%dx%d", &nodes, &pods); err != nil || nodes < 1 || pods < 1 {
		b.Fatalf("MOSAIC_BENCH_SIZE=%q: want NODESxPODS, e.g. 1000x5000", s)
	}
	return nodes, pods
}

// benchInt is the environment variable name as a number in 1..most, def
// when unset.
func benchInt(b *testing.B, name string, def, most int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > most {
		b.Fatalf("%s=%q: want 1..%d", name, s, most)
	}
	return v
}

// benchNodes are count nodes of 8 80 GiB cards on two NUMA nodes.
func benchNodes(name string, count int) sim.NodeSpec {
	return sim.NodeSpec{Name: name, Count: count, GPUs: []discovery.CardSpec{{Vendor: device.VendorNVIDIA,
		Model: "NVIDIA H100 80GB HBM3", MemoryMiB: 81920, Count: 8, NUMA: []int{0, 0, 0, 0, 1, 1, 1, 1}}}}
}

func benchOnce(b *testing.B, cfg []byte, w benchWorkload, nodes, pods, round int) {
	e := newStoppedEnv(b, cfg, benchNodes("bench", nodes))
	e.createPods(pods, func(i int) *v1.Pod {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%05d", i), Namespace: e.ns}, Spec: v1.PodSpec{
			Containers: []v1.Container{{Name: "c", Image: "x", Resources: v1.ResourceRequirements{
				Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m"), v1.ResourceMemory: resource.MustParse("128Mi")}}}}}}
		w.pod(i, p)
		return p
	})
	// Count bindings from a watch, not by listing every pod again and
	// again, which would load the API server that shares the cores.
	l, err := e.cs.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil || len(l.Items) != pods {
		b.Fatalf("listing the created pods: %d of %d, %v", len(l.Items), pods, err)
	}
	batchedBefore := batchCounters(b)
	stopProfile := startBenchProfile(b, fmt.Sprintf("%s-%d", strings.ReplaceAll(b.Name(), "/", "_"), round))
	b.ResetTimer()
	start := time.Now()
	pprof.Do(e.ctx, pprof.Labels("component", "scheduler"), func(context.Context) { e.startScheduler() })
	e.waitBound(pods, l.ResourceVersion)
	elapsed := time.Since(start)
	b.StopTimer()
	stopProfile()
	b.ReportMetric(float64(pods)/elapsed.Seconds(), "pods/s")
	// The share of pods the scheduler placed from the previous pod's
	// ranking (opportunistic batching), and why it could not.
	after := batchCounters(b)
	b.ReportMetric(float64(after["hint_used"]-batchedBefore["hint_used"])/float64(pods), "batched/pod")
	for k, v := range after {
		if d := v - batchedBefore[k]; d != 0 && k != "hint_used" {
			b.Logf("batching: %s %d", k, int(d))
		}
	}
	if w.device {
		if got := e.checkCapacity(); got != pods {
			b.Errorf("%d pods hold an allocation, want %d", got, pods)
		}
	}
}

// waitBound waits until the namespace's pods pods are all bound, watching
// from resourceVersion rv. A watch that ends (the API server may end one,
// e.g. when its cache lags) is resumed after a fresh list.
func (e *env) waitBound(pods int, rv string) {
	e.t.Helper()
	bound := map[string]bool{}
	deadline := time.After(5 * time.Minute)
	for len(bound) < pods {
		wi, err := e.cs.CoreV1().Pods(e.ns).Watch(e.ctx, metav1.ListOptions{ResourceVersion: rv})
		if err == nil {
			func() {
				defer wi.Stop()
				for len(bound) < pods {
					select {
					case ev, ok := <-wi.ResultChan():
						if !ok || ev.Type == watch.Error {
							return
						}
						if p, isPod := ev.Object.(*v1.Pod); isPod && p.Spec.NodeName != "" {
							bound[p.Name] = true
						}
					case <-deadline:
						e.t.Fatalf("%d of %d pods bound in 5 minutes", len(bound), pods)
					}
				}
			}()
		}
		if len(bound) == pods {
			return
		}
		l, err := e.cs.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		for i := range l.Items {
			if l.Items[i].Spec.NodeName != "" {
				bound[l.Items[i].Name] = true
			}
		}
		rv = l.ResourceVersion
	}
}

// createPods creates n pods through the API, a few at a time.
func (e *env) createPods(n int, pod func(i int) *v1.Pod) {
	e.t.Helper()
	const workers = 16
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if _, err := e.cs.CoreV1().Pods(e.ns).Create(e.ctx, pod(i), metav1.CreateOptions{}); err != nil {
					select {
					case errs <- fmt.Errorf("creating pod %d: %w", i, err):
					default:
					}
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		e.t.Fatal(err)
	default:
	}
}

// startBenchProfile starts a CPU profile into MOSAIC_BENCH_CPUPROFILE/name.pprof
// when that variable names a directory; the returned func stops it.
func startBenchProfile(b *testing.B, name string) func() {
	dir := os.Getenv("MOSAIC_BENCH_CPUPROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name+".pprof"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatalf("%v (MOSAIC_BENCH_CPUPROFILE replaces go test -cpuprofile)", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// batchCounters reads the scheduler's batching counters (by result, and
// flushes by reason) from this process's metrics registry.
func batchCounters(b *testing.B) map[string]float64 {
	mfs, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if n := mf.GetName(); n != "scheduler_batch_attempts_total" && n != "scheduler_batch_cache_flushed_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" || l.GetName() == "reason" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}
