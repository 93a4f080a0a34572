package deploy

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/mosaic-gpu/mosaic/manifests/charts"
)

// waitTimeout bounds every wait for the API server or a component to reach
// a state. It is a hang guard, not a speed target.
const waitTimeout = 60 * time.Second

// releaseName is the release every test installs; one at a time.
const releaseName = "mosaic"

// helmConfig is Helm's action configuration for namespace, reaching the
// control plane with full rights through its kubeconfig, as the helm CLI
// would with --kubeconfig; releases are stored as Secrets, Helm's default.
func helmConfig(t *testing.T, namespace string) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &cp.Kubeconfig
	flags.Namespace = &namespace
	cfg := new(action.Configuration)
	if err := cfg.Init(flags, namespace, "secret", t.Logf); err != nil {
		t.Fatal(err)
	}
	// What Helm asks discovery for, but for the version: an API server
	// built without release stamping reports v0.0.0, which the chart's
	// kubeVersion refuses; it is the kube-apiserver of the k8s.io/kubernetes
	// module this test links.
	dc, err := flags.ToDiscoveryClient()
	if err != nil {
		t.Fatal(err)
	}
	apiVersions, err := action.GetVersionSet(dc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Capabilities = &chartutil.Capabilities{APIVersions: apiVersions, KubeVersion: serverVersion(t), HelmVersion: chartutil.DefaultCapabilities.HelmVersion}
	return cfg
}

// serverVersion is the version of the linked kube-apiserver: the
// k8s.io/kubernetes requirement of go.mod (a test binary carries no
// module versions).
func serverVersion(t *testing.T) chartutil.KubeVersion {
	t.Helper()
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "k8s.io/kubernetes" {
			v, err := chartutil.ParseKubeVersion(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return *v
		}
	}
	t.Fatal("go.mod requires no k8s.io/kubernetes")
	return chartutil.KubeVersion{}
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := charts.Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// install runs `helm install mosaic <chart> -n namespace --create-namespace`
// with vals, and registers an uninstall for a test that ends before its own.
func install(t *testing.T, namespace string, vals map[string]any) *release.Release {
	t.Helper()
	in := action.NewInstall(helmConfig(t, namespace))
	in.ReleaseName, in.Namespace, in.CreateNamespace = releaseName, namespace, true
	in.Timeout = waitTimeout
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	rel, err := in.RunWithContext(ctx, loadChart(t), vals)
	if err != nil {
		t.Fatalf("helm install: %v", err)
	}
	t.Cleanup(func() {
		if _, err := action.NewGet(helmConfig(t, namespace)).Run(releaseName); err == nil {
			if _, err := uninstall(t, namespace); err != nil {
				t.Errorf("helm uninstall at cleanup: %v", err)
			}
		}
	})
	return rel
}

// upgrade runs `helm upgrade mosaic <chart> -n namespace` with vals (over
// the chart's defaults, as helm upgrade without --reuse-values does).
func upgrade(t *testing.T, namespace string, vals map[string]any) *release.Release {
	t.Helper()
	up := action.NewUpgrade(helmConfig(t, namespace))
	up.Namespace, up.Timeout = namespace, waitTimeout
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	rel, err := up.RunWithContext(ctx, releaseName, loadChart(t), vals)
	if err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	return rel
}

// uninstall runs `helm uninstall mosaic -n namespace`, hooks included.
func uninstall(t *testing.T, namespace string) (*release.UninstallReleaseResponse, error) {
	un := action.NewUninstall(helmConfig(t, namespace))
	un.Timeout = waitTimeout
	res, err := un.Run(releaseName)
	if err != nil {
		return nil, fmt.Errorf("helm uninstall: %w", err)
	}
	return res, nil
}
