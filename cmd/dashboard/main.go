// Command mosaic-dashboard serves a read-only web view of the cluster's
// cards, who holds them and what they use, from the API objects and, with
// --prometheus, the node agents' metrics (docs/dashboard.md).
//
//	mosaic-dashboard [--kubeconfig FILE] [--addr :8080] [--prometheus URL]
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
	prom := flag.String("prometheus", "", "Prometheus server scraping the node agents (e.g. http://prometheus:9090), for the cards' and containers' live use; empty: allocations only")
	scheduler := flag.String("scheduler-name", "", "schedulerName written into the pod specs of the helper; empty: left to the admission webhook")
	flag.Parse()
	if err := run(*kubeconfig, *addr, *prom, *scheduler, device.NodeConfig{SplitCount: *split, MemoryScaling: *mem, CoreScaling: *cores}); err != nil {
		klog.ErrorS(err, "mosaic-dashboard failed")
		os.Exit(1)
	}
}

func run(kubeconfig, addr, prom, scheduler string, defaults device.NodeConfig) error {
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
	src, err := dashboard.WatchCluster(ctx, cs, defaults)
	if err != nil {
		return err
	}
	src.SchedulerName = scheduler
	if prom != "" {
		if src.Live, err = dashboard.NewPrometheus(prom); err != nil {
			return err
		}
	}
	srv := &http.Server{Addr: addr, Handler: dashboard.Handler(src), ReadHeaderTimeout: 10 * time.Second}
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
