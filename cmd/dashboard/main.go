// Command mosaic-dashboard serves a read-only web view of the cluster's
// cards and who holds them, from the API objects.
//
//	mosaic-dashboard [--kubeconfig FILE] [--addr :8080]
package main

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/dashboard"
	"github.com/mosaic-gpu/mosaic/pkg/device"
)

func main() {
	klog.InitFlags(nil)
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file; in-cluster config when empty")
	addr := flag.String("addr", ":8080", "listen address")
	split := flag.Int("split-count", device.DefaultSplitCount, "the scheduler's deviceSplitCount, for nodes whose inventory does not say")
	mem := flag.Float64("memory-scaling", device.DefaultScaling, "the scheduler's deviceMemoryScaling, for nodes whose inventory does not say")
	cores := flag.Float64("core-scaling", device.DefaultScaling, "the scheduler's deviceCoreScaling, for nodes whose inventory does not say")
	flag.Parse()
	if err := run(*kubeconfig, *addr, device.NodeConfig{SplitCount: *split, MemoryScaling: *mem, CoreScaling: *cores}); err != nil {
		klog.ErrorS(err, "mosaic-dashboard failed")
		os.Exit(1)
	}
}

func run(kubeconfig, addr string, defaults device.NodeConfig) error {
	if err := defaults.Validate("flags"); err != nil {
		return err
	}
	// An empty path falls back to the in-cluster config.
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	f := informers.NewSharedInformerFactory(cs, 0)
	nodes, pods := f.Core().V1().Nodes().Lister(), f.Core().V1().Pods().Lister()
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	h := dashboard.Handler(dashboard.Source{
		Nodes:    func() []*v1.Node { l, _ := nodes.List(labels.Everything()); return l },
		Pods:     func() []*v1.Pod { l, _ := pods.List(labels.Everything()); return l },
		Defaults: defaults,
	})
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	klog.InfoS("Serving the dashboard", "addr", addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
