// Package integration runs the real Mosaic scheduler against a real
// in-process API server (embedded etcd + kube-apiserver). Nodes are API
// objects with published inventories; pods are created through the API and
// the tests read the outcome back from the API objects.
package integration

import (
	"os"
	"testing"

	"github.com/mosaic-gpu/mosaic/pkg/cluster"
)

// cp is shared by the package's tests, which run one at a time: each one
// starts its own scheduler and removes its nodes and pods when done.
var cp *cluster.ControlPlane

func TestMain(m *testing.M) {
	cp = cluster.StartForTests()
	code := m.Run()
	cp.Stop()
	os.Exit(code)
}
