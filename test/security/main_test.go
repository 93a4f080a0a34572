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
	"fmt"
	"os"
	"testing"

	"github.com/mosaic-gpu/mosaic/pkg/cluster"
)

var cp *cluster.ControlPlane

func TestMain(m *testing.M) {
	cp = cluster.StartForTests()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	err := install(ctx)
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
