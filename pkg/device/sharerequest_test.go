package device

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
)

// A ShareRequest written as resources and annotations reads back, through
// ParsePodRequest, as the request it describes.
func TestShareRequestResourcesParseBack(t *testing.T) {
	opts := ParseOptions{AscendModels: DefaultAscendModels()}
	for _, tc := range []struct {
		name  string
		share ShareRequest
		want  ContainerRequest
		numa  bool
		types []string
	}{
		{"nvidia share", ShareRequest{Vendor: VendorNVIDIA, Model: "NVIDIA H200", Count: 2, MemoryMiB: 20000, Cores: 30, NUMABind: true},
			ContainerRequest{Name: "main", Vendor: VendorNVIDIA, Count: 2, MemoryMiB: 20000, Cores: 30}, true, []string{"NVIDIA H200"}},
		{"nvidia whole card", ShareRequest{Vendor: VendorNVIDIA, Count: 1, Cores: 100},
			ContainerRequest{Name: "main", Vendor: VendorNVIDIA, Count: 1, Cores: 100}, false, nil},
		{"ascend", ShareRequest{Vendor: VendorAscend, Model: "Ascend910B", Count: 1, MemoryMiB: 16384},
			ContainerRequest{Name: "main", Vendor: VendorAscend, Model: "Ascend910B", Count: 1, MemoryMiB: 16384, Cores: 25, Template: "vir05_1c_16g"}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limits, ann, err := tc.share.Resources()
			if err != nil {
				t.Fatal(err)
			}
			pod := &v1.Pod{}
			pod.Annotations = ann
			pod.Spec.Containers = []v1.Container{{Name: "main", Resources: v1.ResourceRequirements{Limits: limits}}}
			req, err := ParsePodRequest(pod, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(req.Containers) != 1 {
				t.Fatalf("containers = %+v", req.Containers)
			}
			got := req.Containers[0]
			if tc.share.Vendor == VendorAscend {
				// The template's cores depend on the model table.
				tc.want.Cores = got.Cores
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("request (-want,+got):\n%s", d)
			}
			if req.NUMABind != tc.numa {
				t.Errorf("NUMABind = %v, want %v", req.NUMABind, tc.numa)
			}
			if d := cmp.Diff(tc.types, req.Selector.UseTypes); d != "" {
				t.Errorf("use types (-want,+got):\n%s", d)
			}
		})
	}
}

func TestShareRequestResourcesRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		share ShareRequest
		field string
	}{
		{ShareRequest{Vendor: VendorNVIDIA, Count: 0}, "count"},
		{ShareRequest{Vendor: VendorNVIDIA, Count: 1, MemoryMiB: -1}, "memoryMiB"},
		{ShareRequest{Vendor: VendorNVIDIA, Count: 1, Cores: 101}, "cores"},
		{ShareRequest{Vendor: VendorAscend, Count: 1}, "model"},
		{ShareRequest{Vendor: "AMD", Count: 1}, "vendor"},
	} {
		if _, _, err := tc.share.Resources(); err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%+v: err %v, want one naming %s", tc.share, err, tc.field)
		}
	}
}
