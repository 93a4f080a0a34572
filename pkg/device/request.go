package device

import (
	"fmt"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// ContainerRequest is what one container asks for. Memory and cores are
// per card.
type ContainerRequest struct {
	Name string `json:"name"`
	// Init marks a regular init container: it runs alone, before the app
	// containers, so its share can overlap theirs.
	Init   bool   `json:"init,omitempty"`
	Vendor Vendor `json:"vendor"`
	// Model restricts the cards to one model (Ascend requests name one).
	Model string `json:"model,omitempty"`
	// Count is the number of distinct cards, one share on each.
	Count int `json:"count"`
	// MemoryMiB per card; 0 with MemoryPercent 0 means the whole card.
	MemoryMiB     int64 `json:"memoryMiB,omitempty"`
	MemoryPercent int   `json:"memoryPercent,omitempty"`
	// Cores is the percent of one card's compute; 100 is an exclusive card.
	Cores int `json:"cores,omitempty"`
	// Template is the Ascend vNPU template the request was rounded up to.
	Template string `json:"template,omitempty"`
}

// MemoryOn is the memory the request takes on card d.
func (r *ContainerRequest) MemoryOn(d *Device) int64 {
	switch {
	case r.MemoryMiB > 0:
		return r.MemoryMiB
	case r.MemoryPercent > 0:
		return d.MemoryMiB * int64(r.MemoryPercent) / 100
	default:
		return d.MemoryMiB
	}
}

// Exclusive reports whether the request needs cards nobody else uses.
func (r *ContainerRequest) Exclusive() bool { return r.Cores >= MaxCores }

// PodRequest is a pod's device request and its placement preferences.
type PodRequest struct {
	// Containers lists only the containers that ask for devices, init
	// containers first, in pod order.
	Containers []ContainerRequest
	Selector   Selector
	// NUMABind asks for all cards of a container on one NUMA node.
	NUMABind   bool
	NodePolicy Policy
	GPUPolicy  Policy
	// Topology is how closely each multi-card container's cards must be
	// linked; "" is TopologyBestEffort.
	Topology TopologyPolicy
}

// SharesCards reports whether the pod asks for a share of a card that
// other pods may hold at the same time, so that the enforcer's limits, not
// the scheduler alone, keep its containers and theirs apart. Every request
// shares but an exclusive one (cores 100: nvidia.com/gpucores: 100, or
// whole Ascend cards): a request naming only nvidia.com/gpu takes the
// card's memory but not its compute, and where a node over-commits memory
// (memoryScaling) others fit beside it. The allocation of such a pod says
// the same (Allocation.SharesCards).
func (req *PodRequest) SharesCards() bool {
	for i := range req.Containers {
		if !req.Containers[i].Exclusive() {
			return true
		}
	}
	return false
}

// Selector restricts which cards a pod may use. Types match the card model
// as case-insensitive substrings; UUIDs match exactly.
type Selector struct {
	UseTypes, NoUseTypes []string
	UseUUIDs, NoUseUUIDs []string
}

// Policy chooses between nodes or cards: pack work together or spread it.
type Policy string

const (
	PolicyBinpack Policy = "binpack"
	PolicySpread  Policy = "spread"
)

// ParsePolicy accepts binpack or spread.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(strings.ToLower(strings.TrimSpace(s))); p {
	case PolicyBinpack, PolicySpread:
		return p, nil
	}
	return "", fmt.Errorf("%q is not one of binpack, spread", s)
}

// TopologyPolicy says how the cards of a multi-card container must be
// linked to each other.
type TopologyPolicy string

const (
	// TopologyBestEffort, the default, takes the best-linked set of
	// fitting cards the node offers: all linked by NVLink (or HCCS), then
	// all under one PCIe switch, then on one NUMA node, then any.
	TopologyBestEffort TopologyPolicy = "best-effort"
	// TopologyNVLink requires every pair of the container's cards to be
	// linked by NVLink (HCCS on Ascend); a node without such a set does
	// not fit.
	TopologyNVLink TopologyPolicy = "nvlink"
)

// ParseTopologyPolicy accepts best-effort or nvlink.
func ParseTopologyPolicy(s string) (TopologyPolicy, error) {
	switch t := TopologyPolicy(strings.ToLower(strings.TrimSpace(s))); t {
	case TopologyBestEffort, TopologyNVLink:
		return t, nil
	}
	return "", fmt.Errorf("%q is not one of %s, %s", s, TopologyBestEffort, TopologyNVLink)
}

// ParseOptions carries the scheduler's defaults that a request refers to.
type ParseOptions struct {
	// DefaultMemoryMiB applies when a container names neither gpumem nor
	// gpumem-percentage; 0 means the whole card.
	DefaultMemoryMiB int64
	// DefaultCores applies when a container does not name gpucores.
	DefaultCores int
	AscendModels []AscendModel
}

// Request limits.
const (
	// MaxCardsPerContainer is the enforcer's MOSAIC_MAX_CARDS: the
	// ordinals of the limits file and the accounting file's per-card
	// counters have that many places (accounting_test.go checks the C
	// header). No node holds more cards today.
	MaxCardsPerContainer = 16
	MaxCores             = 100
	MaxMemoryPercent     = 100
)

// ParsePodRequest reads a pod's device request. It returns (nil, nil) for a
// pod that asks for no devices. Errors name the container, the resource and
// the limit it broke.
func ParsePodRequest(pod *v1.Pod, opts ParseOptions) (*PodRequest, error) {
	req := &PodRequest{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		// A restartable init container is a sidecar: it runs beside the app
		// containers and is accounted with them.
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
		if err := req.addContainer(c, !sidecar, opts); err != nil {
			return nil, err
		}
	}
	for i := range pod.Spec.Containers {
		if err := req.addContainer(&pod.Spec.Containers[i], false, opts); err != nil {
			return nil, err
		}
	}
	if len(req.Containers) == 0 {
		return nil, nil
	}
	if err := req.parseAnnotations(pod.Annotations); err != nil {
		return nil, err
	}
	return req, nil
}

func (req *PodRequest) addContainer(c *v1.Container, init bool, opts ParseOptions) error {
	path := "container " + c.Name
	res := containerResources(c)
	nv, err := parseNvidia(path, res, opts)
	if err != nil {
		return err
	}
	as, err := parseAscend(path, res, opts)
	if err != nil {
		return err
	}
	if nv != nil && as != nil {
		return fmt.Errorf("%s: asks for both %s and %s%s; one container may use one device family", path, ResourceNvidiaGPU, AscendResourcePrefix, as.Model)
	}
	r := nv
	if as != nil {
		r = as
	}
	if r == nil {
		return nil
	}
	r.Name, r.Init = c.Name, init
	req.Containers = append(req.Containers, *r)
	return nil
}

// containerResources merges limits over requests: extended resources must
// have equal requests and limits, and HAMi users often write only limits.
func containerResources(c *v1.Container) v1.ResourceList {
	out := v1.ResourceList{}
	for k, v := range c.Resources.Requests {
		out[k] = v
	}
	for k, v := range c.Resources.Limits {
		out[k] = v
	}
	return out
}

func intValue(path string, name v1.ResourceName, q resource.Quantity, lo, hi int64) (int64, error) {
	v, ok := q.AsInt64()
	if !ok || v < lo || v > hi {
		return 0, fmt.Errorf("%s: %s=%s must be an integer in %d..%d", path, name, q.String(), lo, hi)
	}
	return v, nil
}

func parseNvidia(path string, res v1.ResourceList, opts ParseOptions) (*ContainerRequest, error) {
	gpu, hasGPU := res[ResourceNvidiaGPU]
	mem, hasMem := res[ResourceNvidiaMem]
	pct, hasPct := res[ResourceNvidiaMemPercentage]
	cores, hasCores := res[ResourceNvidiaCores]
	if !hasGPU || gpu.IsZero() {
		for name, has := range map[v1.ResourceName]bool{ResourceNvidiaMem: hasMem, ResourceNvidiaMemPercentage: hasPct, ResourceNvidiaCores: hasCores} {
			if has {
				return nil, fmt.Errorf("%s: %s needs %s (the number of cards) in the same container", path, name, ResourceNvidiaGPU)
			}
		}
		return nil, nil
	}
	r := &ContainerRequest{Vendor: VendorNVIDIA, Cores: opts.DefaultCores}
	n, err := intValue(path, ResourceNvidiaGPU, gpu, 1, MaxCardsPerContainer)
	if err != nil {
		return nil, err
	}
	r.Count = int(n)
	if hasMem && hasPct {
		return nil, fmt.Errorf("%s: set %s or %s, not both", path, ResourceNvidiaMem, ResourceNvidiaMemPercentage)
	}
	if hasMem {
		if r.MemoryMiB, err = intValue(path, ResourceNvidiaMem, mem, 1, maxMemoryMiB); err != nil {
			return nil, err
		}
	} else if hasPct {
		p, err := intValue(path, ResourceNvidiaMemPercentage, pct, 1, MaxMemoryPercent)
		if err != nil {
			return nil, err
		}
		r.MemoryPercent = int(p)
	} else {
		r.MemoryMiB = opts.DefaultMemoryMiB
	}
	if hasCores {
		c, err := intValue(path, ResourceNvidiaCores, cores, 0, MaxCores)
		if err != nil {
			return nil, err
		}
		r.Cores = int(c)
	}
	return r, nil
}

func parseAscend(path string, res v1.ResourceList, opts ParseOptions) (*ContainerRequest, error) {
	var model string
	for name := range res {
		s := string(name)
		if !strings.HasPrefix(s, AscendResourcePrefix) || strings.HasSuffix(s, AscendMemorySuffix) {
			continue
		}
		if model != "" {
			return nil, fmt.Errorf("%s: asks for two Ascend models (%s and %s); one container may use one model", path, model, strings.TrimPrefix(s, AscendResourcePrefix))
		}
		model = strings.TrimPrefix(s, AscendResourcePrefix)
	}
	for name := range res {
		s := string(name)
		if strings.HasPrefix(s, AscendResourcePrefix) && strings.HasSuffix(s, AscendMemorySuffix) &&
			s != AscendResourcePrefix+model+AscendMemorySuffix {
			return nil, fmt.Errorf("%s: %s needs %s in the same container", path, s, strings.TrimSuffix(s, AscendMemorySuffix))
		}
	}
	if model == "" {
		return nil, nil
	}
	name := v1.ResourceName(AscendResourcePrefix + model)
	var m *AscendModel
	known := make([]string, 0, len(opts.AscendModels))
	for i := range opts.AscendModels {
		known = append(known, opts.AscendModels[i].Name)
		if opts.AscendModels[i].Name == model {
			m = &opts.AscendModels[i]
		}
	}
	if m == nil {
		return nil, fmt.Errorf("%s: %s names an unknown Ascend model (known: %s)", path, name, strings.Join(known, ", "))
	}
	n, err := intValue(path, name, res[name], 1, MaxCardsPerContainer)
	if err != nil {
		return nil, err
	}
	r := &ContainerRequest{Vendor: VendorAscend, Model: model, Count: int(n), Cores: 100}
	memName := v1.ResourceName(string(name) + AscendMemorySuffix)
	q, hasMem := res[memName]
	if !hasMem {
		return r, nil // whole cards
	}
	mem, err := intValue(path, memName, q, 1, m.MemoryMiB)
	if err != nil {
		return nil, err
	}
	if n > 1 {
		// Several cards are always whole cards: vNPUs do not span cards.
		return r, nil
	}
	if t, ok := m.fit(mem); ok && t.MemoryMiB < m.MemoryMiB {
		r.MemoryMiB, r.Template = t.MemoryMiB, t.Name
		r.Cores = (t.AICore*100 + m.AICore - 1) / m.AICore
	}
	return r, nil
}

func (req *PodRequest) parseAnnotations(ann map[string]string) error {
	var err error
	if v, ok := annotation(ann, NodePolicyAnnotation, HAMiNodePolicyAnnotation); ok {
		if req.NodePolicy, err = ParsePolicy(v); err != nil {
			return fmt.Errorf("annotation %s: %w", NodePolicyAnnotation, err)
		}
	}
	if v, ok := annotation(ann, GPUPolicyAnnotation, HAMiGPUPolicyAnnotation); ok {
		if req.GPUPolicy, err = ParsePolicy(v); err != nil {
			return fmt.Errorf("annotation %s: %w", GPUPolicyAnnotation, err)
		}
	}
	if v, ok := annotation(ann, NUMABindAnnotation, HAMiNUMABindAnnotation); ok {
		if req.NUMABind, err = strconv.ParseBool(strings.TrimSpace(v)); err != nil {
			return fmt.Errorf("annotation %s: %q is not true or false", NUMABindAnnotation, v)
		}
	}
	if v, ok := ann[GPUTopologyAnnotation]; ok {
		if req.Topology, err = ParseTopologyPolicy(v); err != nil {
			return fmt.Errorf("annotation %s: %w", GPUTopologyAnnotation, err)
		}
	}
	req.Selector.UseTypes = list(ann, UseTypeAnnotation, HAMiUseTypeAnnotation)
	req.Selector.NoUseTypes = list(ann, NoUseTypeAnnotation, HAMiNoUseTypeAnnotation)
	req.Selector.UseUUIDs = list(ann, UseUUIDAnnotation, HAMiUseUUIDAnnotation)
	req.Selector.NoUseUUIDs = list(ann, NoUseUUIDAnnotation, HAMiNoUseUUIDAnnotation)
	return nil
}

func list(ann map[string]string, keys ...string) []string {
	v, ok := annotation(ann, keys...)
	if !ok {
		return nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Allows reports whether the selector lets the pod use card d. The
// scheduler asks it of every card of every node for every pod, so it
// allocates nothing.
func (s *Selector) Allows(d *Device) bool {
	if len(s.UseTypes) == 0 && len(s.NoUseTypes) == 0 && len(s.UseUUIDs) == 0 && len(s.NoUseUUIDs) == 0 {
		return true
	}
	match := func(types []string) bool {
		for _, t := range types {
			if containsFold(d.Model, t) {
				return true
			}
		}
		return false
	}
	has := func(uuids []string) bool {
		for _, u := range uuids {
			if u == d.UUID {
				return true
			}
		}
		return false
	}
	if len(s.UseTypes) > 0 && !match(s.UseTypes) {
		return false
	}
	if len(s.UseUUIDs) > 0 && !has(s.UseUUIDs) {
		return false
	}
	return !match(s.NoUseTypes) && !has(s.NoUseUUIDs)
}

// containsFold reports whether sub is within s, ignoring case as
// strings.EqualFold does.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
