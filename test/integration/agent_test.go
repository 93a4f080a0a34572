package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/agent"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/kubelet/kubelettest"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri/nritest"
)

// The node agent as the binary composes it (fake discovery, a ConfigMap
// with a per-node override, the kubelet API, NRI) against the real API
// server, then the real scheduler places a pod on what it published and the
// agent hands the container exactly those cards.
func TestNodeAgentEndToEnd(t *testing.T) {
	// The scheduler starts once the agent has published the node's
	// inventory, so that it never sees the node without one.
	e := newStoppedEnv(t, nil)
	const nodeName = "agent-e2e"
	ag := startAgent(t, e, nodeName, true)
	ctx, kubelet, rt := ag.ctx, ag.kubelet, ag.rt

	// The inventory, with the ConfigMap's per-node split count, once the
	// NRI plugin is connected (before that it says nri: false).
	var inv *device.Inventory
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		n, err := e.cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil || n.Annotations[device.InventoryAnnotation] == "" {
			return false, nil
		}
		inv, err = device.DecodeInventory(n.Annotations[device.InventoryAnnotation])
		return err == nil && inv.NRI, err
	})
	if err != nil {
		t.Fatal("no inventory with NRI connected published:", err)
	}
	if len(inv.Devices) != 2 || inv.Config.SplitCount != 3 || !inv.NRI {
		t.Fatalf("inventory = %+v", inv)
	}
	e.startScheduler()

	// The kubelet sees 2 cards x 3 shares. The agent starts the plugin's
	// server and then sets its devices: a kubelet that connects in between
	// is sent an empty list first, then the devices.
	reg := kubelet.WaitRegistered(t)
	stream, err := kubelet.Dial(t, reg.Endpoint).ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	list := recvUntil(t, stream, func(l *pluginapi.ListAndWatchResponse) bool { return len(l.Devices) > 0 })
	if reg.ResourceName != "nvidia.com/gpu" || len(list.Devices) != 6 {
		t.Fatalf("registered %s with %d devices, want nvidia.com/gpu with 6", reg.ResourceName, len(list.Devices))
	}

	// Schedule, then create the container through NRI.
	p, alloc := e.mustBind(podSpec{name: "gpu", limits: map[string]string{"nvidia.com/gpu": "2", "nvidia.com/gpumem": "5000"}})
	var adj *api.ContainerAdjustment
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		adj, err = rt.CreateContainer(ctx, sandbox(p), container(p, "c0"))
		return err == nil && adj != nil && len(adj.GetEnv()) > 0, nil
	})
	if err != nil {
		t.Fatal("the agent's NRI plugin never adjusted the container:", err)
	}
	shares := e.busOrder(nodeName, alloc.Containers[0].Devices)
	want := shares[0].UUID + "," + shares[1].UUID
	for _, kv := range adj.GetEnv() {
		if kv.GetKey() == "NVIDIA_VISIBLE_DEVICES" && kv.GetValue() != want {
			t.Errorf("NVIDIA_VISIBLE_DEVICES=%s, want %s", kv.GetValue(), want)
		}
	}

	// An XID error on one card: the agent marks it unhealthy for the
	// kubelet (streamed) and for the scheduler (inventory), which stops
	// placing on it.
	select {
	case ag.health <- healthEvent{uuid: inv.Devices[0].UUID, healthy: false}:
	case <-time.After(waitTimeout):
		t.Fatal("the agent does not watch health events")
	}
	recvUntil(t, stream, func(l *pluginapi.ListAndWatchResponse) bool {
		unhealthy := 0
		for _, d := range l.Devices {
			if d.Health == pluginapi.Unhealthy {
				unhealthy++
			}
		}
		return unhealthy == 3
	})
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		n, err := e.cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got, err := device.DecodeInventory(n.Annotations[device.InventoryAnnotation])
		return err == nil && !got.Devices[0].Healthy && got.Devices[1].Healthy, nil
	})
	if err != nil {
		t.Fatal("the unhealthy card was not published")
	}
	// Published is not yet seen: wait until the scheduler has the update.
	e.syncNodes()
	e.mustReject(podSpec{name: "two-more", limits: map[string]string{"nvidia.com/gpu": "2", "nvidia.com/gpumem": "5000"}}, "GPU unhealthy")
	_, a := e.mustBind(podSpec{name: "one-more", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "5000"}})
	if a.Containers[0].Devices[0].UUID == inv.Devices[0].UUID {
		t.Error("a pod was placed on the unhealthy card")
	}
}

// recvUntil reads device lists from a ListAndWatch stream until one
// satisfies ok, and returns it. It fails the test after waitTimeout.
func recvUntil(t *testing.T, stream pluginapi.DevicePlugin_ListAndWatchClient, ok func(*pluginapi.ListAndWatchResponse) bool) *pluginapi.ListAndWatchResponse {
	t.Helper()
	type result struct {
		list *pluginapi.ListAndWatchResponse
		err  error
	}
	deadline := time.After(waitTimeout)
	for {
		// Recv has no deadline of its own; a Recv left blocked here ends
		// with the stream's context when the test is cleaned up.
		ch := make(chan result, 1)
		go func() {
			l, err := stream.Recv()
			ch <- result{l, err}
		}()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatal(r.err)
			}
			if ok(r.list) {
				return r.list
			}
		case <-deadline:
			t.Fatalf("no device list as wanted within %v", waitTimeout)
		}
	}
}

type agentRun struct {
	ctx     context.Context
	kubelet *kubelettest.Kubelet
	rt      *nritest.Runtime
	// health sends health events as the NVML backend's XID watcher does.
	health chan healthEvent
	// stateDir holds the limits files the agent writes.
	stateDir string
}

type healthEvent struct {
	uuid    string
	healthy bool
}

// watchedFake is the fake backend plus a health event source, like the
// NVIDIA backend's WatchHealth.
type watchedFake struct {
	discovery.Backend
	events chan healthEvent
}

func (w *watchedFake) WatchHealth(ctx context.Context, report func(string, bool)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-w.events:
			report(ev.uuid, ev.healthy)
		}
	}
}

// startAgent creates an API-only node with two L4 cards and runs the node
// agent for it (fake discovery, a ConfigMap with a per-node split count of
// 3, the fake kubelet, and NRI when withNRI).
func startAgent(t *testing.T, e *env, nodeName string, withNRI bool, configure ...func(dir string, o *agent.Options)) *agentRun {
	t.Helper()
	capacity := v1.ResourceList{v1.ResourceCPU: resource.MustParse("8"), v1.ResourceMemory: resource.MustParse("32Gi"), v1.ResourcePods: resource.MustParse("110"), "nvidia.com/gpu": resource.MustParse("6")}
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{v1.LabelHostname: nodeName}}, Status: v1.NodeStatus{
		Capacity: capacity, Allocatable: capacity,
		Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}},
	}}
	if _, err := e.cs.CoreV1().Nodes().Create(e.ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.cs.CoreV1().Nodes().Delete(context.Background(), nodeName, metav1.DeleteOptions{}) })
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "mosaic-sharing", Namespace: e.ns},
		Data: map[string]string{agent.ConfigKey: "default: {splitCount: 10}\nnodes:\n  " + nodeName + ": {splitCount: 3}\n"}}
	// Created by the first agent of the test; its other agents share it.
	if _, err := e.cs.CoreV1().ConfigMaps(e.ns).Create(e.ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cardsFile := filepath.Join(dir, "cards.yaml")
	if err := os.WriteFile(cardsFile, []byte("- {vendor: NVIDIA, model: NVIDIA L4, memoryMiB: 23034, count: 2, numa: [0, 1]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	backend, err := discovery.LoadFake(nodeName, cardsFile)
	if err != nil {
		t.Fatal(err)
	}
	kdir := filepath.Join(dir, "dp")
	if err := os.Mkdir(kdir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := &agentRun{kubelet: kubelettest.Start(t, kdir), health: make(chan healthEvent)}
	opts := agent.Options{
		NodeName: nodeName, Client: e.cs, Backend: &watchedFake{Backend: backend, events: run.health}, ConfigMap: e.ns + "/mosaic-sharing",
		KubeletDir: kdir, Refresh: time.Second,
		NRI: nri.Config{StateDir: filepath.Join(dir, "state"), EnforcerLib: "/opt/mosaic/libmosaic-enforcer.so"},
	}
	if withNRI {
		if run.rt, err = nritest.Start(dir); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(run.rt.Stop)
		opts.NRISocket = run.rt.Socket
	}
	for _, f := range configure {
		f(dir, &opts)
	}
	run.stateDir = opts.NRI.StateDir
	logger, _ := ktesting.NewTestContext(t)
	a, err := agent.New(opts, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	t.Cleanup(cancel)
	go func() { _ = a.Run(ctx) }()
	run.ctx = ctx
	return run
}

// Without NRI the kubelet's Allocate hands out the cards. Five pods created
// at once: the scheduler lets one at a time wait for its devices, and each,
// when the kubelet admits it, gets exactly the cards written on it. The
// scheduler starts only once all five exist, so it does face them at once.
func TestNodeAgentWithoutNRI(t *testing.T) {
	e := newStoppedEnv(t, nil)
	const nodeName = "agent-nonri"
	ag := startAgent(t, e, nodeName, false)
	reg := ag.kubelet.WaitRegistered(t)
	client := ag.kubelet.Dial(t, reg.Endpoint)
	// Wait for the inventory: it says the node has no NRI.
	err := wait.PollUntilContextTimeout(ag.ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		n, err := e.cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		inv, err := device.DecodeInventory(n.Annotations[device.InventoryAnnotation])
		return err == nil && !inv.NRI && len(inv.Devices) == 2, nil
	})
	if err != nil {
		t.Fatal("no inventory without NRI published")
	}
	const total = 5
	for i := range total {
		e.create(e.pod(podSpec{name: fmt.Sprintf("p%d", i), limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}}))
	}
	e.startScheduler()
	handedOut := map[string]bool{}
	for round := range total {
		// Exactly one pod is bound and waiting for its devices.
		var waiting *v1.Pod
		err := wait.PollUntilContextTimeout(ag.ctx, 20*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
			l, err := e.cs.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			var w []*v1.Pod
			for i := range l.Items {
				p := &l.Items[i]
				if p.Spec.NodeName != "" && p.Labels[device.HandedOutLabel] != "true" {
					w = append(w, p)
				}
			}
			if len(w) > 1 {
				return false, fmt.Errorf("%d pods wait for devices at once", len(w))
			}
			if len(w) == 1 {
				waiting = w[0]
			}
			return len(w) == 1, nil
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		a := allocation(t, waiting)
		rsp, err := client.Allocate(ag.ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"any::0"}}}})
		if err != nil {
			t.Fatalf("round %d: allocate: %v", round, err)
		}
		got := rsp.ContainerResponses[0]
		if want := a.Containers[0].Devices[0].UUID; got.Envs["NVIDIA_VISIBLE_DEVICES"] != want {
			t.Errorf("%s got NVIDIA_VISIBLE_DEVICES=%s, its allocation says %s", waiting.Name, got.Envs["NVIDIA_VISIBLE_DEVICES"], want)
		}
		// The device list, the card's region and the enforcer's four.
		if got.Envs["CUDA_DEVICE_MEMORY_LIMIT_0"] != "1000m" || len(got.Mounts) != 6 {
			t.Errorf("%s: env %v, mounts %v", waiting.Name, got.Envs, got.Mounts)
		}
		handedOut[waiting.Name] = true
		// The agent labels the pod; the scheduler then places the next.
		err = wait.PollUntilContextTimeout(ag.ctx, 20*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
			p, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, waiting.Name, metav1.GetOptions{})
			return err == nil && p.Labels[device.HandedOutLabel] == "true", nil
		})
		if err != nil {
			t.Fatalf("%s was not marked handed out", waiting.Name)
		}
	}
	if len(handedOut) != total {
		t.Errorf("handed out %d distinct pods, want %d", len(handedOut), total)
	}
	e.checkCapacity()
}

// An agent configured with an NRI socket on which no runtime listens
// (containerd 1.7 leaves NRI off) says nri: false and hands out the cards
// in Allocate; once the runtime serves NRI it says nri: true and leaves the
// cards to NRI; when the runtime goes away it says nri: false again and
// hands out again. Never does Allocate leave a device container to its
// image's NVIDIA_VISIBLE_DEVICES.
func TestNodeAgentNRIConfiguredButNotConnected(t *testing.T) {
	e := newStoppedEnv(t, nil)
	const nodeName = "agent-nri-down"
	var rtDir string
	ag := startAgent(t, e, nodeName, false, func(dir string, o *agent.Options) {
		rtDir = filepath.Join(dir, "runtime")
		if err := os.Mkdir(rtDir, 0o755); err != nil {
			t.Fatal(err)
		}
		o.NRISocket = filepath.Join(rtDir, "nri.sock") // where nritest.Start(rtDir) listens
	})
	reg := ag.kubelet.WaitRegistered(t)
	client := ag.kubelet.Dial(t, reg.Endpoint)
	inventory := func(nriWanted bool) *device.Inventory {
		t.Helper()
		var inv *device.Inventory
		err := wait.PollUntilContextTimeout(ag.ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
			n, err := e.cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			inv, err = device.DecodeInventory(n.Annotations[device.InventoryAnnotation])
			return err == nil && inv.NRI == nriWanted && len(inv.Devices) == 2, nil
		})
		if err != nil {
			t.Fatalf("no inventory with nri: %v within %v", nriWanted, waitTimeout)
		}
		return inv
	}
	// One pod bound here, waiting for its devices, as the scheduler leaves
	// it on a node without NRI.
	card := inventory(false).Devices[0].UUID
	bind := func(name string) {
		t.Helper()
		raw, err := device.EncodeAllocation(&device.Allocation{Node: nodeName, Containers: []device.ContainerAllocation{
			{Name: "c0", Devices: []device.Share{{UUID: card, Vendor: device.VendorNVIDIA, MemoryMiB: 1000, Cores: 30}}}}})
		if err != nil {
			t.Fatal(err)
		}
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Annotations: map[string]string{device.AllocationAnnotation: raw}},
			Spec: v1.PodSpec{NodeName: nodeName, Containers: []v1.Container{{Name: "c0", Image: "cuda"}}}}
		if _, err := e.cs.CoreV1().Pods(e.ns).Create(ag.ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	allocate := func() *pluginapi.ContainerAllocateResponse {
		t.Helper()
		rsp, err := client.Allocate(ag.ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"any::0"}}}})
		if err != nil {
			t.Fatalf("allocate: %v", err)
		}
		return rsp.ContainerResponses[0]
	}
	handedOut := func(name string) {
		t.Helper()
		got := allocate()
		if got.Envs[device.NVIDIAVisibleDevicesEnv] != card || got.Envs["CUDA_DEVICE_MEMORY_LIMIT_0"] != "1000m" || len(got.Mounts) != 6 {
			t.Fatalf("%s: Allocate without NRI connected answered env %v, mounts %v; want the card, its limits and mounts", name, got.Envs, got.Mounts)
		}
		err := wait.PollUntilContextTimeout(ag.ctx, 20*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
			p, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
			return err == nil && p.Labels[device.HandedOutLabel] == "true", nil
		})
		if err != nil {
			t.Fatalf("%s was not marked handed out", name)
		}
	}

	bind("before")
	handedOut("before")

	// The runtime comes up: nri: true, and Allocate leaves the cards to
	// NRI, selecting none itself.
	rt, err := nritest.Start(rtDir)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			rt.Stop()
		}
	})
	inventory(true)
	if got := allocate(); got.Envs[device.NVIDIAVisibleDevicesEnv] != device.NVIDIANoDevices || got.Envs[nri.RequestEnv] == "" || len(got.Mounts) != 0 {
		t.Fatalf("Allocate with NRI connected answered env %v, mounts %v; want only the mark and no card", got.Envs, got.Mounts)
	}

	// The runtime goes away: nri: false again, and Allocate hands out.
	// It is stopped once it calls the plugin: the runtime adds a plugin
	// to those it calls just after synchronizing it, and one stopped
	// before would keep that plugin's connection.
	probe := func() (*api.PodSandbox, *api.Container) {
		return &api.PodSandbox{Id: "probe", Uid: "probe"}, &api.Container{Id: "probe", PodSandboxId: "probe", Name: "probe"}
	}
	if err := rt.WaitForPlugin(ag.ctx, probe); err != nil {
		t.Fatal(err)
	}
	rt.Stop()
	stopped = true
	inventory(false)
	bind("after")
	handedOut("after")
}
