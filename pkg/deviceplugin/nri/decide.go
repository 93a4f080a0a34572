// Package nri is the node agent's NRI plugin. At container creation the
// runtime shows it the pod (with the allocation the scheduler wrote) and the
// container; it answers with the container's cards and limits. Knowing the
// pod is what lets many pods start on one node at once, each with exactly
// its own cards: the kubelet's Allocate call carries device IDs but not the
// pod, which is why other device plugins serialize a node or guess.
package nri

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// RequestEnv is set by the device plugin's Allocate on every container that
// asked the kubelet for a Mosaic resource, so the NRI plugin can tell a
// device container whose allocation is missing from a plain container.
const RequestEnv = "MOSAIC_DEVICE_REQUEST"

// containerState is the state directory's subdirectory of per-container
// files.
const containerState = "containers"

// Config is the node agent's side of the decision.
type Config struct {
	NodeName string
	// StateDir is the host directory holding per-container limits files
	// and shared accounting directories.
	StateDir string
	// EnforcerLib is the host path of libmosaic-enforcer.so; empty leaves
	// the enforcer out (devices and env only).
	EnforcerLib string
	CorePolicy  device.CorePolicy
	// AllocationKeys, when set, are the keys one of which must have
	// signed the allocation (mosaic.io/allocation-signature) for this
	// pod: a pod created already bound with a forged, edited or copied
	// allocation gets no cards. Nil accepts every allocation.
	AllocationKeys *device.KeySet
	// ExemptNamespaces are left as they are: their containers keep the
	// cards their image or spec selects. They are for trusted node daemons
	// that need every card (a GPU metrics exporter, a driver validator);
	// every other container without an allocation gets no card.
	ExemptNamespaces []string
	// Buses knows this node's cards' PCI bus IDs, by which a container's
	// NVIDIA cards are ordered. The node agent fills it from discovery;
	// without it a container of several NVIDIA cards is refused.
	Buses Buses
}

// Buses gives the PCI bus ID of one of this node's cards; false when the
// node has no such card or does not know its bus. device.PCIBuses is one.
type Buses interface {
	PCIBus(uuid string) (string, bool)
}

// Pod is what Decide reads of a pod.
type Pod struct {
	UID, Namespace string
	Annotations    map[string]string
}

// Container is what Decide reads of a container the runtime is about to
// create.
type Container struct {
	Name string
	// Env is its environment, from the image and the pod spec, before the
	// adjustment, which the runtime applies over it.
	Env []string
	// Mounts are its mounts, from the runtime's defaults and the pod spec.
	Mounts []Mount
	// Spec is the container as its pod's spec in the API server has it:
	// NRI does not pass a container's security context to plugins, so
	// whether it is privileged is read there. Nil when the agent has not
	// seen the pod: a container of a pod that shares a card is then
	// refused, since nobody could say whether it escapes the enforcer.
	Spec *device.ContainerSettings
}

// Mount is a bind mount from the host into the container.
type Mount struct {
	Host, Container string
	ReadOnly        bool
}

// Decision is what a container gets. Files lists host files the plugin
// must write before the container starts (path -> content).
type Decision struct {
	Env    map[string]string
	Mounts []Mount
	// RemoveMounts lists container paths of mounts to take away.
	RemoveMounts []string
	Files        map[string]string
	// Dirs lists host directories to create.
	Dirs []string
	// Unverified, when set, says why the container gets none of the
	// cards its pod's allocation lists: the allocation failed the
	// signature check. The agent reports it as an Event on the pod.
	Unverified error
}

// Decide works out a container's adjustment from its pod's annotations.
// A container the pod's allocation lists gets exactly its cards; any other
// (a pod without an allocation, an unlisted sidecar, a kubectl debug
// container) gets none, whatever its image or spec selects, and so does
// every container of a pod whose allocation fails the signature check
// (Decision.Unverified says why). Decide returns nil only for containers
// of ExemptNamespaces, and an error, which fails the container's creation
// with a message on the pod, when the allocation is missing or does not
// match this node or container, or when the pod shares a card and the
// container's settings would take it out of the enforcer's hold
// (checkOverrides).
func Decide(cfg *Config, pod Pod, ctr Container) (*Decision, error) {
	requested := false
	for _, e := range ctr.Env {
		if strings.HasPrefix(e, RequestEnv+"=") {
			requested = true
		}
	}
	raw, ok := pod.Annotations[device.AllocationAnnotation]
	if !ok {
		if requested {
			return nil, fmt.Errorf("container %s asks for devices but the pod has no %s annotation: schedule it with mosaic-scheduler", ctr.Name, device.AllocationAnnotation)
		}
		return cfg.noCards(pod, ctr), nil
	}
	if cfg.AllocationKeys != nil {
		if err := cfg.AllocationKeys.Verify(pod.UID, raw, pod.Annotations[device.SignatureAnnotation]); err != nil {
			// Fail closed, in exempt namespaces too: the container
			// starts with no card, and the pod is told why.
			d := &Decision{Env: map[string]string{}, Unverified: err}
			d.withhold(device.VendorNVIDIA, ctr)
			d.withhold(device.VendorAscend, ctr)
			return d, nil
		}
	}
	alloc, err := device.DecodeAllocation(raw)
	if err != nil {
		return nil, fmt.Errorf("pod allocation is unreadable: %w", err)
	}
	if alloc.Node != cfg.NodeName {
		return nil, fmt.Errorf("pod allocation is for node %s, not this node %s", alloc.Node, cfg.NodeName)
	}
	var d *Decision
	if c := alloc.Container(ctr.Name); c != nil {
		if d, err = decide(cfg, pod.UID, c, ctr); err != nil {
			return nil, err
		}
	} else if requested {
		return nil, fmt.Errorf("container %s asks for devices but the pod's allocation lists none for it", ctr.Name)
	} else if d = cfg.noCards(pod, ctr); d == nil {
		return nil, nil
	}
	if alloc.SharesCards() && !slices.Contains(cfg.ExemptNamespaces, pod.Namespace) {
		if err := d.checkOverrides(ctr); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// checkOverrides refuses a container of a pod that shares a card when its
// settings would take it out of the enforcer's hold: as its pod's spec
// writes them (what the webhook checks, which can be bypassed) and as the
// runtime is about to start it, with the image's environment and the
// decision applied (the runtime lets the decision's variables and mounts
// win; what the decision leaves alone is the container's).
func (d *Decision) checkOverrides(ctr Container) error {
	if ctr.Spec == nil {
		return fmt.Errorf("container %s: its pod shares a card and the node agent has not seen the pod's spec, so cannot tell whether the container is privileged; the kubelet retries", ctr.Name)
	}
	found := device.EnforcerOverrides(ctr.Spec, d.Env)
	started := device.ContainerSettings{Name: ctr.Name, Env: map[string]*string{}}
	for _, kv := range ctr.Env {
		k, v, _ := strings.Cut(kv, "=")
		started.Env[k] = &v
	}
	for k, v := range d.Env {
		started.Env[k] = &v
	}
	for _, m := range ctr.Mounts {
		// The runtime replaces a mount at the path of one of the
		// decision's (as the decision's own, in the spec the kubelet
		// reuses to restart a container admitted while NRI was down).
		replaced := slices.ContainsFunc(d.Mounts, func(o Mount) bool { return o.Container == m.Container })
		if !replaced && !slices.Contains(d.RemoveMounts, m.Container) {
			started.Mounts = append(started.Mounts, m.Container)
		}
	}
	for _, f := range device.EnforcerOverrides(&started, d.Env) {
		if !slices.Contains(found, f) {
			found = append(found, f)
		}
	}
	if len(found) > 0 {
		return device.OverrideError(ctr.Name, found)
	}
	return nil
}

// noCards is the decision for a container without an allocation.
func (cfg *Config) noCards(pod Pod, ctr Container) *Decision {
	if slices.Contains(cfg.ExemptNamespaces, pod.Namespace) {
		return nil
	}
	d := &Decision{Env: map[string]string{}}
	d.withhold(device.VendorNVIDIA, ctr)
	d.withhold(device.VendorAscend, ctr)
	return d
}

// withhold makes a vendor's container runtime give the container none of
// that vendor's cards. The variables are set to their no-card values
// rather than removed: NRI (0.12) does not pass an environment removal on
// to the runtime, and an unset NVIDIA_VISIBLE_DEVICES can mean all cards.
func (d *Decision) withhold(v device.Vendor, ctr Container) {
	switch v {
	case device.VendorNVIDIA:
		d.Env[device.NVIDIAVisibleDevicesEnv] = device.NVIDIANoDevices
		d.removeDeviceList(ctr)
	case device.VendorAscend:
		d.Env[device.AscendVisibleDevicesEnv] = ""
		d.Env[device.AscendRTVisibleDevicesEnv] = ""
	}
}

// removeDeviceList takes away the container's mounts under the NVIDIA
// device-list root other than the decision's own, so that only the node
// agent selects GPUs through them.
func (d *Decision) removeDeviceList(ctr Container) {
	own := map[string]bool{}
	for _, m := range d.Mounts {
		own[m.Container] = true
	}
	// The toolkit matches cleaned paths; the runtime removes by the
	// path as written.
	root := device.NVIDIADeviceListRoot
	for _, m := range ctr.Mounts {
		clean := filepath.Clean(m.Container)
		if (clean == root || strings.HasPrefix(clean, root+"/")) && !own[clean] {
			d.RemoveMounts = append(d.RemoveMounts, m.Container)
		}
	}
}

func decide(cfg *Config, podUID string, c *device.ContainerAllocation, ctr Container) (*Decision, error) {
	if podUID == "" || strings.ContainsAny(podUID, "/.") || strings.ContainsAny(c.Name, "/") {
		return nil, fmt.Errorf("pod UID %q or container name %q cannot name a state directory", podUID, c.Name)
	}
	d := &Decision{Env: map[string]string{}, Files: map[string]string{}}
	vendor := c.Devices[0].Vendor
	for i, s := range c.Devices {
		if s.Vendor != vendor {
			return nil, fmt.Errorf("container %s is allocated cards of two vendors", c.Name)
		}
		// A UUID becomes an element of a comma-separated list and a
		// mount path under the device-list root.
		if !fs.ValidPath(s.UUID) || strings.ContainsAny(s.UUID, ", \t\n") {
			return nil, fmt.Errorf("container %s: devices[%d].uuid %q must not contain commas, spaces or . and .. path elements", c.Name, i, s.UUID)
		}
	}
	switch vendor {
	case device.VendorNVIDIA:
		if err := d.nvidia(cfg, podUID, c); err != nil {
			return nil, err
		}
		d.removeDeviceList(ctr)
		d.withhold(device.VendorAscend, ctr)
	case device.VendorAscend:
		d.ascend(c)
		d.withhold(device.VendorNVIDIA, ctr)
	default:
		return nil, fmt.Errorf("container %s: unknown vendor %q", c.Name, vendor)
	}
	return d, nil
}

func (d *Decision) nvidia(cfg *Config, podUID string, alloc *device.ContainerAllocation) error {
	// The container's CUDA ordinals are its cards in PCI bus order, and
	// every per-card list below follows that order, not the allocation's.
	var bus func(string) (string, bool)
	if cfg.Buses != nil {
		bus = cfg.Buses.PCIBus
	}
	ordered, err := device.InBusOrder(alloc.Devices, bus)
	if err != nil {
		return fmt.Errorf("container %s: %w", alloc.Name, err)
	}
	c := *alloc
	c.Devices = ordered
	uuids := make([]string, len(c.Devices))
	cores := 0
	for i, s := range c.Devices {
		uuids[i] = s.UUID
		// HAMi's variables, for images built against HAMi-core: index i
		// is CUDA ordinal i.
		d.Env["CUDA_DEVICE_MEMORY_LIMIT_"+strconv.Itoa(i)] = strconv.FormatInt(s.MemoryMiB, 10) + "m"
		cores = max(cores, s.Cores)
	}
	d.Env[device.CUDADeviceOrderEnv] = device.CUDADeviceOrderPCIBus
	// The NVIDIA container toolkit reads this; the UUIDs are listed in the
	// CUDA ordinal order the limits file uses. The /dev/null mounts say
	// the same to a toolkit that takes only those from unprivileged
	// containers (docs/security.md).
	d.Env[device.NVIDIAVisibleDevicesEnv] = strings.Join(uuids, ",")
	for _, u := range uuids {
		d.Mounts = append(d.Mounts, Mount{Host: device.NVIDIADeviceListSource, Container: path.Join(device.NVIDIADeviceListRoot, u), ReadOnly: true})
	}
	if cores > 0 && cores < device.MaxCores {
		d.Env["CUDA_DEVICE_SM_LIMIT"] = strconv.Itoa(cores)
	}
	if cfg.CorePolicy != "" {
		d.Env["GPU_CORE_UTILIZATION_POLICY"] = string(cfg.CorePolicy)
	}
	if cfg.EnforcerLib == "" {
		return nil
	}
	dir := filepath.Join(cfg.StateDir, containerState, podUID, c.Name)
	// A limits file that cannot be written refuses the container: an
	// empty one would leave the enforcer to fail closed with no word why.
	limits, err := device.EncodeLimits(device.ContainerLimits(&c, cfg.CorePolicy))
	if err != nil {
		return fmt.Errorf("container %s: %w", c.Name, err)
	}
	d.Files[filepath.Join(dir, "limits.conf")] = limits
	d.Files[filepath.Join(cfg.StateDir, "ld.so.preload")] = device.EnforcerPath + "\n"
	d.Dirs = append(d.Dirs, filepath.Join(dir, "shared"))
	// The enforcer's directory is read-only: the container can neither
	// replace its limits nor leave files there for the enforcer to read.
	// Only the accounting directory and the card regions, mounted on
	// directories made for them inside it, are writable. Parents come
	// before children, as the runtime mounts them in order.
	d.Mounts = append(d.Mounts,
		Mount{Host: dir, Container: device.RunDir, ReadOnly: true},
		Mount{Host: filepath.Join(dir, "shared"), Container: device.SharedDir})
	// Every container holding a share of a card takes turns on it in the
	// card's region: one directory per card, shared by those containers.
	for _, u := range uuids {
		host := filepath.Join(CardRegionsDir(cfg.StateDir), u)
		d.Dirs = append(d.Dirs, host, filepath.Join(dir, "cards", u))
		d.Mounts = append(d.Mounts, Mount{Host: host, Container: path.Join(device.CardRegionDir, u)})
	}
	d.Mounts = append(d.Mounts,
		Mount{Host: cfg.EnforcerLib, Container: device.EnforcerPath, ReadOnly: true},
		// ld.so.preload rather than LD_PRELOAD: a container cannot unset it.
		Mount{Host: filepath.Join(cfg.StateDir, "ld.so.preload"), Container: device.PreloadPath, ReadOnly: true},
	)
	return nil
}

func (d *Decision) ascend(c *device.ContainerAllocation) {
	ids := make([]string, len(c.Devices))
	for i, s := range c.Devices {
		ids[i] = strconv.Itoa(s.Index)
	}
	// Ascend's container runtime reads these; a vNPU is carved from the
	// card by template at container start.
	d.Env[device.AscendVisibleDevicesEnv] = strings.Join(ids, ",")
	if t := c.Devices[0].Template; t != "" && len(c.Devices) == 1 {
		d.Env[device.AscendVNPUSpecsEnv] = t
	}
}

// CardRegionsDir is where the cards' regions live on the host: one
// directory per card UUID, each mounted into the containers holding it.
func CardRegionsDir(stateDir string) string { return filepath.Join(stateDir, "cards") }

// ContainerStateDir is where a container's files live on the host.
func ContainerStateDir(stateDir, podUID string) string {
	return filepath.Join(stateDir, containerState, podUID)
}
