package charts

import (
	"fmt"
	"sort"
	"strings"
)

// PlainNamespace is the namespace the plain manifests install into.
const PlainNamespace = "kube-system"

// PlainValues is the values file the plain manifests of manifests/ are
// rendered with: the signing key Secret is created by hand and the
// webhook's certificate comes from cert-manager, since plain YAML cannot
// generate either.
const PlainValues = "ci/manifests-values.yaml"

// PlainFiles maps each template that has a plain manifest to its file,
// relative to manifests/.
var PlainFiles = map[string]string{
	"templates/scheduler.yaml":        "scheduler.yaml",
	"templates/device-plugin.yaml":    "device-plugin.yaml",
	"templates/webhook.yaml":          "webhook.yaml",
	"templates/admission-policy.yaml": "admission-policy.yaml",
	"templates/cert-manager.yaml":     "cert-manager/webhook-certificate.yaml",
}

// ChartOnly are the templates with no plain manifest: what only an install
// by Helm does (generated secrets, the uninstall hook) and the optional
// monitoring objects. With PlainValues they render nothing but the hook.
var ChartOnly = map[string]bool{
	"templates/allocation-key.yaml":  true,
	"templates/webhook-removal.yaml": true,
	"templates/metrics.yaml":         true,
}

// Dashboard is the Grafana dashboard, relative to manifests/; the chart
// holds a copy (ChartDashboard, relative to manifests/charts/), since a
// chart reads only its own files. `make manifests` copies it.
const (
	Dashboard      = "grafana/mosaic-dashboard.json"
	ChartDashboard = Name + "/dashboards/mosaic.json"
)

// plainHeader starts every plain manifest.
const plainHeader = "# Rendered from manifests/charts/mosaic by `make manifests`: change the chart,\n# not this file (a test fails while they differ).\n"

// Plain renders the plain manifests: file name (relative to manifests/)
// to content.
func Plain() (map[string]string, error) {
	vals, err := ValuesFile(PlainValues)
	if err != nil {
		return nil, err
	}
	out, err := Render(PlainNamespace, vals)
	if err != nil {
		return nil, err
	}
	var unknown []string
	files := map[string]string{}
	for name, text := range out {
		file, ok := PlainFiles[name]
		if !ok {
			if !ChartOnly[name] {
				unknown = append(unknown, name)
			}
			continue
		}
		text = strings.TrimSpace(text)
		if text == "" {
			return nil, fmt.Errorf("%s renders nothing with %s, but is %s", name, PlainValues, file)
		}
		files[file] = plainHeader + text + "\n"
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("templates %s are neither in PlainFiles nor in ChartOnly", strings.Join(unknown, ", "))
	}
	return files, nil
}
