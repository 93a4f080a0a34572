package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/component-base/configz"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/pkg/plugins"
)

// StartScheduler runs the mosaic-scheduler binary's code in-process, with
// the given KubeSchedulerConfiguration, until ctx ends. The config's client
// connection is pointed at this control plane and leader election is off;
// the rest is used as given. The returned channel yields the scheduler's
// exit error once it stops.
func (cp *ControlPlane) StartScheduler(ctx context.Context, configYAML []byte) (<-chan error, error) {
	return cp.StartSchedulerVia(ctx, configYAML, cp.Kubeconfig)
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
