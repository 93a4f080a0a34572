// Package kubelet serves the kubelet device plugin API (v1beta1) for one
// resource name. It holds no driver code: it serves the cards a discovery
// backend reported, split into one kubelet device per share, so that the
// kubelet's accounting (capacity, health, NUMA hints) matches the
// scheduler's. Which card a container really gets is the scheduler's
// decision, handed over by the NRI plugin at container creation.
package kubelet

import (
	"fmt"
	"strings"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// ShareSeparator joins a card's UUID and a share number into a kubelet
// device ID: GPU-xxxx::3.
const ShareSeparator = "::"

// ResourceName is the kubelet resource a card is counted under.
func ResourceName(d *device.Device) string {
	if d.Vendor == device.VendorAscend {
		return device.AscendResourcePrefix + d.Model
	}
	return string(device.ResourceNvidiaGPU)
}

// Shares lists the kubelet devices of cards under a complete sharing
// config: one per share the scheduler may place on the card, each with the
// card's health and NUMA node, so that the kubelet's topology hints for a
// share are its card's.
func Shares(cards []device.Device, cfg device.NodeConfig) []*pluginapi.Device {
	var out []*pluginapi.Device
	for i := range cards {
		d := &cards[i]
		split := device.CardCapacity(d, cfg).Slots
		health := pluginapi.Healthy
		if !d.Healthy || d.MIG {
			health = pluginapi.Unhealthy
		}
		var topo *pluginapi.TopologyInfo
		if d.NUMA >= 0 {
			topo = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(d.NUMA)}}}
		}
		for k := range split {
			out = append(out, &pluginapi.Device{ID: fmt.Sprintf("%s%s%d", d.UUID, ShareSeparator, k), Health: health, Topology: topo})
		}
	}
	return out
}

// CardOf returns the card UUID of a kubelet device ID.
func CardOf(id string) string {
	uuid, _, _ := strings.Cut(id, ShareSeparator)
	return uuid
}
