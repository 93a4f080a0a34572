package dashboard

import (
	"context"
	"fmt"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Live reads what the cards and containers use right now; the node agents
// measure it (docs/metrics.md). The allocations come from the API objects.
type Live interface {
	Usage(ctx context.Context) (*LiveUsage, error)
}

// LiveUsage is the measured use, keyed by card UUID.
type LiveUsage struct {
	Cards map[string]CardUse
	// Containers is per container and card; Pods sums a pod's containers.
	Containers map[ContainerCardKey]Use
	Pods       map[PodCard]Use
}

// CardUse is a card's use by every process on it, as the driver says.
type CardUse struct {
	MemoryUsedBytes float64
	// Utilization is the fraction of time a kernel ran.
	Utilization float64
}

// Use is what a container (or a pod) uses of one card: memory, and
// compute in percent of the card.
type Use struct {
	MemoryUsedBytes float64
	Cores           float64
}

// ContainerCardKey names one container's share of a card.
type ContainerCardKey struct{ Namespace, Pod, Container, UUID string }

// PodCard names a pod's part of a card.
type PodCard struct{ Namespace, Pod, UUID string }

// NewLiveUsage returns an empty LiveUsage to fill with Add.
func NewLiveUsage() *LiveUsage {
	return &LiveUsage{Cards: map[string]CardUse{}, Containers: map[ContainerCardKey]Use{}, Pods: map[PodCard]Use{}}
}

// AddContainer records a container's use of a card, and adds it to its
// pod's.
func (u *LiveUsage) AddContainer(k ContainerCardKey, use Use) {
	c := u.Containers[k]
	c.MemoryUsedBytes += use.MemoryUsedBytes
	c.Cores += use.Cores
	u.Containers[k] = c
	pk := PodCard{k.Namespace, k.Pod, k.UUID}
	p := u.Pods[pk]
	p.MemoryUsedBytes += use.MemoryUsedBytes
	p.Cores += use.Cores
	u.Pods[pk] = p
}

// Prometheus reads the live use from a Prometheus server that scrapes the
// node agents.
type Prometheus struct {
	api promv1.API
}

// NewPrometheus connects to the Prometheus HTTP API at url.
func NewPrometheus(url string) (*Prometheus, error) {
	c, err := promapi.NewClient(promapi.Config{Address: url})
	if err != nil {
		return nil, fmt.Errorf("--prometheus %s: %w", url, err)
	}
	return &Prometheus{api: promv1.NewAPI(c)}, nil
}

// The queries, over the node agents' metrics. GPU time charged per second
// is the share of the card's time the container used.
const (
	queryCardMemory = `mosaic_card_memory_used_bytes`
	queryCardUtil   = `mosaic_card_utilization_ratio`
	queryCtrMemory  = `mosaic_container_used_memory_bytes`
	queryCtrCores   = `100 * rate(mosaic_container_gpu_seconds_total[2m])`
)

// Usage implements Live.
func (p *Prometheus) Usage(ctx context.Context) (*LiveUsage, error) {
	u := NewLiveUsage()
	now := time.Now()
	for _, q := range []struct {
		expr string
		add  func(m model.Metric, v float64)
	}{
		{queryCardMemory, func(m model.Metric, v float64) {
			c := u.Cards[string(m["uuid"])]
			c.MemoryUsedBytes = v
			u.Cards[string(m["uuid"])] = c
		}},
		{queryCardUtil, func(m model.Metric, v float64) {
			c := u.Cards[string(m["uuid"])]
			c.Utilization = v
			u.Cards[string(m["uuid"])] = c
		}},
		{queryCtrMemory, func(m model.Metric, v float64) { u.AddContainer(containerKey(m), Use{MemoryUsedBytes: v}) }},
		{queryCtrCores, func(m model.Metric, v float64) { u.AddContainer(containerKey(m), Use{Cores: v}) }},
	} {
		res, _, _, err := p.api.Query(ctx, q.expr, now)
		if err != nil {
			return nil, fmt.Errorf("prometheus query %s: %w", q.expr, err)
		}
		vec, ok := res.(model.Vector)
		if !ok {
			return nil, fmt.Errorf("prometheus query %s: got a %s, want a vector", q.expr, res.Type())
		}
		for _, s := range vec {
			q.add(s.Metric, float64(s.Value))
		}
	}
	return u, nil
}

func containerKey(m model.Metric) ContainerCardKey {
	return ContainerCardKey{string(m["namespace"]), string(m["pod"]), string(m["container"]), string(m["uuid"])}
}
