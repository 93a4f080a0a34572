package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

func TestRunFake(t *testing.T) {
	specs := filepath.Join(t.TempDir(), "cards.yaml")
	if err := os.WriteFile(specs, []byte("- {vendor: NVIDIA, model: H200, memoryMiB: 143771, count: 2, sms: 132}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"--backend", "fake", "--fake-file", specs, "--node", "n1"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	inv, err := device.DecodeInventory(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("output is not an inventory: %v\n%s", err, stdout.String())
	}
	if len(inv.Devices) != 2 || inv.Devices[0].Model != "H200" || inv.Devices[1].ComputeUnits != 132 {
		t.Errorf("inventory = %+v, want two H200 with 132 SMs", inv.Devices)
	}
}

// Without a driver the command prints an empty inventory and succeeds.
func TestRunNoDriver(t *testing.T) {
	for _, backend := range []string{"nvidia", "ascend"} {
		t.Run(backend, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			lib := filepath.Join(t.TempDir(), "missing.so")
			if err := run(context.Background(), []string{"--backend", backend, "--library", lib}, &stdout, &stderr); err != nil {
				t.Fatalf("run: %v", err)
			}
			inv, err := device.DecodeInventory(strings.TrimSpace(stdout.String()))
			if err != nil || len(inv.Devices) != 0 {
				t.Errorf("stdout %q: want an empty inventory (decode error %v)", stdout.String(), err)
			}
			if !strings.Contains(stderr.String(), "no "+backend+" driver") {
				t.Errorf("stderr %q does not say the driver is missing", stderr.String())
			}
		})
	}
}

func TestRunBadBackend(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"--backend", "tpu"}, &stdout, &stderr); err == nil {
		t.Fatal("run with an unknown backend succeeded")
	}
}
