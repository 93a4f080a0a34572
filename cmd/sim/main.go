// Command mosaic-sim runs a scenario through the real Mosaic scheduler on a
// real in-process API server and prints where every pod landed.
//
//	mosaic-sim -f SCENARIO.yaml [-o table|json] [--config KUBESCHEDULERCONFIG] [--settle 10s]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"time"

	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/sim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mosaic-sim:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("mosaic-sim", flag.ContinueOnError)
	file := fs.String("f", "", "scenario file (YAML); required")
	output := fs.String("o", "table", "output format: table or json")
	cfgPath := fs.String("config", "", "KubeSchedulerConfiguration file (default: Mosaic as a second scheduler, config/mosaic-scheduler.yaml)")
	settle := fs.Duration("settle", 10*time.Second, "how long to wait for pending pods after the last step")
	serve := fs.String("serve", "", "after the run, serve the dashboard of the simulated cluster on this address (e.g. :8080) until interrupted")
	verbose := fs.Int("v", -1, "log verbosity of the control plane and scheduler (default: silent)")
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if *verbose < 0 {
		// The API server and scheduler log freely; the table is the output.
		_ = klogFlags.Set("logtostderr", "false")
		_ = klogFlags.Set("stderrthreshold", "FATAL")
		klog.SetOutput(io.Discard)
	} else {
		_ = klogFlags.Set("v", fmt.Sprint(*verbose))
	}
	if *file == "" {
		return fmt.Errorf("-f SCENARIO.yaml is required")
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("-o %q: must be table or json", *output)
	}
	scenario, err := sim.Load(*file)
	if err != nil {
		return err
	}
	write := func(rep *sim.Report) error {
		if *output == "json" {
			return rep.WriteJSON(os.Stdout)
		}
		return rep.WriteTable(os.Stdout)
	}
	opts := sim.Options{Settle: *settle, Serve: *serve}
	if *serve != "" {
		// Listening before the run: a taken or malformed address fails
		// at once, and the printed address is the one listened on.
		l, err := net.Listen("tcp", *serve)
		if err != nil {
			return fmt.Errorf("--serve %s: %w", *serve, err)
		}
		opts.Listener = l
		opts.Print = func(rep *sim.Report) error {
			if err := write(rep); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "dashboard: %s (Ctrl-C to stop)\n", dashboardURL(l.Addr()))
			return nil
		}
	}
	if *cfgPath != "" {
		if opts.SchedulerConfig, err = os.ReadFile(*cfgPath); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := sim.Run(ctx, scenario, opts)
	if err != nil || *serve != "" {
		return err
	}
	return write(rep)
}

// dashboardURL is where a browser on this machine reaches the dashboard
// listening on addr: an unspecified host (":18080", "0.0.0.0") is
// localhost.
func dashboardURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
