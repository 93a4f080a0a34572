package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/component-base/configz"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/plugins"
	"github.com/mosaic-gpu/mosaic/pkg/plugins/mosaic"
)

// StartScheduler runs the mosaic-scheduler binary's code in-process, with
// the given KubeSchedulerConfiguration, until ctx ends. The config's client
// connection is pointed at this control plane and leader election is off;
// Mosaic args that name no allocationKeyFile (and do not run unsigned) get
// this control plane's key, as the manifests mount the key Secret where the
// default points. The rest is used as given. The returned channel yields
// the scheduler's exit error once it stops.
func (cp *ControlPlane) StartScheduler(ctx context.Context, configYAML []byte) (<-chan error, error) {
	return cp.StartSchedulerAs(ctx, configYAML, cp.Config)
}

// StartSchedulerAs is StartScheduler connecting with the credentials of
// as (Config with another token, or impersonating), so that it runs with
// only the rights that identity holds.
func (cp *ControlPlane) StartSchedulerAs(ctx context.Context, configYAML []byte, as *rest.Config) (<-chan error, error) {
	kubeconfig := cp.Kubeconfig
	if as != cp.Config {
		f, err := os.CreateTemp(cp.dir, "kubeconfig-*")
		if err != nil {
			return nil, err
		}
		f.Close()
		kubeconfig = f.Name()
		if err := WriteKubeconfig(kubeconfig, as); err != nil {
			return nil, err
		}
	}
	return cp.StartSchedulerVia(ctx, configYAML, kubeconfig)
}

// StartSchedulerVia is StartScheduler with the scheduler's client connection
// given by the kubeconfig file at path, e.g. one naming a proxy in front of
// this control plane.
func (cp *ControlPlane) StartSchedulerVia(ctx context.Context, configYAML []byte, kubeconfig string) (<-chan error, error) {
	path, err := cp.schedulerConfig(configYAML, kubeconfig)
	if err != nil {
		return nil, err
	}
	opts := options.NewOptions()
	opts.ConfigFile = path
	opts.SecureServing.BindPort = 0 // no health/metrics port in-process
	cc, sched, err := app.Setup(ctx, opts, plugins.Options()...)
	if err != nil {
		return nil, fmt.Errorf("scheduler config: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		// Run registers the config under a process-wide name; a scheduler
		// started again in the same process (a restart test) needs it free.
		configz.Delete(configzName)
		err := app.Run(ctx, cc, sched)
		configz.Delete(configzName)
		done <- err
	}()
	return done, nil
}

const configzName = "componentconfig"

func (cp *ControlPlane) schedulerConfig(configYAML []byte, kubeconfig string) (string, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(configYAML, &cfg); err != nil {
		return "", fmt.Errorf("scheduler config: %w", err)
	}
	if cfg == nil {
		return "", fmt.Errorf("scheduler config is empty")
	}
	cfg["clientConnection"] = map[string]any{"kubeconfig": kubeconfig, "qps": 5000, "burst": 5000}
	cfg["leaderElection"] = map[string]any{"leaderElect": false}
	profiles, _ := cfg["profiles"].([]any)
	for _, p := range profiles {
		pm, _ := p.(map[string]any)
		pcs, _ := pm["pluginConfig"].([]any)
		for _, pc := range pcs {
			if pcm, _ := pc.(map[string]any); pcm["name"] == mosaic.Name {
				args, _ := pcm["args"].(map[string]any)
				if args == nil {
					args = map[string]any{}
					pcm["args"] = args
				}
				if _, set := args["allocationKeyFile"]; !set && args["unsignedAllocations"] != true {
					args["allocationKeyFile"] = filepath.Join(cp.KeyDir, device.CurrentKey)
				}
			}
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(cp.dir, "scheduler-*.yaml")
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = f.Write(out)
	return filepath.Clean(f.Name()), err
}
