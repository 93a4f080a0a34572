// Package security checks Mosaic's manifests against a real API server
// (embedded etcd + kube-apiserver, RBAC and ValidatingAdmissionPolicy on):
// the admission policies of manifests/admission-policy.yaml on every write
// path, and each component running with exactly its manifest's RBAC. The
// manifests are applied from the manifests package, which embeds the files
// users deploy. The cluster is this package's own: its policies bind every
// user, so it cannot be shared with tests that write pods as they like.
package security

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"

	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/cluster"
)

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
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	err = install(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "installing the manifests:", err)
		cp.Stop()
		os.Exit(1)
	}
	code := m.Run()
	cp.Stop()
	os.Exit(code)
}
