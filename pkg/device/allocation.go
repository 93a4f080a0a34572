package device

import (
	"encoding/json"
	"fmt"

	v1 "k8s.io/api/core/v1"
)

// AllocationVersion is the version of the Allocation encoding.
const AllocationVersion = 1

// Allocation is the scheduler's decision for one pod: the exact cards and
// shares of each container that asked for devices. The scheduler writes it
// once, as an annotation of the pod's Binding, so the pod is never bound
// without it.
type Allocation struct {
	Version    int                   `json:"v"`
	Node       string                `json:"node"`
	Containers []ContainerAllocation `json:"containers"`
}

// ContainerAllocation is one container's cards.
type ContainerAllocation struct {
	Name    string  `json:"name"`
	Init    bool    `json:"init,omitempty"`
	Devices []Share `json:"devices"`
}

// Share is a container's part of one card.
type Share struct {
	UUID      string `json:"uuid"`
	Index     int    `json:"index"`
	Vendor    Vendor `json:"vendor"`
	Model     string `json:"model,omitempty"`
	MemoryMiB int64  `json:"memoryMiB"`
	Cores     int    `json:"cores"`
	NUMA      int    `json:"numa"`
	Template  string `json:"template,omitempty"`
}

// Exclusive reports whether the share is a whole card nobody else holds:
// the share of an exclusive request (ContainerRequest.Exclusive).
func (s *Share) Exclusive() bool { return s.Cores >= MaxCores }

// SharesCards reports whether a container of the pod holds a share of a
// card that other pods may hold too: the allocation of a request that
// SharesCards.
func (a *Allocation) SharesCards() bool {
	for _, c := range a.Containers {
		for i := range c.Devices {
			if !c.Devices[i].Exclusive() {
				return true
			}
		}
	}
	return false
}

// EncodeAllocation validates a and returns its annotation value.
func EncodeAllocation(a *Allocation) (string, error) {
	a.Version = AllocationVersion
	if err := a.Validate(); err != nil {
		return "", err
	}
	b, err := json.Marshal(a)
	return string(b), err
}

// DecodeAllocation parses and validates an annotation value.
func DecodeAllocation(s string) (*Allocation, error) {
	var a Allocation
	if err := strictUnmarshal(s, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", AllocationAnnotation, err)
	}
	if a.Version != AllocationVersion {
		return nil, fmt.Errorf("%s: version %d is not supported (want %d)", AllocationAnnotation, a.Version, AllocationVersion)
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return &a, nil
}

// Validate checks the allocation's fields and that no container holds one
// card twice.
func (a *Allocation) Validate() error {
	if a.Node == "" {
		return fmt.Errorf("%s.node: must not be empty", AllocationAnnotation)
	}
	if len(a.Containers) == 0 {
		return fmt.Errorf("%s.containers: must not be empty", AllocationAnnotation)
	}
	names := map[string]bool{}
	for i, c := range a.Containers {
		p := fmt.Sprintf("%s.containers[%d]", AllocationAnnotation, i)
		if c.Name == "" || names[c.Name] {
			return fmt.Errorf("%s.name: %q must be a unique, non-empty container name", p, c.Name)
		}
		names[c.Name] = true
		if len(c.Devices) == 0 || len(c.Devices) > MaxCardsPerContainer {
			return fmt.Errorf("%s.devices: %d cards must be in 1..%d", p, len(c.Devices), MaxCardsPerContainer)
		}
		uuids := map[string]bool{}
		for j, s := range c.Devices {
			sp := fmt.Sprintf("%s.devices[%d]", p, j)
			switch {
			case s.UUID == "" || uuids[s.UUID]:
				return fmt.Errorf("%s.uuid: %q must be a card not already listed for this container", sp, s.UUID)
			case s.Index < 0:
				return fmt.Errorf("%s.index: %d must be >= 0", sp, s.Index)
			case s.MemoryMiB <= 0 || s.MemoryMiB > maxMemoryMiB:
				return fmt.Errorf("%s.memoryMiB: %d must be in 1..%d", sp, s.MemoryMiB, maxMemoryMiB)
			case s.Cores < 0 || s.Cores > MaxCores:
				return fmt.Errorf("%s.cores: %d must be in 0..%d", sp, s.Cores, MaxCores)
			case s.NUMA < UnknownNUMA:
				return fmt.Errorf("%s.numa: %d must be >= -1", sp, s.NUMA)
			}
			uuids[s.UUID] = true
		}
	}
	return nil
}

// Container returns the allocation of the named container, or nil.
func (a *Allocation) Container(name string) *ContainerAllocation {
	for i := range a.Containers {
		if a.Containers[i].Name == name {
			return &a.Containers[i]
		}
	}
	return nil
}

// Usage is what a pod, or a set of pods, takes from one card.
type Usage struct {
	MemoryMiB int64
	Cores     int
	Slots     int
	// Exclusive is set when a share asked for the whole card's compute.
	Exclusive bool
}

// Add returns u + o.
func (u Usage) Add(o Usage) Usage {
	return Usage{u.MemoryMiB + o.MemoryMiB, u.Cores + o.Cores, u.Slots + o.Slots, u.Exclusive || o.Exclusive}
}

// Sub returns u - o; Exclusive is cleared when no slot is left.
func (u Usage) Sub(o Usage) Usage {
	r := Usage{u.MemoryMiB - o.MemoryMiB, u.Cores - o.Cores, u.Slots - o.Slots, u.Exclusive}
	if o.Exclusive || r.Slots <= 0 {
		r.Exclusive = false
	}
	return r
}

func (u Usage) max(o Usage) Usage {
	return Usage{max(u.MemoryMiB, o.MemoryMiB), max(u.Cores, o.Cores), max(u.Slots, o.Slots), u.Exclusive || o.Exclusive}
}

// Footprint is what the pod holds on each card (keyed by UUID), accounted as
// kube-scheduler accounts CPU: app containers (and sidecars) add up, and
// each regular init container runs alone before them, so the pod holds the
// larger of the two.
func (a *Allocation) Footprint() map[string]Usage {
	app := map[string]Usage{}
	initPeak := map[string]Usage{}
	for _, c := range a.Containers {
		for _, s := range c.Devices {
			u := Usage{MemoryMiB: s.MemoryMiB, Cores: s.Cores, Slots: 1, Exclusive: s.Exclusive()}
			if c.Init {
				initPeak[s.UUID] = initPeak[s.UUID].max(u)
			} else {
				app[s.UUID] = app[s.UUID].Add(u)
			}
		}
	}
	for id, u := range initPeak {
		app[id] = app[id].max(u)
	}
	return app
}

// PodFootprint reads what a bound pod holds from its allocation annotation.
// ok is false for a pod that holds no cards (not bound, finished, or
// without an allocation).
func PodFootprint(pod *v1.Pod) (node string, fp map[string]Usage, ok bool, err error) {
	raw, has := pod.Annotations[AllocationAnnotation]
	if !has || pod.Spec.NodeName == "" || pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		return "", nil, false, nil
	}
	a, err := DecodeAllocation(raw)
	if err != nil {
		return "", nil, false, err
	}
	return pod.Spec.NodeName, a.Footprint(), true, nil
}
