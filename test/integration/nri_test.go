package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri/nritest"
)

// Twenty pods bound to one node at once: when the runtime creates their
// containers concurrently, the NRI plugin gives each exactly the cards and
// limits the scheduler wrote on it, read from the API server's pods.
func TestNodeAgentHandsEachPodItsCards(t *testing.T) {
	n := a100("agent", 8)
	n.DeviceConfig.SplitCount = 4
	e := newEnv(t, nil, n)
	const pods = 20
	var wg sync.WaitGroup
	for i := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			limits := map[string]string{"nvidia.com/gpu": fmt.Sprint(1 + i%2), "nvidia.com/gpumem": fmt.Sprint(1000 + 100*i), "nvidia.com/gpucores": "10"}
			if _, err := e.cs.CoreV1().Pods(e.ns).Create(e.ctx, e.pod(podSpec{name: fmt.Sprintf("w%02d", i), limits: limits}), metav1.CreateOptions{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var list *v1.PodList
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		l, err := e.cs.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, p := range l.Items {
			if p.Spec.NodeName == "" {
				return false, nil
			}
		}
		list = l
		return len(l.Items) == pods, nil
	})
	if err != nil {
		t.Fatal("not every pod was bound")
	}
	e.checkCapacity()

	rt, state := startNRIPlugin(t, e, nri.Config{NodeName: "agent", EnforcerLib: "/opt/mosaic/libmosaic-enforcer.so"}, &list.Items[0])
	ctx := e.ctx

	type result struct {
		pod *v1.Pod
		adj *api.ContainerAdjustment
		err error
	}
	// The creations start together, released by one close, rather than in
	// whatever order the goroutines happen to be started.
	results := make(chan result, pods)
	start := make(chan struct{})
	for i := range list.Items {
		p := &list.Items[i]
		go func() {
			<-start
			adj, err := rt.CreateContainer(ctx, sandbox(p), container(p, "c0"))
			results <- result{p, adj, err}
		}()
	}
	close(start)
	deadline := time.After(waitTimeout)
	for range pods {
		var r result
		select {
		case r = <-results:
		case <-deadline:
			t.Fatalf("containers not all created within %v", waitTimeout)
		}
		if r.err != nil {
			t.Fatalf("%s: %v", r.pod.Name, r.err)
		}
		a := allocation(t, r.pod)
		// The cards in bus order, CUDA's under CUDA_DEVICE_ORDER=PCI_BUS_ID.
		shares := e.busOrder(a.Node, a.Containers[0].Devices)
		var want []string
		for _, s := range shares {
			want = append(want, s.UUID)
		}
		env := map[string]string{}
		for _, kv := range r.adj.GetEnv() {
			env[kv.GetKey()] = kv.GetValue()
		}
		if got := env["NVIDIA_VISIBLE_DEVICES"]; got != strings.Join(want, ",") {
			t.Errorf("%s: NVIDIA_VISIBLE_DEVICES=%s, allocation has %v", r.pod.Name, got, want)
		}
		b, err := os.ReadFile(filepath.Join(nri.ContainerStateDir(state, string(r.pod.UID)), "c0", "limits.conf"))
		if err != nil {
			t.Fatal(err)
		}
		l, err := device.DecodeLimits(string(b))
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range l.Cards {
			s := shares[i]
			if c.UUID != s.UUID || c.MemoryBytes != uint64(s.MemoryMiB)<<20 || c.Cores != s.Cores {
				t.Errorf("%s: limits card %d = %+v, allocation %+v", r.pod.Name, i, c, s)
			}
		}
	}
}

// sandbox and container are what the kubelet hands the runtime: the pod's
// annotations, and the env the device plugin's Allocate returned.
func sandbox(p *v1.Pod) *api.PodSandbox {
	return &api.PodSandbox{Id: "sb-" + string(p.UID), Uid: string(p.UID), Name: p.Name, Namespace: p.Namespace, Annotations: p.Annotations}
}

func container(p *v1.Pod, name string) *api.Container {
	return &api.Container{Id: name + "-" + string(p.UID), PodSandboxId: "sb-" + string(p.UID), Name: name,
		Env: []string{nri.RequestEnv + "=nvidia.com/gpu"}}
}

// specOf is the pod's container as its spec has it.
func specOf(t *testing.T, p *v1.Pod, name string) *device.ContainerSettings {
	t.Helper()
	s, ok := device.ContainerSpecSettings(p, name)
	if !ok {
		t.Fatalf("pod %s has no container %s", p.Name, name)
	}
	return &s
}

// startNRIPlugin runs the node agent's NRI plugin (cfg, with a fresh state
// directory) against NRI's runtime side, reading pod specs from the API
// server, and waits until it answers for probe's container c0. It returns
// the runtime and the state directory.
func startNRIPlugin(t *testing.T, e *env, cfg nri.Config, probe *v1.Pod) (*nritest.Runtime, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "nri")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	rt, err := nritest.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Stop)
	logger, _ := ktesting.NewTestContext(t)
	cfg.StateDir = filepath.Join(dir, "state")
	// The bus IDs the node agent knows from discovery: its node's
	// inventory's.
	cfg.Buses = device.BusesOf(e.inventory(cfg.NodeName).Devices)
	plugin, err := nri.New(cfg, logger, rt.Socket)
	if err != nil {
		t.Fatal(err)
	}
	plugin.Pods = func(namespace, name string) *v1.Pod {
		p, err := e.cs.CoreV1().Pods(namespace).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return p
	}
	ctx, cancel := context.WithCancel(e.ctx)
	t.Cleanup(cancel)
	go func() { _ = plugin.Run(ctx) }()
	t.Cleanup(plugin.Stop)
	if err := rt.WaitForPlugin(ctx, func() (*api.PodSandbox, *api.Container) { return sandbox(probe), container(probe, "c0") }); err != nil {
		t.Fatal(err)
	}
	return rt, cfg.StateDir
}
