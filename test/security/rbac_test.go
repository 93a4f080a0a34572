package security

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2/ktesting"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/mosaic-gpu/mosaic/config"
	"github.com/mosaic-gpu/mosaic/manifests"
	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/agent"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/kubelet/kubelettest"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
	"github.com/mosaic-gpu/mosaic/pkg/sim"
)

const (
	agentPodsPolicy  = "mosaic-node-agent-pods"
	agentNodesPolicy = "mosaic-node-agent-nodes"
)

// The real scheduler, connected with a token of its service account and
// nothing but scheduler.yaml's RBAC, places and binds a device pod with a
// signed allocation; its leader election's lease calls go through for its
// own lease only; it reads no Secret, and changes no pod but through the
// Binding.
func TestSchedulerRunsWithItsManifestRights(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
	defer cancel()
	ns := namespace(t, "scheduler-rbac")
	as := serviceAccount(t, "kube-system", schedulerSA, nil)
	startScheduler(t, ctx, as)
	gpuNode(t, ctx, "gpu-sched", true)

	pod := gpuPod(ns, "work")
	if _, err := cp.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bound := waitBound(t, ctx, ns, "work")
	keys, err := device.LoadKeySet(cp.KeyDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Verify(string(bound.UID), bound.Annotations[device.AllocationAnnotation], bound.Annotations[device.SignatureAnnotation]); err != nil {
		t.Errorf("the bound pod's allocation: %v", err)
	}

	// The calls leader election makes, through its own client code.
	sched := clientFor(as)
	lock := func(name string) resourcelock.Interface {
		l, err := resourcelock.New(resourcelock.LeasesResourceLock, "kube-system", name, sched.CoreV1(), sched.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: "mosaic-scheduler-test"})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	own := lock("mosaic-scheduler")
	now := metav1.NewTime(time.Now())
	rec := resourcelock.LeaderElectionRecord{HolderIdentity: "mosaic-scheduler-test", LeaseDurationSeconds: 15, AcquireTime: now, RenewTime: now}
	mustSucceed(t, "creating its lease", own.Create(ctx, rec))
	_, _, err = own.Get(ctx)
	mustSucceed(t, "reading its lease", err)
	mustSucceed(t, "renewing its lease", own.Update(ctx, rec))
	other := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "kube-controller-manager", Namespace: "kube-system"}}
	if _, err := cp.Client.CoordinationV1().Leases("kube-system").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, _, err = lock("kube-controller-manager").Get(ctx)
	mustBeForbiddenByRBAC(t, "reading another component's lease", err)

	secret(t, ctx)
	for what, err := range cannot(ctx, sched, ns, bound) {
		mustBeForbiddenByRBAC(t, "the scheduler "+what, err)
	}
	_, err = sched.CoreV1().Nodes().Patch(ctx, "gpu-sched", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
	mustBeForbiddenByRBAC(t, "the scheduler patching a node", err)
}

// The real node agent, without NRI, connected with a token of its service
// account bound to its pod on its node, and nothing but device-plugin.yaml's
// RBAC and admission-policy.yaml: it reads its ConfigMap, publishes its
// inventory, watches its pods, hands a pod its cards and labels it, and
// tells a pod with an unverified allocation why it got none, in an Event.
// It reads no Secret and no other ConfigMap, creates and deletes no pod,
// and changes nothing on another node, nor anything on its own but the
// handed-out label and the inventory.
func TestNodeAgentRunsWithItsManifestRights(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
	defer cancel()
	ns := namespace(t, "agent-rbac")
	const node, otherNode = "gpu-agent", "gpu-other"
	gpuNode(t, ctx, node, false)
	gpuNode(t, ctx, otherNode, true)
	agentPod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "mosaic-device-plugin-" + node, Namespace: "kube-system"},
		Spec: v1.PodSpec{NodeName: node, ServiceAccountName: agentSA, Containers: []v1.Container{{Name: "agent", Image: "x"}}}}
	agentPod, err := cp.Client.CoreV1().Pods("kube-system").Create(ctx, agentPod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deletePod(cp.Client, "kube-system", agentPod.Name) })
	as := serviceAccount(t, "kube-system", agentSA, agentPod)
	ag := clientFor(as)

	kubelet := runAgent(t, ctx, node, ag)
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		n, err := cp.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		return err == nil && n.Annotations[device.InventoryAnnotation] != "", nil
	})
	if err != nil {
		t.Fatal("the agent published no inventory:", err)
	}
	startScheduler(t, ctx, serviceAccount(t, "kube-system", schedulerSA, nil))

	// A scheduled pod: its cards, and the handed-out label.
	work := gpuPod(ns, "work")
	work.Spec.NodeSelector = map[string]string{v1.LabelHostname: node}
	if _, err := cp.Client.CoreV1().Pods(ns).Create(ctx, work, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	work = waitBound(t, ctx, ns, "work")
	alloc, err := device.DecodeAllocation(work.Annotations[device.AllocationAnnotation])
	if err != nil {
		t.Fatal(err)
	}
	reg := kubelet.WaitRegistered(t)
	dp := kubelet.Dial(t, reg.Endpoint)
	allocate := func() map[string]string {
		t.Helper()
		rsp, err := dp.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"any::0"}}}})
		if err != nil {
			t.Fatalf("allocate: %v", err)
		}
		return rsp.ContainerResponses[0].Envs
	}
	if got, want := allocate()[device.NVIDIAVisibleDevicesEnv], alloc.Containers[0].Devices[0].UUID; got != want {
		t.Errorf("work: NVIDIA_VISIBLE_DEVICES=%s, its allocation says %s", got, want)
	}
	waitLabelled(t, ctx, ns, "work")

	// A pod bound with an allocation no key signed (the scheduler's
	// identity may bind with any): no card, an Event, and the label.
	forged := plainPod(ns, "forged")
	if forged, err = cp.Client.CoreV1().Pods(ns).Create(ctx, forged, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	raw := work.Annotations[device.AllocationAnnotation]
	ann := map[string]string{device.AllocationAnnotation: raw, device.SignatureAnnotation: device.Sign([]byte(strings.Repeat("u", 32)), string(forged.UID), raw)}
	if err := clientFor(serviceAccount(t, "kube-system", schedulerSA, nil)).CoreV1().Pods(ns).Bind(ctx, binding(forged, node, ann), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := allocate()[device.NVIDIAVisibleDevicesEnv]; got != device.NVIDIANoDevices {
		t.Errorf("forged: NVIDIA_VISIBLE_DEVICES=%s, want %s", got, device.NVIDIANoDevices)
	}
	waitLabelled(t, ctx, ns, "forged")
	ev := waitEvent(t, ctx, ns, "forged")
	if ev.ReportingController != agent.EventsController || !strings.Contains(ev.Note, "matches none") {
		t.Errorf("event from %s: %q", ev.ReportingController, ev.Note)
	}

	// Must not: RBAC.
	secret(t, ctx)
	for what, err := range cannot(ctx, ag, ns, work) {
		mustBeForbiddenByRBAC(t, "the agent "+what, err)
	}
	_, err = ag.CoreV1().Pods(ns).Get(ctx, "work", metav1.GetOptions{})
	mustBeForbiddenByRBAC(t, "the agent reading one pod", err)
	_, err = ag.CoreV1().ConfigMaps("kube-system").Get(ctx, "mosaic-scheduler-config", metav1.GetOptions{})
	mustBeForbiddenByRBAC(t, "the agent reading another ConfigMap", err)
	err = ag.CoreV1().Pods(ns).Delete(ctx, "work", metav1.DeleteOptions{})
	mustBeForbiddenByRBAC(t, "the agent deleting a pod", err)
	_, err = ag.CoreV1().Pods(ns).UpdateStatus(ctx, work, metav1.UpdateOptions{})
	mustBeForbiddenByRBAC(t, "the agent updating a pod's status", err)

	// Must not: the admission policies.
	elsewhere := plainPod(ns, "elsewhere")
	elsewhere.Spec.NodeName = otherNode
	if _, err := cp.Client.CoreV1().Pods(ns).Create(ctx, elsewhere, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Client.CoreV1().Pods(ns).Create(ctx, plainPod(ns, "unbound"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	patch := func(name string, pt types.PatchType, p string) error {
		_, err := ag.CoreV1().Pods(ns).Patch(ctx, name, pt, []byte(p), metav1.PatchOptions{})
		return err
	}
	const label = `{"metadata":{"labels":{"mosaic.io/handed-out":"true"}}}`
	mustBeDeniedBy(t, "labelling a pod on another node", patch("elsewhere", types.MergePatchType, label), agentPodsPolicy, "only pods bound to its own node")
	mustBeDeniedBy(t, "labelling an unbound pod", patch("unbound", types.MergePatchType, label), agentPodsPolicy, "only pods bound to its own node")
	onlyLabel := "only a pod's mosaic.io/handed-out label"
	mustBeDeniedBy(t, "changing an image", patch("work", types.StrategicMergePatchType, `{"spec":{"containers":[{"name":"c0","image":"evil"}]}}`), agentPodsPolicy, onlyLabel)
	mustBeDeniedBy(t, "setting a deadline", patch("work", types.MergePatchType, `{"spec":{"activeDeadlineSeconds":1}}`), agentPodsPolicy, onlyLabel)
	mustBeDeniedBy(t, "adding another label", patch("work", types.MergePatchType, `{"metadata":{"labels":{"team":"b"}}}`), agentPodsPolicy, onlyLabel)
	mustBeDeniedBy(t, "adding a finalizer", patch("work", types.MergePatchType, `{"metadata":{"finalizers":["example.com/hold"]}}`), agentPodsPolicy, onlyLabel)
	if err := patch("work", types.MergePatchType, `{"metadata":{"annotations":{"mosaic.io/allocation":"{}"}}}`); !deniedBy(err, allocationPolicy) && !deniedBy(err, agentPodsPolicy) {
		t.Errorf("the agent changing an allocation: %v, want an admission policy's refusal", err)
	}
	mustSucceed(t, "the agent removing the handed-out label of its node's pod", patch("work", types.MergePatchType, `{"metadata":{"labels":{"mosaic.io/handed-out":null}}}`))

	nodePatch := func(c kubernetes.Interface, name, p string) error {
		_, err := c.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, []byte(p), metav1.PatchOptions{})
		return err
	}
	const inventory = `{"metadata":{"annotations":{"mosaic.io/devices":"{}"}}}`
	mustBeDeniedBy(t, "publishing another node's inventory", nodePatch(ag, otherNode, inventory), agentNodesPolicy, "only its own Node")
	onlyInventory := "only its Node's mosaic.io/devices annotation"
	mustBeDeniedBy(t, "labelling its node", nodePatch(ag, node, `{"metadata":{"labels":{"x":"y"}}}`), agentNodesPolicy, onlyInventory)
	mustBeDeniedBy(t, "cordoning its node", nodePatch(ag, node, `{"spec":{"unschedulable":true}}`), agentNodesPolicy, onlyInventory)
	mustBeDeniedBy(t, "annotating its node", nodePatch(ag, node, `{"metadata":{"annotations":{"x":"y"}}}`), agentNodesPolicy, onlyInventory)
	// A token not bound to a pod names no node.
	unbound := clientFor(serviceAccount(t, "kube-system", agentSA, nil))
	mustBeDeniedBy(t, "a token naming no node", nodePatch(unbound, node, inventory), agentNodesPolicy, "pod-bound service account token")
}

// The webhook calls nothing: its manifest mounts no token, and its
// service account could do nothing with one.
func TestWebhookHoldsNoRights(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	objs, err := manifests.Objects("webhook.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var sa *v1.ServiceAccount
	var deploy *appsv1.Deployment
	for _, o := range objs {
		switch o := o.(type) {
		case *v1.ServiceAccount:
			sa = o
		case *appsv1.Deployment:
			deploy = o
		}
	}
	if sa == nil || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken ||
		deploy == nil || deploy.Spec.Template.Spec.ServiceAccountName != webhookSA ||
		deploy.Spec.Template.Spec.AutomountServiceAccountToken == nil || *deploy.Spec.Template.Spec.AutomountServiceAccountToken {
		t.Errorf("webhook.yaml: want its pods to run as %s with no token mounted", webhookSA)
	}
	ns := namespace(t, "webhook-rbac")
	pod, err := cp.Client.CoreV1().Pods(ns).Create(ctx, plainPod(ns, "work"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secret(t, ctx)
	wh := clientFor(serviceAccount(t, "kube-system", webhookSA, nil))
	for what, err := range cannot(ctx, wh, ns, pod) {
		mustBeForbiddenByRBAC(t, "the webhook "+what, err)
	}
	_, err = wh.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	mustBeForbiddenByRBAC(t, "the webhook listing pods", err)
	_, err = wh.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	mustBeForbiddenByRBAC(t, "the webhook listing nodes", err)
	err = wh.CoreV1().Pods(ns).Delete(ctx, "work", metav1.DeleteOptions{})
	mustBeForbiddenByRBAC(t, "the webhook deleting a pod", err)
}

// cannot makes the calls no Mosaic component may make, and returns their
// errors by what they tried: reading the signing key's Secret or any
// Secret, creating a pod, and changing a pod's spec by update or patch.
func cannot(ctx context.Context, c kubernetes.Interface, ns string, pod *v1.Pod) map[string]error {
	errs := map[string]error{}
	_, errs["reading the signing key's Secret"] = c.CoreV1().Secrets("kube-system").Get(ctx, "mosaic-allocation-key", metav1.GetOptions{})
	_, errs["listing Secrets"] = c.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
	_, errs["listing a namespace's Secrets"] = c.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	_, errs["creating a pod"] = c.CoreV1().Pods(ns).Create(ctx, plainPod(ns, "sneaky"), metav1.CreateOptions{})
	changed := pod.DeepCopy()
	changed.Spec.Containers[0].Image = "evil"
	_, errs["updating a pod's spec"] = c.CoreV1().Pods(ns).Update(ctx, changed, metav1.UpdateOptions{})
	if pod.Spec.NodeName == "" { // patch is the agent's, for labels; the policies hold it there
		_, errs["patching a pod's spec"] = c.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.StrategicMergePatchType, []byte(`{"spec":{"containers":[{"name":"c","image":"evil"}]}}`), metav1.PatchOptions{})
	}
	return errs
}

// secret creates the signing key's Secret as an install does, once.
func secret(t *testing.T, ctx context.Context) {
	t.Helper()
	s := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "mosaic-allocation-key", Namespace: "kube-system"},
		StringData: map[string]string{device.CurrentKey: strings.Repeat("k", 44)}}
	if _, err := cp.Client.CoreV1().Secrets("kube-system").Create(ctx, s, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
}

// gpuNode creates an API-only node offering one L4 card to the kubelet;
// withInventory publishes it as the agent would, for nodes no agent runs
// on here.
func gpuNode(t *testing.T, ctx context.Context, name string, withInventory bool) {
	t.Helper()
	capacity := v1.ResourceList{v1.ResourceCPU: resource.MustParse("8"), v1.ResourceMemory: resource.MustParse("32Gi"), v1.ResourcePods: resource.MustParse("110"), "nvidia.com/gpu": resource.MustParse("10")}
	spec := sim.NodeSpec{Name: name, GPUs: []discovery.CardSpec{{Vendor: device.VendorNVIDIA, Model: "NVIDIA L4", MemoryMiB: 23034, Count: 1}}}
	if withInventory {
		if err := sim.CreateNodes(ctx, cp.Client, []sim.NodeSpec{spec}); err != nil {
			t.Fatal(err)
		}
	} else {
		n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1.LabelHostname: name}},
			Status: v1.NodeStatus{Capacity: capacity, Allocatable: capacity, Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}}}}
		if _, err := cp.Client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = cp.Client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

// runAgent runs the node agent for node with client (no NRI, one fake L4
// card, the manifest's ConfigMap, the control plane's signing key) against
// a fake kubelet, until the test ends.
func runAgent(t *testing.T, ctx context.Context, node string, client kubernetes.Interface) *kubelettest.Kubelet {
	t.Helper()
	dir := t.TempDir()
	backend, err := discovery.NewFake(node, []discovery.CardSpec{{Vendor: device.VendorNVIDIA, Model: "NVIDIA L4", MemoryMiB: 23034, Count: 1}})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := device.LoadKeySet(cp.KeyDir)
	if err != nil {
		t.Fatal(err)
	}
	kubelet := kubelettest.Start(t, dir)
	logger, _ := ktesting.NewTestContext(t)
	a, err := agent.New(agent.Options{NodeName: node, Client: client, Backend: backend, ConfigMap: "kube-system/mosaic-sharing",
		KubeletDir: dir, Refresh: time.Second, NRI: nri.Config{StateDir: t.TempDir(), AllocationKeys: keys}}, logger)
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.Run(actx)
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
	return kubelet
}

// startScheduler runs the shipped second-scheduler config connected as
// as, until the test ends.
func startScheduler(t *testing.T, ctx context.Context, as *rest.Config) {
	t.Helper()
	sctx, stop := context.WithCancel(ctx)
	done, err := cp.StartSchedulerAs(sctx, config.SecondScheduler, as)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Errorf("scheduler did not stop within %v", waitTimeout)
		}
	})
}

func gpuPod(ns, name string) *v1.Pod {
	limits := v1.ResourceList{"nvidia.com/gpu": resource.MustParse("1"), "nvidia.com/gpumem": resource.MustParse("1000")}
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1.PodSpec{SchedulerName: "mosaic-scheduler",
		Containers: []v1.Container{{Name: "c0", Image: "cuda", Resources: v1.ResourceRequirements{Limits: limits}}}}}
}

func waitBound(t *testing.T, ctx context.Context, ns, name string) *v1.Pod {
	t.Helper()
	var pod *v1.Pod
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		p, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		pod = p
		return err == nil && p.Spec.NodeName != "", nil
	})
	if err != nil {
		t.Fatalf("pod %s not bound: %v (%+v)", name, err, pod.Status.Conditions)
	}
	return pod
}

func waitLabelled(t *testing.T, ctx context.Context, ns, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		p, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && p.Labels[device.HandedOutLabel] == "true", nil
	})
	if err != nil {
		t.Fatalf("pod %s not labelled handed out: %v", name, err)
	}
}

// waitEvent returns the agent's Event saying why the pod got no card.
func waitEvent(t *testing.T, ctx context.Context, ns, pod string) *eventsv1.Event {
	t.Helper()
	var ev *eventsv1.Event
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		l, err := cp.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for i := range l.Items {
			if e := &l.Items[i]; e.Regarding.Name == pod && e.Reason == nri.EventReasonUnverified {
				ev = e
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no %s event on pod %s: %v", nri.EventReasonUnverified, pod, err)
	}
	return ev
}

func deletePod(cs kubernetes.Interface, ns, name string) {
	zero := int64(0)
	_ = cs.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
}
