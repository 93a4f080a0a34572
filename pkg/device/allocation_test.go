package device

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAllocationRoundTrip(t *testing.T) {
	in := &Allocation{Node: "n1", Containers: []ContainerAllocation{
		{Name: "a", Devices: []Share{{UUID: "GPU-0", Index: 0, Vendor: VendorNVIDIA, MemoryMiB: 100, Cores: 10, NUMA: 0}}},
	}}
	s, err := EncodeAllocation(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeAllocation(s)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-want,+got):\n%s", diff)
	}
}

func TestDecodeAllocationErrors(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"empty":         {``, "EOF"},
		"version":       {`{"v":9,"node":"n","containers":[]}`, "version 9 is not supported"},
		"no node":       {`{"v":1,"node":"","containers":[]}`, "node: must not be empty"},
		"no containers": {`{"v":1,"node":"n","containers":[]}`, "containers: must not be empty"},
		"cores":         {`{"v":1,"node":"n","containers":[{"name":"c","devices":[{"uuid":"u","index":0,"vendor":"NVIDIA","memoryMiB":1,"cores":101,"numa":0}]}]}`, "devices[0].cores: 101 must be in 0..100"},
		"same card":     {`{"v":1,"node":"n","containers":[{"name":"c","devices":[{"uuid":"u","index":0,"vendor":"NVIDIA","memoryMiB":1,"cores":1,"numa":0},{"uuid":"u","index":0,"vendor":"NVIDIA","memoryMiB":1,"cores":1,"numa":0}]}]}`, "not already listed"},
		"dup container": {`{"v":1,"node":"n","containers":[{"name":"c","devices":[{"uuid":"u","index":0,"vendor":"NVIDIA","memoryMiB":1,"cores":1,"numa":0}]},{"name":"c","devices":[{"uuid":"v","index":0,"vendor":"NVIDIA","memoryMiB":1,"cores":1,"numa":0}]}]}`, "unique, non-empty container name"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeAllocation(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestFootprint(t *testing.T) {
	share := func(uuid string, mem int64, cores int) Share {
		return Share{UUID: uuid, Vendor: VendorNVIDIA, MemoryMiB: mem, Cores: cores}
	}
	a := &Allocation{Node: "n", Containers: []ContainerAllocation{
		// Two init containers run one after the other: the peak counts.
		{Name: "i1", Init: true, Devices: []Share{share("A", 5000, 20)}},
		{Name: "i2", Init: true, Devices: []Share{share("A", 3000, 60), share("B", 100, 0)}},
		// App containers run together: they add up.
		{Name: "c1", Devices: []Share{share("A", 1000, 10)}},
		{Name: "c2", Devices: []Share{share("A", 2000, 10), share("C", 10, 100)}},
	}}
	want := map[string]Usage{
		"A": {MemoryMiB: 5000, Cores: 60, Slots: 2}, // max(init peak 5000/60/1, app 3000/20/2)
		"B": {MemoryMiB: 100, Cores: 0, Slots: 1},
		"C": {MemoryMiB: 10, Cores: 100, Slots: 1, Exclusive: true},
	}
	if diff := cmp.Diff(want, a.Footprint()); diff != "" {
		t.Errorf("footprint (-want,+got):\n%s", diff)
	}
}
