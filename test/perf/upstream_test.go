package perf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// upstreamCases are the test cases of upstream's harness that run here,
// by topic directory: each twice, as upstream wrote it (the stock
// scheduler: upstream's default configuration) and as Mosaic<Name>, the
// same workloads with Mosaic replacing the default scheduler.
var upstreamCases = map[string][]string{
	"misc":               {"SchedulingBasic"},
	"affinity":           {"SchedulingPodAffinity", "SchedulingPodAntiAffinity", "SchedulingPreferredPodAffinity", "SchedulingPreferredPodAntiAffinity"},
	"topology_spreading": {"TopologySpreading", "PreferredTopologySpreading"},
}

// upstreamTopics fixes the order the topics run in.
var upstreamTopics = []string{"misc", "affinity", "topology_spreading"}

// mosaicPrefix names the Mosaic run of a stock test case; the report
// compares the two.
const mosaicPrefix = "Mosaic"

// thresholds holds upstream's SchedulingThroughput thresholds
// ("<test case>/<workload>" -> pods/s) of the test cases copied in. They
// are set for upstream's CI machines, so the copies run without them (a
// workload below its threshold would fail) and the report prints them.
var thresholds = map[string]float64{}

// withUpstreamCases returns own (a list of test cases) followed by
// upstreamCases, read from upstream's configs under dir, their template
// paths made relative to the run directory.
func withUpstreamCases(own []byte, dir string) ([]byte, error) {
	var cases []any
	if err := yaml.Unmarshal(own, &cases); err != nil {
		return nil, fmt.Errorf("performance-config.yaml: %w", err)
	}
	for _, topic := range upstreamTopics {
		file := filepath.Join(dir, topic, "performance-config.yaml")
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var theirs []map[string]any
		if err := yaml.Unmarshal(b, &theirs); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		for _, name := range upstreamCases[topic] {
			tc := find(theirs, name)
			if tc == nil {
				return nil, fmt.Errorf("%s: no test case %s", file, name)
			}
			if _, set := tc["schedulerConfigPath"]; set {
				return nil, fmt.Errorf("%s: %s names its own scheduler config; a Mosaic run of it would replace that", file, name)
			}
			relocate(tc, filepath.Join(upstreamLink, topic))
			dropThresholds(tc)
			// The copy is made through YAML, so that the two share nothing.
			raw, err := yaml.Marshal(tc)
			if err != nil {
				return nil, err
			}
			var m map[string]any
			if err := yaml.Unmarshal(raw, &m); err != nil {
				return nil, err
			}
			m["name"] = mosaicPrefix + name
			m["schedulerConfigPath"] = binpackConfig
			cases = append(cases, tc, m)
		}
	}
	return yaml.Marshal(cases)
}

func find(cases []map[string]any, name string) map[string]any {
	for _, tc := range cases {
		if tc["name"] == name {
			return tc
		}
	}
	return nil
}

// relocate rewrites every relative path of a test case (the fields
// upstream names ...Path and ...Paths) as seen from its topic directory,
// base, where upstream's harness, run in that directory, resolves them.
func relocate(v any, base string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			switch s := x.(type) {
			case string:
				if strings.HasSuffix(k, "Path") && !filepath.IsAbs(s) {
					v[k] = filepath.Join(base, s)
				}
			case []any:
				if strings.HasSuffix(k, "Paths") {
					for i, p := range s {
						if ps, ok := p.(string); ok && !filepath.IsAbs(ps) {
							s[i] = filepath.Join(base, ps)
						}
					}
					continue
				}
				relocate(s, base)
			default:
				relocate(x, base)
			}
		}
	case []any:
		for _, x := range v {
			relocate(x, base)
		}
	}
}

// dropThresholds moves the test case's workload thresholds into
// thresholds.
func dropThresholds(tc map[string]any) {
	workloads, _ := tc["workloads"].([]any)
	for _, w := range workloads {
		wm, _ := w.(map[string]any)
		if t, ok := wm["threshold"].(float64); ok {
			thresholds[fmt.Sprintf("%s/%s", tc["name"], wm["name"])] = t
		}
		delete(wm, "threshold")
	}
}
