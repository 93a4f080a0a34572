// Package gang runs the real Mosaic scheduler with Kubernetes' gang
// scheduling (the Workload and PodGroup API and the GangScheduling
// plugin, GenericWorkload gate) against a real in-process API server. It
// is its own package because the gate is the process's: the control plane
// and the scheduler of test/integration run without it.
package gang

import (
	"os"
	"testing"

	"github.com/mosaic-gpu/mosaic/pkg/cluster"
)

// cp is shared by the package's tests, which run one at a time.
var cp *cluster.ControlPlane

func TestMain(m *testing.M) {
	cp = cluster.StartForTestsWith(cluster.Gangs)
	code := m.Run()
	cp.Stop()
	os.Exit(code)
}
