package device

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The golden files are shared with the enforcer's C tests: both parsers
// must accept and reject the same files.
func TestLimitsGoldenFiles(t *testing.T) {
	b, err := os.ReadFile("testdata/limits-valid.conf")
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeLimits(string(b))
	if err != nil {
		t.Fatal(err)
	}
	want := &Limits{Policy: CorePolicyDefault, Cards: []CardLimit{
		{Ordinal: 0, UUID: "GPU-6c8b3c2e-1f3a-4d9e-9b1a-0a1b2c3d4e5f", MemoryBytes: 4294967296, Cores: 25},
		{Ordinal: 1, UUID: "GPU-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", MemoryBytes: 8589934592, Cores: 0},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("limits (-want,+got):\n%s", diff)
	}
	for file, msg := range map[string]string{
		"limits-invalid-cores.conf":   "cores=101 must be in 0..100",
		"limits-invalid-version.conf": `want "mosaic-limits 1"`,
		"limits-invalid-key.conf":     "card wants",
	} {
		b, err := os.ReadFile("testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeLimits(string(b)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: error = %v, want it to contain %q", file, err, msg)
		}
	}
}

func TestContainerLimitsRoundTrip(t *testing.T) {
	c := &ContainerAllocation{Name: "c", Devices: []Share{
		{UUID: "GPU-b", Index: 5, MemoryMiB: 1024, Cores: 30},
		{UUID: "GPU-a", Index: 2, MemoryMiB: 2048, Cores: 30},
	}}
	l := ContainerLimits(c, CorePolicyForce)
	s, err := EncodeLimits(l)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeLimits(s)
	if err != nil {
		t.Fatal(err)
	}
	want := &Limits{Policy: CorePolicyForce, Cards: []CardLimit{
		{Ordinal: 0, UUID: "GPU-b", MemoryBytes: 1 << 30, Cores: 30},
		{Ordinal: 1, UUID: "GPU-a", MemoryBytes: 2 << 30, Cores: 30},
	}}
	if diff := cmp.Diff(want, back); diff != "" {
		t.Errorf("limits (-want,+got):\n%s", diff)
	}
}

func TestDecodeLimitsErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                                    "missing",
		"mosaic-limits 1\nspeed 3\n":          `line 2: unknown directive "speed"`,
		"mosaic-limits 1\npolicy sometimes\n": `policy "sometimes"`,
		"mosaic-limits 1\ncard x U memory=1 cores=1\n":                            "ordinal",
		"mosaic-limits 1\ncard 0 U memory=1k cores=1\n":                           "not a byte count",
		"mosaic-limits 1\ncard 0 U memory=1 memory=2\n":                           "each key once",
		"mosaic-limits 1\ncard 0 U memory=1 cores=1\ncard 0 V memory=1 cores=1\n": "ordinal must be unique",
	} {
		if _, err := DecodeLimits(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeLimits(%q) error = %v, want it to contain %q", in, err, want)
		}
	}
}
