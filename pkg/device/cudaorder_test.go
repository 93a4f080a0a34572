package device

import (
	"slices"
	"strings"
	"testing"
)

func TestInBusOrder(t *testing.T) {
	buses := PCIBuses{"GPU-a": "0000:17:00.0", "GPU-b": "0000:65:00.0", "GPU-c": "10000:01:00.0", "GPU-d": "0000:65:00.1", "GPU-bad": "65:00"}
	shares := func(uuids ...string) []Share {
		var out []Share
		for _, u := range uuids {
			out = append(out, Share{UUID: u})
		}
		return out
	}
	tests := []struct {
		name    string
		in      []Share
		want    []string
		wantErr string
	}{
		{name: "already in order", in: shares("GPU-a", "GPU-b"), want: []string{"GPU-a", "GPU-b"}},
		// By number: domain 0x10000 comes after 0, though "1" < "0" fails as text.
		{name: "reversed, across domains", in: shares("GPU-c", "GPU-b", "GPU-a"), want: []string{"GPU-a", "GPU-b", "GPU-c"}},
		{name: "functions of one device", in: shares("GPU-d", "GPU-b"), want: []string{"GPU-b", "GPU-d"}},
		// One card has ordinal 0 whatever its bus.
		{name: "one card of unknown bus", in: shares("GPU-x"), want: []string{"GPU-x"}},
		{name: "unknown bus among several", in: shares("GPU-a", "GPU-x"), wantErr: "devices[1]: card GPU-x has no known PCI bus ID"},
		{name: "malformed bus", in: shares("GPU-bad", "GPU-a"), wantErr: `devices[0]: card GPU-bad: PCI bus id "65:00"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			got, err := InBusOrder(in, buses.PCIBus)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var uuids []string
			for _, s := range got {
				uuids = append(uuids, s.UUID)
			}
			if !slices.Equal(uuids, tc.want) {
				t.Errorf("order = %v, want %v", uuids, tc.want)
			}
			if !slices.Equal(in, tc.in) {
				t.Errorf("the allocation's own order was changed: %v", in)
			}
		})
	}
}
