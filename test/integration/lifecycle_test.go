package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/inventory"
	"github.com/mosaic-gpu/mosaic/pkg/sim"
)

var wholeCard = map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpucores": "100"}

// A pod rejected while another holds the card is requeued by the holder's
// delete (the queueing hints), not by the scheduler's five-minute flush of
// unschedulable pods: it binds within waitTimeout. How soon is measured by
// BenchmarkRequeueAfterDelete, not asserted here.
func TestRequeueAfterDelete(t *testing.T) {
	e := newEnv(t, nil, a100("requeue", 1))
	e.mustBind(podSpec{name: "holder", limits: wholeCard})
	t.Logf("rescheduled %v after the delete", requeueAfterDelete(e, "holder", "waiter"))
	e.checkCapacity()
}

// requeueAfterDelete has waiter rejected for the card that the bound pod
// holder holds whole, deletes holder and returns how long waiter then took
// to be bound. It fails the test if waiter is not bound within waitTimeout.
func requeueAfterDelete(e *env, holder, waiter string) time.Duration {
	e.t.Helper()
	e.mustReject(podSpec{name: waiter, limits: wholeCard}, "GPU in exclusive use")
	start := time.Now()
	e.delete(holder)
	if e.settleBound(waiter) == nil {
		e.t.Fatalf("%s not bound within %v of the delete", waiter, waitTimeout)
	}
	return time.Since(start)
}

// BenchmarkRequeueAfterDelete measures how soon a pod waiting for a card
// is bound once the holder is deleted: the queueing hint requeues it at
// once, then it waits out its backoff (1 s after one failed attempt). Each
// round's waiter holds the card for the next.
//
//	go test ./test/integration -run '^$' -bench RequeueAfterDelete -benchtime 5x
func BenchmarkRequeueAfterDelete(b *testing.B) {
	e := newEnv(b, nil, a100("requeue-bench", 1))
	holder := "holder"
	e.mustBind(podSpec{name: holder, limits: wholeCard})
	var total time.Duration
	for i := range b.N {
		waiter := fmt.Sprintf("waiter-%d", i)
		total += requeueAfterDelete(e, holder, waiter)
		holder = waiter
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/requeue")
}

func TestRequeueOnInventoryChange(t *testing.T) {
	e := newEnv(t, nil, a100("grow", 1))
	e.mustBind(podSpec{name: "holder", limits: wholeCard})
	e.mustReject(podSpec{name: "waiter", limits: wholeCard}, "GPU in exclusive use")
	// The node agent publishes a second card (e.g. a card back to health).
	grown := a100("grow", 2)
	backend, err := discovery.NewFake("grow", grown.GPUs)
	if err != nil {
		t.Fatal(err)
	}
	pub := &inventory.Publisher{Client: e.cs, NodeName: "grow", Backend: backend, NRI: true}
	if err := pub.Publish(e.ctx); err != nil {
		t.Fatal(err)
	}
	if p := e.settleBound("waiter"); p == nil {
		t.Fatal("waiter not bound after the inventory grew")
	}
}

func TestPreemption(t *testing.T) {
	e := newEnv(t, nil, a100("preempt", 1))
	for name, value := range map[string]int32{"mosaic-low": 10, "mosaic-high": 1000} {
		pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value}
		if _, err := e.cs.SchedulingV1().PriorityClasses().Create(e.ctx, pc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = e.cs.SchedulingV1().PriorityClasses().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
		// The API server's Priority admission resolves the class from its
		// own informer, which may not have it yet: a pod created now could
		// be refused. A dry-run creation runs the same admission.
		probe := e.pod(podSpec{name: "probe-" + name, priority: name})
		err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
			_, err := e.cs.CoreV1().Pods(e.ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err == nil, nil
		})
		if err != nil {
			t.Fatalf("pods with priority class %s still refused: %v", name, err)
		}
	}
	half := map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "40960"}
	e.mustBind(podSpec{name: "low-1", limits: half, priority: "mosaic-low"})
	e.mustBind(podSpec{name: "low-2", limits: half, priority: "mosaic-low"})
	// The card is full. A high-priority GPU pod preempts a low one; a
	// low-priority one just waits.
	e.mustReject(podSpec{name: "low-3", limits: half, priority: "mosaic-low"}, "insufficient GPU memory")
	e.create(e.pod(podSpec{name: "high", limits: half, priority: "mosaic-high"}))
	p := e.settleBound("high")
	if p == nil {
		t.Fatal("high-priority pod was not scheduled by preempting a low-priority pod")
	}
	pods, err := e.cs.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lowLeft := 0
	for _, p := range pods.Items {
		if strings.HasPrefix(p.Name, "low-") && p.Spec.NodeName != "" {
			lowLeft++
		}
	}
	if lowLeft != 1 {
		t.Errorf("%d low-priority pods still bound, want 1 (exactly one preempted)", lowLeft)
	}
	e.checkCapacity()
}

func TestSchedulerRestartRebuildsState(t *testing.T) {
	e := newEnv(t, nil, a100("restart", 2))
	_, a := e.mustBind(podSpec{name: "before", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "60000"}})
	used := a.Containers[0].Devices[0].UUID
	e.restartScheduler()
	// The new scheduler knows only the API: it must see 60000 MiB taken.
	_, a = e.mustBind(podSpec{name: "after", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "60000"}})
	if a.Containers[0].Devices[0].UUID == used {
		t.Fatalf("restarted scheduler put a 60000 MiB share on the card already holding 60000 MiB")
	}
	e.mustReject(podSpec{name: "third", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "60000"}}, "insufficient GPU memory")
	e.checkCapacity()
}

func TestManyPodsAtOnceNeverOvercommit(t *testing.T) {
	var nodes []sim.NodeSpec
	n := sim.NodeSpec{Name: "scale", Count: 50, GPUs: []discovery.CardSpec{{Vendor: device.VendorNVIDIA, Model: "NVIDIA L40S", MemoryMiB: 46068, Count: 4, NUMA: []int{0, 0, 1, 1}}}}
	n.DeviceConfig.SplitCount = 4
	nodes = append(nodes, n)
	// All 500 pods are created before the scheduler starts, so it finds
	// them all pending at once rather than as they trickle in.
	e := newStoppedEnv(t, nil, nodes...)
	const total = 500
	// A deterministic mix of sizes: 50 nodes x 4 cards x 46068 MiB cannot
	// hold all 500, so the scheduler must refuse some rather than overfill.
	var wg sync.WaitGroup
	errs := make(chan error, total)
	sem := make(chan struct{}, 32)
	for i := range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			limits := map[string]string{
				"nvidia.com/gpu":      fmt.Sprint(1 + i%3/2),
				"nvidia.com/gpumem":   fmt.Sprint(4000 + (i*7919)%20000),
				"nvidia.com/gpucores": fmt.Sprint((i * 13) % 60),
			}
			if i%25 == 0 {
				limits = map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpucores": "100"}
			}
			if _, err := e.cs.CoreV1().Pods(e.ns).Create(e.ctx, e.pod(podSpec{name: fmt.Sprintf("p%03d", i), limits: limits}), metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	start := time.Now()
	e.startScheduler()
	err := wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := e.cs.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for i := range l.Items {
			if l.Items[i].Spec.NodeName == "" && unschedulable(&l.Items[i]) == "" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal("pods did not settle in 10 minutes")
	}
	bound := e.checkCapacity()
	t.Logf("%d of %d pods bound, settled %v after the scheduler started", bound, total, time.Since(start))
	if bound < 300 {
		t.Errorf("only %d pods bound; the cluster holds far more", bound)
	}
}

// A device pod that finishes (Succeeded) releases its share like a deleted
// one: the scheduler's informer drops finished pods, and the waiting pod is
// retried at once.
func TestRequeueAfterPodFinishes(t *testing.T) {
	e := newEnv(t, nil, a100("finish", 1))
	holder, _ := e.mustBind(podSpec{name: "holder", limits: wholeCard})
	e.mustReject(podSpec{name: "waiter", limits: wholeCard}, "GPU in exclusive use")
	holder.Status.Phase = v1.PodSucceeded
	if _, err := e.cs.CoreV1().Pods(e.ns).UpdateStatus(e.ctx, holder, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if p := e.settleBound("waiter"); p == nil {
		t.Fatal("waiter not bound after the holder finished")
	}
	t.Logf("rescheduled %v after the holder finished", time.Since(start))
	e.checkCapacity()
}
