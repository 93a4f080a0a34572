// Package sim runs a scenario (nodes with cards, then pods created and
// deleted in order) through the real Mosaic scheduler on a real in-process
// API server, and reports where every pod landed.
package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
)

// Scenario is a simulator input file.
type Scenario struct {
	Nodes []NodeSpec `json:"nodes"`
	// PodGroups are gangs: PodGroup objects whose pods, naming them in
	// spec.schedulingGroup.podGroupName, are placed all or none.
	PodGroups []PodGroupSpec `json:"podGroups,omitempty"`
	// Steps are the pods to create and the deletions, in order.
	Steps []Step `json:"-"`
}

// PodGroupSpec is a scheduling.k8s.io PodGroup with a gang policy: none
// of its pods binds until MinCount of them have their place.
type PodGroupSpec struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	MinCount  int32  `json:"minCount"`
}

// Key is the group's namespace/name.
func (g *PodGroupSpec) Key() string { return g.Namespace + "/" + g.Name }

// group returns the key of the PodGroup pod belongs to, or "".
func group(pod *v1.Pod) string {
	if g := pod.Spec.SchedulingGroup; g != nil && g.PodGroupName != nil {
		return pod.Namespace + "/" + *g.PodGroupName
	}
	return ""
}

// NodeSpec describes Count identical nodes.
type NodeSpec struct {
	Name   string               `json:"name"`
	Count  int                  `json:"count,omitempty"`
	Labels map[string]string    `json:"labels,omitempty"`
	GPUs   []discovery.CardSpec `json:"gpus,omitempty"`
	// Topology links the cards (by index across gpus) by NVLink, HCCS
	// or PCIe switches.
	Topology     *discovery.FakeTopology `json:"topology,omitempty"`
	DeviceConfig device.NodeConfig       `json:"deviceConfig,omitempty"`
	CPU          *resource.Quantity      `json:"cpu,omitempty"`
	Memory       *resource.Quantity      `json:"memory,omitempty"`
	Pods         *resource.Quantity      `json:"pods,omitempty"`
}

// Step creates Pod or deletes the pod named by Delete (namespace/name).
type Step struct {
	Pod    *v1.Pod
	Delete string
}

type rawScenario struct {
	Nodes     []NodeSpec        `json:"nodes"`
	PodGroups []PodGroupSpec    `json:"podGroups"`
	Pods      []json.RawMessage `json:"pods"`
}

// Load reads and checks a scenario file.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Parse decodes a scenario strictly: an unknown field, a malformed pod or a
// duplicate name is an error naming the entry and field.
func Parse(b []byte) (*Scenario, error) {
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, err
	}
	var raw rawScenario
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	s := &Scenario{Nodes: raw.Nodes}
	if len(s.Nodes) == 0 {
		return nil, fmt.Errorf("nodes: at least one node is needed")
	}
	names := map[string]bool{}
	for i := range s.Nodes {
		if err := s.Nodes[i].check(fmt.Sprintf("nodes[%d]", i)); err != nil {
			return nil, err
		}
		for _, n := range s.Nodes[i].Names() {
			if names[n] {
				return nil, fmt.Errorf("nodes[%d]: node name %q is used twice", i, n)
			}
			names[n] = true
		}
	}
	groups := map[string]bool{}
	for i := range raw.PodGroups {
		g := &raw.PodGroups[i]
		path := fmt.Sprintf("podGroups[%d]", i)
		if g.Namespace == "" {
			g.Namespace = "default"
		}
		if errs := validation.IsDNS1123Subdomain(g.Name); len(errs) > 0 {
			return nil, fmt.Errorf("%s.name: %q %s", path, g.Name, strings.Join(errs, "; "))
		}
		if g.MinCount < 1 || g.MinCount > 10000 {
			return nil, fmt.Errorf("%s.minCount: %d must be in 1..10000", path, g.MinCount)
		}
		if groups[g.Key()] {
			return nil, fmt.Errorf("%s: pod group %s is listed twice", path, g.Key())
		}
		groups[g.Key()] = true
	}
	s.PodGroups = raw.PodGroups
	pods := map[string]bool{}
	for i, r := range raw.Pods {
		st, err := parseStep(fmt.Sprintf("pods[%d]", i), r)
		if err != nil {
			return nil, err
		}
		if st.Pod != nil {
			if g := group(st.Pod); g != "" && !groups[g] {
				return nil, fmt.Errorf("pods[%d].spec.schedulingGroup.podGroupName: %q names no podGroups entry in namespace %s", i, *st.Pod.Spec.SchedulingGroup.PodGroupName, st.Pod.Namespace)
			}
			key := st.Pod.Namespace + "/" + st.Pod.Name
			if pods[key] {
				return nil, fmt.Errorf("pods[%d]: pod %s is created twice without a delete between", i, key)
			}
			pods[key] = true
		} else {
			if !pods[st.Delete] {
				return nil, fmt.Errorf("pods[%d].delete: %q names no pod created before it", i, st.Delete)
			}
			delete(pods, st.Delete)
		}
		s.Steps = append(s.Steps, st)
	}
	return s, nil
}

func parseStep(path string, r json.RawMessage) (Step, error) {
	var del struct {
		Delete string `json:"delete"`
	}
	if err := json.Unmarshal(r, &del); err == nil && del.Delete != "" {
		var m map[string]any
		_ = json.Unmarshal(r, &m)
		if len(m) != 1 {
			return Step{}, fmt.Errorf("%s: a delete entry holds only delete: NAMESPACE/NAME", path)
		}
		ns, name, ok := strings.Cut(del.Delete, "/")
		if !ok || ns == "" || name == "" {
			return Step{}, fmt.Errorf("%s.delete: %q must be NAMESPACE/NAME", path, del.Delete)
		}
		return Step{Delete: del.Delete}, nil
	}
	pod := &v1.Pod{}
	dec := json.NewDecoder(bytes.NewReader(r))
	dec.DisallowUnknownFields()
	if err := dec.Decode(pod); err != nil {
		return Step{}, fmt.Errorf("%s: not a Pod: %w", path, err)
	}
	if pod.Kind != "" && pod.Kind != "Pod" {
		return Step{}, fmt.Errorf("%s.kind: %q must be Pod", path, pod.Kind)
	}
	if pod.Name == "" {
		return Step{}, fmt.Errorf("%s.metadata.name: must be set", path)
	}
	if pod.Namespace == "" {
		pod.Namespace = "default"
	}
	if len(pod.Spec.Containers) == 0 {
		return Step{}, fmt.Errorf("%s.spec.containers: at least one container is needed", path)
	}
	return Step{Pod: pod}, nil
}

func (n *NodeSpec) check(path string) error {
	if errs := validation.IsDNS1123Subdomain(n.Name); len(errs) > 0 {
		return fmt.Errorf("%s.name: %q %s", path, n.Name, strings.Join(errs, "; "))
	}
	if n.Count < 0 || n.Count > 10000 {
		return fmt.Errorf("%s.count: %d must be in 1..10000", path, n.Count)
	}
	if err := n.DeviceConfig.Validate(path + ".deviceConfig"); err != nil {
		return err
	}
	for i, g := range n.GPUs {
		gp := fmt.Sprintf("%s.gpus[%d]", path, i)
		if g.Vendor != device.VendorNVIDIA && g.Vendor != device.VendorAscend {
			return fmt.Errorf("%s.vendor: %q must be NVIDIA or Ascend", gp, g.Vendor)
		}
	}
	if _, err := n.Backend(n.Names()[0]); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Backend is the fake backend of the node called name: its cards,
// linked as the topology says.
func (n *NodeSpec) Backend(name string) (*discovery.Fake, error) {
	f, err := discovery.NewFake(name, n.GPUs)
	if err != nil {
		return nil, err
	}
	if err := f.Connect(n.Topology); err != nil {
		return nil, err
	}
	return f, nil
}

// Names lists the node names: name, or name-0..name-(count-1).
func (n *NodeSpec) Names() []string {
	if n.Count <= 1 {
		return []string{n.Name}
	}
	out := make([]string, n.Count)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", n.Name, i)
	}
	return out
}
