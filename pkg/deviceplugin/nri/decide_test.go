package nri

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

func allocation(t *testing.T, node string, shares ...device.Share) map[string]string {
	t.Helper()
	raw, err := device.EncodeAllocation(&device.Allocation{Node: node, Containers: []device.ContainerAllocation{{Name: "main", Devices: shares}}})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{device.AllocationAnnotation: raw}
}

var (
	cardA = device.Share{UUID: "GPU-a", Index: 3, Vendor: device.VendorNVIDIA, MemoryMiB: 3000, Cores: 30}
	cardB = device.Share{UUID: "GPU-b", Index: 5, Vendor: device.VendorNVIDIA, MemoryMiB: 4000, Cores: 30}
	cfg   = &Config{NodeName: "n1", StateDir: "/var/lib/mosaic", EnforcerLib: "/opt/mosaic/libmosaic-enforcer.so", CorePolicy: device.CorePolicyDefault}
)

func TestDecideNVIDIA(t *testing.T) {
	d, err := Decide(cfg, "uid-1", allocation(t, "n1", cardA, cardB), "main", []string{RequestEnv + "=nvidia.com/gpu"})
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := map[string]string{
		"NVIDIA_VISIBLE_DEVICES":      "GPU-a,GPU-b",
		"CUDA_DEVICE_MEMORY_LIMIT_0":  "3000m",
		"CUDA_DEVICE_MEMORY_LIMIT_1":  "4000m",
		"CUDA_DEVICE_SM_LIMIT":        "30",
		"GPU_CORE_UTILIZATION_POLICY": "default",
	}
	if diff := cmp.Diff(wantEnv, d.Env); diff != "" {
		t.Errorf("env (-want,+got):\n%s", diff)
	}
	dir := "/var/lib/mosaic/containers/uid-1/main"
	wantMounts := []Mount{
		{Host: dir + "/limits.conf", Container: "/run/mosaic/limits.conf", ReadOnly: true},
		{Host: dir + "/shared", Container: "/run/mosaic/shared"},
		{Host: "/opt/mosaic/libmosaic-enforcer.so", Container: EnforcerPath, ReadOnly: true},
		{Host: "/var/lib/mosaic/ld.so.preload", Container: "/etc/ld.so.preload", ReadOnly: true},
	}
	if diff := cmp.Diff(wantMounts, d.Mounts); diff != "" {
		t.Errorf("mounts (-want,+got):\n%s", diff)
	}
	// The limits file the enforcer reads: ordinals follow NVIDIA_VISIBLE_DEVICES.
	l, err := device.DecodeLimits(d.Files[dir+"/limits.conf"])
	if err != nil {
		t.Fatal(err)
	}
	want := []device.CardLimit{{Ordinal: 0, UUID: "GPU-a", MemoryBytes: 3000 << 20, Cores: 30}, {Ordinal: 1, UUID: "GPU-b", MemoryBytes: 4000 << 20, Cores: 30}}
	if diff := cmp.Diff(want, l.Cards); diff != "" {
		t.Errorf("limits (-want,+got):\n%s", diff)
	}
}

func TestDecideAscend(t *testing.T) {
	s := device.Share{UUID: "NPU-1", Index: 2, Vendor: device.VendorAscend, MemoryMiB: 16384, Cores: 25, Template: "vir05_1c_16g"}
	d, err := Decide(cfg, "uid-2", allocation(t, "n1", s), "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"ASCEND_VISIBLE_DEVICES": "2", "ASCEND_VNPU_SPECS": "vir05_1c_16g"}, d.Env); diff != "" {
		t.Errorf("env (-want,+got):\n%s", diff)
	}
}

func TestDecideRefusals(t *testing.T) {
	req := []string{RequestEnv + "=nvidia.com/gpu"}
	tests := []struct {
		name string
		ann  map[string]string
		ctr  string
		env  []string
		want string // "" means no adjustment and no error
	}{
		{"plain container", nil, "main", nil, ""},
		{"other container of a device pod", allocation(t, "n1", cardA), "sidecar", nil, ""},
		{"missing allocation", nil, "main", req, "has no mosaic.io/allocation annotation"},
		{"container not allocated", allocation(t, "n1", cardA), "sidecar", req, "lists none for it"},
		{"other node", allocation(t, "n2", cardA), "main", req, "for node n2, not this node n1"},
		{"corrupt", map[string]string{device.AllocationAnnotation: `{"v":1`}, "main", req, "unreadable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Decide(cfg, "uid", tc.ann, tc.ctr, tc.env)
			if tc.want == "" {
				if err != nil || d != nil {
					t.Fatalf("got %+v, %v; want no adjustment", d, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestDecideRequiresTheSchedulersSignature(t *testing.T) {
	key := []byte(strings.Repeat("s", 32))
	signed := &Config{NodeName: "n1", AllocationKey: key}
	ann := allocation(t, "n1", cardA)
	if _, err := Decide(signed, "uid-1", ann, "main", nil); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("unsigned allocation: %v", err)
	}
	ann[device.SignatureAnnotation] = device.Sign(key, "uid-1", ann[device.AllocationAnnotation])
	if d, err := Decide(signed, "uid-1", ann, "main", nil); err != nil || d.Env["NVIDIA_VISIBLE_DEVICES"] != "GPU-a" {
		t.Fatalf("signed allocation: %+v, %v", d, err)
	}
	// The same annotations copied onto another pod do not verify.
	if _, err := Decide(signed, "uid-2", ann, "main", nil); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("copied allocation: %v", err)
	}
}
