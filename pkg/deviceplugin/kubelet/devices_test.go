package kubelet

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// Every share the kubelet is shown carries its own card's NUMA node, so
// that the topology manager's hint for a share is its card's; the count
// per card is the split count the scheduler places by.
func TestSharesCarryTheirCardsNUMA(t *testing.T) {
	cards := []device.Device{
		{UUID: "GPU-0", Index: 0, NUMA: 1, Healthy: true},
		{UUID: "GPU-1", Index: 1, NUMA: 0, Healthy: false},
		{UUID: "GPU-2", Index: 2, NUMA: device.UnknownNUMA, Healthy: true},
	}
	got := Shares(cards, device.NodeConfig{SplitCount: 3, MemoryScaling: 1, CoreScaling: 1})
	type share struct {
		card   string
		health string
		numa   []int64
	}
	var shares []share
	for _, d := range got {
		var numa []int64
		for _, n := range d.GetTopology().GetNodes() {
			numa = append(numa, n.GetID())
		}
		shares = append(shares, share{CardOf(d.ID), d.Health, numa})
	}
	var want []share
	for _, c := range []share{{"GPU-0", pluginapi.Healthy, []int64{1}}, {"GPU-1", pluginapi.Unhealthy, []int64{0}}, {"GPU-2", pluginapi.Healthy, nil}} {
		want = append(want, c, c, c)
	}
	if diff := cmp.Diff(want, shares, cmp.AllowUnexported(share{})); diff != "" {
		t.Errorf("shares (-want,+got):\n%s", diff)
	}
}
