package browser

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/chromedp/chromedp"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/sim"
)

// maxPageBytes is the most the dashboard may send for its first screen,
// whatever the cluster's size.
const maxPageBytes = 2 << 20

// TestDashboardAt1000Nodes loads the dashboard of 1,000 nodes of 8 cards
// with 1,000 bound device pods and checks that the first screen (page,
// overview, first page of nodes and pods, pending pods) stays under 2 MB.
// The time to the first paint and to the first complete render are
// logged, not asserted: the tests hold on any machine, and
// docs/dashboard.md records them.
func TestDashboardAt1000Nodes(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 nodes: not in -short")
	}
	const nodes, pods = 1000, 1000
	c := newCluster(t, sim.NodeSpec{Name: "big", Count: nodes, GPUs: []discovery.CardSpec{{Vendor: device.VendorNVIDIA, Model: a100, MemoryMiB: 81920, Count: 8}}})
	var g errgroup.Group
	g.SetLimit(8)
	for i := range pods {
		g.Go(func() error {
			_, err := cp.Client.CoreV1().Pods(c.ns).Create(c.ctx, c.pod(fmt.Sprintf("job-%d", i), map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "20000", "nvidia.com/gpucores": "25"}), metav1.CreateOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	c.create(c.pod("too-big", map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "200000"}), false)
	var once sync.Once
	err := wait.PollUntilContextTimeout(c.ctx, 200*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := cp.Client.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		bound := 0
		for i := range l.Items {
			if l.Items[i].Spec.NodeName != "" {
				bound++
			}
		}
		once.Do(func() { t.Logf("%d of %d pods bound at the first look", bound, pods) })
		return bound == pods, nil
	})
	if err != nil {
		t.Fatalf("the %d pods were not all bound: %v", pods, err)
	}

	p := browser(t)
	c.sent.Store(0)
	p.do(chromedp.Navigate(c.url),
		poll(`document.querySelectorAll("#node-list .node").length === 20`),
		poll(`performance.getEntriesByName("mosaic-rendered").length === 1`))
	sent := c.sent.Load()
	if got := p.text(`#overview-table tr.total td[data-field="cards"]`); got != "8000" {
		t.Errorf("total cards = %q, want 8000", got)
	}
	if got := p.text(`#overview-table tr.total td[data-field="shares"]`); got != fmt.Sprint(pods, "/80000") {
		t.Errorf("total shares = %q, want %d/80000", got, pods)
	}
	if got := p.text(`#nodes-pager span`); got != "1–20 of 1000" {
		t.Errorf("node pager = %q, want 1–20 of 1000", got)
	}
	if sent > maxPageBytes {
		t.Errorf("the first screen took %d bytes, want at most %d", sent, maxPageBytes)
	}
	paint := eval[float64](p, `(performance.getEntriesByName("first-contentful-paint")[0] || {startTime: -1}).startTime`)
	rendered := eval[float64](p, `performance.getEntriesByName("mosaic-rendered")[0].startTime`)
	t.Logf("%d nodes x 8 cards, %d pods: first screen %d bytes; first contentful paint %.0f ms, first complete render %.0f ms after navigation", nodes, pods, sent, paint, rendered)
}
