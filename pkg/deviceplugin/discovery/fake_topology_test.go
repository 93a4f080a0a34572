package discovery

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// Connect writes links as the NVIDIA backend does: both ends of a pair,
// and a pair linked by NVLink not also as PCIe.
func TestFakeConnect(t *testing.T) {
	f, err := NewFake("n", []CardSpec{{Vendor: device.VendorNVIDIA, Model: "NVIDIA H200", MemoryMiB: 143771, Count: 4}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Connect(&FakeTopology{NVLink: []FakeLinkGroup{{Cards: []int{0, 1}, Links: 4}}, PCIeSwitches: [][]int{{0, 1, 2}}}); err != nil {
		t.Fatal(err)
	}
	uuid := func(i int) string { return f.devices[i].UUID }
	want := [][]device.Link{
		{{Peer: uuid(1), Type: device.LinkNVLink, Count: 4}, {Peer: uuid(2), Type: device.LinkPCIe, Count: 1}},
		{{Peer: uuid(0), Type: device.LinkNVLink, Count: 4}, {Peer: uuid(2), Type: device.LinkPCIe, Count: 1}},
		{{Peer: uuid(0), Type: device.LinkPCIe, Count: 1}, {Peer: uuid(1), Type: device.LinkPCIe, Count: 1}},
		nil,
	}
	var got [][]device.Link
	for _, d := range f.devices {
		got = append(got, d.Links)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("links (-want,+got):\n%s", diff)
	}
	if _, err := device.EncodeInventory(&device.Inventory{Devices: f.devices}); err != nil {
		t.Errorf("linked inventory is invalid: %v", err)
	}
}
