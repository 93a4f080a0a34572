//go:build cgo

package agent

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery/nvidiatest"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/kubelet"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/kubelet/kubelettest"
)

// xidSource is an NVML event set whose waits the test steers: quiet
// (timeouts), XIDs on one card, or one failed wait.
type xidSource struct {
	card    nvml.Device
	mu      sync.Mutex
	mode    string // "quiet", "xid" or "fail" (once, then "xid")
	created atomic.Int32
}

func (x *xidSource) set(mode string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.mode = mode
}

func (x *xidSource) eventSet() (nvml.EventSet, nvml.Return) {
	x.created.Add(1)
	return &mock.EventSet{
		FreeFunc: func() nvml.Return { return nvml.SUCCESS },
		WaitFunc: func(uint32) (nvml.EventData, nvml.Return) {
			time.Sleep(5 * time.Millisecond) // NVML blocks up to the timeout
			x.mu.Lock()
			defer x.mu.Unlock()
			switch x.mode {
			case "xid":
				return nvml.EventData{Device: x.card, EventType: nvml.EventTypeXidCriticalError, EventData: 79}, nvml.SUCCESS
			case "fail":
				x.mode = "xid"
				return nvml.EventData{}, nvml.ERROR_UNKNOWN
			}
			return nvml.EventData{}, nvml.ERROR_TIMEOUT
		},
	}, nvml.SUCCESS
}

// unhealthyCards lists the cards with an unhealthy share.
func unhealthyCards(devs []*pluginapi.Device) map[string]bool {
	out := map[string]bool{}
	for _, d := range devs {
		if d.Health == pluginapi.Unhealthy {
			out[kubelet.CardOf(d.ID)] = true
		}
	}
	return out
}

// awaitStreamed reads the kubelet's ListAndWatch stream until the cards
// with an unhealthy share are want.
func awaitStreamed(t *testing.T, stream pluginapi.DevicePlugin_ListAndWatchClient, want ...string) {
	t.Helper()
	for {
		rsp, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for unhealthy cards %v: %v", want, err)
		}
		got := unhealthyCards(rsp.Devices)
		if len(got) == len(want) && len(rsp.Devices) == 80 {
			match := true
			for _, u := range want {
				match = match && got[u]
			}
			if match {
				return
			}
		}
	}
}

// The node agent on the NVIDIA backend over go-nvml's H200 mock: an XID on
// one card marks that card unhealthy for the kubelet; a failed event wait
// marks no card and the agent restarts the watcher; once the card goes a
// recovery window without XIDs and passes its probe, the kubelet is sent
// it healthy again.
func TestAgentCardHealthRecovers(t *testing.T) {
	s := nvidiatest.NewH200()
	for _, d := range s.Devices {
		md := d.(*server.Device)
		md.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return nvml.EventTypeXidCriticalError, nvml.SUCCESS }
		md.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
	}
	events := &xidSource{card: s.Devices[0], mode: "quiet"}
	s.EventSetCreateFunc = events.eventSet
	backend, err := discovery.NewNVIDIAFrom(s, discovery.NVIDIAOptions{SysfsRoot: t.TempDir(), HealthRecovery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = backend.Close() })
	card := nvidiatest.UUID(s, 0)

	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	kdir := t.TempDir()
	k := kubelettest.Start(t, kdir)
	logger, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithTimeout(ctx, time.Minute) // a hang guard only
	defer cancel()
	// Refresh hourly: health changes reach the kubelet through the watcher.
	a, err := New(Options{NodeName: "n1", Client: client, Backend: backend, KubeletDir: kdir, Refresh: time.Hour}, logger)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.Run(ctx) }()
	reg := k.WaitRegistered(t)
	stream, err := k.Dial(t, reg.Endpoint).ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	awaitStreamed(t, stream)

	events.set("xid")
	awaitStreamed(t, stream, card)

	// The wait fails once; the XIDs go on after the restart.
	events.set("fail")
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return events.created.Load() >= 2, nil
	})
	if err != nil {
		t.Fatal("the agent did not restart the health watcher after its event wait failed")
	}
	now, err := k.Dial(t, reg.Endpoint).ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := now.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := unhealthyCards(first.Devices); len(got) != 1 || !got[card] {
		t.Fatalf("after the failed wait the unhealthy cards are %v, want only %s", got, card)
	}

	events.set("quiet")
	awaitStreamed(t, stream)
	n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := device.DecodeInventory(n.Annotations[device.InventoryAnnotation])
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range inv.Devices {
		if !d.Healthy {
			t.Errorf("card %s is published unhealthy after it recovered", d.UUID)
		}
	}
}
