package device

import (
	"fmt"
	"path"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Which container settings take a container out of the enforcer's hold.
// A pod that shares a card (PodRequest.SharesCards) must leave the card to
// Mosaic's enforcer in every one of its containers; the admission webhook
// checks the pod spec as written, and the node agent the container as the
// runtime is about to start it, both with EnforcerOverrides.

// ContainerSettings is what of one container EnforcerOverrides reads.
type ContainerSettings struct {
	Name string
	// Privileged is securityContext.privileged: every device node of the
	// host, and the right to unmount what the node agent mounted.
	Privileged bool
	// AddedCapabilities is securityContext.capabilities.add.
	AddedCapabilities []string
	// Env maps each variable the container sets to its value; a nil value
	// is one the checker cannot see (valueFrom, in a pod spec).
	Env map[string]*string
	// Mounts are the container paths of its own mounts (volumeMounts'
	// mountPath), not those the node agent adds.
	Mounts []string
}

// Environment variables that defeat the enforcer.
const (
	// DisableControlEnv turns off HAMi-core's limits, in images that
	// bundle it and read the HAMi variables the node agent also sets.
	DisableControlEnv = "CUDA_DISABLE_CONTROL"
	// PreloadEnv names libraries the dynamic loader binds before those of
	// /etc/ld.so.preload, so they see every driver call before the
	// enforcer does.
	PreloadEnv = "LD_PRELOAD"
)

// selectionVars are the card-selection variables (selection.go) and their
// values that select no card. Only the node agent chooses a container's
// cards: without NRI, the kubelet lets a pod spec's variable win over the
// device plugin's.
var selectionVars = []struct{ name, none string }{
	{NVIDIAVisibleDevicesEnv, NVIDIANoDevices},
	{AscendVisibleDevicesEnv, ""},
	{AscendVNPUSpecsEnv, ""},
}

// guardedPaths are the container paths the node agent mounts for the
// enforcer, and the NVIDIA device list it selects cards with. A mount at
// or under one replaces or shadows Mosaic's: a limits file or card region
// of the container's own, no enforcer, or cards of its own choosing.
var guardedPaths = []string{PreloadPath, EnforcerPath, RunDir, NVIDIADeviceListRoot}

// maxShownValue bounds how much of a variable's value a reason quotes: the
// value is the tenant's.
const maxShownValue = 64

// EnforcerOverrides says what in a container's settings would take it out
// of the enforcer's hold on a card its pod shares, one phrase per finding
// ("is privileged", "sets LD_PRELOAD"); none when nothing would. selection
// holds the values the node agent sets the card-selection variables to for
// this container, which a container may carry too; the webhook, before the
// scheduler chose any card, passes nil, and only the no-card values pass.
func EnforcerOverrides(s *ContainerSettings, selection map[string]string) []string {
	var found []string
	if s.Privileged {
		found = append(found, "is privileged")
	}
	for _, c := range s.AddedCapabilities {
		switch strings.TrimPrefix(strings.ToUpper(c), "CAP_") {
		case "SYS_ADMIN", "ALL":
			found = append(found, fmt.Sprintf("adds capability %s (it can unmount the enforcer)", c))
		}
	}
	for _, v := range selectionVars {
		val, set := s.Env[v.name]
		switch {
		case !set:
		case val == nil:
			found = append(found, fmt.Sprintf("sets %s from a source (valueFrom)", v.name))
		case *val == v.none:
		default:
			if want, ok := selection[v.name]; ok && *val == want {
				continue
			}
			found = append(found, fmt.Sprintf("sets %s=%s", v.name, quote(*val)))
		}
	}
	for _, name := range []string{DisableControlEnv, PreloadEnv} {
		if _, set := s.Env[name]; set {
			found = append(found, "sets "+name)
		}
	}
	for _, m := range s.Mounts {
		clean := path.Clean(m)
		for _, g := range guardedPaths {
			if clean == g || strings.HasPrefix(clean, g+"/") {
				found = append(found, fmt.Sprintf("mounts %s over Mosaic's %s", quote(m), g))
				break
			}
		}
	}
	return found
}

func quote(s string) string {
	if len(s) > maxShownValue {
		return fmt.Sprintf("%q...", s[:maxShownValue])
	}
	return fmt.Sprintf("%q", s)
}

// OverrideError is the refusal of a container of a pod that shares a card
// for what EnforcerOverrides found in it, worded alike by the webhook and
// the node agent.
func OverrideError(container string, found []string) error {
	return fmt.Errorf("container %s %s, and its pod shares a card: the enforcer could not hold it to its share "+
		"(run it without these, or give the pod whole cards of its own with %s: 100)", container, strings.Join(found, ", "), ResourceNvidiaCores)
}

// SpecSettings reads a container's settings from a pod spec.
func SpecSettings(c *v1.Container) ContainerSettings {
	s := ContainerSettings{Name: c.Name, Env: map[string]*string{}}
	if sc := c.SecurityContext; sc != nil {
		s.Privileged = sc.Privileged != nil && *sc.Privileged
		if sc.Capabilities != nil {
			for _, capability := range sc.Capabilities.Add {
				s.AddedCapabilities = append(s.AddedCapabilities, string(capability))
			}
		}
	}
	// The kubelet gives a name listed twice its last value.
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			s.Env[e.Name] = nil
			continue
		}
		s.Env[e.Name] = &e.Value
	}
	for _, m := range c.VolumeMounts {
		s.Mounts = append(s.Mounts, m.MountPath)
	}
	return s
}

// PodSettings reads the settings of every container of a pod spec: init
// containers, app containers and ephemeral containers, in that order.
func PodSettings(pod *v1.Pod) []ContainerSettings {
	var out []ContainerSettings
	for i := range pod.Spec.InitContainers {
		out = append(out, SpecSettings(&pod.Spec.InitContainers[i]))
	}
	for i := range pod.Spec.Containers {
		out = append(out, SpecSettings(&pod.Spec.Containers[i]))
	}
	for i := range pod.Spec.EphemeralContainers {
		c := v1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		out = append(out, SpecSettings(&c))
	}
	return out
}

// ContainerSpecSettings reads the settings of the pod's container of that
// name, whichever kind it is; ok is false when the spec has none.
func ContainerSpecSettings(pod *v1.Pod, name string) (ContainerSettings, bool) {
	for _, s := range PodSettings(pod) {
		if s.Name == name {
			return s, true
		}
	}
	return ContainerSettings{}, false
}
