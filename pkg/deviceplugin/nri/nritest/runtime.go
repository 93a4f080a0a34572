// Package nritest runs the runtime side of NRI in a test: the same
// adaptation code containerd and CRI-O embed, listening on a socket in a
// temporary directory, so a plugin is driven through NRI's real protocol.
package nritest

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"time"

	nri "github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Runtime is a container runtime's NRI endpoint without a runtime.
type Runtime struct {
	Socket string
	r      *nri.Adaptation

	// The adaptation listens on an inner socket and plugins reach it
	// through a relay on Socket: its Stop leaves external plugins'
	// connections open, which the relay closes, as the kernel does when
	// a runtime process exits.
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

// Start listens on dir/nri.sock. Plugins connect to Socket.
func Start(dir string) (*Runtime, error) {
	sync := func(ctx context.Context, cb nri.SyncCB) error {
		_, err := cb(ctx, nil, nil)
		return err
	}
	update := func(context.Context, []*nri.ContainerUpdate) ([]*nri.ContainerUpdate, error) { return nil, nil }
	sock := filepath.Join(dir, "nri.sock")
	inner := filepath.Join(dir, "nri-runtime.sock")
	r, err := nri.New("mosaic-test-runtime", "1.0", sync, update,
		nri.WithSocketPath(inner),
		nri.WithPluginPath(filepath.Join(dir, "plugins")),
		nri.WithPluginConfigPath(filepath.Join(dir, "conf.d")))
	if err != nil {
		return nil, err
	}
	if err := r.Start(); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		r.Stop()
		return nil, err
	}
	rt := &Runtime{Socket: sock, r: r, l: l}
	go rt.relay(inner)
	return rt, nil
}

func (rt *Runtime) relay(inner string) {
	for {
		c, err := rt.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("unix", inner)
		if err != nil {
			c.Close()
			continue
		}
		rt.mu.Lock()
		rt.conns = append(rt.conns, c, s)
		rt.mu.Unlock()
		go func() { _, _ = io.Copy(s, c); s.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, s); s.Close(); c.Close() }()
	}
}

// Stop closes the socket and the plugins' connections, as a runtime that
// exits does. The socket file is removed, so a plugin finds no runtime.
func (rt *Runtime) Stop() {
	rt.l.Close()
	rt.mu.Lock()
	for _, c := range rt.conns {
		c.Close()
	}
	rt.conns = nil
	rt.mu.Unlock()
	rt.r.Stop()
}

// CreateContainer asks the connected plugins to adjust a container, as the
// runtime does before creating it.
func (rt *Runtime) CreateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, error) {
	rsp, err := rt.r.CreateContainer(ctx, &nri.CreateContainerRequest{Pod: pod, Container: ctr})
	if err != nil {
		return nil, err
	}
	return rsp.GetAdjust(), nil
}

// WaitTimeout bounds WaitForPlugin. It only guards against a hang: a
// plugin connects in milliseconds, but a loaded two-core machine can stall
// any goroutine for seconds.
const WaitTimeout = 60 * time.Second

// WaitForPlugin creates a probe container until a plugin answers with an
// adjustment, i.e. until the plugin has registered.
func (rt *Runtime) WaitForPlugin(ctx context.Context, probe func() (*api.PodSandbox, *api.Container)) error {
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, WaitTimeout, true, func(ctx context.Context) (bool, error) {
		pod, ctr := probe()
		adj, err := rt.CreateContainer(ctx, pod, ctr)
		return err == nil && adj != nil && len(adj.GetEnv()) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("no NRI plugin answered within %v: %w", WaitTimeout, err)
	}
	return nil
}
