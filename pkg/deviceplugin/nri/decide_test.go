package nri

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"

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

// spec is an ordinary container as its pod's spec has it.
func spec(name string) *device.ContainerSettings { return &device.ContainerSettings{Name: name} }

// mounts are bind mounts of the host's /data at each path.
func mounts(paths ...string) []Mount {
	var out []Mount
	for _, p := range paths {
		out = append(out, Mount{Host: "/data", Container: p})
	}
	return out
}

var (
	cardA = device.Share{UUID: "GPU-a", Index: 3, Vendor: device.VendorNVIDIA, MemoryMiB: 3000, Cores: 30}
	cardB = device.Share{UUID: "GPU-b", Index: 5, Vendor: device.VendorNVIDIA, MemoryMiB: 4000, Cores: 30}
	// GPU-c's bus is in a higher PCI domain, written with more digits:
	// bus order is numeric, not the order of the strings.
	buses = device.PCIBuses{"GPU-a": "0000:17:00.0", "GPU-b": "0000:65:00.0", "GPU-c": "10000:01:00.0"}
	cfg   = &Config{NodeName: "n1", StateDir: "/var/lib/mosaic", EnforcerLib: "/opt/mosaic/libmosaic-enforcer.so", CorePolicy: device.CorePolicyDefault, Buses: buses}
)

func TestDecideNVIDIA(t *testing.T) {
	d, err := Decide(cfg, Pod{UID: "uid-1", Annotations: allocation(t, "n1", cardA, cardB)}, Container{Name: "main", Env: []string{RequestEnv + "=nvidia.com/gpu"}, Spec: spec("main")})
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := map[string]string{
		"NVIDIA_VISIBLE_DEVICES":      "GPU-a,GPU-b",
		"CUDA_DEVICE_MEMORY_LIMIT_0":  "3000m",
		"CUDA_DEVICE_MEMORY_LIMIT_1":  "4000m",
		"CUDA_DEVICE_ORDER":           "PCI_BUS_ID",
		"CUDA_DEVICE_SM_LIMIT":        "30",
		"GPU_CORE_UTILIZATION_POLICY": "default",
		// No Ascend card, whatever the image says.
		"ASCEND_VISIBLE_DEVICES":    "",
		"ASCEND_RT_VISIBLE_DEVICES": "",
	}
	if diff := cmp.Diff(wantEnv, d.Env); diff != "" {
		t.Errorf("env (-want,+got):\n%s", diff)
	}
	dir := "/var/lib/mosaic/containers/uid-1/main"
	wantMounts := []Mount{
		// The device list a toolkit that ignores the env of unprivileged
		// containers reads (docs/security.md).
		{Host: "/dev/null", Container: "/var/run/nvidia-container-devices/GPU-a", ReadOnly: true},
		{Host: "/dev/null", Container: "/var/run/nvidia-container-devices/GPU-b", ReadOnly: true},
		// The enforcer's directory, read-only (limits.conf in it), then
		// the writable directories inside it: the accounting directory and
		// each card's region, where the containers sharing it take turns.
		{Host: dir, Container: "/run/mosaic", ReadOnly: true},
		{Host: dir + "/shared", Container: "/run/mosaic/shared"},
		{Host: "/var/lib/mosaic/cards/GPU-a", Container: "/run/mosaic/cards/GPU-a"},
		{Host: "/var/lib/mosaic/cards/GPU-b", Container: "/run/mosaic/cards/GPU-b"},
		{Host: "/opt/mosaic/libmosaic-enforcer.so", Container: device.EnforcerPath, ReadOnly: true},
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

// The scheduler lists a container's cards in the order it chose them; CUDA
// numbers them by PCI bus once told CUDA_DEVICE_ORDER=PCI_BUS_ID. So every
// per-card list the container gets follows the bus order: ordinal i, HAMi's
// limit i and the limits file's card i are the same, i-th card by bus ID.
func TestDecideNVIDIAInBusOrder(t *testing.T) {
	cardC := device.Share{UUID: "GPU-c", Index: 0, Vendor: device.VendorNVIDIA, MemoryMiB: 5000, Cores: 30}
	// Allocation order c, b, a (card indexes 0, 5, 3); bus order a, b, c.
	d, err := Decide(cfg, Pod{UID: "uid-1", Annotations: allocation(t, "n1", cardC, cardB, cardA)}, Container{Name: "main", Env: []string{RequestEnv + "=nvidia.com/gpu"}, Spec: spec("main")})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"NVIDIA_VISIBLE_DEVICES":     "GPU-a,GPU-b,GPU-c",
		"CUDA_DEVICE_ORDER":          "PCI_BUS_ID",
		"CUDA_DEVICE_MEMORY_LIMIT_0": "3000m",
		"CUDA_DEVICE_MEMORY_LIMIT_1": "4000m",
		"CUDA_DEVICE_MEMORY_LIMIT_2": "5000m",
	} {
		if got := d.Env[k]; got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	l, err := device.DecodeLimits(d.Files["/var/lib/mosaic/containers/uid-1/main/limits.conf"])
	if err != nil {
		t.Fatal(err)
	}
	want := []device.CardLimit{
		{Ordinal: 0, UUID: "GPU-a", MemoryBytes: 3000 << 20, Cores: 30},
		{Ordinal: 1, UUID: "GPU-b", MemoryBytes: 4000 << 20, Cores: 30},
		{Ordinal: 2, UUID: "GPU-c", MemoryBytes: 5000 << 20, Cores: 30},
	}
	if diff := cmp.Diff(want, l.Cards); diff != "" {
		t.Errorf("limits (-want,+got):\n%s", diff)
	}
}

func TestDecideAscend(t *testing.T) {
	s := device.Share{UUID: "NPU-1", Index: 2, Vendor: device.VendorAscend, MemoryMiB: 16384, Cores: 25, Template: "vir05_1c_16g"}
	d, err := Decide(cfg, Pod{UID: "uid-2", Annotations: allocation(t, "n1", s)}, Container{Name: "main", Spec: spec("main")})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"ASCEND_VISIBLE_DEVICES": "2", "ASCEND_VNPU_SPECS": "vir05_1c_16g", "NVIDIA_VISIBLE_DEVICES": "void"}, d.Env); diff != "" {
		t.Errorf("env (-want,+got):\n%s", diff)
	}
}

func TestDecideRefusals(t *testing.T) {
	req := []string{RequestEnv + "=nvidia.com/gpu"}
	uuid := func(u string) device.Share {
		s := cardA
		s.UUID = u
		return s
	}
	tests := []struct {
		name string
		ann  map[string]string
		ctr  string
		env  []string
		want string
	}{
		{"missing allocation", nil, "main", req, "has no mosaic.io/allocation annotation"},
		{"container not allocated", allocation(t, "n1", cardA), "sidecar", req, "lists none for it"},
		{"other node", allocation(t, "n2", cardA), "main", req, "for node n2, not this node n1"},
		{"corrupt", map[string]string{device.AllocationAnnotation: `{"v":1`}, "main", req, "unreadable"},
		{"uuid with a comma", allocation(t, "n1", uuid("GPU-a,all")), "main", req, `devices[0].uuid "GPU-a,all" must not contain commas`},
		{"uuid leaving the device list", allocation(t, "n1", uuid("../../etc")), "main", req, `devices[0].uuid "../../etc"`},
		// A limits file cannot name it: the container is refused rather than
		// given an empty one.
		{"uuid the limits file cannot hold", allocation(t, "n1", uuid("GPU-a=b")), "main", req, `container main: limits card 0: uuid "GPU-a=b"`},
		// Its CUDA ordinal among the others could not be told.
		{"card of unknown bus among several", allocation(t, "n1", cardA, uuid("GPU-x")), "main", req, "container main: devices[1]: card GPU-x has no known PCI bus ID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decide(cfg, Pod{UID: "uid", Annotations: tc.ann}, Container{Name: tc.ctr, Env: tc.env})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// A container without an allocation gets no card of any vendor, whatever
// its image's env or its pod's mounts select; an exempt namespace's are
// left alone.
func TestDecideWithoutCards(t *testing.T) {
	none := map[string]string{"NVIDIA_VISIBLE_DEVICES": "void", "ASCEND_VISIBLE_DEVICES": "", "ASCEND_RT_VISIBLE_DEVICES": ""}
	cudaImage := []string{"NVIDIA_VISIBLE_DEVICES=all", "CUDA_VERSION=12.4.1", "ASCEND_VISIBLE_DEVICES=0-7"}
	exempt := &Config{NodeName: "n1", ExemptNamespaces: []string{"gpu-operator"}}
	tests := []struct {
		name       string
		cfg        *Config
		pod        Pod
		ctr        Container
		wantRemove []string
		exempt     bool
	}{
		{name: "plain pod from a CUDA image", cfg: cfg, pod: Pod{UID: "u"}, ctr: Container{Name: "main", Env: cudaImage}},
		{name: "unlisted sidecar of a device pod", cfg: cfg, pod: Pod{UID: "u", Annotations: allocation(t, "n1", cardA)}, ctr: Container{Name: "sidecar", Env: cudaImage, Spec: spec("sidecar")}},
		{name: "kubectl debug container", cfg: cfg, pod: Pod{UID: "u", Annotations: allocation(t, "n1", cardA)}, ctr: Container{Name: "debugger-x7k2p", Spec: spec("debugger-x7k2p")}},
		{name: "device list mounted by the pod", cfg: cfg, pod: Pod{UID: "u"},
			ctr:        Container{Name: "main", Mounts: mounts("/data", "/var/run/nvidia-container-devices/all", "/var/run/nvidia-container-devices/")},
			wantRemove: []string{"/var/run/nvidia-container-devices/all", "/var/run/nvidia-container-devices/"}},
		{name: "exempt namespace", cfg: exempt, pod: Pod{UID: "u", Namespace: "gpu-operator"}, ctr: Container{Name: "dcgm-exporter", Env: cudaImage}, exempt: true},
		{name: "not exempt", cfg: exempt, pod: Pod{UID: "u", Namespace: "team-a"}, ctr: Container{Name: "main", Env: cudaImage}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Decide(tc.cfg, tc.pod, tc.ctr)
			if err != nil {
				t.Fatal(err)
			}
			if tc.exempt {
				if d != nil {
					t.Fatalf("exempt container adjusted: %+v", d)
				}
				return
			}
			if diff := cmp.Diff(none, d.Env); diff != "" {
				t.Errorf("env (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantRemove, d.RemoveMounts); diff != "" {
				t.Errorf("removed mounts (-want,+got):\n%s", diff)
			}
			if len(d.Mounts) != 0 || len(d.Files) != 0 || len(d.Dirs) != 0 {
				t.Errorf("a container without cards gets mounts %v, files %v, dirs %v", d.Mounts, d.Files, d.Dirs)
			}
		})
	}
}

// A granted container's own device-list mounts stay; any other under the
// root goes.
func TestDecideKeepsOnlyItsDeviceList(t *testing.T) {
	d, err := Decide(cfg, Pod{UID: "u", Annotations: allocation(t, "n1", cardA)},
		Container{Name: "main", Mounts: mounts("/var/run/nvidia-container-devices/GPU-a", "/var/run/nvidia-container-devices/GPU-b"), Spec: spec("main")})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/var/run/nvidia-container-devices/GPU-b"}, d.RemoveMounts); diff != "" {
		t.Errorf("removed mounts (-want,+got):\n%s", diff)
	}
}

// With keys set, an allocation no key of the set signed for this pod gives
// its containers no card, in an exempt namespace too, and says why.
func TestDecideRequiresTheSchedulersSignature(t *testing.T) {
	current, previous := []byte(strings.Repeat("s", 32)), []byte(strings.Repeat("p", 32))
	signed := &Config{NodeName: "n1", AllocationKeys: device.NewKeySet(current, previous), ExemptNamespaces: []string{"gpu-operator"}}
	withSig := func(uid string, key []byte) map[string]string {
		ann := allocation(t, "n1", cardA)
		if key != nil {
			ann[device.SignatureAnnotation] = device.Sign(key, uid, ann[device.AllocationAnnotation])
		}
		return ann
	}
	ctr := Container{Name: "main", Env: []string{RequestEnv + "=nvidia.com/gpu"}, Mounts: mounts("/var/run/nvidia-container-devices/GPU-a"), Spec: spec("main")}
	for name, key := range map[string][]byte{"current key": current, "previous key": previous} {
		d, err := Decide(signed, Pod{UID: "uid-1", Namespace: "ns", Annotations: withSig("uid-1", key)}, ctr)
		if err != nil || d.Unverified != nil || d.Env["NVIDIA_VISIBLE_DEVICES"] != "GPU-a" {
			t.Errorf("signed with the %s: %+v, %v", name, d, err)
		}
	}
	noCards := map[string]string{"NVIDIA_VISIBLE_DEVICES": "void", "ASCEND_VISIBLE_DEVICES": "", "ASCEND_RT_VISIBLE_DEVICES": ""}
	for name, tc := range map[string]struct {
		pod  Pod
		want string
	}{
		"unsigned":         {Pod{UID: "uid-1", Namespace: "ns", Annotations: withSig("uid-1", nil)}, "not signed"},
		"copied":           {Pod{UID: "uid-2", Namespace: "ns", Annotations: withSig("uid-1", current)}, "does not match"},
		"unknown key":      {Pod{UID: "uid-1", Namespace: "ns", Annotations: withSig("uid-1", []byte(strings.Repeat("u", 32)))}, "does not match"},
		"exempt, unsigned": {Pod{UID: "uid-1", Namespace: "gpu-operator", Annotations: withSig("uid-1", nil)}, "not signed"},
	} {
		d, err := Decide(signed, tc.pod, ctr)
		if err != nil || d == nil {
			t.Errorf("%s: %+v, %v; want a decision with no card", name, d, err)
			continue
		}
		if d.Unverified == nil || !strings.Contains(d.Unverified.Error(), tc.want) {
			t.Errorf("%s: Unverified = %v, want it to contain %q", name, d.Unverified, tc.want)
		}
		if diff := cmp.Diff(noCards, d.Env); diff != "" {
			t.Errorf("%s: env (-want,+got):\n%s", name, diff)
		}
		if len(d.Mounts) != 0 || len(d.Files) != 0 || !cmp.Equal(d.RemoveMounts, []string{"/var/run/nvidia-container-devices/GPU-a"}) {
			t.Errorf("%s: mounts %v, files %v, removed %v; want nothing added and the pod's device list removed", name, d.Mounts, d.Files, d.RemoveMounts)
		}
	}
}

// A pod that shares a card has each of its containers refused when its
// spec or what the runtime is about to start would take it out of the
// enforcer's hold; what the decision replaces does not count.
func TestDecideRefusesOverrides(t *testing.T) {
	shared := allocation(t, "n1", cardA)
	exclusive := allocation(t, "n1", device.Share{UUID: "GPU-x", Vendor: device.VendorNVIDIA, MemoryMiB: 81920, Cores: 100})
	exempt := &Config{NodeName: "n1", StateDir: cfg.StateDir, EnforcerLib: cfg.EnforcerLib, ExemptNamespaces: []string{"gpu-operator"}}
	privileged := &device.ContainerSettings{Name: "main", Privileged: true}
	dir := "/var/lib/mosaic/containers/u/main"
	tests := []struct {
		name string
		cfg  *Config
		ns   string
		ann  map[string]string
		ctr  Container
		want string // empty: allowed
	}{
		{name: "privileged", ann: shared, ctr: Container{Name: "main", Spec: privileged}, want: "container main is privileged, and its pod shares a card"},
		{name: "privileged sidecar without cards", ann: shared, ctr: Container{Name: "sidecar", Spec: &device.ContainerSettings{Name: "sidecar", Privileged: true}}, want: "container sidecar is privileged"},
		{name: "spec sets every card", ann: shared, ctr: Container{Name: "main", Spec: &device.ContainerSettings{Name: "main", Env: map[string]*string{"NVIDIA_VISIBLE_DEVICES": ptr.To("all")}}},
			want: `sets NVIDIA_VISIBLE_DEVICES="all"`},
		{name: "spec mounts the preload file", ann: shared, ctr: Container{Name: "main", Spec: &device.ContainerSettings{Name: "main", Mounts: []string{"/etc/ld.so.preload"}}},
			want: `mounts "/etc/ld.so.preload"`},
		{name: "image preloads", ann: shared, ctr: Container{Name: "main", Env: []string{"LD_PRELOAD=/lib/libjemalloc.so"}, Spec: spec("main")}, want: "sets LD_PRELOAD"},
		{name: "env from a ConfigMap turns HAMi-core off", ann: shared, ctr: Container{Name: "main", Env: []string{"CUDA_DISABLE_CONTROL=true"}, Spec: spec("main")}, want: "sets CUDA_DISABLE_CONTROL"},
		{name: "a region of its own", ann: shared, ctr: Container{Name: "main", Mounts: mounts("/run/mosaic/cards/GPU-a/lease"), Spec: spec("main")}, want: `mounts "/run/mosaic/cards/GPU-a/lease"`},
		{name: "spec not seen", ann: shared, ctr: Container{Name: "main"}, want: "has not seen the pod's spec"},
		{name: "findings once each", ann: shared, ctr: Container{Name: "main", Env: []string{"LD_PRELOAD=x"}, Spec: &device.ContainerSettings{Name: "main", Privileged: true, Env: map[string]*string{"LD_PRELOAD": ptr.To("x")}}},
			want: "container main is privileged, sets LD_PRELOAD, and its pod"},
		// The image's selection is replaced by the decision's.
		{name: "CUDA image", ann: shared, ctr: Container{Name: "main", Env: []string{"NVIDIA_VISIBLE_DEVICES=all", "ASCEND_VISIBLE_DEVICES=0"}, Spec: spec("main")}},
		// So are the decision's own mounts, which a container restarted
		// after an Allocate made while NRI was down already has.
		{name: "restarted with its own mounts", ann: shared, ctr: Container{Name: "main", Spec: spec("main"), Mounts: []Mount{
			{Host: "/dev/null", Container: "/var/run/nvidia-container-devices/GPU-a", ReadOnly: true},
			{Host: dir, Container: "/run/mosaic", ReadOnly: true},
			{Host: dir + "/shared", Container: "/run/mosaic/shared"},
			{Host: "/var/lib/mosaic/ld.so.preload", Container: "/etc/ld.so.preload", ReadOnly: true},
			{Host: "/host/x", Container: "/var/run/nvidia-container-devices/all"},
		}}},
		{name: "exclusive card", ann: exclusive, ctr: Container{Name: "main", Spec: privileged}},
		{name: "no allocation", ctr: Container{Name: "main", Spec: privileged}},
		{name: "exempt namespace", cfg: exempt, ns: "gpu-operator", ann: shared, ctr: Container{Name: "main", Spec: privileged}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg
			if c == nil {
				c = cfg
			}
			d, err := Decide(c, Pod{UID: "u", Namespace: tc.ns, Annotations: tc.ann}, tc.ctr)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v (decision %+v), want it to contain %q", err, d, tc.want)
			}
		})
	}
}
