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

func TestRequeueAfterDelete(t *testing.T) {
	e := newEnv(t, nil, a100("requeue", 1))
	e.mustBind(podSpec{name: "holder", limits: wholeCard})
	e.mustReject(podSpec{name: "waiter", limits: wholeCard}, "GPU in exclusive use")
	start := time.Now()
	e.delete("holder")
	var bound time.Duration
	err := wait.PollUntilContextTimeout(e.ctx, 10*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, "waiter", metav1.GetOptions{})
		if err != nil || p.Spec.NodeName == "" {
			return false, nil
		}
		bound = time.Since(start)
		return true, nil
	})
	if err != nil {
		t.Fatal("waiter never bound after the holder was deleted")
	}
	t.Logf("rescheduled %v after the delete", bound)
	// The queueing hint requeues at once; the pod then waits out at most
	// its first backoff (1 s). Without the hint it would wait for the
	// five-minute unschedulable flush.
	if bound > 2*time.Second {
		t.Errorf("rescheduled %v after the delete, want < 2s", bound)
	}
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
	if p := e.settleBound("waiter", 10*time.Second); p == nil {
		t.Fatal("waiter not bound after the inventory grew")
	}
}

func (e *env) settleBound(name string, timeout time.Duration) *v1.Pod {
	var pod *v1.Pod
	_ = wait.PollUntilContextTimeout(e.ctx, 10*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && p.Spec.NodeName != "" {
			pod = p
			return true, nil
		}
		return false, nil
	})
	return pod
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
	}
	half := map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "40960"}
	e.mustBind(podSpec{name: "low-1", limits: half, priority: "mosaic-low"})
	e.mustBind(podSpec{name: "low-2", limits: half, priority: "mosaic-low"})
	// The card is full. A high-priority GPU pod preempts a low one; a
	// low-priority one just waits.
	e.mustReject(podSpec{name: "low-3", limits: half, priority: "mosaic-low"}, "insufficient GPU memory")
	e.create(e.pod(podSpec{name: "high", limits: half, priority: "mosaic-high"}))
	p := e.settleBound("high", 30*time.Second)
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
	e := newEnv(t, nil, nodes...)
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
	err := wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
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
		t.Fatal("pods did not settle in 5 minutes")
	}
	bound := e.checkCapacity()
	t.Logf("%d of %d pods bound, settled %v after creation", bound, total, time.Since(start))
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
	if p := e.settleBound("waiter", 10*time.Second); p == nil {
		t.Fatal("waiter not bound after the holder finished")
	}
	t.Logf("rescheduled %v after the holder finished", time.Since(start))
	e.checkCapacity()
}
