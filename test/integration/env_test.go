package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/mosaic-gpu/mosaic/config"
	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/inventory"
	"github.com/mosaic-gpu/mosaic/pkg/sim"
	"github.com/mosaic-gpu/mosaic/pkg/usage"
)

const schedulerName = "mosaic-scheduler"

// waitTimeout bounds every wait for the scheduler, the API server or the
// node agent to reach a state. It is a hang guard, not a speed target: the
// tests assert what happens, never how fast, and a loaded two-core machine
// can stall the in-process API server for seconds. It stays well below the
// scheduler's five-minute flush of unschedulable pods, so a pod bound
// within it was requeued by an event.
const waitTimeout = 60 * time.Second

// envSeq numbers the envs of this test process; tests run one at a time.
var envSeq int

// env is one test's slice of the shared cluster: its nodes, a namespace,
// and a running scheduler.
type env struct {
	t      testing.TB
	ctx    context.Context
	cs     kubernetes.Interface
	ns     string
	stop   func()
	done   <-chan error
	config []byte
	// kubeconfig is where the scheduler reaches the API server: the
	// control plane itself, or a bindGate in front of it.
	kubeconfig string
}

// a100 is a node spec of n 81920 MiB cards split sharing.
func a100(name string, cards int) sim.NodeSpec {
	return sim.NodeSpec{Name: name, GPUs: []discovery.CardSpec{{Vendor: device.VendorNVIDIA, Model: "NVIDIA A100-SXM4-80GB", MemoryMiB: 81920, Count: cards}}}
}

// newEnv creates nodes, starts the scheduler with cfg (nil: the shipped
// second-scheduler config) and registers cleanup of everything.
func newEnv(t testing.TB, cfg []byte, nodes ...sim.NodeSpec) *env {
	t.Helper()
	e := newStoppedEnv(t, cfg, nodes...)
	e.startScheduler()
	return e
}

// newStoppedEnv is newEnv without the scheduler: the caller starts it.
func newStoppedEnv(t testing.TB, cfg []byte, nodes ...sim.NodeSpec) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	// Namespaces are never removed here (no namespace controller runs), so
	// each env gets a fresh one.
	// A namespace name is lower-case letters, digits and dashes; test
	// names also hold "/", "_" and, for repeated sub-benchmarks, "#".
	ns := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	e := &env{t: t, ctx: ctx, cs: cp.Client, ns: ns, config: cfg, kubeconfig: cp.Kubeconfig}
	if len(e.ns) > 50 {
		e.ns = e.ns[:50]
	}
	envSeq++
	e.ns = fmt.Sprintf("%s-%d", strings.Trim(e.ns, "-"), envSeq)
	if e.config == nil {
		e.config = config.SecondScheduler
	}
	if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := sim.CreateNodes(ctx, e.cs, nodes); err != nil {
		t.Fatal(err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	if err := cp.RunKubelet(kctx); err != nil {
		t.Fatal(err)
	}
	e.stop = func() {}
	t.Cleanup(func() {
		e.stop()
		kcancel()
		e.cleanup(nodes)
		cancel()
	})
	return e
}

func (e *env) startScheduler() {
	e.t.Helper()
	sctx, scancel := context.WithCancel(e.ctx)
	done, err := cp.StartSchedulerVia(sctx, e.config, e.kubeconfig)
	if err != nil {
		e.t.Fatal(err)
	}
	e.done = done
	e.stop = func() {
		scancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			e.t.Errorf("scheduler did not stop within %v", waitTimeout)
		}
	}
}

// restartScheduler stops the scheduler and starts a new one, which must
// rebuild its state from the API alone.
func (e *env) restartScheduler() {
	e.stop()
	e.startScheduler()
}

func (e *env) cleanup(nodes []sim.NodeSpec) {
	ctx := context.Background()
	zero := int64(0)
	_ = e.cs.CoreV1().Pods(e.ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
	for i := range nodes {
		for _, n := range nodes[i].Names() {
			_ = e.cs.CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{})
		}
	}
	_ = e.cs.CoreV1().Namespaces().Delete(ctx, e.ns, metav1.DeleteOptions{})
	// Namespaces are not removed without the namespace controller; their
	// pods are gone, which is what the next test needs.
	_ = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		l, err := e.cs.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 0, nil
	})
}

// podSpec builds a pod for the scheduler under test.
type podSpec struct {
	name        string
	limits      map[string]string
	annotations map[string]string
	priority    string
	containers  int
	// edit, when set, changes the pod before it is created.
	edit func(*v1.Pod)
}

func (e *env) pod(s podSpec) *v1.Pod {
	rl := v1.ResourceList{}
	for k, v := range s.limits {
		rl[v1.ResourceName(k)] = resource.MustParse(v)
	}
	n := max(s.containers, 1)
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: e.ns, Annotations: s.annotations},
		Spec:       v1.PodSpec{SchedulerName: schedulerName, PriorityClassName: s.priority},
	}
	for i := range n {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: fmt.Sprintf("c%d", i), Image: "x", Resources: v1.ResourceRequirements{Limits: rl}})
	}
	if s.edit != nil {
		s.edit(p)
	}
	return p
}

func (e *env) create(p *v1.Pod) {
	e.t.Helper()
	if _, err := e.cs.CoreV1().Pods(e.ns).Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("creating pod %s: %v", p.Name, err)
	}
}

// run creates the pod and waits until it is bound (returning it) or the
// scheduler marks it unschedulable (returning it with NodeName empty).
func (e *env) run(s podSpec) *v1.Pod {
	e.t.Helper()
	e.create(e.pod(s))
	return e.settle(s.name)
}

func (e *env) settle(name string) *v1.Pod {
	e.t.Helper()
	var pod *v1.Pod
	err := wait.PollUntilContextTimeout(e.ctx, 10*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-e.done:
			return false, fmt.Errorf("the scheduler exited: %v", err)
		default:
		}
		p, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pod = p
		return p.Spec.NodeName != "" || unschedulable(p) != "", nil
	})
	if err != nil {
		e.t.Fatalf("pod %s neither bound nor rejected: %v", name, err)
	}
	return pod
}

// settleBound waits until the pod is bound, through any number of
// rejections, and returns it; nil if it is not bound within waitTimeout.
func (e *env) settleBound(name string) *v1.Pod {
	e.t.Helper()
	var pod *v1.Pod
	_ = wait.PollUntilContextTimeout(e.ctx, 10*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		p, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && p.Spec.NodeName != "" {
			pod = p
			return true, nil
		}
		return false, nil
	})
	return pod
}

// syncSeq numbers the marker nodes of syncNodes.
var syncSeq int

// syncNodes returns once the running scheduler, Mosaic's device cache
// included, has handled every node change made so far. Seeing a change in
// the API is not enough: the scheduler's pod and node informers are
// separate streams, so a pod created right after a node update may be
// scheduled on the old node. Each informer handler receives node events
// one at a time in the order the API server wrote them, so once a probe
// pod that only a new marker node (with an inventory, tainted against
// every other pod) can take is bound, the scheduler's cache and Mosaic's
// have handled the marker and everything before it.
func (e *env) syncNodes() {
	e.t.Helper()
	syncSeq++
	name := fmt.Sprintf("mosaic-sync-%d", syncSeq)
	taint := v1.Taint{Key: "mosaic.io/test-sync", Effect: v1.TaintEffectNoSchedule}
	capacity := v1.ResourceList{v1.ResourceCPU: resource.MustParse("8"), v1.ResourceMemory: resource.MustParse("32Gi"), v1.ResourcePods: resource.MustParse("110"), "nvidia.com/gpu": resource.MustParse("10")}
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1.LabelHostname: name}},
		Spec:   v1.NodeSpec{Taints: []v1.Taint{taint}},
		Status: v1.NodeStatus{Capacity: capacity, Allocatable: capacity, Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}}}}
	if _, err := e.cs.CoreV1().Nodes().Create(e.ctx, node, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = e.cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	backend, err := discovery.NewFake(name, a100(name, 1).GPUs)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := (&inventory.Publisher{Client: e.cs, NodeName: name, Backend: backend, NRI: true}).Publish(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	probe := e.pod(podSpec{name: name, limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "100"}})
	probe.Spec.Affinity = nodeNameAffinity(name)
	probe.Spec.Tolerations = []v1.Toleration{{Key: taint.Key, Operator: v1.TolerationOpExists, Effect: taint.Effect}}
	e.create(probe)
	if e.settleBound(name) == nil {
		e.t.Fatalf("probe pod %s not bound to its marker node within %v", name, waitTimeout)
	}
	e.delete(name)
	if err := e.cs.CoreV1().Nodes().Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func unschedulable(p *v1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse && c.Reason == v1.PodReasonUnschedulable {
			return c.Message
		}
	}
	return ""
}

// mustBind runs the pod and fails unless it is bound; it returns the
// pod's allocation.
func (e *env) mustBind(s podSpec) (*v1.Pod, *device.Allocation) {
	e.t.Helper()
	p := e.run(s)
	if p.Spec.NodeName == "" {
		e.t.Fatalf("pod %s not scheduled: %s", s.name, unschedulable(p))
	}
	return p, allocation(e.t, p)
}

// mustReject runs the pod and fails unless it is unschedulable with a
// message containing want.
func (e *env) mustReject(s podSpec, want string) {
	e.t.Helper()
	p := e.run(s)
	if p.Spec.NodeName != "" {
		e.t.Fatalf("pod %s was bound to %s, want it rejected with %q", s.name, p.Spec.NodeName, want)
	}
	if msg := unschedulable(p); !strings.Contains(msg, want) {
		e.t.Fatalf("pod %s rejected with %q, want it to contain %q", s.name, msg, want)
	}
}

func allocation(t testing.TB, p *v1.Pod) *device.Allocation {
	t.Helper()
	raw, ok := p.Annotations[device.AllocationAnnotation]
	if !ok {
		t.Fatalf("bound pod %s has no %s annotation", p.Name, device.AllocationAnnotation)
	}
	a, err := device.DecodeAllocation(raw)
	if err != nil {
		t.Fatal(err)
	}
	if a.Node != p.Spec.NodeName {
		t.Fatalf("pod %s bound to %s but its allocation names %s", p.Name, p.Spec.NodeName, a.Node)
	}
	return a
}

// inventory returns the inventory published on a node.
func (e *env) inventory(node string) *device.Inventory {
	e.t.Helper()
	n, err := e.cs.CoreV1().Nodes().Get(e.ctx, node, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	inv, err := device.DecodeInventory(n.Annotations[device.InventoryAnnotation])
	if err != nil {
		e.t.Fatalf("node %s: %v", node, err)
	}
	return inv
}

// busOrder returns shares sorted by their cards' PCI bus IDs in the node's
// inventory: the order the node agent hands a container its cards in.
func (e *env) busOrder(node string, shares []device.Share) []device.Share {
	e.t.Helper()
	bus := map[string]device.PCIAddress{}
	for _, d := range e.inventory(node).Devices {
		a, err := device.ParsePCIAddress(d.PCIBus)
		if err != nil {
			e.t.Fatalf("node %s card %s: %v", node, d.UUID, err)
		}
		bus[d.UUID] = a
	}
	out := slices.Clone(shares)
	slices.SortFunc(out, func(a, b device.Share) int { return bus[a.UUID].Compare(bus[b.UUID]) })
	return out
}

// cards lists the card indexes of a pod's first container.
func cards(a *device.Allocation) []int {
	var out []int
	for _, s := range a.Containers[0].Devices {
		out = append(out, s.Index)
	}
	return out
}

func (e *env) delete(name string) {
	e.t.Helper()
	zero := int64(0)
	if err := e.cs.CoreV1().Pods(e.ns).Delete(e.ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
		e.t.Fatal(err)
	}
}

// checkCapacity verifies, from the API objects alone, that no card holds
// more than it offers: memory, cores, slots and exclusivity. It returns the
// number of bound pods holding cards.
func (e *env) checkCapacity() (bound int) {
	e.t.Helper()
	over, n, err := usage.Check(e.ctx, e.cs, e.ns, device.NodeConfig{SplitCount: 10, MemoryScaling: 1, CoreScaling: 1})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, line := range over {
		e.t.Error(line)
	}
	return n
}

// withArgs returns the shipped second-scheduler config with Mosaic args
// lines replaced, e.g. "nodePolicy: binpack" -> "nodePolicy: spread".
func withArgs(replacements ...string) []byte {
	s := string(config.SecondScheduler)
	for i := 0; i+1 < len(replacements); i += 2 {
		if !strings.Contains(s, replacements[i]) {
			panic("config has no " + replacements[i])
		}
		s = strings.Replace(s, replacements[i], replacements[i+1], 1)
	}
	return []byte(s)
}
