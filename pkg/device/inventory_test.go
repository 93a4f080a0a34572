package device

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func testInventory() *Inventory {
	return &Inventory{
		Devices: []Device{
			{UUID: "GPU-0", Index: 0, Vendor: VendorNVIDIA, Model: "A100", MemoryMiB: 81920, ComputeUnits: 108, NUMA: 0, Healthy: true,
				Links: []Link{{Peer: "GPU-1", Type: LinkNVLink, Count: 12}}},
			{UUID: "GPU-1", Index: 1, Vendor: VendorNVIDIA, Model: "A100", MemoryMiB: 81920, NUMA: UnknownNUMA, Healthy: false},
		},
		Config: NodeConfig{SplitCount: 4, MemoryScaling: 1.5},
		NRI:    true,
	}
}

func TestInventoryRoundTrip(t *testing.T) {
	in := testInventory()
	s, err := EncodeInventory(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeInventory(s)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-want,+got):\n%s", diff)
	}
}

func TestDecodeInventoryErrors(t *testing.T) {
	valid, _ := EncodeInventory(testInventory())
	tests := map[string]struct{ in, want string }{
		"not json":       {`{"version":1,`, "mosaic.io/devices: unexpected EOF"},
		"trailing":       {valid + "}", "trailing data"},
		"unknown field":  {`{"version":1,"devices":[],"gpus":[]}`, `unknown field "gpus"`},
		"future version": {`{"version":2,"devices":[]}`, "version 2 is not supported"},
		"empty uuid":     {`{"version":1,"devices":[{"uuid":"","index":0,"vendor":"NVIDIA","model":"x","memoryMiB":1,"numa":0,"healthy":true}]}`, "devices[0].uuid: must not be empty"},
		"bad vendor":     {`{"version":1,"devices":[{"uuid":"u","index":0,"vendor":"AMD","model":"x","memoryMiB":1,"numa":0,"healthy":true}]}`, `devices[0].vendor: "AMD" is not one of`},
		"zero memory":    {`{"version":1,"devices":[{"uuid":"u","index":0,"vendor":"NVIDIA","model":"x","memoryMiB":0,"numa":0,"healthy":true}]}`, "devices[0].memoryMiB: 0 must be in 1.."},
		"numa -2":        {`{"version":1,"devices":[{"uuid":"u","index":0,"vendor":"NVIDIA","model":"x","memoryMiB":1,"numa":-2,"healthy":true}]}`, "numa: -2 must be >= -1"},
		"duplicate uuid": {`{"version":1,"devices":[{"uuid":"u","index":0,"vendor":"NVIDIA","model":"x","memoryMiB":1,"numa":0,"healthy":true},{"uuid":"u","index":1,"vendor":"NVIDIA","model":"x","memoryMiB":1,"numa":0,"healthy":true}]}`, "listed twice"},
		"split too big":  {`{"version":1,"devices":[],"config":{"splitCount":5000}}`, "config.splitCount: 5000 must be in 1..1024"},
		"scaling NaN":    {`{"version":1,"devices":[],"config":{"memoryScaling":-1}}`, "config.memoryScaling: -1 must be in 0.01..100"},
		"negative split": {`{"version":1,"devices":[],"config":{"splitCount":-4}}`, "config.splitCount: -4 must be in 1..1024"},
		"core scaling":   {`{"version":1,"devices":[],"config":{"coreScaling":1000}}`, "config.coreScaling: 1000 must be in 0.01..100"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeInventory(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// An agent publishes its complete sharing config; inventories written
// before it did (or by a tool) carry none or part of it, and still decode:
// what they leave out means the default.
func TestDecodeInventorySharing(t *testing.T) {
	card := `{"uuid":"GPU-0","index":0,"vendor":"NVIDIA","model":"L4","memoryMiB":23034,"numa":0,"healthy":true}`
	tests := []struct {
		name, config string
		want         NodeConfig
	}{
		{"old, without config", ``, DefaultNodeConfig()},
		{"old, split only", `,"config":{"splitCount":4}`, NodeConfig{SplitCount: 4, MemoryScaling: 1, CoreScaling: 1}},
		{"new, complete", `,"config":{"splitCount":4,"memoryScaling":1.5,"coreScaling":2}`, NodeConfig{SplitCount: 4, MemoryScaling: 1.5, CoreScaling: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := DecodeInventory(`{"version":1,"devices":[` + card + `]` + tc.config + `,"nri":true}`)
			if err != nil {
				t.Fatal(err)
			}
			if got := inv.Config.Merge(DefaultNodeConfig()); got != tc.want {
				t.Errorf("sharing = %+v, want %+v", got, tc.want)
			}
		})
	}
	// What an agent publishes, it reads back whole.
	s, err := EncodeInventory(&Inventory{Devices: testInventory().Devices, Config: NodeConfig{SplitCount: 4, MemoryScaling: 1, CoreScaling: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s, `"config":{"splitCount":4,"memoryScaling":1,"coreScaling":1}`) {
		t.Errorf("encoded %s, want the complete config", s)
	}
}
