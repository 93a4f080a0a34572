//go:build cgo

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery/nvidiatest"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/inventory"
	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// The NVIDIA backend reads NVML through cgo (go-nvml's mock in tests).

// publishHGX publishes, on node, the inventory the node agent's NVIDIA
// backend reads from go-nvml's HGX H200 board (18 NVLinks per card to the
// NVSwitches), with NUMA nodes 0 and 1 in sysfs.
func (e *env) publishHGX(node string) {
	e.t.Helper()
	sysfs := e.t.TempDir()
	for i, bus := range nvidiatest.H200Buses {
		dir := filepath.Join(sysfs, "bus", "pci", "devices", "0000"+strings.ToLower(bus[8:]))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "numa_node"), []byte(fmt.Sprintln(i/4)), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	backend, err := discovery.NewNVIDIAFrom(nvidiatest.NewHGXH200(), discovery.NVIDIAOptions{SysfsRoot: sysfs})
	if err != nil {
		e.t.Fatal(err)
	}
	defer backend.Close()
	if err := (&inventory.Publisher{Client: e.cs, NodeName: node, Backend: backend, Config: device.DefaultNodeConfig(), NRI: true}).Publish(e.ctx); err != nil {
		e.t.Fatal(err)
	}
}

// On go-nvml's HGX H200 board, multi-card pods get linked cards of one
// NUMA node, and the board beats a node of as many unlinked cards; a
// required link that no node offers is refused with its reason.
func TestTopologyHGXH200(t *testing.T) {
	e := newStoppedEnv(t, nil, h200("topo-hgx", nil), h200("topo-plain", nil))
	e.publishHGX("topo-hgx")
	e.startScheduler()
	for _, want := range [][]int{{0, 1, 2, 3}, {4, 5}, {6, 7}} {
		name := fmt.Sprintf("p%d", len(want))
		_, a := e.mustBind(podSpec{name: fmt.Sprintf("%s-%d", name, want[0]), limits: whole(len(want))})
		if a.Node != "topo-hgx" {
			t.Fatalf("%d cards on %s, want the linked board", len(want), a.Node)
		}
		if got := e.linkedSet(a); !slices.Equal(got, want) {
			t.Errorf("%d cards: %v, want %v (linked, one NUMA node)", len(want), got, want)
		}
	}
	// The board is full; the plain node has no linked pair.
	e.mustReject(podSpec{name: "nvlink", limits: whole(2), annotations: requireNVLink}, placement.ReasonTopology)
	// Preferred, not required: the plain node takes it.
	if _, a := e.mustBind(podSpec{name: "plain", limits: whole(2)}); a.Node != "topo-plain" {
		t.Errorf("2 cards on %s, want topo-plain", a.Node)
	}
	e.checkCapacity()
}
