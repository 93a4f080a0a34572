// Package kubelettest is the kubelet's side of the device plugin API for
// tests: the real Registration gRPC service on kubelet.sock in a directory,
// and a client of a registered plugin's socket.
package kubelettest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Kubelet is the kubelet's side of the device plugin API: the real
// Registration service on kubelet.sock, and a client of the plugin's
// socket, as the kubelet's device manager does it.
type Kubelet struct {
	pluginapi.UnimplementedRegistrationServer
	Dir        string
	srv        *grpc.Server
	registered chan *pluginapi.RegisterRequest
}

func Start(t *testing.T, dir string) *Kubelet {
	t.Helper()
	k := &Kubelet{Dir: dir, registered: make(chan *pluginapi.RegisterRequest, 4)}
	l, err := net.Listen("unix", filepath.Join(dir, "kubelet.sock"))
	if err != nil {
		t.Fatal(err)
	}
	k.srv = grpc.NewServer()
	pluginapi.RegisterRegistrationServer(k.srv, k)
	go func() { _ = k.srv.Serve(l) }()
	return k
}

func (k *Kubelet) Register(_ context.Context, r *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	k.registered <- r
	return &pluginapi.Empty{}, nil
}

// Restart stops the kubelet and wipes the directory, as a restarting
// kubelet does, then serves again.
func (k *Kubelet) Restart(t *testing.T) {
	k.srv.Stop()
	entries, _ := os.ReadDir(k.Dir)
	for _, e := range entries {
		_ = os.Remove(filepath.Join(k.Dir, e.Name()))
	}
	*k = *Start(t, k.Dir)
}

// WaitTimeout bounds WaitRegistered. It only guards against a hang: a
// plugin registers in milliseconds, but a loaded two-core machine can
// stall any goroutine for seconds.
const WaitTimeout = 60 * time.Second

func (k *Kubelet) WaitRegistered(t *testing.T) *pluginapi.RegisterRequest {
	t.Helper()
	select {
	case r := <-k.registered:
		return r
	case <-time.After(WaitTimeout):
		t.Fatalf("plugin did not register within %v", WaitTimeout)
		return nil
	}
}

func (k *Kubelet) Dial(t *testing.T, endpoint string) pluginapi.DevicePluginClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+filepath.Join(k.Dir, endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pluginapi.NewDevicePluginClient(conn)
}
