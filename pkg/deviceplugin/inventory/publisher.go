// Package inventory publishes a node's cards and sharing config on its Node
// object, in the protocol package's encoding, for the scheduler to read.
package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
)

// Publisher writes one node's inventory annotation.
type Publisher struct {
	Client   kubernetes.Interface
	NodeName string
	Backend  discovery.Backend
	Config   device.NodeConfig
	// NRI says the node agent hands out cards at container creation.
	NRI  bool
	last string
}

// Publish discovers the cards and patches the annotation when it changed.
func (p *Publisher) Publish(ctx context.Context) error {
	devs, err := p.Backend.Devices(ctx)
	if err != nil {
		return fmt.Errorf("discovering devices with %s: %w", p.Backend.Name(), err)
	}
	return p.PublishDevices(ctx, devs)
}

// PublishDevices patches the annotation with devs when it changed.
func (p *Publisher) PublishDevices(ctx context.Context, devs []device.Device) error {
	raw, err := device.EncodeInventory(&device.Inventory{Devices: devs, Config: p.Config, NRI: p.NRI})
	if err != nil {
		return err
	}
	if raw == p.last {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{device.InventoryAnnotation: raw}}})
	if err != nil {
		return err
	}
	if _, err := p.Client.CoreV1().Nodes().Patch(ctx, p.NodeName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("publishing inventory of node %s: %w", p.NodeName, err)
	}
	p.last = raw
	klog.FromContext(ctx).V(2).Info("Published device inventory", "node", p.NodeName, "devices", len(devs))
	return nil
}

// Run publishes now and then every interval until ctx ends, logging
// failures and retrying rather than exiting.
func (p *Publisher) Run(ctx context.Context, interval time.Duration) {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := p.Publish(ctx); err != nil {
			klog.FromContext(ctx).Error(err, "Publishing device inventory")
		}
	}, interval)
}
