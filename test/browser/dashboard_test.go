package browser

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/sim"
)

const (
	a100 = "NVIDIA A100-SXM4-80GB"
	h100 = "NVIDIA H100 80GB HBM3"
)

// poll waits until the JavaScript expression is true in the page.
func poll(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(waitTimeout))
}

// eval evaluates a JavaScript expression.
func eval[T any](p page, expr string) T {
	p.t.Helper()
	return get(p, chromedp.Evaluate[T](expr))
}

// input sets a field's value and tells the page, as typing would.
func input(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`(() => {
		const e = document.querySelector(` + js(sel) + `);
		e.value = ` + js(value) + `;
		e.dispatchEvent(new Event(e.tagName === "SELECT" ? "change" : "input"));
		return true;
	})()`)
}

// js quotes s as a JavaScript string.
func js(s string) string { return fmt.Sprintf("%q", s) }

// TestDashboard drives the dashboard of a small simulated cluster in
// Chromium: the overview's totals, a node's bars per holder, a pending
// pod's reason, the search, dark mode, a refresh without reloading after a
// pod binds, and the pod spec helper, whose output the API server accepts
// and the scheduler places as asked.
func TestDashboard(t *testing.T) {
	c := newCluster(t,
		sim.NodeSpec{Name: "a100", Count: 2, GPUs: []discovery.CardSpec{{Vendor: device.VendorNVIDIA, Model: a100, MemoryMiB: 81920, Count: 8}}},
		sim.NodeSpec{Name: "h100", GPUs: []discovery.CardSpec{{Vendor: device.VendorNVIDIA, Model: h100, MemoryMiB: 81920, Count: 4}}})
	infer := c.create(c.pod("infer", map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "20000", "nvidia.com/gpucores": "30"}), true)
	c.create(c.pod("train", map[string]string{"nvidia.com/gpu": "2", "nvidia.com/gpucores": "100"}), true)
	tooBig := c.create(c.pod("too-big", map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "200000"}), false)
	p := browser(t)
	allNodes := poll(`document.querySelectorAll("#node-list .node").length === 3`)
	p.do(chromedp.Navigate(c.url), chromedp.WaitVisible(chromedp.CSS(`#overview-table tr.total`)), allNodes)

	t.Run("overview totals", func(t *testing.T) {
		p := page{t, p.ctx}
		// 20 cards of 81920 MiB, 10 shares each; infer holds 20000 MiB
		// and 30 % of a card, train two whole cards.
		gib := func(mib float64) string { return fmt.Sprintf("%.1f GiB", mib/1024) }
		want := map[string]string{
			"cards":          "20",
			"shares":         "3/200",
			"memAllocated":   gib(20000+2*81920) + " / " + gib(20*81920),
			"memFree":        gib(20*81920 - 20000 - 2*81920),
			"coresAllocated": "12% · 230/2000",
		}
		for field, w := range want {
			if got := p.text(`#overview-table tr.total td[data-field="` + field + `"]`); got != w {
				t.Errorf("total %s = %q, want %q", field, got, w)
			}
		}
		if n := eval[int](p, `document.querySelectorAll("#overview-table tr.model").length`); n != 2 {
			t.Errorf("overview rows per model = %d, want 2 (A100, H100)", n)
		}
	})

	t.Run("a node's bars", func(t *testing.T) {
		p := page{t, p.ctx}
		node := infer.Spec.NodeName
		p.do(input(`#f-node`, node), poll(`document.querySelectorAll("#node-list .node").length === 1 && document.querySelector("#node-list .node").dataset.node === `+js(node)))
		seg := fmt.Sprintf(`#node-list .node[data-node=%q] .bar[data-kind="memory"] .seg[data-pod=%q]`, node, c.ns+"/infer")
		alloc, used := p.attr(seg, "data-alloc"), p.attr(seg, "data-used")
		ratio := eval[float64](p, `(() => { const s = document.querySelector(`+js(seg)+`); return s.getBoundingClientRect().width / s.parentElement.getBoundingClientRect().width; })()`)
		fill := eval[float64](p, `(() => { const s = document.querySelector(`+js(seg)+`); return s.querySelector(".used").getBoundingClientRect().width / s.getBoundingClientRect().width; })()`)
		if alloc != "20000" {
			t.Errorf("bar of infer: allocated %s MiB, want 20000", alloc)
		}
		f := sim.UseFraction(c.ns, "infer", "c0")
		var u float64
		if _, err := fmt.Sscan(used, &u); err != nil || math.Abs(u-20000*f) > 0.01 {
			t.Errorf("bar of infer: used %q MiB, want %.2f (the simulator's %.3f of its share)", used, 20000*f, f)
		}
		if math.Abs(ratio-20000.0/81920) > 0.01 {
			t.Errorf("bar of infer spans %.3f of the card, want %.3f", ratio, 20000.0/81920)
		}
		if math.Abs(fill-f) > 0.02 {
			t.Errorf("bar of infer is filled to %.3f, want %.3f", fill, f)
		}
		p.do(input(`#f-node`, ""), allNodes)
	})

	t.Run("pending pod's reason", func(t *testing.T) {
		p := page{t, p.ctx}
		want := unschedulable(tooBig)
		if !strings.Contains(want, "exceeds every GPU") {
			t.Fatalf("the scheduler's message %q does not name the limit", want)
		}
		if got := p.text(fmt.Sprintf(`#pending-table tr[data-pod=%q] td.reason`, c.ns+"/too-big")); got != want {
			t.Errorf("pending reason = %q, want the PodScheduled message %q", got, want)
		}
	})

	t.Run("search", func(t *testing.T) {
		p := page{t, p.ctx}
		p.do(input(`#q`, "infer"),
			poll(`document.querySelectorAll("#node-list .node").length === 1 && document.querySelector("#node-list .node").dataset.node === `+js(infer.Spec.NodeName)),
			poll(`[...document.querySelectorAll("#pod-table tbody tr")].every(r => r.dataset.pod === `+js(c.ns+"/infer")+`) && document.querySelectorAll("#pod-table tbody tr").length === 1`),
			poll(`document.querySelectorAll("#pending-table tbody tr[data-pod]").length === 0`))
		if url := eval[string](p, `location.search`); url != "?q=infer" {
			t.Errorf("the search is not in the address: %q", url)
		}
		p.do(input(`#q`, ""), allNodes)
	})

	t.Run("dark mode", func(t *testing.T) {
		p := page{t, p.ctx}
		if theme := eval[string](p, `document.documentElement.dataset.theme`); theme != "light" {
			t.Fatalf("initial theme %q, want light (headless prefers light)", theme)
		}
		p.do(chromedp.Click(chromedp.CSS(`#theme`)), poll(`document.documentElement.dataset.theme === "dark"`))
		if bg := eval[string](p, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(17, 21, 28)" {
			t.Errorf("dark background = %s, want rgb(17, 21, 28)", bg)
		}
		// The choice outlives a reload.
		p.do(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#overview-table tr.total`)))
		if theme := eval[string](p, `document.documentElement.dataset.theme`); theme != "dark" {
			t.Errorf("theme after reload %q, want dark", theme)
		}
		p.do(chromedp.Click(chromedp.CSS(`#theme`)), poll(`document.documentElement.dataset.theme === "light"`), allNodes)
	})

	t.Run("live refresh", func(t *testing.T) {
		p := page{t, p.ctx}
		p.do(poll(`(window.notReloaded = true)`))
		late := c.create(c.pod("late", map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "10000"}), true)
		seg := fmt.Sprintf(`#node-list .node[data-node=%q] .seg[data-pod=%q]`, late.Spec.NodeName, c.ns+"/late")
		p.do(poll(`document.querySelector(`+js(seg)+`) !== null`),
			poll(`document.querySelector('#overview-table tr.total td[data-field="shares"]').textContent === "4/200"`))
		if !eval[bool](p, `window.notReloaded === true`) {
			t.Error("the page reloaded to show the new pod")
		}
	})

	t.Run("pod spec helper", func(t *testing.T) {
		p := page{t, p.ctx}
		// As pressing its button; a click at the button's place can land
		// on the sticky header after a scroll.
		submit := chromedp.Evaluate[chromedp.Void](`document.getElementById("helper-form").requestSubmit() ?? true`)
		p.do(
			input(`#helper-form input[name="name"]`, "from-helper"),
			input(`#helper-form input[name="namespace"]`, c.ns),
			input(`#h-model`, "NVIDIA|"+h100),
			input(`#helper-form input[name="memory"]`, "8000"),
			input(`#helper-form input[name="cores"]`, "25"),
			submit,
			poll(`document.getElementById("yaml-out").textContent.includes("from-helper")`))
		spec := eval[string](p, `document.getElementById("yaml-out").textContent`)
		var pod v1.Pod
		if err := yaml.UnmarshalStrict([]byte(spec), &pod); err != nil {
			t.Fatalf("the helper's spec does not decode as a Pod: %v\n%s", err, spec)
		}
		got := c.create(&pod, true)
		if got.Spec.NodeName != "h100" {
			t.Errorf("the helper's pod landed on %s, want h100 (it asked for %s)", got.Spec.NodeName, h100)
		}
		a, err := device.DecodeAllocation(got.Annotations[device.AllocationAnnotation])
		if err != nil {
			t.Fatal(err)
		}
		if s := a.Containers[0].Devices[0]; s.MemoryMiB != 8000 || s.Cores != 25 {
			t.Errorf("the helper's pod holds %d MiB, %d%%; want 8000 MiB, 25%%", s.MemoryMiB, s.Cores)
		}
		// Bad input is refused, naming the field.
		p.do(input(`#helper-form input[name="cores"]`, "150"), submit,
			poll(`document.getElementById("yaml-error").textContent !== ""`))
		if msg := p.text(`#yaml-error`); !strings.HasPrefix(msg, "cores:") {
			t.Errorf("error for cores 150: %q, want one naming cores", msg)
		}
		p.do(input(`#helper-form input[name="cores"]`, "25"), submit,
			poll(`document.getElementById("yaml-error").textContent === ""`))
	})

	// The header stays at the top of the picture, not where the page
	// was scrolled to.
	p.do(poll(`document.querySelectorAll("#node-list .seg").length >= 4`), poll(`(document.querySelector("header").style.position = "static")`))
	screenshot(t, p, "dashboard.png")
	_ = cp.Client.CoreV1().Pods(c.ns).Delete(c.ctx, "from-helper", metav1.DeleteOptions{})
}
