package nri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri/nritest"
)

// podStore stands in for the agent's informer: the pods whose spec the
// plugin may read.
type podStore struct {
	mu   sync.Mutex
	pods map[string]*corev1.Pod
}

// add records the pod of a sandbox, with these containers in its spec.
func (s *podStore) add(sb *api.PodSandbox, ctrs ...corev1.Container) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pods == nil {
		s.pods = map[string]*corev1.Pod{}
	}
	s.pods[sb.Namespace+"/"+sb.Name] = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: sb.Namespace, Name: sb.Name, UID: types.UID(sb.Uid)}, Spec: corev1.PodSpec{Containers: ctrs}}
}

func (s *podStore) put(p *corev1.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pods == nil {
		s.pods = map[string]*corev1.Pod{}
	}
	s.pods[p.Namespace+"/"+p.Name] = p
}

func (s *podStore) get(namespace, name string) *corev1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pods[namespace+"/"+name]
}

// startPlugin runs the plugin with cfg through NRI's real protocol: a
// runtime-side adaptation on a unix socket, the plugin connected to it
// through the stub, reading pod specs from pods. It returns once the
// plugin answers.
func startPlugin(t *testing.T, cfg Config, pods *podStore) (*nritest.Runtime, context.Context) {
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
	p.Pods = pods.get
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
	pods := &podStore{}
	rt, ctx := startPlugin(t, Config{NodeName: "n1", StateDir: state, EnforcerLib: "/lib/enf.so"}, pods)

	ann := allocation(t, "n1", cardA)
	pod := &api.PodSandbox{Id: "s1", Uid: "uid-1", Name: "p", Namespace: "ns", Annotations: ann}
	pods.add(pod, corev1.Container{Name: "main"})
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
	pods := &podStore{}
	rt, ctx := startPlugin(t, Config{NodeName: "n1", StateDir: t.TempDir(), ExemptNamespaces: []string{"gpu-operator"}}, pods)
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
			pods.add(pod, corev1.Container{Name: tc.ctr})
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

// The runtime is refused a container of a pod sharing a card when the
// pod's spec makes it privileged (NRI does not say so: the plugin reads the
// spec) or what the runtime would start it with defeats the enforcer; the
// error it gets names the reason. A privileged container on a card of its
// own starts with its card.
func TestPluginRefusesOverrides(t *testing.T) {
	pods := &podStore{}
	rt, ctx := startPlugin(t, Config{NodeName: "n1", StateDir: t.TempDir(), EnforcerLib: "/lib/enf.so"}, pods)
	shared := allocation(t, "n1", cardA)
	exclusive := allocation(t, "n1", device.Share{UUID: "GPU-x", Vendor: device.VendorNVIDIA, MemoryMiB: 81920, Cores: 100})
	privileged := &corev1.SecurityContext{Privileged: ptr.To(true)}
	cudaImage := []string{"PATH=/usr/bin", "NVIDIA_VISIBLE_DEVICES=all"}
	tests := []struct {
		name string
		ann  map[string]string
		spec corev1.PodSpec // nil Containers: the agent has not seen the pod
		ctr  string
		env  []string
		want string // empty: created, with env NVIDIA_VISIBLE_DEVICES=wantCards
		// wantCards is the selection a created container gets.
		wantCards string
	}{
		{name: "privileged", ann: shared, spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", SecurityContext: privileged}}}, ctr: "main", env: cudaImage,
			want: "container main is privileged, and its pod shares a card"},
		{name: "kubectl debug --profile=sysadmin", ann: shared, ctr: "debugger-x7k2p", spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main"}},
			EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger-x7k2p", SecurityContext: privileged}}}},
			want: "container debugger-x7k2p is privileged"},
		{name: "image preloads", ann: shared, spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main"}}}, ctr: "main", env: append(slices.Clone(cudaImage), "LD_PRELOAD=/lib/libtcmalloc.so"),
			want: "container main sets LD_PRELOAD"},
		{name: "HAMi-core switched off", ann: shared, spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Env: []corev1.EnvVar{{Name: "CUDA_DISABLE_CONTROL", Value: "true"}}}}}, ctr: "main",
			env: []string{"CUDA_DISABLE_CONTROL=true"}, want: "container main sets CUDA_DISABLE_CONTROL"},
		{name: "pod not seen", ann: shared, ctr: "main", want: "has not seen the pod's spec"},
		{name: "ordinary CUDA container", ann: shared, spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main"}}}, ctr: "main", env: cudaImage, wantCards: "GPU-a"},
		{name: "privileged on a card of its own", ann: exclusive, spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", SecurityContext: privileged}}}, ctr: "main", env: cudaImage,
			wantCards: "GPU-x"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprint(i)
			sb := &api.PodSandbox{Id: "s" + id, Uid: "uid-" + id, Name: "p" + id, Namespace: "team-a", Annotations: tc.ann}
			if tc.spec.Containers != nil {
				pods.put(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: sb.Namespace, Name: sb.Name, UID: types.UID(sb.Uid)}, Spec: tc.spec})
			}
			spec, _, err := rt.CreateContainerSpec(ctx, sb, &api.Container{Id: "c" + id, PodSandboxId: sb.Id, Name: tc.ctr, Env: slices.Clone(tc.env)})
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := nritest.Env(spec)["NVIDIA_VISIBLE_DEVICES"]; got != tc.wantCards {
				t.Errorf("NVIDIA_VISIBLE_DEVICES=%s, want %s", got, tc.wantCards)
			}
		})
	}
}
