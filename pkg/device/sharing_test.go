package device

import "testing"

func TestCardCapacity(t *testing.T) {
	d := &Device{MemoryMiB: 1000}
	if got, want := CardCapacity(d, NodeConfig{SplitCount: 4, MemoryScaling: 1.5, CoreScaling: 2}), (Usage{MemoryMiB: 1500, Cores: 200, Slots: 4}); got != want {
		t.Errorf("CardCapacity = %+v, want %+v", got, want)
	}
}

func TestNodeConfigMerge(t *testing.T) {
	got := NodeConfig{SplitCount: 4}.Merge(NodeConfig{SplitCount: 10, MemoryScaling: 1, CoreScaling: 2})
	if want := (NodeConfig{SplitCount: 4, MemoryScaling: 1, CoreScaling: 2}); got != want {
		t.Errorf("Merge = %+v, want %+v", got, want)
	}
}
