package nri

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2/ktesting"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri/nritest"
)

// startPlugin runs the plugin with cfg through NRI's real protocol: a
// runtime-side adaptation on a unix socket, the plugin connected to it
// through the stub. It returns once the plugin answers.
func startPlugin(t *testing.T, cfg Config) (*nritest.Runtime, context.Context) {
	t.Helper()
	dir := t.TempDir()
	rt, err := nritest.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Stop)
	logger, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	p, err := New(cfg, logger, rt.Socket)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Run(ctx) }()
	t.Cleanup(p.Stop)
	probe := func() (*api.PodSandbox, *api.Container) {
		return &api.PodSandbox{Id: "probe", Uid: "probe"}, &api.Container{Id: "probe", PodSandboxId: "probe", Name: "probe"}
	}
	if err := rt.WaitForPlugin(ctx, probe); err != nil {
		t.Fatal(err)
	}
	return rt, ctx
}

func TestPluginOverNRI(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	rt, ctx := startPlugin(t, Config{NodeName: "n1", StateDir: state, EnforcerLib: "/lib/enf.so"})

	ann := allocation(t, "n1", cardA)
	pod := &api.PodSandbox{Id: "s1", Uid: "uid-1", Name: "p", Namespace: "ns", Annotations: ann}
	adj, err := rt.CreateContainer(ctx, pod, &api.Container{Id: "c1", PodSandboxId: "s1", Name: "main"})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range adj.GetEnv() {
		env[e.GetKey()] = e.GetValue()
	}
	if env["NVIDIA_VISIBLE_DEVICES"] != "GPU-a" || env["CUDA_DEVICE_MEMORY_LIMIT_0"] != "3000m" {
		t.Errorf("env = %v", env)
	}
	if len(adj.GetMounts()) != 6 {
		t.Errorf("mounts = %v, want the device list, the card's region and the enforcer's four", adj.GetMounts())
	}
	if st, err := os.Stat(filepath.Join(state, "cards", "GPU-a")); err != nil || !st.IsDir() {
		t.Errorf("the card's region directory was not created: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(state, "containers", "uid-1", "main", "limits.conf"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := device.DecodeLimits(string(b))
	if err != nil || len(l.Cards) != 1 || l.Cards[0].MemoryBytes != 3000<<20 {
		t.Errorf("limits file = %q (%v)", b, err)
	}

	// A device container without an allocation fails its creation.
	_, err = rt.CreateContainer(ctx, &api.PodSandbox{Id: "s2", Uid: "uid-2", Name: "q", Namespace: "ns"},
		&api.Container{Id: "c2", PodSandboxId: "s2", Name: "main", Env: []string{RequestEnv + "=nvidia.com/gpu"}})
	if err == nil {
		t.Error("a device container without an allocation was created")
	}
}

// What each container starts with, as the runtime applies the plugin's
// answer to its spec: CUDA images set NVIDIA_VISIBLE_DEVICES=all, and only
// the container the scheduler gave cards to gets any, exactly those.
func TestPluginContainerSeesOnlyItsCards(t *testing.T) {
	rt, ctx := startPlugin(t, Config{NodeName: "n1", StateDir: t.TempDir(), ExemptNamespaces: []string{"gpu-operator"}})
	cudaImage := []string{"PATH=/usr/bin", "NVIDIA_VISIBLE_DEVICES=all", "CUDA_VERSION=12.4.1", "ASCEND_VISIBLE_DEVICES=0-7", "ASCEND_RT_VISIBLE_DEVICES=0"}
	// /dev/null at the device-list root selects cards for a toolkit that
	// takes them from mounts; a pod with a hostPath volume can make one.
	forged := &api.Mount{Source: "/dev/null", Destination: "/var/run/nvidia-container-devices/all", Type: "bind", Options: []string{"rbind", "ro"}}
	data := &api.Mount{Source: "/host/data", Destination: "/data", Type: "bind", Options: []string{"rbind", "rw"}}
	ann := allocation(t, "n1", cardA)
	none := map[string]string{"PATH": "/usr/bin", "CUDA_VERSION": "12.4.1", "NVIDIA_VISIBLE_DEVICES": "void", "ASCEND_VISIBLE_DEVICES": "", "ASCEND_RT_VISIBLE_DEVICES": ""}
	tests := []struct {
		name       string
		ns         string
		ann        map[string]string
		ctr        string
		wantEnv    map[string]string
		wantMounts []string
	}{
		{name: "pod without GPUs", ns: "team-a", ctr: "main", wantEnv: none, wantMounts: []string{"/data"}},
		{name: "unlisted sidecar", ns: "team-a", ann: ann, ctr: "sidecar", wantEnv: none, wantMounts: []string{"/data"}},
		{name: "kubectl debug container", ns: "team-a", ann: ann, ctr: "debugger-x7k2p", wantEnv: none, wantMounts: []string{"/data"}},
		{name: "granted container", ns: "team-a", ann: ann, ctr: "main",
			wantEnv: map[string]string{"PATH": "/usr/bin", "CUDA_VERSION": "12.4.1", "NVIDIA_VISIBLE_DEVICES": "GPU-a", "CUDA_DEVICE_MEMORY_LIMIT_0": "3000m",
				"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_DEVICE_SM_LIMIT": "30", "ASCEND_VISIBLE_DEVICES": "", "ASCEND_RT_VISIBLE_DEVICES": ""},
			wantMounts: []string{"/data", "/var/run/nvidia-container-devices/GPU-a"}},
		{name: "exempt node daemon", ns: "gpu-operator", ctr: "dcgm-exporter",
			wantEnv:    map[string]string{"PATH": "/usr/bin", "CUDA_VERSION": "12.4.1", "NVIDIA_VISIBLE_DEVICES": "all", "ASCEND_VISIBLE_DEVICES": "0-7", "ASCEND_RT_VISIBLE_DEVICES": "0"},
			wantMounts: []string{"/data", "/var/run/nvidia-container-devices/all"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := string(rune('a' + i))
			pod := &api.PodSandbox{Id: "s" + id, Uid: "uid-" + id, Name: "p" + id, Namespace: tc.ns, Annotations: tc.ann}
			ctr := &api.Container{Id: "c" + id, PodSandboxId: pod.Id, Name: tc.ctr, Env: slices.Clone(cudaImage), Mounts: []*api.Mount{data, forged}}
			spec, _, err := rt.CreateContainerSpec(ctx, pod, ctr)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantEnv, nritest.Env(spec)); diff != "" {
				t.Errorf("env (-want,+got):\n%s", diff)
			}
			var mounts []string
			for _, m := range spec.Mounts {
				mounts = append(mounts, m.Destination)
			}
			slices.Sort(mounts)
			if diff := cmp.Diff(tc.wantMounts, mounts); diff != "" {
				t.Errorf("mounts (-want,+got):\n%s", diff)
			}
		})
	}
}

// The plugin reports its connection as the runtime sees it: connected
// once the runtime has synchronized it, disconnected as soon as the
// runtime closes the connection, while Run is still unwinding.
func TestPluginReportsConnection(t *testing.T) {
	dir := t.TempDir()
	logger, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	p, err := New(Config{NodeName: "n1", StateDir: t.TempDir()}, logger, filepath.Join(dir, "nri.sock"))
	if err != nil {
		t.Fatal(err)
	}
	changes := make(chan bool, 16)
	p.OnConnection = func(c bool) { changes <- c }
	// No runtime listens: Run fails and the plugin is not connected.
	if err := p.Run(ctx); err == nil || p.Connected() {
		t.Fatalf("Run with no runtime: %v, connected %v", err, p.Connected())
	}
	rt, err := nritest.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	want := func(c bool) {
		t.Helper()
		select {
		case got := <-changes:
			if got != c {
				t.Fatalf("connection reported %v, want %v", got, c)
			}
		case <-time.After(nritest.WaitTimeout): // a hang guard only
			t.Fatalf("no connection change to %v within %v", c, nritest.WaitTimeout)
		}
	}
	want(true)
	if !p.Connected() {
		t.Error("Connected() = false after the runtime synchronized the plugin")
	}
	// The runtime adds the plugin to those it calls just after
	// Synchronize returns; stopping before that would leave it connected.
	probe := func() (*api.PodSandbox, *api.Container) {
		return &api.PodSandbox{Id: "probe", Uid: "probe"}, &api.Container{Id: "probe", PodSandboxId: "probe", Name: "probe"}
	}
	if err := rt.WaitForPlugin(ctx, probe); err != nil {
		t.Fatal(err)
	}
	rt.Stop()
	want(false)
	if p.Connected() {
		t.Error("Connected() = true after the runtime closed the connection")
	}
	select {
	case <-done:
	case <-time.After(nritest.WaitTimeout):
		t.Fatal("Run did not return after the runtime closed the connection")
	}
}
