package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
)

// TestChainArtifacts runs the control-plane half of the chain that
// test/gpu/chain.sh finishes on a real GPU: a node publishing a real
// card's inventory (MOSAIC_CHAIN_INVENTORY, default test/gpu/h200-inventory.json),
// the scheduler placing a pod on it, and the NRI plugin turning the
// allocation into the container's environment and limits file, written to
// MOSAIC_CHAIN_OUT (default: a temporary directory).
func TestChainArtifacts(t *testing.T) {
	invFile := os.Getenv("MOSAIC_CHAIN_INVENTORY")
	if invFile == "" {
		invFile = "../gpu/h200-inventory.json"
	}
	out := os.Getenv("MOSAIC_CHAIN_OUT")
	if out == "" {
		out = t.TempDir()
	}
	b, err := os.ReadFile(invFile)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := device.DecodeInventory(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	inv.NRI = true
	raw, err := device.EncodeInventory(inv)
	if err != nil {
		t.Fatal(err)
	}
	// The node exists before the scheduler starts, which then never
	// schedules without it.
	e := newStoppedEnv(t, nil)
	const nodeName = "gpu-host"
	gpus := resource.MustParse(fmt.Sprint(10 * len(inv.Devices)))
	capacity := v1.ResourceList{v1.ResourceCPU: resource.MustParse("16"), v1.ResourceMemory: resource.MustParse("128Gi"), v1.ResourcePods: resource.MustParse("110"), "nvidia.com/gpu": gpus}
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Annotations: map[string]string{device.InventoryAnnotation: raw}},
		Status: v1.NodeStatus{Capacity: capacity, Allocatable: capacity, Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}}}}
	if _, err := e.cs.CoreV1().Nodes().Create(e.ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.cs.CoreV1().Nodes().Delete(context.Background(), nodeName, metav1.DeleteOptions{}) })
	e.startScheduler()

	p, a := e.mustBind(podSpec{name: "chain", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4096", "nvidia.com/gpucores": "30"}})
	share := a.Containers[0].Devices[0]
	if share.UUID != inv.Devices[0].UUID || share.MemoryMiB != 4096 || share.Cores != 30 {
		t.Fatalf("share = %+v", share)
	}

	rt, state := startNRIPlugin(t, e, nri.Config{NodeName: nodeName, EnforcerLib: "/usr/local/lib/mosaic/libmosaic-enforcer.so", CorePolicy: device.CorePolicyDefault}, p)
	ctx := e.ctx
	adj, err := rt.CreateContainer(ctx, sandbox(p), container(p, "c0"))
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range adj.GetEnv() {
		env = append(env, kv.GetKey()+"="+kv.GetValue())
	}
	sort.Strings(env)
	limits, err := os.ReadFile(filepath.Join(nri.ContainerStateDir(state, string(p.UID)), "c0", "limits.conf"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := device.DecodeLimits(string(limits))
	if err != nil || len(l.Cards) != 1 || l.Cards[0].UUID != share.UUID || l.Cards[0].MemoryBytes != 4096<<20 || l.Cards[0].Cores != 30 {
		t.Fatalf("limits file %q (%v)", limits, err)
	}
	allocJSON, _ := json.MarshalIndent(a, "", "  ")
	for name, content := range map[string][]byte{"env": []byte(strings.Join(env, "\n") + "\n"), "limits.conf": limits, "allocation.json": allocJSON} {
		if err := os.WriteFile(filepath.Join(out, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %s: NVIDIA_VISIBLE_DEVICES=%s, 4096 MiB, 30%% cores", out, share.UUID)
}
