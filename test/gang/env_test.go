package gang

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	schedulingv1beta1 "k8s.io/api/scheduling/v1beta1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/mosaic-gpu/mosaic/config"
	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/sim"
	"github.com/mosaic-gpu/mosaic/pkg/usage"
)

// waitTimeout is a hang guard, not a speed target.
const waitTimeout = 60 * time.Second

const schedulerName = "mosaic-scheduler"

type env struct {
	t    testing.TB
	ctx  context.Context
	cs   kubernetes.Interface
	ns   string
	stop func()
}

var envSeq int

// newEnv creates the nodes and a namespace, starts the scheduler with the
// shipped second-scheduler config and registers cleanup.
func newEnv(t testing.TB, nodes ...sim.NodeSpec) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	envSeq++
	e := &env{t: t, ctx: ctx, cs: cp.Client, ns: fmt.Sprintf("gang-%d", envSeq)}
	if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := sim.CreateNodes(ctx, e.cs, nodes); err != nil {
		t.Fatal(err)
	}
	if err := cp.RunKubelet(ctx); err != nil {
		t.Fatal(err)
	}
	e.start()
	t.Cleanup(func() {
		e.stop()
		bg := context.Background()
		zero := int64(0)
		_ = e.cs.CoreV1().Pods(e.ns).DeleteCollection(bg, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		for i := range nodes {
			for _, n := range nodes[i].Names() {
				_ = e.cs.CoreV1().Nodes().Delete(bg, n, metav1.DeleteOptions{})
			}
		}
		_ = wait.PollUntilContextTimeout(bg, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
			l, err := e.cs.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
			return err == nil && len(l.Items) == 0, nil
		})
		cancel()
	})
	return e
}

// start runs the scheduler until stop.
func (e *env) start() {
	e.t.Helper()
	sctx, scancel := context.WithCancel(e.ctx)
	done, err := cp.StartScheduler(sctx, config.SecondScheduler)
	if err != nil {
		e.t.Fatal(err)
	}
	e.stop = func() {
		scancel()
		<-done
	}
}

// restart stops the scheduler and starts a new one, which rebuilds its
// state from the API alone.
func (e *env) restart() {
	e.stop()
	e.start()
}

// h200 is a node spec of eight H200 cards, four per NUMA node.
func h200(name string) sim.NodeSpec {
	return sim.NodeSpec{Name: name, GPUs: []discovery.CardSpec{{Vendor: device.VendorNVIDIA, Model: "NVIDIA H200",
		MemoryMiB: 143771, SMs: 132, Count: 8, NUMA: []int{0, 0, 0, 0, 1, 1, 1, 1}}}}
}

// group creates a gang PodGroup of minCount pods.
func (e *env) group(name string, minCount int32) { e.groupWith(name, minCount, "") }

// groupWith creates a gang PodGroup of minCount pods of a priority class
// ("" for none): a group's priority is its PodGroup's, not its pods'.
func (e *env) groupWith(name string, minCount int32, priority string) {
	e.t.Helper()
	pg := &schedulingv1beta1.PodGroup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: schedulingv1beta1.PodGroupSpec{PriorityClassName: priority, SchedulingPolicy: schedulingv1beta1.PodGroupSchedulingPolicy{
			Gang: &schedulingv1beta1.GangSchedulingPolicy{MinCount: minCount}}}}
	if _, err := e.cs.SchedulingV1beta1().PodGroups(e.ns).Create(e.ctx, pg, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("creating PodGroup %s: %v", name, err)
	}
}

// pod creates a pod of whole cards, a member of group unless it is "".
func (e *env) pod(name, group string, cards int) { e.podWith(name, group, cards, "") }

// podWith creates a pod of whole cards of a priority class ("" for none).
func (e *env) podWith(name, group string, cards int, priority string) {
	e.t.Helper()
	p := e.podObject(name, group, cards)
	p.Spec.PriorityClassName = priority
	if _, err := e.cs.CoreV1().Pods(e.ns).Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("creating pod %s: %v", name, err)
	}
}

// podObject is a pod of whole cards, a member of group unless it is "".
func (e *env) podObject(name, group string, cards int) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns}, Spec: v1.PodSpec{SchedulerName: schedulerName,
		Containers: []v1.Container{{Name: "c", Image: "x", Resources: v1.ResourceRequirements{
			Limits: v1.ResourceList{device.ResourceNvidiaGPU: *resource.NewQuantity(int64(cards), resource.DecimalSI)}}}}}}
	if group != "" {
		p.Spec.SchedulingGroup = &v1.PodSchedulingGroup{PodGroupName: &group}
	}
	return p
}

// priorityClass creates a PriorityClass for the test's life and waits
// until the API server's Priority admission, which resolves classes from
// its own informer, accepts pods of it (a dry-run creation runs the same
// admission).
func (e *env) priorityClass(name string, value int32) {
	e.t.Helper()
	pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value}
	if _, err := e.cs.SchedulingV1().PriorityClasses().Create(e.ctx, pc, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		_ = e.cs.SchedulingV1().PriorityClasses().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	probe := e.podObject("probe-"+name, "", 1)
	probe.Spec.PriorityClassName = name
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := e.cs.CoreV1().Pods(e.ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil, nil
	})
	if err != nil {
		e.t.Fatalf("pods of priority class %s still refused: %v", name, err)
	}
}

// members names a group's pods: <group>-0 .. <group>-(n-1).
func members(group string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", group, i)
	}
	return out
}

// gang creates a PodGroup of n pods of cards cards each, all required.
func (e *env) gang(group string, n, cards int) []string {
	e.t.Helper()
	e.group(group, int32(n))
	names := members(group, n)
	for _, name := range names {
		e.pod(name, group, cards)
	}
	return names
}

// poll waits until cond holds for the namespace's pods.
func (e *env) poll(what string, cond func(pods map[string]*v1.Pod) bool) map[string]*v1.Pod {
	e.t.Helper()
	var last map[string]*v1.Pod
	err := wait.PollUntilContextTimeout(e.ctx, 20*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		l, err := e.cs.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		last = map[string]*v1.Pod{}
		for i := range l.Items {
			last[l.Items[i].Name] = &l.Items[i]
		}
		return cond(last), nil
	})
	if err != nil {
		e.t.Fatalf("waiting for %s: %v; pods: %s", what, err, describe(last))
	}
	return last
}

func describe(pods map[string]*v1.Pod) string {
	var b strings.Builder
	for name, p := range pods {
		fmt.Fprintf(&b, "\n  %s node=%q unschedulable=%q", name, p.Spec.NodeName, unschedulable(p))
	}
	return b.String()
}

func unschedulable(p *v1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
			return c.Message
		}
	}
	return ""
}

func bound(pods map[string]*v1.Pod, names ...string) int {
	n := 0
	for _, name := range names {
		if p := pods[name]; p != nil && p.Spec.NodeName != "" {
			n++
		}
	}
	return n
}

// rejected reports whether the scheduler has marked every named pod
// unschedulable, and bound none of them.
func rejected(pods map[string]*v1.Pod, names ...string) bool {
	for _, name := range names {
		if p := pods[name]; p == nil || p.Spec.NodeName != "" || unschedulable(p) == "" {
			return false
		}
	}
	return true
}

func (e *env) delete(name string) {
	e.t.Helper()
	zero := int64(0)
	if err := e.cs.CoreV1().Pods(e.ns).Delete(e.ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		e.t.Fatal(err)
	}
}

// checkCapacity verifies, from the API objects alone, that no card holds
// more than it offers, and returns the pods holding cards.
func (e *env) checkCapacity() (holding int) {
	e.t.Helper()
	over, n, err := usage.Check(e.ctx, e.cs, e.ns, device.DefaultNodeConfig())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, line := range over {
		e.t.Error(line)
	}
	return n
}
