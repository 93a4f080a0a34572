package device

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Decoders must never panic, and what they accept must re-encode.

func FuzzDecodeInventory(f *testing.F) {
	valid, _ := EncodeInventory(testInventory())
	f.Add(valid)
	f.Add(`{"version":1,"devices":[]}`)
	f.Add(`{"version":1,"devices":[{"uuid":"u","index":-1}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := DecodeInventory(s)
		if err != nil {
			return
		}
		if _, err := EncodeInventory(inv); err != nil {
			t.Fatalf("accepted inventory does not re-encode: %v", err)
		}
	})
}

func FuzzDecodeAllocation(f *testing.F) {
	f.Add(`{"v":1,"node":"n","containers":[{"name":"c","devices":[{"uuid":"u","index":0,"vendor":"NVIDIA","memoryMiB":1,"cores":1,"numa":0}]}]}`)
	f.Add(`{"v":1,"node":"n","containers":[{"name":"c","init":true,"devices":[]}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		a, err := DecodeAllocation(s)
		if err != nil {
			return
		}
		if _, err := EncodeAllocation(a); err != nil {
			t.Fatalf("accepted allocation does not re-encode: %v", err)
		}
		for id, u := range a.Footprint() {
			if u.Slots < 1 || u.MemoryMiB < 1 {
				t.Fatalf("footprint of %s is %+v", id, u)
			}
		}
	})
}

func FuzzDecodeLimits(f *testing.F) {
	f.Add("mosaic-limits 1\npolicy force\ncard 0 GPU-a memory=1024 cores=50\n")
	f.Add("mosaic-limits 1\ncard 1 x memory=18446744073709551615 cores=100")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := DecodeLimits(s)
		if err != nil {
			return
		}
		if _, err := EncodeLimits(l); err != nil {
			t.Fatalf("accepted limits do not re-encode: %v", err)
		}
	})
}

func FuzzParsePodRequest(f *testing.F) {
	f.Add("nvidia.com/gpu", "1", "nvidia.com/gpumem", "3000", "true")
	f.Add("huawei.com/Ascend910B3", "1", "huawei.com/Ascend910B3-memory", "12000", "")
	f.Fuzz(func(t *testing.T, k1, v1s, k2, v2s, numa string) {
		q1, err1 := resource.ParseQuantity(v1s)
		q2, err2 := resource.ParseQuantity(v2s)
		if err1 != nil || err2 != nil {
			return
		}
		p := pod(map[string]string{HAMiNUMABindAnnotation: numa}, v1.Container{Name: "c", Resources: v1.ResourceRequirements{
			Limits: v1.ResourceList{v1.ResourceName(k1): q1, v1.ResourceName(k2): q2}}})
		req, err := ParsePodRequest(p, ParseOptions{AscendModels: DefaultAscendModels()})
		if err != nil || req == nil {
			return
		}
		for _, c := range req.Containers {
			if c.Count < 1 || c.Count > MaxCardsPerContainer || c.Cores < 0 || c.Cores > MaxCores || c.MemoryMiB < 0 || c.MemoryPercent < 0 || c.MemoryPercent > 100 {
				t.Fatalf("accepted out-of-range request %+v", c)
			}
		}
	})
}
