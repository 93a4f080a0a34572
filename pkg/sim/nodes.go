package sim

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/inventory"
)

// CreateNodes creates the scenario's nodes and publishes each one's
// inventory through the node agent's own publisher, over a fake backend.
func CreateNodes(ctx context.Context, cs kubernetes.Interface, specs []NodeSpec) error {
	for i := range specs {
		spec := &specs[i]
		for _, name := range spec.Names() {
			backend, err := spec.Backend(name)
			if err != nil {
				return err
			}
			devs, _ := backend.Devices(ctx)
			// As the node agent does: the config it advertises to the
			// kubelet is the one it publishes.
			cfg := spec.DeviceConfig.Merge(device.DefaultNodeConfig())
			if _, err := cs.CoreV1().Nodes().Create(ctx, nodeObject(name, spec, devs, cfg.SplitCount), metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("creating node %s: %w", name, err)
			}
			pub := &inventory.Publisher{Client: cs, NodeName: name, Backend: backend, Config: cfg, NRI: true}
			if err := pub.Publish(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// nodeObject is the Node a kubelet with Mosaic's device plugin would
// report: ordinary capacity plus one extended resource per vendor resource
// name, cards x split count, as the device plugin advertises them.
func nodeObject(name string, spec *NodeSpec, devs []device.Device, split int) *v1.Node {
	q := func(p *resource.Quantity, def string) resource.Quantity {
		if p != nil {
			return *p
		}
		return resource.MustParse(def)
	}
	capacity := v1.ResourceList{
		v1.ResourceCPU:    q(spec.CPU, "32"),
		v1.ResourceMemory: q(spec.Memory, "256Gi"),
		v1.ResourcePods:   q(spec.Pods, "110"),
	}
	for _, d := range devs {
		rn := device.ResourceNvidiaGPU
		if d.Vendor == device.VendorAscend {
			rn = v1.ResourceName(device.AscendResourcePrefix + d.Model)
		}
		c := capacity[rn]
		c.Add(*resource.NewQuantity(int64(split), resource.DecimalSI))
		capacity[rn] = c
	}
	labels := map[string]string{v1.LabelHostname: name}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: v1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity.DeepCopy(),
			Conditions:  []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, LastHeartbeatTime: metav1.Now()}},
			Phase:       v1.NodeRunning,
		},
	}
}
