// Command mosaic-webhook is Mosaic's pod admission webhook: it refuses
// invalid device requests at admission, routes device pods to Mosaic's
// scheduler, and keeps allocation annotations the scheduler's alone.
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

	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/webhook"
)

func main() {
	klog.InitFlags(nil)
	addr := flag.String("addr", ":8443", "HTTPS listen address")
	cert := flag.String("tls-cert-file", "/etc/mosaic-webhook/tls.crt", "serving certificate")
	key := flag.String("tls-private-key-file", "/etc/mosaic-webhook/tls.key", "serving key")
	scheduler := flag.String("scheduler-name", "mosaic-scheduler", "schedulerName set on device pods that name none or default-scheduler; empty: leave it")
	flag.Parse()

	h := webhook.New(webhook.Config{SchedulerName: *scheduler, ParseOptions: device.ParseOptions{AscendModels: device.DefaultAscendModels()}}, klog.Background())
	mux := http.NewServeMux()
	mux.Handle("/pods", h)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	klog.InfoS("Serving the pod admission webhook", "addr", *addr, "schedulerName", *scheduler)
	if err := srv.ListenAndServeTLS(*cert, *key); err != nil && !errors.Is(err, http.ErrServerClosed) {
		klog.ErrorS(err, "mosaic-webhook failed")
		os.Exit(1)
	}
}
