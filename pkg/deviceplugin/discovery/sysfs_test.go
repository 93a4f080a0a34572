package discovery

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

func TestNormalizePCIBusID(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "00000000:19:00.0", want: "0000:19:00.0"},
		{in: "00000000:BB:00.0", want: "0000:bb:00.0"},
		{in: "0000:3b:00.1", want: "0000:3b:00.1"},
		{in: "3B:00.0", want: "0000:3b:00.0"},
		{in: "00010000:01:00.0", want: "10000:01:00.0"},
		{in: "", wantErr: true},
		{in: "0000:19:00", wantErr: true},
		{in: "0000:zz:00.0", wantErr: true},
	}
	for _, tc := range tests {
		got, err := normalizePCIBusID(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("normalizePCIBusID(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestReadNUMANode(t *testing.T) {
	root := writeSysfsTree(t, map[string]string{
		"0000:19:00.0": "1", "0000:3b:00.0": "-1", "0000:4c:00.0": "garbage",
	})
	tests := map[string]int{
		"0000:19:00.0": 1,
		"0000:3b:00.0": device.UnknownNUMA,
		"0000:4c:00.0": device.UnknownNUMA,
		"0000:5d:00.0": device.UnknownNUMA, // no such device
		"":             device.UnknownNUMA,
	}
	for bus, want := range tests {
		if got := readNUMANode(root, bus); got != want {
			t.Errorf("readNUMANode(%q) = %d, want %d", bus, got, want)
		}
	}
}

// writeSysfsTree writes numa_node files for the given kernel bus ids; a
// missing entry in numa leaves the card's directory out.
func writeSysfsTree(t *testing.T, numa map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for bus, node := range numa {
		dir := filepath.Join(root, "bus", "pci", "devices", bus)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "numa_node"), []byte(node+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}
