// Package browser drives the dashboard in headless Chromium (chromedp)
// against a real in-process API server with the real Mosaic scheduler, the
// dashboard being served exactly as mosaic-sim --serve serves it.
package browser

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/mosaic-gpu/mosaic/config"
	"github.com/mosaic-gpu/mosaic/pkg/cluster"
	"github.com/mosaic-gpu/mosaic/pkg/dashboard"
	"github.com/mosaic-gpu/mosaic/pkg/sim"
)

const schedulerName = "mosaic-scheduler"

// waitTimeout is a hang guard for the scheduler and the browser, not a
// speed target.
const waitTimeout = 60 * time.Second

var cp *cluster.ControlPlane

func TestMain(m *testing.M) {
	cp = cluster.StartForTests()
	code := m.Run()
	cp.Stop()
	os.Exit(code)
}

// chromiumPath is Debian's chromium, which .ci/run installs;
// MOSAIC_CHROMIUM names another.
func chromiumPath() string {
	if p := os.Getenv("MOSAIC_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// browser starts a headless Chromium for the test. The flags keep it off
// the network it cannot reach here (background requests, updates, sync,
// QUIC) and in a fresh profile.
func browser(t *testing.T) page {
	t.Helper()
	path := chromiumPath()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (apt-get install -y chromium; .ci/run installs it; MOSAIC_CHROMIUM names another): %v", path, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return page{t: t, ctx: ctx}
}

// page drives one tab under the hang guard; a failed action fails the
// test.
type page struct {
	t   *testing.T
	ctx context.Context
}

// do runs actions in order.
func (p page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatal(err)
	}
}

// get runs one action and returns its value.
func get[T any](p page, a chromedp.Action[T]) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.t.Fatal(err)
	}
	return v
}

// text is the visible text of the first element matching the CSS selector.
func (p page) text(sel string) string {
	p.t.Helper()
	return get(p, chromedp.Text(chromedp.CSS(sel)))
}

// attr is an attribute of the first element matching the CSS selector.
func (p page) attr(sel, name string) string {
	p.t.Helper()
	return get(p, chromedp.AttributeValue(chromedp.CSS(sel), name)).Value
}

// cluster is one test's simulated cluster: nodes with published
// inventories, the scheduler, and the dashboard on a local port.
type simCluster struct {
	t   *testing.T
	ctx context.Context
	ns  string
	url string
	// sent counts the bytes the dashboard served.
	sent atomic.Int64
}

var nsSeq int

func newCluster(t *testing.T, nodes ...sim.NodeSpec) *simCluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	nsSeq++
	c := &simCluster{t: t, ctx: ctx, ns: fmt.Sprintf("ui-%d", nsSeq)}
	cs := cp.Client
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := sim.CreateNodes(ctx, cs, nodes); err != nil {
		t.Fatal(err)
	}
	if err := cp.RunKubelet(ctx); err != nil {
		t.Fatal(err)
	}
	done, err := cp.StartScheduler(ctx, config.SecondScheduler)
	if err != nil {
		t.Fatal(err)
	}
	src, err := sim.Dashboard(ctx, cs, schedulerName)
	if err != nil {
		t.Fatal(err)
	}
	// Live use is read at every check, so a test sees a new pod's use as
	// soon as it sees the pod.
	src.LiveEvery = time.Millisecond
	h := dashboard.Handler(*src)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&countingWriter{ResponseWriter: w, n: &c.sent}, r)
	}))
	c.url = srv.URL + "/"
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		zero := int64(0)
		_ = cs.CoreV1().Pods(c.ns).DeleteCollection(context.Background(), metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		for i := range nodes {
			for _, n := range nodes[i].Names() {
				_ = cs.CoreV1().Nodes().Delete(context.Background(), n, metav1.DeleteOptions{})
			}
		}
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Errorf("scheduler did not stop within %v", waitTimeout)
		}
	})
	return c
}

// countingWriter counts the bytes of a response; it passes Flush on, for
// the event stream.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// pod is a device pod for the scheduler under test.
func (c *simCluster) pod(name string, limits map[string]string) *v1.Pod {
	rl := v1.ResourceList{}
	for k, v := range limits {
		rl[v1.ResourceName(k)] = resource.MustParse(v)
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.ns},
		Spec: v1.PodSpec{SchedulerName: schedulerName, Containers: []v1.Container{
			{Name: "c0", Image: "x", Resources: v1.ResourceRequirements{Limits: rl}}}},
	}
}

// create creates the pod and waits until the scheduler bound it (bound
// true) or marked it unschedulable.
func (c *simCluster) create(p *v1.Pod, bound bool) *v1.Pod {
	c.t.Helper()
	if _, err := cp.Client.CoreV1().Pods(p.Namespace).Create(c.ctx, p, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("creating pod %s: %v", p.Name, err)
	}
	var got *v1.Pod
	err := wait.PollUntilContextTimeout(c.ctx, 20*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		g, err := cp.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = g
		if bound {
			return g.Spec.NodeName != "", nil
		}
		return unschedulable(g) != "", nil
	})
	if err != nil {
		c.t.Fatalf("pod %s not %s: %v", p.Name, map[bool]string{true: "bound", false: "rejected"}[bound], err)
	}
	return got
}

func unschedulable(p *v1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
			return c.Message
		}
	}
	return ""
}

// screenshot writes a PNG of the page: to docs/images/dashboard.png with
// MOSAIC_UPDATE_SCREENSHOT=1, else to the test's temporary directory.
func screenshot(t *testing.T, p page, name string) {
	t.Helper()
	png := get(p, chromedp.FullScreenshot(100))
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	path := t.TempDir() + "/" + name
	if os.Getenv("MOSAIC_UPDATE_SCREENSHOT") == "1" {
		path = "../../docs/images/" + name
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
