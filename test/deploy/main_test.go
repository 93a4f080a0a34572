// Package deploy installs Mosaic's Helm chart (manifests/charts/mosaic) on
// a real API server (embedded etcd + kube-apiserver, RBAC and admission
// policies on) with Helm's own install, upgrade and uninstall actions, and
// checks what an operator relies on: every variant is accepted, secrets
// survive an upgrade, uninstall leaves nothing behind and never leaves a
// webhook blocking pods, and two scheduler replicas hand over without
// double booking when the leader is killed. The cluster is this package's
// own: the chart's admission policies bind every user.
package deploy

import (
	"fmt"
	"os"
	"testing"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/mosaic-gpu/mosaic/pkg/cluster"
	"github.com/mosaic-gpu/mosaic/pkg/plugins"
)

var cp *cluster.ControlPlane

// schedulerProcessEnv set makes the test binary the mosaic-scheduler
// binary (cmd/scheduler), its arguments the scheduler's: the leader
// election test runs replicas as processes, so that killing one is a kill.
const schedulerProcessEnv = "MOSAIC_DEPLOY_SCHEDULER_PROCESS"

func TestMain(m *testing.M) {
	if os.Getenv(schedulerProcessEnv) != "" {
		cmd := app.NewSchedulerCommand(plugins.Options()...)
		cmd.SetArgs(os.Args[1:])
		os.Exit(cli.Run(cmd))
	}
	cp = cluster.StartForTests()
	code := m.Run()
	cp.Stop()
	if code != 0 {
		fmt.Fprintln(os.Stderr, "MOSAIC_TEST_V=4 shows the API server's logs")
	}
	os.Exit(code)
}
