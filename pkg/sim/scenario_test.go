package sim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseErrorsNameTheField(t *testing.T) {
	node := "nodes:\n- name: gpu\n  gpus: [{vendor: NVIDIA, model: A100, memoryMiB: 1000}]\n"
	pod := func(body string) string { return node + "pods:\n- " + body + "\n" }
	tests := map[string]struct{ in, want string }{
		"yaml syntax":       {"nodes: [", "yaml"},
		"unknown key":       {node + "pod: []\n", `unknown field "pod"`},
		"no nodes":          {"pods: []\n", "nodes: at least one node"},
		"bad node name":     {"nodes:\n- name: Bad_Name\n", `nodes[0].name: "Bad_Name"`},
		"bad vendor":        {"nodes:\n- name: gpu\n  gpus: [{vendor: AMD, model: x, memoryMiB: 1}]\n", `nodes[0].gpus[0].vendor: "AMD" must be NVIDIA or Ascend`},
		"numa length":       {"nodes:\n- name: gpu\n  gpus: [{vendor: NVIDIA, model: x, memoryMiB: 1, count: 2, numa: [0]}]\n", "gpus[0].numa: lists 1 nodes for 2 cards"},
		"zero memory":       {"nodes:\n- name: gpu\n  gpus: [{vendor: NVIDIA, model: x, memoryMiB: 0}]\n", "nodes[0]: gpus[0].memoryMiB: 0 must be in 1..16777216"},
		"link unknown card": {"nodes:\n- name: gpu\n  gpus: [{vendor: NVIDIA, model: x, memoryMiB: 1, count: 2}]\n  topology: {nvlink: [{cards: [0, 2]}]}\n", "nodes[0]: topology.nvlink[0].cards: card 2 is not one of the node's 2 cards"},
		"link one card":     {"nodes:\n- name: gpu\n  gpus: [{vendor: NVIDIA, model: x, memoryMiB: 1, count: 2}]\n  topology: {pcieSwitches: [[1]]}\n", "topology.pcieSwitches[0].cards: a group needs at least 2 cards"},
		"linked twice":      {"nodes:\n- name: gpu\n  gpus: [{vendor: NVIDIA, model: x, memoryMiB: 1, count: 3}]\n  topology: {nvlink: [{cards: [0, 1]}, {cards: [1, 0, 2]}]}\n", "topology.nvlink[1].cards: cards 1 and 0 are linked twice"},
		"hccs on nvidia":    {"nodes:\n- name: gpu\n  gpus: [{vendor: NVIDIA, model: x, memoryMiB: 1, count: 2}]\n  topology: {hccs: [{cards: [0, 1]}]}\n", "topology.hccs[0].cards: card 0 is NVIDIA; hccs links Ascend cards"},
		"topology unknown":  {"nodes:\n- name: gpu\n  gpus: [{vendor: NVIDIA, model: x, memoryMiB: 1, count: 2}]\n  topology: {nvswitch: true}\n", `unknown field "nvswitch"`},
		"group name":        {node + "podGroups: [{name: Bad_Group, minCount: 2}]\n", `podGroups[0].name: "Bad_Group"`},
		"group minCount":    {node + "podGroups: [{name: g, minCount: 0}]\n", "podGroups[0].minCount: 0 must be in 1..10000"},
		"group twice":       {node + "podGroups: [{name: g, minCount: 1}, {name: g, minCount: 2}]\n", "podGroups[1]: pod group default/g is listed twice"},
		"group unknown":     {pod("{kind: Pod, metadata: {name: p}, spec: {schedulingGroup: {podGroupName: g}, containers: [{name: c}]}}"), `pods[0].spec.schedulingGroup.podGroupName: "g" names no podGroups entry in namespace default`},
		"bad split":         {"nodes:\n- name: gpu\n  deviceConfig: {splitCount: -1}\n", "nodes[0].deviceConfig.splitCount: -1"},
		"duplicate node":    {"nodes:\n- {name: gpu-0}\n- {name: gpu, count: 2}\n", `node name "gpu-0" is used twice`},
		"pod unknown key":   {pod("{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containerz: []}}"), `pods[0]: not a Pod: json: unknown field "containerz"`},
		"pod no name":       {pod("{kind: Pod, spec: {containers: [{name: c, image: x}]}}"), "pods[0].metadata.name: must be set"},
		"pod no container":  {pod("{kind: Pod, metadata: {name: p}, spec: {}}"), "pods[0].spec.containers"},
		"not a pod":         {pod("{kind: Service, metadata: {name: p}, spec: {containers: [{name: c}]}}"), `pods[0].kind: "Service" must be Pod`},
		"bad delete":        {pod("{delete: p}"), `pods[0].delete: "p" must be NAMESPACE/NAME`},
		"delete unknown":    {pod("{delete: default/p}"), "names no pod created before it"},
		"delete extra key":  {pod("{delete: default/p, name: x}"), "holds only delete"},
		"created twice":     {node + "pods:\n- {kind: Pod, metadata: {name: p}, spec: {containers: [{name: c}]}}\n- {kind: Pod, metadata: {name: p}, spec: {containers: [{name: c}]}}\n", "created twice"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestExamplesParse(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := os.Stat("../../examples/demo.yaml"); err != nil {
		t.Error("make demo needs examples/demo.yaml")
	}
}

// The scenario parser never panics, whatever the file holds.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"demo.yaml", "spread.yaml"} {
		if b, err := os.ReadFile("../../examples/" + name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("nodes: [{name: a, count: 2}]\npods: [{delete: default/x}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err == nil && len(s.Nodes) == 0 {
			t.Fatal("accepted a scenario without nodes")
		}
	})
}
