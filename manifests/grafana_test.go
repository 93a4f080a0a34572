package manifests

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/agent"
	"github.com/mosaic-gpu/mosaic/pkg/plugins/mosaic"
)

// grafanaDashboard is the part of Grafana's dashboard model that Mosaic's
// dashboard uses; decoding is strict, so a misspelt or misplaced field
// fails.
type grafanaDashboard struct {
	Inputs []struct {
		Name, Label, Type, PluginID, PluginName string
	} `json:"__inputs"`
	Requires []struct {
		Type, ID, Name, Version string
	} `json:"__requires"`
	UID           string `json:"uid"`
	Title         string `json:"title"`
	Description   string `json:"description"`
	Tags          []string
	SchemaVersion int  `json:"schemaVersion"`
	Version       int  `json:"version"`
	Editable      bool `json:"editable"`
	Refresh       string
	Time          struct{ From, To string }
	Templating    struct {
		List []struct {
			Name, Label, Type string
			Datasource        *grafanaDatasource
			Query             struct{ Query, RefID string }
			Definition        string
			Refresh           int
			IncludeAll        bool `json:"includeAll"`
			Multi             bool
			AllValue          string `json:"allValue"`
			Current           struct{ Text, Value string }
		}
	}
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDatasource struct{ Type, UID string }

type grafanaPanel struct {
	ID          int                      `json:"id"`
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	Description string                   `json:"description"`
	Collapsed   bool                     `json:"collapsed"`
	GridPos     struct{ X, Y, W, H int } `json:"gridPos"`
	Datasource  *grafanaDatasource       `json:"datasource"`
	FieldConfig *struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
		Overrides []json.RawMessage `json:"overrides"`
	} `json:"fieldConfig"`
	Options map[string]json.RawMessage `json:"options"`
	Targets []struct {
		RefID        string             `json:"refId"`
		Datasource   *grafanaDatasource `json:"datasource"`
		Expr         string             `json:"expr"`
		LegendFormat string             `json:"legendFormat"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

// metricName finds the metric names in a PromQL expression: Mosaic's all
// start with mosaic_; a histogram's series carry suffixes.
var metricName = regexp.MustCompile(`\bmosaic_[a-z_]+`)

func baseName(s string) string {
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(s, suf); ok && strings.HasSuffix(b, "_seconds") {
			return b
		}
	}
	return s
}

// TestGrafanaDashboard checks manifests/grafana/mosaic-dashboard.json:
// Grafana's structure (panel ids, grid positions within 24 columns, a
// Prometheus data source on every panel and query), and that the queries
// name only metrics Mosaic exports, every one of them somewhere.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("grafana/mosaic-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var d grafanaDashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("decoding the dashboard: %v", err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 || len(d.Panels) == 0 {
		t.Fatalf("uid %q, title %q, schemaVersion %d, %d panels: want all set (schemaVersion >= 36)", d.UID, d.Title, d.SchemaVersion, len(d.Panels))
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Fatalf("__inputs = %+v, want the one Prometheus data source DS_PROMETHEUS", d.Inputs)
	}
	wantDS := grafanaDatasource{Type: "prometheus", UID: "${DS_PROMETHEUS}"}
	exported := append(mosaic.MetricNames(), agent.MetricNames()...)
	if len(exported) < 20 {
		t.Fatalf("exported metric names = %v", exported)
	}
	used := map[string]bool{}
	check := func(where, expr string) {
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: %q names no Mosaic metric", where, expr)
		}
		for _, n := range names {
			n = baseName(n)
			if !slices.Contains(exported, n) {
				t.Errorf("%s: %q names %s, which Mosaic does not export", where, expr, n)
			}
			used[n] = true
		}
	}
	for _, v := range d.Templating.List {
		if v.Datasource == nil || *v.Datasource != wantDS {
			t.Errorf("variable %s: datasource %v, want %v", v.Name, v.Datasource, wantDS)
		}
		check("variable "+v.Name, v.Query.Query)
	}
	ids := map[int]bool{}
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			where := "panel " + p.Title
			if ids[p.ID] || p.ID <= 0 {
				t.Errorf("%s: id %d not positive and unique", where, p.ID)
			}
			ids[p.ID] = true
			if g := p.GridPos; g.X < 0 || g.W <= 0 || g.H <= 0 || g.X+g.W > 24 {
				t.Errorf("%s: gridPos %+v outside the 24 columns", where, g)
			}
			if p.Title == "" {
				t.Errorf("panel %d has no title", p.ID)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if !slices.Contains([]string{"timeseries", "stat", "table", "bargauge", "gauge"}, p.Type) {
				t.Errorf("%s: type %q", where, p.Type)
			}
			if p.Datasource == nil || *p.Datasource != wantDS {
				t.Errorf("%s: datasource %v, want %v", where, p.Datasource, wantDS)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s has no queries", where)
			}
			refs := map[string]bool{}
			for _, q := range p.Targets {
				if q.RefID == "" || refs[q.RefID] {
					t.Errorf("%s: refId %q empty or repeated", where, q.RefID)
				}
				refs[q.RefID] = true
				if q.Datasource == nil || *q.Datasource != wantDS {
					t.Errorf("%s query %s: datasource %v, want %v", where, q.RefID, q.Datasource, wantDS)
				}
				check(where+" query "+q.RefID, q.Expr)
			}
		}
	}
	walk(d.Panels)
	for _, n := range exported {
		if !used[n] {
			t.Errorf("metric %s is in no panel", n)
		}
	}
}
