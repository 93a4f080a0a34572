package kubelet

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
)

// Server is one resource's device plugin.
type Server struct {
	pluginapi.UnimplementedDevicePluginServer

	resource string
	// dir holds the kubelet's socket and ours (the kubelet's device-plugins
	// directory).
	dir    string
	socket string
	logger klog.Logger

	mu      sync.Mutex
	devices []*pluginapi.Device
	changed chan struct{} // closed and replaced on every change

	grpc *grpc.Server

	// Handout, when set, answers Allocate for each container: the node
	// agent hands out the cards there when NRI is off or not connected,
	// and answers MarkOnly when it is. Unset, Allocate only marks the
	// container and the NRI plugin does the rest.
	Handout func(ctx context.Context, resource string, ids []string) (*pluginapi.ContainerAllocateResponse, error)
}

// NewServer serves resource from dir (pluginapi.DevicePluginPath in
// production).
func NewServer(resource, dir string, logger klog.Logger) *Server {
	name := "mosaic-" + sanitize(resource) + ".sock"
	return &Server{resource: resource, dir: dir, socket: filepath.Join(dir, name), logger: logger.WithValues("resource", resource), changed: make(chan struct{})}
}

func sanitize(s string) string {
	out := []byte(s)
	for i, c := range out {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			out[i] = '-'
		}
	}
	return string(out)
}

// SetDevices replaces the advertised devices; ListAndWatch streams the
// change to the kubelet.
func (s *Server) SetDevices(devs []*pluginapi.Device) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.devices = devs
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) snapshot() ([]*pluginapi.Device, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.devices, s.changed
}

// Run serves and registers with the kubelet, and does both again whenever
// the kubelet restarts (it wipes the directory, removing our socket), until
// ctx ends.
func (s *Server) Run(ctx context.Context) error {
	for {
		if err := s.serve(); err != nil {
			return err
		}
		if !s.registerUntilSocketGone(ctx) {
			s.stop()
			return nil
		}
		s.logger.Info("Kubelet restarted (socket removed); serving and registering again")
		s.stop()
	}
}

func (s *Server) serve() error {
	_ = os.Remove(s.socket)
	l, err := net.Listen("unix", s.socket)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.socket, err)
	}
	s.grpc = grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(s.grpc, s)
	go func() { _ = s.grpc.Serve(l) }()
	return nil
}

func (s *Server) stop() {
	if s.grpc != nil {
		s.grpc.Stop()
		s.grpc = nil
	}
	_ = os.Remove(s.socket)
}

func (s *Server) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+filepath.Join(s.dir, filepath.Base(pluginapi.KubeletSocket)),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     filepath.Base(s.socket),
		ResourceName: s.resource,
		Options:      s.options(),
	})
	return err
}

// registerUntilSocketGone registers with the kubelet, again every
// registerRetry until that succeeds (a restarting kubelet wipes the
// directory before it serves again, so the first attempt may find no
// kubelet), then polls for the removal of our socket. It returns true once
// the socket is gone, false when ctx ended.
func (s *Server) registerUntilSocketGone(ctx context.Context) bool {
	t := time.NewTicker(registerRetry)
	defer t.Stop()
	registered := false
	for {
		if !registered {
			if err := s.register(ctx); err != nil {
				s.logger.Error(err, "Registering with the kubelet; retrying", "in", registerRetry)
			} else {
				registered = true
				s.logger.Info("Registered with the kubelet", "socket", s.socket)
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			if _, err := os.Stat(s.socket); os.IsNotExist(err) {
				return true
			}
		}
	}
}

// registerRetry is how often the socket is checked and a failed
// registration retried.
const registerRetry = time.Second

func (s *Server) options() *pluginapi.DevicePluginOptions {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}
}

// GetDevicePluginOptions implements the device plugin API.
func (s *Server) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return s.options(), nil
}

// ListAndWatch sends the devices, then again on every change.
func (s *Server) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	for {
		devs, changed := s.snapshot()
		if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: devs}); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

// GetPreferredAllocation prefers shares on distinct cards, so that a
// container counted for N devices holds N cards in the kubelet's books, as
// in the scheduler's.
func (s *Server) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	rsp := &pluginapi.PreferredAllocationResponse{}
	for _, cr := range req.ContainerRequests {
		rsp.ContainerResponses = append(rsp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{
			DeviceIDs: preferDistinctCards(cr.AvailableDeviceIDs, cr.MustIncludeDeviceIDs, int(cr.AllocationSize)),
		})
	}
	return rsp, nil
}

func preferDistinctCards(available, must []string, size int) []string {
	out := append([]string(nil), must...)
	cards := map[string]bool{}
	taken := map[string]bool{}
	for _, id := range must {
		cards[CardOf(id)], taken[id] = true, true
	}
	// First pass: one share per card not yet used; second: any share.
	for pass := 0; pass < 2 && len(out) < size; pass++ {
		for _, id := range available {
			if len(out) == size {
				break
			}
			if taken[id] || (pass == 0 && cards[CardOf(id)]) {
				continue
			}
			out = append(out, id)
			cards[CardOf(id)], taken[id] = true, true
		}
	}
	return out
}

// Allocate marks the container as a device container. The cards and
// limits themselves come from the pod's allocation, applied by the NRI
// plugin when the runtime creates the container, or by Handout here when
// the runtime has no NRI.
func (s *Server) Allocate(ctx context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	rsp := &pluginapi.AllocateResponse{}
	for _, cr := range req.ContainerRequests {
		if len(cr.DevicesIds) == 0 {
			return nil, fmt.Errorf("allocate request for %s names no devices", s.resource)
		}
		if s.Handout != nil {
			c, err := s.Handout(ctx, s.resource, cr.DevicesIds)
			if err != nil {
				return nil, err
			}
			rsp.ContainerResponses = append(rsp.ContainerResponses, c)
			continue
		}
		rsp.ContainerResponses = append(rsp.ContainerResponses, MarkOnly(s.resource))
	}
	return rsp, nil
}

// MarkOnly is the answer to Allocate that leaves the hand-out to the NRI
// plugin: it marks the container as a device container, and selects no
// card, so that a container the runtime creates without asking the plugin
// (NRI lost between Allocate and the container's creation) starts with no
// card rather than with what its image says (NVIDIA_VISIBLE_DEVICES=all in
// CUDA images). The plugin overrides these with the allocated cards.
func MarkOnly(resource string) *pluginapi.ContainerAllocateResponse {
	return &pluginapi.ContainerAllocateResponse{Envs: map[string]string{
		nri.RequestEnv:                   resource,
		device.NVIDIAVisibleDevicesEnv:   device.NVIDIANoDevices,
		device.AscendVisibleDevicesEnv:   "",
		device.AscendRTVisibleDevicesEnv: "",
	}}
}
