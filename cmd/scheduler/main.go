// Command mosaic-scheduler is the stock kube-scheduler with Mosaic's plugin
// compiled in. Enable it through a KubeSchedulerConfiguration (config/).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/mosaic-gpu/mosaic/pkg/plugins"
)

func main() {
	os.Exit(cli.Run(app.NewSchedulerCommand(plugins.Options()...)))
}
