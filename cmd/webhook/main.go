// Command mosaic-webhook is Mosaic's pod admission webhook: it refuses
// invalid device requests at admission (read with the scheduler's own
// args), refuses pods sharing a card whose containers would escape the
// enforcer, routes device pods to Mosaic's scheduler, maps other gang
// schedulers' group annotations onto PodGroups (--pod-groups), and keeps
// allocation annotations the scheduler's alone.
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
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/webhook"
)

func main() {
	klog.InitFlags(nil)
	addr := flag.String("addr", ":8443", "HTTPS listen address")
	cert := flag.String("tls-cert-file", "/etc/mosaic-webhook/tls.crt", "serving certificate")
	key := flag.String("tls-private-key-file", "/etc/mosaic-webhook/tls.key", "serving key")
	scheduler := flag.String("scheduler-name", "mosaic-scheduler", "schedulerName set on device pods that name none or default-scheduler; empty: leave it")
	schedulerConfig := flag.String("config", "", "the scheduler's KubeSchedulerConfiguration file: device requests are read with its Mosaic args (Ascend models, defaults); empty: the built-in args")
	overridePolicy := flag.String("override-policy", string(webhook.OverrideDeny), "for a pod that shares a card and has a container that defeats the enforcer (privileged, its own LD_PRELOAD, ...): deny refuses it, warn admits it with a warning (the node agent still refuses the container)")
	podGroups := flag.Bool("pod-groups", false, "map other gang schedulers' group annotations (Koordinator's gang name and min-available; the coscheduling label and Volcano's group name onto existing PodGroups) onto scheduling.k8s.io PodGroups, creating Koordinator's; needs the GenericWorkload API and the in-cluster service account's get/create on podgroups")
	flag.Parse()

	policy, err := webhook.ParseOverridePolicy(*overridePolicy)
	if err != nil {
		klog.ErrorS(err, "--override-policy")
		os.Exit(2)
	}
	cfg := webhook.Config{SchedulerName: *scheduler, ParseOptions: webhook.DefaultParseOptions(), OverridePolicy: policy}
	if *schedulerConfig != "" {
		data, err := os.ReadFile(*schedulerConfig)
		if err == nil {
			err = cfg.ReadSchedulerConfig(data)
		}
		if err != nil {
			klog.ErrorS(err, "--config", "file", *schedulerConfig)
			os.Exit(2)
		}
	}
	if *podGroups {
		rc, err := rest.InClusterConfig()
		if err != nil {
			klog.ErrorS(err, "--pod-groups needs the in-cluster service account")
			os.Exit(2)
		}
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			klog.ErrorS(err, "--pod-groups")
			os.Exit(2)
		}
		cfg.PodGroups = cs.SchedulingV1beta1().PodGroups
	}
	h := webhook.New(cfg, klog.Background())
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
	klog.InfoS("Serving the pod admission webhook", "addr", *addr, "schedulerName", *scheduler, "config", *schedulerConfig, "overridePolicy", policy, "podGroups", *podGroups)
	if err := srv.ListenAndServeTLS(*cert, *key); err != nil && !errors.Is(err, http.ErrServerClosed) {
		klog.ErrorS(err, "mosaic-webhook failed")
		os.Exit(1)
	}
}
