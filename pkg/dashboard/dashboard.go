// Package dashboard serves a read-only web view of the cluster's cards:
// an overview per vendor and model, the device pods waiting and why, each
// node's cards with a bar per holder (allocated and used), each pod's
// cards, and a helper that writes the pod spec for a chosen share. The
// page is plain HTML, CSS and JavaScript embedded in the binary; it reads
// a small JSON API (summaries and pages, never the whole cluster at once)
// and refreshes on server-sent events. docs/dashboard.md describes it.
package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/http"
	"strconv"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

//go:embed static
var static embed.FS

// Source lists the cluster's nodes and pods (informer listers in
// production) and says how the scheduler reads them.
type Source struct {
	Nodes func() []*v1.Node
	Pods  func() []*v1.Pod
	// Defaults are the scheduler's sharing args, for nodes whose inventory
	// does not carry its own.
	Defaults device.NodeConfig
	// Parse is how the scheduler reads device requests, to tell the
	// pending device pods (and say what they ask for).
	Parse device.ParseOptions
	// SchedulerName goes into the pod specs the helper writes; empty
	// leaves it to the admission webhook, which routes device pods.
	SchedulerName string
	// Live, when set, is read for the cards' and containers' use every
	// LiveEvery (default 10 s).
	Live      Live
	LiveEvery time.Duration
}

// Timings of the server: how often it looks at the API objects for a
// change, and how long a live read may take.
const (
	checkEvery       = time.Second
	defaultLiveEvery = 10 * time.Second
	liveTimeout      = 5 * time.Second
)

type server struct {
	src Source

	mu      sync.Mutex
	snap    *snapshot
	checked time.Time
	objects uint64 // fingerprint of the objects snap was built from
	live    *LiveUsage
	liveAt  time.Time
	gen     uint64
}

// Handler serves the page and its API.
func Handler(src Source) http.Handler {
	if src.LiveEvery <= 0 {
		src.LiveEvery = defaultLiveEvery
	}
	s := &server{src: src}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	files := http.FileServerFS(sub)
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.HandleFunc("GET /api/overview", func(w http.ResponseWriter, r *http.Request) {
		snap := s.current(r.Context())
		writeJSON(w, overviewWithOptions{Overview: snap.overview, Namespaces: snap.namespaces()})
	})
	mux.HandleFunc("GET /api/nodes", func(w http.ResponseWriter, r *http.Request) {
		f, pg, err := parseQuery(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, paginate(s.current(r.Context()).nodes, f.keepNode, pg))
	})
	mux.HandleFunc("GET /api/pods", func(w http.ResponseWriter, r *http.Request) {
		f, pg, err := parseQuery(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, paginate(s.current(r.Context()).pods, f.keepPod, pg))
	})
	mux.HandleFunc("GET /api/pending", func(w http.ResponseWriter, r *http.Request) {
		f, pg, err := parseQuery(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, paginate(s.current(r.Context()).pending, f.keepPending, pg))
	})
	mux.HandleFunc("GET /api/podspec", func(w http.ResponseWriter, r *http.Request) {
		out, err := podSpecYAML(r.URL.Query(), src.SchedulerName)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(out)
	})
	mux.HandleFunc("GET /api/events", s.events)
	return mux
}

// overviewWithOptions adds what the page's filters offer.
type overviewWithOptions struct {
	Overview
	Namespaces []string `json:"namespaces"`
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		klog.ErrorS(err, "Writing a dashboard answer")
	}
}

// current returns the snapshot, rebuilt when the objects changed or the
// live use is due; between checks every request shares the last one.
func (s *server) current(ctx context.Context) *snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.snap != nil && now.Sub(s.checked) < checkEvery {
		return s.snap
	}
	s.checked = now
	nodes, pods := s.src.Nodes(), s.src.Pods()
	fp := fingerprint(nodes, pods)
	liveDue := s.src.Live != nil && now.Sub(s.liveAt) >= s.src.LiveEvery
	if liveDue {
		s.liveAt = now
		lctx, cancel := context.WithTimeout(ctx, liveTimeout)
		u, err := s.src.Live.Usage(lctx)
		cancel()
		if err != nil {
			klog.ErrorS(err, "Reading the live use")
		} else {
			s.live = u
		}
	}
	if s.snap != nil && fp == s.objects && !liveDue {
		return s.snap
	}
	s.gen++
	s.objects = fp
	s.snap = build(nodes, pods, s.src.Defaults, s.src.Parse, s.live)
	s.snap.gen, s.snap.overview.Gen = s.gen, s.gen
	return s.snap
}

// fingerprint changes whenever a node or pod is added, removed or
// written: an order-free sum over their UIDs and resourceVersions.
func fingerprint(nodes []*v1.Node, pods []*v1.Pod) uint64 {
	sum := uint64(len(nodes))<<32 ^ uint64(len(pods))
	add := func(uid, rv string) {
		h := fnv.New64a()
		_, _ = h.Write([]byte(uid))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(rv))
		sum += h.Sum64()
	}
	for _, n := range nodes {
		add(n.Name, n.ResourceVersion)
	}
	for _, p := range pods {
		add(string(p.UID)+p.Namespace+"/"+p.Name, p.ResourceVersion)
	}
	return sum
}

// events streams "change" events carrying the snapshot's generation: one
// at once, then one whenever it changes. The page reloads what it shows
// on each.
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	tick := time.NewTicker(checkEvery)
	defer tick.Stop()
	var last uint64
	for {
		if gen := s.current(r.Context()).gen; gen != last {
			last = gen
			if _, err := fmt.Fprintf(w, "event: change\ndata: %d\n\n", gen); err != nil {
				return
			}
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// page is one page of a list.
type page[T any] struct {
	Total  int `json:"total"`
	Offset int `json:"offset"`
	Limit  int `json:"limit"`
	Items  []T `json:"items"`
}

type pagination struct{ offset, limit int }

// Page sizes: the page asks for 20 nodes at a time; no answer holds more
// than maxLimit items, whatever the cluster's size.
const (
	defaultLimit = 20
	maxLimit     = 200
)

func paginate[T any](all []T, keep func(*T) bool, pg pagination) page[T] {
	out := page[T]{Offset: pg.offset, Limit: pg.limit, Items: []T{}}
	for i := range all {
		if !keep(&all[i]) {
			continue
		}
		if out.Total >= pg.offset && len(out.Items) < pg.limit {
			out.Items = append(out.Items, all[i])
		}
		out.Total++
	}
	return out
}

func parseQuery(r *http.Request) (filter, pagination, error) {
	q := r.URL.Query()
	f := newFilter(q.Get("q"), q.Get("node"), q.Get("model"), q.Get("namespace"), q.Get("pod"))
	pg := pagination{limit: defaultLimit}
	for _, p := range []struct {
		name   string
		to     *int
		lo, hi int
	}{{"offset", &pg.offset, 0, 1 << 30}, {"limit", &pg.limit, 1, maxLimit}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < p.lo || n > p.hi {
			return f, pg, fmt.Errorf("%s: %q must be an integer in %d..%d", p.name, v, p.lo, p.hi)
		}
		*p.to = n
	}
	return f, pg, nil
}
