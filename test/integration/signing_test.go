package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	v1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/agent"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri/nritest"
)

// The node agent with the cluster's signing key, through NRI: a pod the
// scheduler bound gets its cards; a pod created already bound with an
// unsigned allocation, or with one and its signature copied from another
// pod, starts with no card, and an Event on it says why.
func TestUnverifiedAllocationGetsNoCards(t *testing.T) {
	e := newStoppedEnv(t, nil)
	const node = "agent-signed"
	ag := startAgent(t, e, node, true, withKeys(t, cp.KeyDir))
	waitInventory(t, e, node, true)
	e.startScheduler()

	real, _ := e.mustBind(podSpec{name: "real", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}})
	if got, want := visible(t, ag.rt, real), allocation(t, real).Containers[0].Devices[0].UUID; got != want {
		t.Fatalf("the scheduled pod: NVIDIA_VISIBLE_DEVICES=%s, want %s", got, want)
	}
	for name, tc := range map[string]struct {
		ann  map[string]string
		want string
	}{
		"unsigned": {map[string]string{device.AllocationAnnotation: real.Annotations[device.AllocationAnnotation]}, "not signed"},
		"copied":   {map[string]string{device.AllocationAnnotation: real.Annotations[device.AllocationAnnotation], device.SignatureAnnotation: real.Annotations[device.SignatureAnnotation]}, "matches none"},
	} {
		p := e.boundPod(name, node, tc.ann)
		adj, err := ag.rt.CreateContainer(e.ctx, sandbox(p), container(p, "c0"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := envOf(adj)[device.NVIDIAVisibleDevicesEnv]; got != device.NVIDIANoDevices || len(adj.GetMounts()) != 0 {
			t.Errorf("%s: NVIDIA_VISIBLE_DEVICES=%s, mounts %v; want %s and none", name, got, adj.GetMounts(), device.NVIDIANoDevices)
		}
		if ev := e.unverifiedEvent(name); !strings.Contains(ev.Note, "container c0 gets no device") || !strings.Contains(ev.Note, tc.want) ||
			ev.Type != v1.EventTypeWarning || ev.ReportingController != agent.EventsController {
			t.Errorf("%s: event %s from %s: %q; want a warning saying %q", name, ev.Type, ev.ReportingController, ev.Note, tc.want)
		}
	}
}

// Without NRI the kubelet's Allocate hands out the cards: there too an
// unsigned allocation gets none and an Event, and the pod is still marked
// handed out, so that the node's next pod is not held up.
func TestUnverifiedAllocationGetsNoCardsWithoutNRI(t *testing.T) {
	e := newStoppedEnv(t, nil)
	const node = "agent-signed-nonri"
	ag := startAgent(t, e, node, false, withKeys(t, cp.KeyDir))
	inv := waitInventory(t, e, node, false)
	raw, err := device.EncodeAllocation(&device.Allocation{Node: node, Containers: []device.ContainerAllocation{
		{Name: "c0", Devices: []device.Share{{UUID: inv.Devices[0].UUID, Vendor: device.VendorNVIDIA, MemoryMiB: 1000}}}}})
	if err != nil {
		t.Fatal(err)
	}
	e.boundPod("unsigned", node, map[string]string{device.AllocationAnnotation: raw})
	reg := ag.kubelet.WaitRegistered(t)
	rsp, err := ag.kubelet.Dial(t, reg.Endpoint).Allocate(ag.ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"any::0"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := rsp.ContainerResponses[0]; got.Envs[device.NVIDIAVisibleDevicesEnv] != device.NVIDIANoDevices || len(got.Mounts) != 0 {
		t.Errorf("Allocate answered env %v, mounts %v; want no card", got.Envs, got.Mounts)
	}
	if ev := e.unverifiedEvent("unsigned"); !strings.Contains(ev.Note, "not signed") {
		t.Errorf("event: %q", ev.Note)
	}
	err = wait.PollUntilContextTimeout(e.ctx, 20*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		p, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, "unsigned", metav1.GetOptions{})
		return err == nil && p.Labels[device.HandedOutLabel] == "true", nil
	})
	if err != nil {
		t.Error("the pod was not marked handed out")
	}
}

// A key rotation as docs/security.md describes it, while the agent runs:
// the Secret becomes current=B, previous=A and the scheduler restarts. Pods
// signed with A before keep their cards when their containers start again,
// pods the restarted scheduler signs with B get theirs, and the agent reads
// the new key from its mount without a restart. A pod signed with a key
// the Secret never held gets none, and so, once A is retired, does a pod
// signed with A.
func TestAllocationKeyRotation(t *testing.T) {
	dir, err := os.MkdirTemp("", "keys")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	keyA, keyB, keyC, keyD := strings.Repeat("a", 32), strings.Repeat("b", 32), strings.Repeat("c", 32), strings.Repeat("d", 32)
	writeKeys(t, dir, map[string]string{device.CurrentKey: keyA})
	cfg := withArgs("deviceCoreScaling: 1.0", "deviceCoreScaling: 1.0\n      allocationKeyFile: "+filepath.Join(dir, device.CurrentKey))
	e := newStoppedEnv(t, cfg)
	const node = "agent-rotate"
	ag := startAgent(t, e, node, true, withKeys(t, dir))
	waitInventory(t, e, node, true)
	e.startScheduler()
	limits := map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}
	cards := func(p *v1.Pod) string { return allocation(t, p).Containers[0].Devices[0].UUID }

	before, _ := e.mustBind(podSpec{name: "before", limits: limits})
	if got := visible(t, ag.rt, before); got != cards(before) {
		t.Fatalf("before the rotation: NVIDIA_VISIBLE_DEVICES=%s", got)
	}

	writeKeys(t, dir, map[string]string{device.CurrentKey: keyB, device.PreviousKey: keyA})
	e.restartScheduler()
	after, _ := e.mustBind(podSpec{name: "after", limits: limits})
	if err := device.Verify([]byte(keyB), string(after.UID), after.Annotations[device.AllocationAnnotation], after.Annotations[device.SignatureAnnotation]); err != nil {
		t.Fatalf("the restarted scheduler did not sign with the new key: %v", err)
	}
	if got := visible(t, ag.rt, after); got != cards(after) {
		t.Errorf("signed with the new key: NVIDIA_VISIBLE_DEVICES=%s, want %s", got, cards(after))
	}
	if got := visible(t, ag.rt, before); got != cards(before) {
		t.Errorf("signed with the previous key, restarted: NVIDIA_VISIBLE_DEVICES=%s, want %s", got, cards(before))
	}

	raw := before.Annotations[device.AllocationAnnotation]
	unknown := e.boundPod("unknown", node, map[string]string{device.AllocationAnnotation: raw})
	unknown.Annotations[device.SignatureAnnotation] = device.Sign([]byte(keyC), string(unknown.UID), raw)
	if unknown, err = e.cs.CoreV1().Pods(e.ns).Update(e.ctx, unknown, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := visible(t, ag.rt, unknown); got != device.NVIDIANoDevices {
		t.Errorf("signed with a key the Secret never held: NVIDIA_VISIBLE_DEVICES=%s", got)
	}
	e.unverifiedEvent("unknown")

	writeKeys(t, dir, map[string]string{device.CurrentKey: keyD, device.PreviousKey: keyB})
	if got := visible(t, ag.rt, before); got != device.NVIDIANoDevices {
		t.Errorf("signed with the retired key: NVIDIA_VISIBLE_DEVICES=%s", got)
	}
	e.unverifiedEvent("before")
	if got := visible(t, ag.rt, after); got != cards(after) {
		t.Errorf("signed with the now previous key: NVIDIA_VISIBLE_DEVICES=%s", got)
	}
}

// withKeys configures startAgent's agent with the key directory.
func withKeys(t *testing.T, dir string) func(string, *agent.Options) {
	return func(_ string, o *agent.Options) {
		keys, err := device.LoadKeySet(dir)
		if err != nil {
			t.Fatal(err)
		}
		o.NRI.AllocationKeys = keys
	}
}

// writeKeys makes dir hold exactly keys, each file replaced whole, as an
// update of the mounted Secret does.
func writeKeys(t *testing.T, dir string, keys map[string]string) {
	t.Helper()
	for name, k := range keys {
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(k+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, en := range entries {
		if _, keep := keys[en.Name()]; !keep {
			_ = os.Remove(filepath.Join(dir, en.Name()))
		}
	}
}

// waitInventory waits for the agent's inventory of node with nri as given.
func waitInventory(t *testing.T, e *env, node string, nri bool) *device.Inventory {
	t.Helper()
	var inv *device.Inventory
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		n, err := e.cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		inv, err = device.DecodeInventory(n.Annotations[device.InventoryAnnotation])
		return err == nil && inv.NRI == nri && len(inv.Devices) > 0, nil
	})
	if err != nil {
		t.Fatalf("no inventory with nri: %v published for %s", nri, node)
	}
	return inv
}

// boundPod creates a pod already bound to node with the annotations, as a
// user allowed to create pods can where no admission policy stops it.
func (e *env) boundPod(name, node string, ann map[string]string) *v1.Pod {
	e.t.Helper()
	p := e.pod(podSpec{name: name, limits: map[string]string{"nvidia.com/gpu": "1"}, annotations: ann})
	p.Spec.NodeName = node
	p, err := e.cs.CoreV1().Pods(e.ns).Create(e.ctx, p, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// visible creates the pod's container c0 through NRI and returns the
// NVIDIA_VISIBLE_DEVICES the agent gave it.
func visible(t *testing.T, rt *nritest.Runtime, p *v1.Pod) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	adj, err := rt.CreateContainer(ctx, sandbox(p), container(p, "c0"))
	if err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
	return envOf(adj)[device.NVIDIAVisibleDevicesEnv]
}

func envOf(adj *api.ContainerAdjustment) map[string]string {
	env := map[string]string{}
	for _, kv := range adj.GetEnv() {
		env[kv.GetKey()] = kv.GetValue()
	}
	return env
}

// unverifiedEvent waits for the agent's Event saying why the pod got no
// card, and returns the latest.
func (e *env) unverifiedEvent(pod string) *eventsv1.Event {
	e.t.Helper()
	var ev *eventsv1.Event
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		l, err := e.cs.EventsV1().Events(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for i := range l.Items {
			if it := &l.Items[i]; it.Regarding.Name == pod && it.Reason == nri.EventReasonUnverified {
				ev = it
			}
		}
		return ev != nil, nil
	})
	if err != nil {
		e.t.Fatalf("no %s event on pod %s", nri.EventReasonUnverified, pod)
	}
	return ev
}
