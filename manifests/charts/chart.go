// Package charts holds Mosaic's Helm chart (mosaic/), embedded, and renders
// it as `helm template` does, so that the tests, the plain manifests of
// manifests/ and an install all come from the same templates.
package charts

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"sigs.k8s.io/yaml"
)

// all: the chart's _helpers.tpl starts with an underscore.
//
//go:embed all:mosaic
var files embed.FS

// Name is the chart's name, and the release name the plain manifests are
// rendered for.
const Name = "mosaic"

// Load returns the chart.
func Load() (*chart.Chart, error) {
	var bufs []*loader.BufferedFile
	err := fs.WalkDir(files, Name, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		bufs = append(bufs, &loader.BufferedFile{Name: strings.TrimPrefix(p, Name+"/"), Data: b})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return loader.LoadFiles(bufs)
}

// ValuesFile reads one of the chart's values files (e.g.
// "ci/manifests-values.yaml").
func ValuesFile(name string) (map[string]any, error) {
	b, err := files.ReadFile(path.Join(Name, name))
	if err != nil {
		return nil, err
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// Variants are the values files of the chart's ci/ directory, each a way
// the chart is installed; the tests render and apply every one.
func Variants() ([]string, error) {
	entries, err := files.ReadDir(path.Join(Name, "ci"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), "-values.yaml") {
			out = append(out, "ci/"+e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Render renders the chart offline, as `helm template` does, for a
// release of the given namespace with these values over the chart's own.
// apiVersions are the extra API versions the cluster serves (e.g.
// "cert-manager.io/v1"). Without a cluster, lookup finds nothing, so the
// signing key and certificates are generated. The result maps each
// template's name (e.g. "templates/scheduler.yaml") to its output; hooks
// are included.
func Render(namespace string, values map[string]any, apiVersions ...string) (map[string]string, error) {
	chrt, err := Load()
	if err != nil {
		return nil, err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = chartutil.KubeVersion{Version: "v1.37.0", Major: "1", Minor: "37"}
	caps.APIVersions = append(caps.APIVersions, apiVersions...)
	if err := chartutil.IsCompatibleRange(chrt.Metadata.KubeVersion, caps.KubeVersion.String()); !err {
		return nil, fmt.Errorf("chart needs Kubernetes %s", chrt.Metadata.KubeVersion)
	}
	vals, err := chartutil.ToRenderValues(chrt, values, chartutil.ReleaseOptions{Name: Name, Namespace: namespace, Revision: 1, IsInstall: true}, caps)
	if err != nil {
		return nil, err
	}
	out, err := engine.Render(chrt, vals)
	if err != nil {
		return nil, err
	}
	rendered := make(map[string]string, len(out))
	for name, text := range out {
		if strings.HasSuffix(name, ".tpl") {
			continue
		}
		rendered[strings.TrimPrefix(name, Name+"/")] = text
	}
	return rendered, nil
}
