package integration

import (
	"fmt"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/component-base/metrics/testutil"
	schedmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"

	"github.com/mosaic-gpu/mosaic/config"
)

// BenchmarkRequeueAtScale measures how soon a freed card goes to one of
// many waiting device pods. MOSAIC_BENCH_SIZE's nodes of 8 cards are all
// held whole; its pods are whole-card pods that wait; then
// MOSAIC_BENCH_FREES holders (default 20) are deleted one at a time, each
// once the scheduler has tried every waiter again (its active and backoff
// queues empty), and the time from each delete to the next binding is
// taken: p50, p99 and the longest. settle/free is how long the scheduler
// then took to try the other waiters again (the event requeues every pod
// the freed card could serve).
//
//	MOSAIC_BENCH_SIZE=1000x5000 go test ./test/integration -run '^$' -bench RequeueAtScale -benchtime 1x -timeout 60m
func BenchmarkRequeueAtScale(b *testing.B) {
	nodes, waiters := benchSize(b)
	frees := benchInt(b, "MOSAIC_BENCH_FREES", 20, nodes*8)
	for range b.N {
		e := newStoppedEnv(b, config.DefaultScheduler, benchNodes("rq", nodes))
		e.startScheduler()
		whole := func(name string) *v1.Pod {
			p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns}, Spec: v1.PodSpec{
				Containers: []v1.Container{{Name: "c", Image: "x", Resources: v1.ResourceRequirements{
					Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("10m")}}}}}}
			setLimits(p, gpuLimits("1", "", "100"))
			return p
		}
		holders := nodes * 8
		l := e.listPods()
		e.createPods(holders, func(i int) *v1.Pod { return whole(fmt.Sprintf("h%05d", i)) })
		e.waitBound(holders, l.ResourceVersion)
		e.createPods(waiters, func(i int) *v1.Pod { return whole(fmt.Sprintf("w%05d", i)) })
		e.waitQueuesIdle(b, waiters)

		var took []time.Duration
		var settle time.Duration
		b.ResetTimer()
		for i := range frees {
			rv := e.listPods().ResourceVersion
			start := time.Now()
			e.delete(fmt.Sprintf("h%05d", i*holders/frees))
			e.waitNextBinding(b, rv)
			took = append(took, time.Since(start))
			e.waitQueuesIdle(b, 0)
			settle += time.Since(start)
		}
		b.StopTimer()
		slices.Sort(took)
		at := func(q float64) float64 {
			return float64(took[min(len(took)-1, int(q*float64(len(took))))].Milliseconds())
		}
		b.ReportMetric(at(0.5), "p50-ms")
		b.ReportMetric(at(0.99), "p99-ms")
		b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "max-ms")
		b.ReportMetric(float64(settle.Milliseconds())/float64(frees), "settle-ms/free")
		if got := e.checkCapacity(); got != holders {
			b.Errorf("%d pods hold cards, want %d (every card held)", got, holders)
		}
	}
}

func (e *env) listPods() *v1.PodList {
	e.t.Helper()
	l, err := e.cs.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// waitQueuesIdle waits until the scheduler holds at least unschedulable
// pods and none in its active or backoff queues: every waiter was tried.
func (e *env) waitQueuesIdle(b *testing.B, unschedulable int) {
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		active, err1 := testutil.GetGaugeMetricValue(schedmetrics.ActivePods())
		backoff, err2 := testutil.GetGaugeMetricValue(schedmetrics.BackoffPods())
		parked, err3 := testutil.GetGaugeMetricValue(schedmetrics.UnschedulablePods())
		if err1 != nil || err2 != nil || err3 != nil {
			b.Fatalf("reading the scheduler's queue gauges: %v %v %v", err1, err2, err3)
		}
		if active == 0 && backoff == 0 && int(parked) >= unschedulable {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatal("the scheduler's queues did not settle in 10 minutes")
}

// waitNextBinding waits for a pod to be bound after resourceVersion rv.
func (e *env) waitNextBinding(b *testing.B, rv string) {
	w, err := e.cs.CoreV1().Pods(e.ns).Watch(e.ctx, metav1.ListOptions{ResourceVersion: rv})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	timeout := time.After(5 * time.Minute)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Error {
				b.Fatal("the watch for the next binding ended")
			}
			if p, isPod := ev.Object.(*v1.Pod); isPod && ev.Type == watch.Modified && p.Spec.NodeName != "" && p.Name[0] == 'w' {
				return
			}
		case <-timeout:
			b.Fatal("no waiter bound within 5 minutes of a freed card")
		}
	}
}
