package device

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestEnforcerOverrides(t *testing.T) {
	env := func(kv ...string) map[string]*string {
		m := map[string]*string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = ptr.To(kv[i+1])
		}
		return m
	}
	mosaic := map[string]string{NVIDIAVisibleDevicesEnv: "GPU-a,GPU-b", AscendVisibleDevicesEnv: ""}
	tests := []struct {
		name      string
		s         ContainerSettings
		selection map[string]string
		want      []string
	}{
		{name: "ordinary", s: ContainerSettings{Env: env("PATH", "/bin", "CUDA_VISIBLE_DEVICES", "1"), Mounts: []string{"/data", "/etc", "/run", "/usr/local/lib/mosaic"}}},
		{name: "privileged", s: ContainerSettings{Privileged: true}, want: []string{"is privileged"}},
		{name: "SYS_ADMIN", s: ContainerSettings{AddedCapabilities: []string{"NET_ADMIN", "CAP_SYS_ADMIN", "all"}},
			want: []string{"adds capability CAP_SYS_ADMIN (it can unmount the enforcer)", "adds capability all (it can unmount the enforcer)"}},
		{name: "every card", s: ContainerSettings{Env: env(NVIDIAVisibleDevicesEnv, "all")}, want: []string{`sets NVIDIA_VISIBLE_DEVICES="all"`}},
		// At admission no card is chosen yet: any selection but none is
		// the pod's own.
		{name: "a card at admission", s: ContainerSettings{Env: env(NVIDIAVisibleDevicesEnv, "GPU-a,GPU-b")}, want: []string{`sets NVIDIA_VISIBLE_DEVICES="GPU-a,GPU-b"`}},
		{name: "no card", s: ContainerSettings{Env: env(NVIDIAVisibleDevicesEnv, NVIDIANoDevices, AscendVisibleDevicesEnv, "")}},
		{name: "the agent's own cards", s: ContainerSettings{Env: env(NVIDIAVisibleDevicesEnv, "GPU-a,GPU-b")}, selection: mosaic},
		{name: "other cards than the agent's", s: ContainerSettings{Env: env(NVIDIAVisibleDevicesEnv, "GPU-a,GPU-c", AscendVisibleDevicesEnv, "0")}, selection: mosaic,
			want: []string{`sets NVIDIA_VISIBLE_DEVICES="GPU-a,GPU-c"`, `sets ASCEND_VISIBLE_DEVICES="0"`}},
		{name: "a template of its own", s: ContainerSettings{Env: env(AscendVNPUSpecsEnv, "vir16")}, want: []string{`sets ASCEND_VNPU_SPECS="vir16"`}},
		{name: "selection from a secret", s: ContainerSettings{Env: map[string]*string{NVIDIAVisibleDevicesEnv: nil}}, want: []string{"sets NVIDIA_VISIBLE_DEVICES from a source (valueFrom)"}},
		{name: "HAMi switch", s: ContainerSettings{Env: env(DisableControlEnv, "false")}, want: []string{"sets CUDA_DISABLE_CONTROL"}},
		{name: "own preload, even empty or from a source", s: ContainerSettings{Env: map[string]*string{PreloadEnv: nil}}, want: []string{"sets LD_PRELOAD"}},
		{name: "mounts over Mosaic's", s: ContainerSettings{Mounts: []string{"/etc/ld.so.preload", "/run/mosaic", "/run/mosaic/cards/GPU-a/lease", "/run//mosaic/../mosaic/limits.conf",
			"/usr/local/lib/mosaic/libmosaic-enforcer.so", "/var/run/nvidia-container-devices/all", "/run/mosaicx"}},
			want: []string{`mounts "/etc/ld.so.preload" over Mosaic's /etc/ld.so.preload`, `mounts "/run/mosaic" over Mosaic's /run/mosaic`,
				`mounts "/run/mosaic/cards/GPU-a/lease" over Mosaic's /run/mosaic`, `mounts "/run//mosaic/../mosaic/limits.conf" over Mosaic's /run/mosaic`,
				`mounts "/usr/local/lib/mosaic/libmosaic-enforcer.so" over Mosaic's /usr/local/lib/mosaic/libmosaic-enforcer.so`,
				`mounts "/var/run/nvidia-container-devices/all" over Mosaic's /var/run/nvidia-container-devices`}},
		{name: "a tenant's long value is cut", s: ContainerSettings{Env: env(NVIDIAVisibleDevicesEnv, strings.Repeat("x", 1000))},
			want: []string{`sets NVIDIA_VISIBLE_DEVICES="` + strings.Repeat("x", maxShownValue) + `"...`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := EnforcerOverrides(&tc.s, tc.selection)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("overrides (-want,+got):\n%s", diff)
			}
		})
	}
}

// The settings the webhook reads from a pod: every kind of container, the
// last value of a variable listed twice, and valueFrom as unknown.
func TestPodSettings(t *testing.T) {
	p := pod(nil, v1.Container{Name: "app",
		SecurityContext: &v1.SecurityContext{Privileged: ptr.To(false), Capabilities: &v1.Capabilities{Add: []v1.Capability{"SYS_ADMIN"}}},
		Env:             []v1.EnvVar{{Name: "A", Value: "1"}, {Name: "A", Value: "2"}, {Name: "B", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{Key: "k"}}}},
		VolumeMounts:    []v1.VolumeMount{{Name: "v", MountPath: "/data"}}})
	p.Spec.InitContainers = []v1.Container{{Name: "init"}}
	p.Spec.EphemeralContainers = []v1.EphemeralContainer{{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "debugger",
		SecurityContext: &v1.SecurityContext{Privileged: ptr.To(true)}}}}
	want := []ContainerSettings{
		{Name: "init", Env: map[string]*string{}},
		{Name: "app", AddedCapabilities: []string{"SYS_ADMIN"}, Env: map[string]*string{"A": ptr.To("2"), "B": nil}, Mounts: []string{"/data"}},
		{Name: "debugger", Privileged: true, Env: map[string]*string{}},
	}
	if diff := cmp.Diff(want, PodSettings(p)); diff != "" {
		t.Errorf("settings (-want,+got):\n%s", diff)
	}
	if s, ok := ContainerSpecSettings(p, "debugger"); !ok || !s.Privileged {
		t.Errorf("debugger = %+v, %v", s, ok)
	}
	if _, ok := ContainerSpecSettings(p, "other"); ok {
		t.Error("found a container the spec does not have")
	}
}

// A pod shares a card unless each of its requests is exclusive, and its
// allocation says the same.
func TestSharesCards(t *testing.T) {
	opts := ParseOptions{AscendModels: DefaultAscendModels()}
	tests := []struct {
		name   string
		limits map[string]string
		opts   ParseOptions
		shares bool
	}{
		{name: "memory", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}, shares: true},
		{name: "memory percentage", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"}, shares: true},
		{name: "cores", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpucores": "30"}, shares: true},
		// Not exclusive: the card's compute is time-shared, and on a node
		// that over-commits memory others fit beside it.
		{name: "cards only", limits: map[string]string{"nvidia.com/gpu": "2"}, shares: true},
		{name: "exclusive", limits: map[string]string{"nvidia.com/gpu": "2", "nvidia.com/gpucores": "100"}},
		{name: "exclusive with memory", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000", "nvidia.com/gpucores": "100"}},
		{name: "exclusive by default", limits: map[string]string{"nvidia.com/gpu": "1"}, opts: ParseOptions{DefaultCores: 100}},
		{name: "vNPU", limits: map[string]string{"huawei.com/Ascend910B": "1", "huawei.com/Ascend910B-memory": "16000"}, shares: true},
		{name: "whole NPU", limits: map[string]string{"huawei.com/Ascend910B": "1"}},
		{name: "NPU memory of the whole card", limits: map[string]string{"huawei.com/Ascend910B": "1", "huawei.com/Ascend910B-memory": "65536"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.AscendModels = opts.AscendModels
			req, err := ParsePodRequest(pod(nil, container("c", tc.limits)), o)
			if err != nil {
				t.Fatal(err)
			}
			if got := req.SharesCards(); got != tc.shares {
				t.Errorf("request SharesCards = %v, want %v (%+v)", got, tc.shares, req.Containers)
			}
			c := req.Containers[0]
			a := &Allocation{Node: "n", Containers: []ContainerAllocation{{Name: "c", Devices: []Share{{UUID: "u", MemoryMiB: max(c.MemoryMiB, 1), Cores: c.Cores}}}}}
			if got := a.SharesCards(); got != tc.shares {
				t.Errorf("allocation SharesCards = %v, want %v", got, tc.shares)
			}
		})
	}
}
