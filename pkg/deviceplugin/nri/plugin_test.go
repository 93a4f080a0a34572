package nri

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/nri/pkg/api"
	"k8s.io/klog/v2/ktesting"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri/nritest"
)

// The plugin through NRI's real protocol: a runtime-side adaptation on a
// unix socket, the plugin connected to it through the stub.
func TestPluginOverNRI(t *testing.T) {
	dir := t.TempDir()
	rt, err := nritest.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Stop()
	logger, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	state := filepath.Join(dir, "state")
	p, err := New(Config{NodeName: "n1", StateDir: state, EnforcerLib: "/lib/enf.so"}, logger, rt.Socket)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Run(ctx) }()
	defer p.Stop()

	ann := allocation(t, "n1", cardA)
	probe := func() (*api.PodSandbox, *api.Container) {
		return &api.PodSandbox{Id: "s1", Uid: "uid-1", Name: "p", Namespace: "ns", Annotations: ann},
			&api.Container{Id: "c1", PodSandboxId: "s1", Name: "main"}
	}
	if err := rt.WaitForPlugin(ctx, probe); err != nil {
		t.Fatal(err)
	}
	pod, ctr := probe()
	adj, err := rt.CreateContainer(ctx, pod, ctr)
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
	if len(adj.GetMounts()) != 4 {
		t.Errorf("mounts = %v", adj.GetMounts())
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
