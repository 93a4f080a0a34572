package plugins

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	kubeschedulerconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/config"
	"github.com/mosaic-gpu/mosaic/pkg/plugins/fit"
	"github.com/mosaic-gpu/mosaic/pkg/plugins/mosaic"
)

// The shipped profiles, as kube-scheduler builds them, run Mosaic's Filter
// after the stock filters whose refusals preemption cannot lift and before
// the others, MosaicNodeResourcesFit first, and Mosaic at each of its
// extension points once. Setup builds the frameworks without reaching the
// API server, which this test does not run.
func TestShippedProfilesOrderFilters(t *testing.T) {
	for file, cfgYAML := range map[string][]byte{"mosaic-scheduler.yaml": config.SecondScheduler, "default-scheduler.yaml": config.DefaultScheduler} {
		t.Run(file, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opts := options.NewOptions()
			opts.ConfigFile = unsigned(t, cfgYAML)
			opts.SecureServing.BindPort = 0
			_, sched, err := app.Setup(ctx, opts, Options()...)
			if err != nil {
				t.Fatal(err)
			}
			if len(sched.Profiles) != 1 {
				t.Fatalf("%d profiles, want 1", len(sched.Profiles))
			}
			for _, fw := range sched.Profiles {
				set := fw.ListPlugins()
				filters := names(set.Filter)
				want := []string{"NodeName", "NodeUnschedulable", "TaintToleration", "NodeAffinity", mosaic.Name, "NodePorts", fit.Name}
				if len(filters) < len(want) || !slices.Equal(filters[:len(want)], want) {
					t.Errorf("filters %v, want %v first", filters, want)
				}
				if slices.Contains(filters, "NodeResourcesFit") {
					t.Errorf("filters %v include the stock NodeResourcesFit", filters)
				}
				for point, ps := range map[string]kubeschedulerconfig.PluginSet{"filter": set.Filter, "preFilter": set.PreFilter, "preScore": set.PreScore, "reserve": set.Reserve, "bind": set.Bind} {
					if n := count(names(ps), mosaic.Name); n != 1 {
						t.Errorf("%s: Mosaic %d times in %v", point, n, names(ps))
					}
				}
				if b := names(set.Bind); len(b) != 2 || b[0] != mosaic.Name || b[1] != "DefaultBinder" {
					t.Errorf("bind %v, want Mosaic then DefaultBinder", b)
				}
				var weight int32
				for _, p := range set.Score.Enabled {
					if p.Name == mosaic.Name {
						weight += p.Weight
					}
				}
				if weight != 10 {
					t.Errorf("Mosaic score weight %d, want 10 (once)", weight)
				}
			}
		})
	}
}

func names(ps kubeschedulerconfig.PluginSet) []string {
	var out []string
	for _, p := range ps.Enabled {
		out = append(out, p.Name)
	}
	return out
}

func count(l []string, s string) int {
	n := 0
	for _, x := range l {
		if x == s {
			n++
		}
	}
	return n
}

// unsigned writes cfgYAML with Mosaic's allocations unsigned (no key file
// to mount here) and a client connection to a server that is never asked.
func unsigned(t *testing.T, cfgYAML []byte) string {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal(cfgYAML, &cfg); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]\ncurrent-context: c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg["clientConnection"] = map[string]any{"kubeconfig": kubeconfig}
	cfg["leaderElection"] = map[string]any{"leaderElect": false}
	for _, p := range cfg["profiles"].([]any) {
		for _, pc := range p.(map[string]any)["pluginConfig"].([]any) {
			if pcm := pc.(map[string]any); pcm["name"] == mosaic.Name {
				args := pcm["args"].(map[string]any)
				args["unsignedAllocations"] = true
				delete(args, "allocationKeyFile")
			}
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "scheduler.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
