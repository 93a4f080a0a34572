package mosaic

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/mosaic-gpu/mosaic/pkg/placement"
)

// The scheduler's Mosaic metrics, in component-base's legacy registry,
// which kube-scheduler serves on its /metrics endpoint. Labels are
// bounded: extension points, constant reasons, event names, hint values,
// vendors and models; no pod or node names (the node agents export those
// per card and container). docs/metrics.md lists them.
const (
	metricsNamespace = "mosaic"
	metricsSubsystem = "scheduler"
)

// Extension points as the duration and failure metrics name them.
const (
	pointPreFilter = "PreFilter"
	pointFilter    = "Filter"
	pointScore     = "Score"
	pointReserve   = "Reserve"
	pointBind      = "Bind"
)

// Queueing hint events as the requeue metric names them.
const (
	eventPodDeleted       = "DevicePodDeleted"
	eventInventoryChanged = "NodeInventoryChanged"
	eventHandedOut        = "DevicesHandedOut"
)

// Failure reasons besides placement's constant ones.
const (
	reasonInvalidRequest   = "invalid device request"
	reasonInvalidInventory = "invalid device inventory"
	reasonBindError        = "binding failed"
	reasonOther            = "other"
)

var (
	extensionDuration = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "extension_point_duration_seconds",
		Help: "Time the Mosaic plugin spent in one call of an extension point taken once per pod (PreFilter, Reserve, Bind).",
		// 1 µs to about 4 s: Filter of one node takes microseconds, Bind
		// an API round trip.
		Buckets:        metrics.ExponentialBuckets(1e-6, 4, 12),
		StabilityLevel: metrics.ALPHA,
	}, []string{"extension_point"})
	allocationFailures = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name:           "allocation_failures_total",
		Help:           "Device allocations refused, by extension point and reason: Filter counts each node it rejects for a pod, with each reason it gives.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"extension_point", "reason"})
	binds = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name:           "device_pod_binds_total",
		Help:           "Bindings of device pods with their allocation, by result (bound, error).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})
	queueingHints = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name:           "queueing_hints_total",
		Help:           "Answers of Mosaic's queueing hints for pods it rejected, by event and hint (Queue: the pod is retried, QueueSkip: it keeps waiting).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"event", "hint"})

	descPods          = newDesc("device_pods", "Device pods this scheduler knows, by phase: pending (not bound), binding (reserved, binding in flight), bound (bound with an allocation, not finished).", "phase")
	descCards         = newDesc("cards", "Cards in the published inventories, by vendor and model.", "vendor", "model")
	descAllocCards    = newDesc("allocated_cards", "Cards holding at least one share, by vendor and model.", "vendor", "model")
	descAllocShares   = newDesc("allocated_shares", "Shares allocated (bound or reserved), by vendor and model.", "vendor", "model")
	descCapMemory     = newDesc("memory_mib", "Card memory offered for sharing (after scaling), MiB, by vendor and model.", "vendor", "model")
	descAllocMemory   = newDesc("allocated_memory_mib", "Card memory allocated, MiB, by vendor and model.", "vendor", "model")
	descAllocCores    = newDesc("allocated_cores_percent", "Compute allocated, percent of one card, summed, by vendor and model.", "vendor", "model")
	collectedMetrics  = []*metrics.Desc{descPods, descCards, descAllocCards, descAllocShares, descCapMemory, descAllocMemory, descAllocCores}
	registeredMetrics = []string{
		fqName("extension_point_duration_seconds"), fqName("allocation_failures_total"),
		fqName("device_pod_binds_total"), fqName("queueing_hints_total"),
	}
)

func fqName(name string) string { return metrics.BuildFQName(metricsNamespace, metricsSubsystem, name) }

func newDesc(name, help string, labels ...string) *metrics.Desc {
	return metrics.NewDesc(fqName(name), help, labels, nil, metrics.ALPHA, "")
}

// MetricNames lists the names of the scheduler metrics Mosaic registers
// (histograms by their base name), for docs and dashboards to check
// against.
func MetricNames() []string {
	out := slices.Clone(registeredMetrics)
	for _, d := range collectedMetrics {
		out = append(out, descName(d))
	}
	slices.Sort(out)
	return out
}

// descName reads a Desc's name back from its String form, the one place
// component-base shows it.
func descName(d *metrics.Desc) string {
	s := d.String()
	const key = `fqName: "`
	i := strings.Index(s, key)
	if i < 0 {
		return ""
	}
	s = s[i+len(key):]
	return s[:strings.IndexByte(s, '"')]
}

var registerMetrics sync.Once

// hotMetrics are the series Filter and Score touch for every node,
// resolved once: a vector's lookup by label values costs as much as the
// update.
type hotMetrics struct {
	duration map[string]metrics.ObserverMetric
	failures map[string]map[string]metrics.CounterMetric // by point, reason
}

var hot atomic.Pointer[hotMetrics]

// registerAll registers the metrics once a process; component-base
// metrics record nothing before they are registered.
func registerAll() {
	registerMetrics.Do(func() {
		legacyregistry.MustRegister(extensionDuration, allocationFailures, binds, queueingHints)
		legacyregistry.CustomMustRegister(&cacheCollector{})
		h := &hotMetrics{duration: map[string]metrics.ObserverMetric{}, failures: map[string]map[string]metrics.CounterMetric{}}
		for _, point := range []string{pointPreFilter, pointFilter, pointReserve, pointBind} {
			h.duration[point] = extensionDuration.WithLabelValues(point)
			h.failures[point] = map[string]metrics.CounterMetric{}
			for r := range knownReasons {
				h.failures[point][r] = allocationFailures.WithLabelValues(point, r)
			}
		}
		hot.Store(h)
	})
}

// observe records the time since start for an extension point.
func observe(point string, start time.Time) {
	d := time.Since(start).Seconds()
	if h := hot.Load(); h != nil {
		h.duration[point].Observe(d)
		return
	}
	extensionDuration.WithLabelValues(point).Observe(d)
}

// knownReasons are the reasons counted under their own label value; any
// other message (one carrying a parser's detail) counts under a constant,
// so the label stays bounded.
var knownReasons = map[string]bool{
	placement.ReasonNoDevices: true, placement.ReasonUnhealthy: true, placement.ReasonWrongModel: true,
	placement.ReasonSelector: true, placement.ReasonSlots: true, placement.ReasonMemory: true,
	placement.ReasonCores: true, placement.ReasonExclusive: true, placement.ReasonNeedsEmpty: true,
	placement.ReasonTooFewCards: true, placement.ReasonNUMA: true, placement.ReasonTooLarge: true,
	placement.ReasonHandoutBusy: true,
}

// countFailure counts a refusing status of an extension point by its
// reasons.
func countFailure(point string, s *fwk.Status) {
	if s == nil || s.Code() == fwk.Skip || s.IsSuccess() {
		return
	}
	reasons := s.Reasons()
	if len(reasons) == 0 {
		reasons = []string{reasonOther}
	}
	for _, r := range reasons {
		countReason(point, r, 1)
	}
}

// countRefusals counts Filter's refusals that PreFilter found for every
// node at once (fitsSomewhere), n nodes per reason, as Filter would have
// counted them node by node.
func countRefusals(byReason map[string]int) {
	for r, n := range byReason {
		countReason(pointFilter, r, n)
	}
}

func countReason(point, r string, n int) {
	switch {
	case knownReasons[r]:
	case strings.HasPrefix(r, "invalid device request"):
		r = reasonInvalidRequest
	case strings.HasPrefix(r, "node device inventory is invalid"):
		r = reasonInvalidInventory
	default:
		r = reasonOther
	}
	if h := hot.Load(); h != nil {
		if c := h.failures[point][r]; c != nil {
			c.Add(float64(n))
			return
		}
	}
	allocationFailures.WithLabelValues(point, r).Add(float64(n))
}

// countHint records a queueing hint's answer.
func countHint(event string, h fwk.QueueingHint) {
	queueingHints.WithLabelValues(event, h.String()).Inc()
}

// cacheCollector reports, at scrape time, the device pods and the cards of
// every scheduler cache in the process (one per running scheduler).
type cacheCollector struct {
	metrics.BaseStableCollector
}

// DescribeWithStability implements metrics.StableCollector.
func (c *cacheCollector) DescribeWithStability(ch chan<- *metrics.Desc) {
	for _, d := range collectedMetrics {
		ch <- d
	}
}

// CollectWithStability implements metrics.StableCollector.
func (c *cacheCollector) CollectWithStability(ch chan<- metrics.Metric) {
	schedulerCaches.Lock()
	shared := make([]*sharedCache, 0, len(schedulerCaches.m))
	for _, s := range schedulerCaches.m {
		shared = append(shared, s)
	}
	schedulerCaches.Unlock()
	var pending, binding, bound int
	models := map[modelKey]*modelTotals{}
	for _, s := range shared {
		pending += s.pendingDevicePods()
		m, assumed, held := s.cache.totals()
		binding += assumed
		bound += held
		for k, t := range m {
			sum := models[k]
			if sum == nil {
				sum = &modelTotals{}
				models[k] = sum
			}
			sum.add(t, 1)
		}
	}
	gauge := func(d *metrics.Desc, v float64, lv ...string) {
		ch <- metrics.NewLazyConstMetric(d, metrics.GaugeValue, v, lv...)
	}
	gauge(descPods, float64(pending), "pending")
	gauge(descPods, float64(binding), "binding")
	gauge(descPods, float64(bound), "bound")
	for k, t := range models {
		gauge(descCards, float64(t.cards), k.vendor, k.model)
		gauge(descAllocCards, float64(t.allocCards), k.vendor, k.model)
		gauge(descAllocShares, float64(t.shares), k.vendor, k.model)
		gauge(descCapMemory, float64(t.memory), k.vendor, k.model)
		gauge(descAllocMemory, float64(t.allocMemory), k.vendor, k.model)
		gauge(descAllocCores, float64(t.cores), k.vendor, k.model)
	}
}

// pendingDevicePods counts the pods for this scheduler's Mosaic profiles
// that ask for devices and are not bound yet (pending.go).
func (s *sharedCache) pendingDevicePods() int {
	s.mu.Lock()
	profiles, opts := s.profiles, s.parseOpts
	s.mu.Unlock()
	return s.cache.pending.count(profiles, opts)
}

// The extension points, timed and counted; the steps themselves are in
// prefilter.go, filter.go, score.go, reserve.go and bind.go. Pods without
// devices are neither timed nor counted.

// PreFilter parses the pod's device request once per cycle (preFilter).
func (p *Mosaic) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	start := time.Now()
	r, s := p.preFilter(ctx, state, pod, nodes)
	if s.Code() != fwk.Skip {
		observe(pointPreFilter, start)
		if !noRoomAnywhere(s) { // counted as Filter's refusals
			countFailure(pointPreFilter, s)
		}
	}
	return r, s
}

// Filter checks that the pod's containers fit the node's cards (filter).
// Filter and Score run once per node: timing each call cost more than a
// fifth of Filter itself at 1,000 nodes, and kube-scheduler already times
// them, sampled (scheduler_plugin_execution_duration_seconds{plugin="Mosaic"}).
func (p *Mosaic) Filter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	s := p.filter(ctx, state, pod, nodeInfo)
	countFailure(pointFilter, s)
	return s
}

// Score rates a node by the node policy (score).
func (p *Mosaic) Score(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	return p.score(ctx, state, pod, nodeInfo)
}

// Reserve picks the cards on the chosen node and assumes them (reserve).
func (p *Mosaic) Reserve(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	if deviceState(state) == nil {
		return nil // not a device pod
	}
	start := time.Now()
	s := p.reserve(ctx, state, pod, nodeName)
	observe(pointReserve, start)
	countFailure(pointReserve, s)
	return s
}

// Bind binds a device pod with its allocation in one write (bindPod).
func (p *Mosaic) Bind(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	start := time.Now()
	s := p.bindPod(ctx, state, pod, nodeName)
	if s.Code() == fwk.Skip {
		return s
	}
	observe(pointBind, start)
	if s.IsSuccess() {
		binds.WithLabelValues("bound").Inc()
	} else {
		binds.WithLabelValues("error").Inc()
		allocationFailures.WithLabelValues(pointBind, reasonBindError).Inc()
	}
	return s
}

// counted wraps a queueing hint so that its answers are counted by event.
func counted(event string, fn fwk.QueueingHintFn) fwk.QueueingHintFn {
	return func(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
		h, err := fn(logger, pod, oldObj, newObj)
		countHint(event, h)
		return h, err
	}
}
