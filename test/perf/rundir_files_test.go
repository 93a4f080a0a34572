package perf

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/pkg/apis/config"
	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// TestRunDirNamesOnlyFilesItHolds sets up a run directory and checks that
// every path of its performance-config.yaml, upstream's test cases
// included, names a file there, and that each upstream test case has its
// Mosaic copy.
func TestRunDirNamesOnlyFilesItHolds(t *testing.T) {
	pkg, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := setupRunDir(pkg, dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "performance-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []map[string]any
	if err := yaml.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	names := map[string]map[string]any{}
	for _, tc := range cases {
		names[tc["name"].(string)] = tc
	}
	for _, topic := range upstreamTopics {
		for _, n := range upstreamCases[topic] {
			if names[n] == nil || names[mosaicPrefix+n] == nil {
				t.Errorf("upstream test case %s: want it and %s%s in the config", n, mosaicPrefix, n)
				continue
			}
			if got := names[mosaicPrefix+n]["schedulerConfigPath"]; got != binpackConfig {
				t.Errorf("%s%s: schedulerConfigPath %v, want %s", mosaicPrefix, n, got, binpackConfig)
			}
			if _, set := names[n]["schedulerConfigPath"]; set {
				t.Errorf("%s: has a schedulerConfigPath; upstream's runs the stock configuration", n)
			}
		}
	}
	var paths []string
	var walk func(k string, v any)
	walk = func(k string, v any) {
		switch v := v.(type) {
		case string:
			if strings.HasSuffix(k, "Path") || strings.HasSuffix(k, "Paths") {
				paths = append(paths, v)
			}
		case []any:
			for _, x := range v {
				walk(k, x)
			}
		case map[string]any:
			for k, x := range v {
				walk(k, x)
			}
		}
	}
	for _, tc := range cases {
		walk("", tc)
	}
	if len(paths) < len(cases) {
		t.Fatalf("found %d paths in %d test cases", len(paths), len(cases))
	}
	for _, p := range paths {
		if filepath.IsAbs(p) {
			t.Errorf("path %s is absolute; the config must name files in the run directory", p)
		}
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("path %s: %v", p, err)
		}
	}
}

// TestNodeTemplateCarriesTheInventory expands the node template as
// upstream's harness does and reads it back as the scheduler would: the
// inventory decodes, its cards' UUIDs differ between nodes, and the node
// advertises cards x split count of nvidia.com/gpu.
func TestNodeTemplateCarriesTheInventory(t *testing.T) {
	raw, err := nodeTemplate()
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.New("node").Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	uuids := map[string]int{}
	for index := range 2 {
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, map[string]any{"Index": index}); err != nil {
			t.Fatal(err)
		}
		var n v1.Node
		if err := yaml.UnmarshalStrict(buf.Bytes(), &n); err != nil {
			t.Fatal(err)
		}
		inv, err := device.DecodeInventory(n.Annotations[device.InventoryAnnotation])
		if err != nil {
			t.Fatal(err)
		}
		if len(inv.Devices) != h100x8.Count {
			t.Fatalf("node %d: %d cards, want %d", index, len(inv.Devices), h100x8.Count)
		}
		for _, d := range inv.Devices {
			if prev, seen := uuids[d.UUID]; seen {
				t.Errorf("card UUID %s on nodes %d and %d", d.UUID, prev, index)
			}
			uuids[d.UUID] = index
		}
		want := int64(h100x8.Count * inv.Config.SplitCount)
		if got := n.Status.Allocatable.Name(device.ResourceNvidiaGPU, "").Value(); got != want {
			t.Errorf("node %d: allocatable %s %d, want %d", index, device.ResourceNvidiaGPU, got, want)
		}
	}
}

// TestMosaicConfigSetsPolicyAndKey decodes the generated configs' Mosaic
// args as the plugin does.
func TestMosaicConfigSetsPolicyAndKey(t *testing.T) {
	for _, policy := range []string{"binpack", "spread"} {
		b, err := mosaicConfig("/k/current", policy)
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Profiles []struct {
				PluginConfig []struct {
					Name string
					Args config.MosaicArgs
				} `json:"pluginConfig"`
			}
		}
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, pc := range cfg.Profiles[0].PluginConfig {
			if pc.Name != config.PluginName {
				continue
			}
			found = true
			if string(pc.Args.NodePolicy) != policy || pc.Args.AllocationKeyFile != "/k/current" {
				t.Errorf("%s: args nodePolicy %q, allocationKeyFile %q", policy, pc.Args.NodePolicy, pc.Args.AllocationKeyFile)
			}
		}
		if !found {
			t.Errorf("%s: no %s args", policy, config.PluginName)
		}
	}
}
