package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"

	"github.com/mosaic-gpu/mosaic/pkg/cluster"
	"github.com/mosaic-gpu/mosaic/pkg/sim"
)

// bindGate stands between the scheduler and the API server as a slow or
// lossy network would. It passes every request through, except the first
// Binding of each pod a test names, which it holds or whose answer it
// loses (gateAction).
type bindGate struct {
	t          testing.TB
	kubeconfig string
	proxy      *httputil.ReverseProxy
	done       chan struct{}
	mu         sync.Mutex
	rules      map[string]*gateRule // by namespace/pod
}

type gateAction int

const (
	// holdBinding holds the Binding until the test releases it, then
	// sends it on.
	holdBinding gateAction = iota
	// loseAnswer sends the Binding on and, once it has committed and the
	// test releases it, answers 504, as the API server does for a request
	// that outlived its timeout.
	loseAnswer
	// commitLate answers 504 at once and sends the Binding on only when
	// the test releases it: a request still on its way when the client
	// gave up.
	commitLate
)

type gateRule struct {
	action gateAction
	used   bool
	// reached is closed once the Binding has reached the gate (hold), has
	// committed (loseAnswer) or has been answered (commitLate); release
	// is closed by the test; sent, once a late Binding has been sent on,
	// holds the API server's answer to it.
	reached, release chan struct{}
	sent             chan int
}

// newGatedEnv is newEnv with the scheduler reaching the API server through
// a bindGate.
func newGatedEnv(t testing.TB, cfg []byte, nodes ...sim.NodeSpec) (*env, *bindGate) {
	t.Helper()
	g := newBindGate(t) // first, so that its cleanup runs after the scheduler's
	e := newStoppedEnv(t, cfg, nodes...)
	e.kubeconfig = g.kubeconfig
	e.startScheduler()
	return e, g
}

func newBindGate(t testing.TB) *bindGate {
	t.Helper()
	upstream, err := rest.TransportFor(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	api, err := url.Parse(cp.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	g := &bindGate{t: t, done: make(chan struct{}), rules: map[string]*gateRule{}}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(api) },
		Transport:     upstream,
		FlushInterval: -1, // watches stream
		// A request cut off by the scheduler's shutdown is no news.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(g.serve))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(func() {
		close(g.done)
		srv.CloseClientConnections()
		srv.Close()
	})
	g.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := cluster.WriteKubeconfig(g.kubeconfig, &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca}}); err != nil {
		t.Fatal(err)
	}
	return g
}

// gate applies action to the pod's first Binding.
func (g *bindGate) gate(ns, pod string, action gateAction) *gateRule {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := &gateRule{action: action, reached: make(chan struct{}), release: make(chan struct{}), sent: make(chan int, 1)}
	g.rules[ns+"/"+pod] = r
	return r
}

// await waits until the rule's Binding has reached the gate (see gateRule).
func (g *bindGate) await(r *gateRule) {
	g.t.Helper()
	select {
	case <-r.reached:
	case <-time.After(waitTimeout):
		g.t.Fatalf("no Binding reached the gate within %v", waitTimeout)
	}
}

func (g *bindGate) serve(w http.ResponseWriter, req *http.Request) {
	r := g.match(req)
	if r == nil {
		g.proxy.ServeHTTP(w, req)
		return
	}
	switch r.action {
	case holdBinding:
		close(r.reached)
		if g.wait(r.release) {
			g.proxy.ServeHTTP(w, req)
		}
	case loseAnswer:
		rec := httptest.NewRecorder()
		g.proxy.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			g.t.Errorf("the Binding whose answer the gate was to lose failed: %d %s", rec.Code, rec.Body)
		}
		close(r.reached)
		if g.wait(r.release) {
			timedOut(w)
		}
	case commitLate:
		body, err := io.ReadAll(req.Body)
		if err != nil {
			g.t.Errorf("reading a Binding: %v", err)
		}
		// The client sees the answer only once the handler returns.
		late := req.Clone(context.WithoutCancel(req.Context()))
		late.Body = io.NopCloser(bytes.NewReader(body))
		go func() {
			if g.wait(r.release) {
				rec := httptest.NewRecorder()
				g.proxy.ServeHTTP(rec, late)
				r.sent <- rec.Code
			}
		}()
		timedOut(w)
		close(r.reached)
	}
}

// match returns the rule of a pod's first Binding.
func (g *bindGate) match(req *http.Request) *gateRule {
	// /api/v1/namespaces/<ns>/pods/<pod>/binding
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	if req.Method != http.MethodPost || len(parts) != 7 || parts[0] != "api" || parts[2] != "namespaces" || parts[4] != "pods" || parts[6] != "binding" {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.rules[parts[3]+"/"+parts[5]]
	if r == nil || r.used {
		return nil
	}
	r.used = true
	return r
}

// wait blocks until ch is closed, or the test ends.
func (g *bindGate) wait(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-g.done:
		return false
	}
}

func timedOut(w http.ResponseWriter) {
	status := apierrors.NewTimeoutError("request did not complete within the allowed duration", 0).ErrStatus
	status.Kind, status.APIVersion = "Status", "v1"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusGatewayTimeout)
	_ = json.NewEncoder(w).Encode(status)
}
