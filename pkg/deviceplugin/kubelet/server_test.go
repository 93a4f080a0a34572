package kubelet

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"k8s.io/klog/v2/ktesting"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/kubelet/kubelettest"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
)

func cards() []device.Device {
	return []device.Device{
		{UUID: "GPU-0", Index: 0, Vendor: device.VendorNVIDIA, Model: "A100", MemoryMiB: 1000, NUMA: 0, Healthy: true},
		{UUID: "GPU-1", Index: 1, Vendor: device.VendorNVIDIA, Model: "A100", MemoryMiB: 1000, NUMA: device.UnknownNUMA, Healthy: true},
	}
}

func healthy(devs []*pluginapi.Device) (n int) {
	for _, d := range devs {
		if d.Health == pluginapi.Healthy {
			n++
		}
	}
	return n
}

func TestServerWithFakeKubelet(t *testing.T) {
	// A short directory: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	kubelet := kubelettest.Start(t, dir)
	logger, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	s := NewServer("nvidia.com/gpu", dir, logger)
	s.SetDevices(Shares(cards(), device.NodeConfig{SplitCount: 4}))
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	reg := kubelet.WaitRegistered(t)
	if reg.ResourceName != "nvidia.com/gpu" || reg.Version != pluginapi.Version || !reg.Options.GetPreferredAllocationAvailable {
		t.Fatalf("registration = %+v", reg)
	}
	client := kubelet.Dial(t, reg.Endpoint)
	stream, err := client.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	// 2 cards x split 4; NUMA hints only where the NUMA node is known.
	if len(first.Devices) != 8 || healthy(first.Devices) != 8 {
		t.Fatalf("devices = %d (%d healthy), want 8 healthy", len(first.Devices), healthy(first.Devices))
	}
	if first.Devices[0].Topology.GetNodes()[0].GetID() != 0 || first.Devices[4].Topology != nil {
		t.Errorf("topology = %v / %v", first.Devices[0].Topology, first.Devices[4].Topology)
	}

	// A card turns unhealthy: the change is streamed.
	c := cards()
	c[1].Healthy = false
	s.SetDevices(Shares(c, device.NodeConfig{SplitCount: 4}))
	next, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if healthy(next.Devices) != 4 {
		t.Errorf("%d healthy after card 1 failed, want 4", healthy(next.Devices))
	}

	// Preferred allocation: two shares on two distinct cards.
	pref, err := client.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
		AvailableDeviceIDs: []string{"GPU-0::0", "GPU-0::1", "GPU-1::0"}, AllocationSize: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if ids := pref.ContainerResponses[0].DeviceIDs; len(ids) != 2 || CardOf(ids[0]) == CardOf(ids[1]) {
		t.Errorf("preferred = %v, want two cards", ids)
	}

	// Allocate, single- and multi-card containers of one pod.
	alloc, err := client.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{"GPU-0::2"}}, {DevicesIds: []string{"GPU-0::3", "GPU-1::1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(alloc.ContainerResponses) != 2 || alloc.ContainerResponses[1].Envs[nri.RequestEnv] != "nvidia.com/gpu" {
		t.Errorf("allocate = %+v", alloc)
	}
	if _, err := client.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{}}}); err == nil {
		t.Error("an allocate request without devices succeeded")
	}

	// The kubelet restarts: the plugin notices and registers again.
	kubelet.Restart(t)
	reg = kubelet.WaitRegistered(t)
	client = kubelet.Dial(t, reg.Endpoint)
	opts, err := client.GetDevicePluginOptions(ctx, &pluginapi.Empty{})
	if err != nil || !opts.GetPreferredAllocationAvailable {
		t.Fatalf("after re-registration: %v, %v", opts, err)
	}
	stopServer(t, cancel, done)
}

// A plugin whose registration fails (no kubelet yet, or a restarting one
// that has wiped the directory and does not serve yet) retries until the
// kubelet takes it. The failure is forced: the first kubelet refuses, and
// the real one starts only once the plugin has been refused.
func TestServerRetriesRegistration(t *testing.T) {
	dir, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	refused := make(chan struct{}, 1)
	l, err := net.Listen("unix", filepath.Join(dir, "kubelet.sock"))
	if err != nil {
		t.Fatal(err)
	}
	refusing := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(refusing, refusingKubelet{refused: refused})
	go func() { _ = refusing.Serve(l) }()

	logger, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := NewServer("nvidia.com/gpu", dir, logger)
	s.SetDevices(Shares(cards(), device.NodeConfig{SplitCount: 1}))
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-refused:
	case <-time.After(kubelettest.WaitTimeout):
		t.Fatal("the plugin never tried to register")
	}
	refusing.GracefulStop() // closing the listener removes kubelet.sock
	kubelet := kubelettest.Start(t, dir)
	if reg := kubelet.WaitRegistered(t); reg.ResourceName != "nvidia.com/gpu" {
		t.Fatalf("registration = %+v", reg)
	}
	stopServer(t, cancel, done)
}

type refusingKubelet struct {
	pluginapi.UnimplementedRegistrationServer
	refused chan struct{}
}

func (k refusingKubelet) Register(context.Context, *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	select {
	case k.refused <- struct{}{}:
	default:
	}
	return nil, errors.New("not ready")
}

func TestPreferDistinctCards(t *testing.T) {
	got := preferDistinctCards([]string{"A::0", "A::1", "B::0", "B::1", "C::0"}, []string{"A::1"}, 3)
	if len(got) != 3 || got[0] != "A::1" || CardOf(got[1]) == "A" || CardOf(got[2]) == "A" || CardOf(got[1]) == CardOf(got[2]) {
		t.Errorf("preferred = %v", got)
	}
	// More shares than cards: fall back to shares on used cards.
	if got := preferDistinctCards([]string{"A::0", "A::1"}, nil, 2); len(got) != 2 {
		t.Errorf("preferred = %v", got)
	}
}

// stopServer ends a server's context and waits for Run to return cleanly;
// the wait is a hang guard only.
func stopServer(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(kubelettest.WaitTimeout):
		t.Fatal("server did not stop")
	}
}
