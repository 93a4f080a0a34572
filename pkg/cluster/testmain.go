package cluster

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/klog/v2"
)

// StartForTests starts a control plane for a test package's TestMain, or
// exits the test binary saying why it could not. MOSAIC_TEST_V=4 shows the
// scheduler's and API server's logs.
func StartForTests() *ControlPlane { return StartForTestsWith(Options{}) }

// StartForTestsWith is StartForTests serving opts.
func StartForTestsWith(opts Options) *ControlPlane {
	if v := os.Getenv("MOSAIC_TEST_V"); v != "" {
		var fs flag.FlagSet
		klog.InitFlags(&fs)
		_ = fs.Set("v", v)
	}
	cp, err := StartWith(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting control plane:", err)
		os.Exit(1)
	}
	return cp
}
