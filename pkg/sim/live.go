package sim

import (
	"context"
	"hash/fnv"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mosaic-gpu/mosaic/pkg/dashboard"
	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// simulatedLive is the live use of the simulated cards. They run no
// processes, so each container is shown using a fixed part of its share,
// 30 to 90 %, derived from its name: the same on every read, different
// between containers, so that the dashboard's used-vs-allocated bars have
// something to show.
type simulatedLive struct {
	pods func() []*v1.Pod
}

// UseFraction is the part of its share the simulator shows a container
// using.
func UseFraction(namespace, pod, container string) float64 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(namespace + "/" + pod + "/" + container))
	return 0.3 + 0.6*float64(h.Sum32()%1000)/1000
}

// Usage implements dashboard.Live.
func (s simulatedLive) Usage(context.Context) (*dashboard.LiveUsage, error) {
	u := dashboard.NewLiveUsage()
	for _, p := range s.pods() {
		if _, _, ok, err := device.PodFootprint(p); err != nil || !ok {
			continue
		}
		a, err := device.DecodeAllocation(p.Annotations[device.AllocationAnnotation])
		if err != nil {
			continue
		}
		for _, c := range a.Containers {
			f := UseFraction(p.Namespace, p.Name, c.Name)
			for _, d := range c.Devices {
				use := dashboard.Use{MemoryUsedBytes: float64(d.MemoryMiB) * f * (1 << 20), Cores: float64(d.Cores) * f}
				u.AddContainer(dashboard.ContainerCardKey{Namespace: p.Namespace, Pod: p.Name, Container: c.Name, UUID: d.UUID}, use)
				card := u.Cards[d.UUID]
				card.MemoryUsedBytes += use.MemoryUsedBytes
				card.Utilization += use.Cores / 100
				u.Cards[d.UUID] = card
			}
		}
	}
	return u, nil
}

// Dashboard is the dashboard of a simulated cluster, as mosaic-sim
// --serve shows it: the API objects through informers, and the simulated
// live use. It watches until ctx ends.
func Dashboard(ctx context.Context, cs kubernetes.Interface, schedulerName string) (*dashboard.Source, error) {
	src, err := dashboard.WatchCluster(ctx, cs, device.DefaultNodeConfig())
	if err != nil {
		return nil, err
	}
	src.SchedulerName = schedulerName
	src.Live = simulatedLive{pods: src.Pods}
	return &src, nil
}
