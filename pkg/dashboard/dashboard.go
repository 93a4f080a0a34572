// Package dashboard serves a read-only web view of the cluster's cards:
// per node, each card's memory, compute and shares in use, and the pods
// holding them, computed from the API objects (pkg/usage). /api/cards
// serves the same as JSON.
package dashboard

import (
	"embed"
	"encoding/json"
	"html/template"
	"net/http"

	v1 "k8s.io/api/core/v1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/usage"
)

//go:embed page.html
var files embed.FS

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"pct": func(used, total int64) int64 {
		if total <= 0 {
			return 0
		}
		return min(100, used*100/total)
	},
	"i64": func(i int) int64 { return int64(i) },
}).ParseFS(files, "page.html"))

// Source lists the cluster's nodes and pods (informer listers in
// production).
type Source struct {
	Nodes func() []*v1.Node
	Pods  func() []*v1.Pod
	// Defaults are the scheduler's sharing args, for nodes whose inventory
	// does not carry its own.
	Defaults device.NodeConfig
}

// Handler serves the page and the API.
func Handler(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/cards", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(usage.Compute(src.Nodes(), src.Pods(), src.Defaults))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, usage.Compute(src.Nodes(), src.Pods(), src.Defaults)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	return mux
}
