package device

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func container(name string, limits map[string]string) v1.Container {
	rl := v1.ResourceList{}
	for k, v := range limits {
		rl[v1.ResourceName(k)] = resource.MustParse(v)
	}
	return v1.Container{Name: name, Resources: v1.ResourceRequirements{Limits: rl}}
}

func pod(ann map[string]string, cs ...v1.Container) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: ann}, Spec: v1.PodSpec{Containers: cs}}
}

func TestParsePodRequest(t *testing.T) {
	opts := ParseOptions{AscendModels: DefaultAscendModels()}
	always := v1.ContainerRestartPolicyAlways
	tests := []struct {
		name    string
		pod     *v1.Pod
		opts    *ParseOptions
		want    *PodRequest
		wantErr string
	}{
		{name: "no devices", pod: pod(nil, container("c", map[string]string{"cpu": "1"})), want: nil},
		{
			name: "gpu with memory and cores",
			pod:  pod(nil, container("c", map[string]string{"nvidia.com/gpu": "2", "nvidia.com/gpumem": "3000", "nvidia.com/gpucores": "30"})),
			want: &PodRequest{Containers: []ContainerRequest{{Name: "c", Vendor: VendorNVIDIA, Count: 2, MemoryMiB: 3000, Cores: 30}}},
		},
		{
			name: "memory percentage",
			pod:  pod(nil, container("c", map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "25"})),
			want: &PodRequest{Containers: []ContainerRequest{{Name: "c", Vendor: VendorNVIDIA, Count: 1, MemoryPercent: 25}}},
		},
		{
			name: "defaults from options",
			pod:  pod(nil, container("c", map[string]string{"nvidia.com/gpu": "1"})),
			opts: &ParseOptions{DefaultMemoryMiB: 1024, DefaultCores: 10},
			want: &PodRequest{Containers: []ContainerRequest{{Name: "c", Vendor: VendorNVIDIA, Count: 1, MemoryMiB: 1024, Cores: 10}}},
		},
		{
			name: "annotations, HAMi keys",
			pod: pod(map[string]string{
				"nvidia.com/use-gputype": "A100, H100", "nvidia.com/nouse-gpuuuid": "GPU-1",
				"nvidia.com/numa-bind": "true", "hami.io/gpu-scheduler-policy": "binpack", "mosaic.io/node-scheduler-policy": "Spread",
			}, container("c", map[string]string{"nvidia.com/gpu": "1"})),
			want: &PodRequest{
				Containers: []ContainerRequest{{Name: "c", Vendor: VendorNVIDIA, Count: 1}},
				Selector:   Selector{UseTypes: []string{"A100", "H100"}, NoUseUUIDs: []string{"GPU-1"}},
				NUMABind:   true, NodePolicy: PolicySpread, GPUPolicy: PolicyBinpack,
			},
		},
		{
			name: "topology required",
			pod:  pod(map[string]string{"mosaic.io/gpu-topology": " NVLink"}, container("c", map[string]string{"nvidia.com/gpu": "4"})),
			want: &PodRequest{Containers: []ContainerRequest{{Name: "c", Vendor: VendorNVIDIA, Count: 4}}, Topology: TopologyNVLink},
		},
		{
			name: "init container and sidecar",
			pod: func() *v1.Pod {
				p := pod(nil, container("app", map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "100"}))
				side := container("side", map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "50"})
				side.RestartPolicy = &always
				p.Spec.InitContainers = []v1.Container{container("init", map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "200"}), side}
				return p
			}(),
			want: &PodRequest{Containers: []ContainerRequest{
				{Name: "init", Init: true, Vendor: VendorNVIDIA, Count: 1, MemoryMiB: 200},
				{Name: "side", Vendor: VendorNVIDIA, Count: 1, MemoryMiB: 50},
				{Name: "app", Vendor: VendorNVIDIA, Count: 1, MemoryMiB: 100},
			}},
		},
		{
			// 12000 MiB rounds up to the 16 GiB template: 5 of 20 AI cores.
			name: "ascend fractional rounds up to a template",
			pod:  pod(nil, container("c", map[string]string{"huawei.com/Ascend910B3": "1", "huawei.com/Ascend910B3-memory": "12000"})),
			want: &PodRequest{Containers: []ContainerRequest{{Name: "c", Vendor: VendorAscend, Model: "Ascend910B3", Count: 1, MemoryMiB: 16384, Cores: 25, Template: "vir05_1c_16g"}}},
		},
		{
			name: "ascend above the largest template is a whole card",
			pod:  pod(nil, container("c", map[string]string{"huawei.com/Ascend910B3": "1", "huawei.com/Ascend910B3-memory": "40000"})),
			want: &PodRequest{Containers: []ContainerRequest{{Name: "c", Vendor: VendorAscend, Model: "Ascend910B3", Count: 1, Cores: 100}}},
		},
		{
			name: "ascend several cards are whole cards",
			pod:  pod(nil, container("c", map[string]string{"huawei.com/Ascend310P": "2", "huawei.com/Ascend310P-memory": "1000"})),
			want: &PodRequest{Containers: []ContainerRequest{{Name: "c", Vendor: VendorAscend, Model: "Ascend310P", Count: 2, Cores: 100}}},
		},
		{name: "cores above 100", pod: pod(nil, container("c", map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpucores": "150"})), wantErr: "container c: nvidia.com/gpucores=150 must be an integer in 0..100"},
		{name: "percentage above 100", pod: pod(nil, container("c", map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "101"})), wantErr: "nvidia.com/gpumem-percentage=101 must be an integer in 1..100"},
		{name: "gpumem without gpu", pod: pod(nil, container("c", map[string]string{"nvidia.com/gpumem": "1000"})), wantErr: "nvidia.com/gpumem needs nvidia.com/gpu"},
		{name: "mem and percentage", pod: pod(nil, container("c", map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "10", "nvidia.com/gpumem-percentage": "10"})), wantErr: "not both"},
		{name: "fractional gpu count", pod: pod(nil, container("c", map[string]string{"nvidia.com/gpu": "500m"})), wantErr: "nvidia.com/gpu=500m must be an integer in 1..16"},
		{name: "unknown ascend model", pod: pod(nil, container("c", map[string]string{"huawei.com/Ascend999": "1"})), wantErr: "unknown Ascend model"},
		{name: "ascend memory above the card", pod: pod(nil, container("c", map[string]string{"huawei.com/Ascend310P": "1", "huawei.com/Ascend310P-memory": "30000"})), wantErr: "huawei.com/Ascend310P-memory=30k must be an integer in 1..21527"},
		{name: "ascend memory without card", pod: pod(nil, container("c", map[string]string{"huawei.com/Ascend310P-memory": "3000"})), wantErr: "needs huawei.com/Ascend310P"},
		{name: "two families", pod: pod(nil, container("c", map[string]string{"nvidia.com/gpu": "1", "huawei.com/Ascend310P": "1"})), wantErr: "one device family"},
		{name: "bad policy", pod: pod(map[string]string{"hami.io/node-scheduler-policy": "pack"}, container("c", map[string]string{"nvidia.com/gpu": "1"})), wantErr: `mosaic.io/node-scheduler-policy: "pack" is not one of binpack, spread`},
		{name: "bad topology", pod: pod(map[string]string{"mosaic.io/gpu-topology": "nvswitch"}, container("c", map[string]string{"nvidia.com/gpu": "2"})), wantErr: `annotation mosaic.io/gpu-topology: "nvswitch" is not one of best-effort, nvlink`},
		{name: "bad numa-bind", pod: pod(map[string]string{"nvidia.com/numa-bind": "yes please"}, container("c", map[string]string{"nvidia.com/gpu": "1"})), wantErr: "is not true or false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := opts
			if tc.opts != nil {
				o = *tc.opts
				o.AscendModels = opts.AscendModels
			}
			got, err := ParsePodRequest(tc.pod, o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("request (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestSelectorAllows(t *testing.T) {
	a100 := &Device{UUID: "GPU-a", Model: "NVIDIA A100-SXM4-80GB"}
	h100 := &Device{UUID: "GPU-h", Model: "NVIDIA H100 80GB HBM3"}
	tests := []struct {
		sel        Selector
		a100, h100 bool
	}{
		{Selector{}, true, true},
		{Selector{UseTypes: []string{"a100"}}, true, false},
		{Selector{NoUseTypes: []string{"A100"}}, false, true},
		{Selector{UseUUIDs: []string{"GPU-h"}}, false, true},
		{Selector{NoUseUUIDs: []string{"GPU-h"}}, true, false},
		{Selector{UseTypes: []string{"NVIDIA"}, NoUseUUIDs: []string{"GPU-a"}}, false, true},
	}
	for i, tc := range tests {
		if got := tc.sel.Allows(a100); got != tc.a100 {
			t.Errorf("%d: A100 allowed = %v, want %v", i, got, tc.a100)
		}
		if got := tc.sel.Allows(h100); got != tc.h100 {
			t.Errorf("%d: H100 allowed = %v, want %v", i, got, tc.h100)
		}
	}
}
