package mosaic

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	kubeschedulerconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/validation"

	"github.com/mosaic-gpu/mosaic/pkg/apis/config"
	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/plugins/fit"
)

// The shipped configs must load through kube-scheduler's own loader and
// validation, and their Mosaic args must decode.
func TestShippedConfigsLoad(t *testing.T) {
	for file, scheduler := range map[string]string{
		"../../../config/mosaic-scheduler.yaml":  "mosaic-scheduler",
		"../../../config/default-scheduler.yaml": "default-scheduler",
	} {
		t.Run(file, func(t *testing.T) {
			logger, _ := ktesting.NewTestContext(t)
			cfg, err := options.LoadConfigFromFile(logger, file)
			if err != nil {
				t.Fatal(err)
			}
			if err := validation.ValidateKubeSchedulerConfiguration(cfg); err != nil {
				t.Fatal(err)
			}
			if len(cfg.Profiles) != 1 || cfg.Profiles[0].SchedulerName != scheduler {
				t.Fatalf("profiles = %+v, want one named %s", cfg.Profiles, scheduler)
			}
			prof := cfg.Profiles[0]
			if b := prof.Plugins.Bind.Enabled; len(b) != 2 || b[0].Name != Name || b[1].Name != "DefaultBinder" {
				t.Errorf("bind plugins = %+v, want Mosaic before DefaultBinder", b)
			}
			mp := prof.Plugins.MultiPoint
			if !slices.ContainsFunc(mp.Enabled, func(p kubeschedulerconfig.Plugin) bool { return p.Name == fit.Name }) ||
				!slices.ContainsFunc(mp.Disabled, func(p kubeschedulerconfig.Plugin) bool { return p.Name == "NodeResourcesFit" }) {
				t.Errorf("multiPoint = %+v, want %s in NodeResourcesFit's place", mp, fit.Name)
			}
			var found bool
			for _, pc := range prof.PluginConfig {
				switch pc.Name {
				case Name:
					args, err := decodeArgs(pc.Args)
					if err != nil {
						t.Fatal(err)
					}
					found = args.NodePolicy == device.PolicyBinpack && args.GPUPolicy == device.PolicySpread
				case fit.Name:
					args, err := fit.DecodeArgs(pc.Args)
					if err != nil {
						t.Fatal(err)
					}
					if !strings.Contains(strings.Join(args.IgnoredResources, ","), "nvidia.com/gpumem") {
						t.Errorf("%s does not ignore nvidia.com/gpumem: %v", fit.Name, args.IgnoredResources)
					}
					if args.ScoringStrategy == nil || args.ScoringStrategy.Type != kubeschedulerconfig.LeastAllocated {
						t.Errorf("%s scoring strategy %+v, want LeastAllocated", fit.Name, args.ScoringStrategy)
					}
				}
			}
			if !found {
				t.Error("no Mosaic args with nodePolicy binpack, gpuPolicy spread")
			}
		})
	}
}

func TestDecodeArgs(t *testing.T) {
	defaults := &config.MosaicArgs{}
	config.SetDefaultsMosaicArgs(defaults)
	tests := []struct {
		name    string
		in      runtime.Object
		want    *config.MosaicArgs
		wantErr string
	}{
		{name: "nil gives defaults", in: nil, want: defaults},
		{name: "raw json", in: &runtime.Unknown{Raw: []byte(`{"nodePolicy":"spread","deviceSplitCount":4,"numaPolicy":"single-numa"}`)}, want: func() *config.MosaicArgs {
			a := *defaults
			a.NodePolicy, a.DeviceSplitCount, a.NUMAPolicy = device.PolicySpread, 4, "single-numa"
			return &a
		}()},
		{name: "unknown field", in: &runtime.Unknown{Raw: []byte(`{"nodePolicyy":"spread"}`)}, wantErr: `unknown field "nodePolicyy"`},
		{name: "bad policy", in: &runtime.Unknown{Raw: []byte(`{"gpuPolicy":"pack"}`)}, wantErr: `pluginConfig.Mosaic.args.gpuPolicy: Unsupported value: "pack"`},
		{name: "bad split", in: &runtime.Unknown{Raw: []byte(`{"deviceSplitCount":5000}`)}, wantErr: "deviceSplitCount: Invalid value: 5000: must be in 1..1024"},
		{name: "bad scaling", in: &runtime.Unknown{Raw: []byte(`{"deviceMemoryScaling":-2}`)}, wantErr: "deviceMemoryScaling: Invalid value: -2"},
		{name: "bad cores", in: &runtime.Unknown{Raw: []byte(`{"defaultCores":120}`)}, wantErr: "defaultCores: Invalid value: 120: must be in 0..100"},
		{name: "bad numa", in: &runtime.Unknown{Raw: []byte(`{"numaPolicy":"strict"}`)}, wantErr: `numaPolicy: Unsupported value: "strict"`},
		{name: "bad template", in: &runtime.Unknown{Raw: []byte(`{"ascendModels":[{"name":"X","memoryMiB":100,"aiCore":4,"templates":[{"name":"t","memoryMiB":200,"aiCore":1}]}]}`)}, wantErr: "templates[0].memoryMiB: 200 must be in 1..100"},
		{name: "wrong type", in: &runtime.Unknown{Raw: []byte(`[]`)}, wantErr: "cannot unmarshal array"},
		{name: "unsigned", in: &runtime.Unknown{Raw: []byte(`{"unsignedAllocations":true}`)}, want: func() *config.MosaicArgs {
			a := *defaults
			a.AllocationKeyFile, a.UnsignedAllocations = "", true
			return &a
		}()},
		{name: "unsigned with a key", in: &runtime.Unknown{Raw: []byte(`{"unsignedAllocations":true,"allocationKeyFile":"/k"}`)}, wantErr: "unsignedAllocations: Invalid value: true: allocationKeyFile is set too"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeArgs(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("args (-want,+got):\n%s", diff)
			}
		})
	}
}

// Signing is on by default: the scheduler does not start without its key
// unless told to run unsigned.
func TestNewNeedsTheSigningKey(t *testing.T) {
	defaults := &config.MosaicArgs{}
	config.SetDefaultsMosaicArgs(defaults)
	if defaults.AllocationKeyFile != "/etc/mosaic/allocation-key/current" {
		t.Errorf("default allocationKeyFile = %q", defaults.AllocationKeyFile)
	}
	dir := t.TempDir()
	empty, short := filepath.Join(dir, "empty"), filepath.Join(dir, "short")
	_ = os.WriteFile(empty, nil, 0o600)
	_ = os.WriteFile(short, []byte("0123456789\n"), 0o600)
	for file, want := range map[string]string{
		filepath.Join(dir, "absent"): "no such file or directory",
		empty:                        empty + ": 0 bytes, want at least 32",
		short:                        short + ": 10 bytes, want at least 32",
	} {
		_, err := New(context.Background(), &config.MosaicArgs{AllocationKeyFile: file}, nil)
		if err == nil || !strings.Contains(err.Error(), "pluginConfig.Mosaic.args.allocationKeyFile: ") || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "unsignedAllocations: true") {
			t.Errorf("%s: error %v, want it to name the arg, %q and the way to run unsigned", file, err, want)
		}
	}
}
