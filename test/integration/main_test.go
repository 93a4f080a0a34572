// Package integration runs the real Mosaic scheduler against a real
// in-process API server (embedded etcd + kube-apiserver). Nodes are API
// objects with published inventories; pods are created through the API and
// the tests read the outcome back from the API objects.
package integration

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/cluster"
)

// cp is shared by the package's tests, which run one at a time: each one
// starts its own scheduler and removes its nodes and pods when done.
var cp *cluster.ControlPlane

func TestMain(m *testing.M) {
	// MOSAIC_TEST_V=4 shows the scheduler's and API server's logs.
	if v := os.Getenv("MOSAIC_TEST_V"); v != "" {
		var fs flag.FlagSet
		klog.InitFlags(&fs)
		_ = fs.Set("v", v)
	}
	var err error
	cp, err = cluster.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting control plane:", err)
		os.Exit(1)
	}
	code := m.Run()
	cp.Stop()
	os.Exit(code)
}
