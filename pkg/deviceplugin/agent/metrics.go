package agent

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
)

// Collector exposes, per card of this node, its capacity and what the pods
// bound here hold of it, computed from the pods' allocations at scrape time.
type Collector struct {
	node string
	pods func() []*v1.Pod
	// stateDir is where the NRI plugin put each container's accounting
	// directory; empty leaves out the measured usage.
	stateDir string

	mu        sync.Mutex
	cards     []device.Device
	cfg       device.NodeConfig
	telemetry discovery.TelemetrySource
}

// NewCollector reads pods through list (a lister over this node's pods)
// and the enforcer's accounting files under stateDir.
func NewCollector(node, stateDir string, list func() []*v1.Pod) *Collector {
	return &Collector{node: node, pods: list, stateDir: stateDir}
}

// SetTelemetry makes every scrape read the cards' live use from src.
func (c *Collector) SetTelemetry(src discovery.TelemetrySource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.telemetry = src
}

// SetCards records the cards and config last published.
func (c *Collector) SetCards(cards []device.Device, cfg device.NodeConfig) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cards, c.cfg = cards, cfg
}

var (
	cardLabels   = []string{"node", "uuid", "index", "model"}
	descMemory   = prometheus.NewDesc("mosaic_card_memory_mib", "Card memory offered for sharing (after over-commit scaling), MiB.", cardLabels, nil)
	descSlots    = prometheus.NewDesc("mosaic_card_slots", "Shares a card can hold (split count).", cardLabels, nil)
	descHealthy  = prometheus.NewDesc("mosaic_card_healthy", "1 when the card is healthy and schedulable.", cardLabels, nil)
	descAllocMem = prometheus.NewDesc("mosaic_card_allocated_memory_mib", "Card memory allocated to pods bound to this node, MiB.", cardLabels, nil)
	descAllocCor = prometheus.NewDesc("mosaic_card_allocated_cores_percent", "Card compute allocated to pods bound to this node, percent of one card.", cardLabels, nil)
	descAllocSl  = prometheus.NewDesc("mosaic_card_allocated_slots", "Shares of the card allocated to pods bound to this node.", cardLabels, nil)
	ctrLabels    = []string{"node", "namespace", "pod", "container", "uuid"}
	descPodShare = prometheus.NewDesc("mosaic_container_allocated_memory_mib", "Card memory allocated to one container, MiB.", ctrLabels, nil)
	descPodUsed  = prometheus.NewDesc("mosaic_container_used_memory_bytes", "Card memory the container's processes hold, as the enforcer accounts it.", ctrLabels, nil)
	descPodTime  = prometheus.NewDesc("mosaic_container_gpu_seconds_total", "GPU time the enforcer charged to the container on the card (its compute share's use), seconds.", ctrLabels, nil)
	descSwitches = prometheus.NewDesc("mosaic_card_lease_switches_total", "Hand-overs of the card's time lease between processes of the containers sharing it.", cardLabels, nil)
	descUtil     = prometheus.NewDesc("mosaic_card_utilization_ratio", "Fraction of the driver's last sample period during which a kernel ran on the card (NVML).", cardLabels, nil)
	descMemUtil  = prometheus.NewDesc("mosaic_card_memory_utilization_ratio", "Fraction of the driver's last sample period during which the card's memory was read or written (NVML).", cardLabels, nil)
	descMemUsed  = prometheus.NewDesc("mosaic_card_memory_used_bytes", "Card memory in use by every process, as the driver reports it.", cardLabels, nil)
	descPower    = prometheus.NewDesc("mosaic_card_power_watts", "Card power draw.", cardLabels, nil)
	descTemp     = prometheus.NewDesc("mosaic_card_temperature_celsius", "GPU die temperature.", cardLabels, nil)
)

// telemetryTimeout bounds one scrape's driver queries.
const telemetryTimeout = 5 * time.Second

// allDescs are the metrics the collector exports.
var allDescs = []*prometheus.Desc{descMemory, descSlots, descHealthy, descAllocMem, descAllocCor, descAllocSl, descPodShare, descPodUsed, descPodTime, descSwitches,
	descUtil, descMemUtil, descMemUsed, descPower, descTemp}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// MetricNames lists the names of the metrics the node agent exports, for
// docs and dashboards to check against.
func MetricNames() []string {
	out := make([]string, 0, len(allDescs))
	for _, d := range allDescs {
		// A Desc shows its name only in its String form.
		s := d.String()
		const key = `fqName: "`
		if i := strings.Index(s, key); i >= 0 {
			s = s[i+len(key):]
			out = append(out, s[:strings.IndexByte(s, '"')])
		}
	}
	slices.Sort(out)
	return out
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	cards, cfg, src := c.cards, c.cfg.Merge(device.DefaultNodeConfig()), c.telemetry
	c.mu.Unlock()
	live := map[string]discovery.Telemetry{}
	if src != nil {
		ctx, cancel := context.WithTimeout(context.Background(), telemetryTimeout)
		ts, err := src.Telemetry(ctx)
		cancel()
		if err != nil {
			klog.ErrorS(err, "Reading the cards' telemetry")
		}
		for _, t := range ts {
			live[t.UUID] = t
		}
	}
	buses := device.BusesOf(cards)
	used := map[string]device.Usage{}
	// The card regions, read once a scrape; a card no process limited
	// yet has none. A region is tenant-written: an unreadable one only
	// leaves its card's compute metrics out.
	regions := map[string]*device.CardRegion{}
	if c.stateDir != "" {
		for _, d := range cards {
			if r, err := device.ReadCardRegion(device.CardRegionPath(nri.CardRegionsDir(c.stateDir), d.UUID)); err == nil {
				regions[d.UUID] = r
			}
		}
	}
	for _, p := range c.pods() {
		node, fp, ok, err := device.PodFootprint(p)
		if err != nil || !ok || node != c.node {
			continue
		}
		for id, u := range fp {
			used[id] = used[id].Add(u)
		}
		a, _ := device.DecodeAllocation(p.Annotations[device.AllocationAnnotation])
		for _, ctr := range a.Containers {
			for _, s := range ctr.Devices {
				ch <- prometheus.MustNewConstMetric(descPodShare, prometheus.GaugeValue, float64(s.MemoryMiB), c.node, p.Namespace, p.Name, ctr.Name, s.UUID)
			}
			if c.stateDir == "" {
				continue
			}
			acct, err := device.ReadAccounting(filepath.Join(nri.ContainerStateDir(c.stateDir, string(p.UID)), ctr.Name, "shared", device.AccountingFile))
			if err != nil {
				continue
			}
			// The accounting is per CUDA ordinal: the container's
			// cards in bus order, as the NRI decision handed them out.
			ordered, err := device.InBusOrder(ctr.Devices, buses.PCIBus)
			if err != nil {
				continue
			}
			for i, s := range ordered {
				if i < len(acct.Used) {
					ch <- prometheus.MustNewConstMetric(descPodUsed, prometheus.GaugeValue, float64(acct.Used[i]), c.node, p.Namespace, p.Name, ctr.Name, s.UUID)
				}
				if t := regions[s.UUID].Tenant(acct.TenantKey); t != nil {
					ch <- prometheus.MustNewConstMetric(descPodTime, prometheus.CounterValue, float64(t.BusyNs)/1e9, c.node, p.Namespace, p.Name, ctr.Name, s.UUID)
				}
			}
		}
	}
	for _, d := range cards {
		lv := []string{c.node, d.UUID, strconv.Itoa(d.Index), d.Model}
		healthy := 0.0
		if d.Healthy && !d.MIG {
			healthy = 1
		}
		u := used[d.UUID]
		capacity := device.CardCapacity(&d, cfg)
		ch <- prometheus.MustNewConstMetric(descMemory, prometheus.GaugeValue, float64(capacity.MemoryMiB), lv...)
		ch <- prometheus.MustNewConstMetric(descSlots, prometheus.GaugeValue, float64(capacity.Slots), lv...)
		ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, healthy, lv...)
		ch <- prometheus.MustNewConstMetric(descAllocMem, prometheus.GaugeValue, float64(u.MemoryMiB), lv...)
		ch <- prometheus.MustNewConstMetric(descAllocCor, prometheus.GaugeValue, float64(u.Cores), lv...)
		ch <- prometheus.MustNewConstMetric(descAllocSl, prometheus.GaugeValue, float64(u.Slots), lv...)
		if r := regions[d.UUID]; r != nil {
			ch <- prometheus.MustNewConstMetric(descSwitches, prometheus.CounterValue, float64(r.Switches), lv...)
		}
		if t, ok := live[d.UUID]; ok {
			for _, m := range []struct {
				d *prometheus.Desc
				v float64
			}{{descUtil, t.Utilization}, {descMemUtil, t.MemoryUtilization}, {descMemUsed, t.MemoryUsedBytes}, {descPower, t.PowerWatts}, {descTemp, t.TemperatureCelsius}} {
				if !math.IsNaN(m.v) {
					ch <- prometheus.MustNewConstMetric(m.d, prometheus.GaugeValue, m.v, lv...)
				}
			}
		}
	}
}
