package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

func TestNamespaces(t *testing.T) {
	got, err := namespaces(" gpu-operator,,kube-system ")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"gpu-operator", "kube-system"}, got); diff != "" {
		t.Errorf("namespaces (-want,+got):\n%s", diff)
	}
	if _, err := namespaces("team a"); err == nil || !strings.Contains(err.Error(), `--exempt-namespaces: "team a" is not a namespace name`) {
		t.Errorf("error = %v", err)
	}
}

// The agent does not start without its keys unless told to run unsigned.
func TestAllocationKeys(t *testing.T) {
	dir := t.TempDir()
	if _, err := allocationKeys(&flags{keyDir: dir}); err == nil || !strings.Contains(err.Error(), "--allocation-key-dir: allocation signing keys: no key file in "+dir) ||
		!strings.Contains(err.Error(), "--unsigned-allocations") {
		t.Errorf("no key: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, device.CurrentKey), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := allocationKeys(&flags{keyDir: dir}); err == nil || !strings.Contains(err.Error(), "5 bytes, want at least 32") {
		t.Errorf("short key: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, device.CurrentKey), []byte(strings.Repeat("k", 44)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if keys, err := allocationKeys(&flags{keyDir: dir}); err != nil || keys == nil {
		t.Errorf("good key: %v", err)
	}
	if keys, err := allocationKeys(&flags{keyDir: filepath.Join(dir, "absent"), unsigned: true}); err != nil || keys != nil {
		t.Errorf("--unsigned-allocations: keys %v, %v; want none and no error", keys, err)
	}
	if _, err := allocationKeys(&flags{keyDir: dir, keyDirSet: true, unsigned: true}); err == nil {
		t.Error("--unsigned-allocations with --allocation-key-dir accepted")
	}
}
