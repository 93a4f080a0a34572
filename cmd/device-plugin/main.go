// Command mosaic-device-plugin is Mosaic's node agent: it discovers the
// node's cards, publishes them for the scheduler, serves the kubelet device
// plugin API and hands containers their cards through NRI.
//
//	mosaic-device-plugin --backend nvidia|ascend|fake [flags]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/agent"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
)

func main() {
	klog.InitFlags(nil)
	if err := run(); err != nil {
		klog.ErrorS(err, "mosaic-device-plugin failed")
		klog.Flush()
		os.Exit(1)
	}
}

type flags struct {
	backend, fakeFile, nodeName, kubeconfig, configMap string
	kubeletDir, nriSocket, stateDir, enforcerLib       string
	corePolicy, metricsAddr, keyDir, exempt            string
	split                                              int
	unsigned, keyDirSet                                bool
	memScaling, coreScaling                            float64
	refresh                                            time.Duration
}

func parse() *flags {
	f := &flags{}
	flag.StringVar(&f.backend, "backend", "nvidia", "device discovery: nvidia (NVML), ascend (DCMI) or fake (--fake-file)")
	flag.StringVar(&f.fakeFile, "fake-file", "", "with --backend=fake: a YAML list of cards, as in a simulator scenario's gpus")
	flag.StringVar(&f.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	flag.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; in-cluster config when empty")
	flag.StringVar(&f.configMap, "config-map", "", "NAMESPACE/NAME of a ConfigMap with the sharing config (key config.yaml; per-node overrides)")
	flag.IntVar(&f.split, "split-count", 0, fmt.Sprintf("shares per card when the ConfigMap sets none (0: %d); published for the scheduler and advertised to the kubelet", device.DefaultSplitCount))
	flag.Float64Var(&f.memScaling, "memory-scaling", 0, fmt.Sprintf("memory over-commit when the ConfigMap sets none (0: %v)", device.DefaultScaling))
	flag.Float64Var(&f.coreScaling, "core-scaling", 0, fmt.Sprintf("compute over-commit when the ConfigMap sets none (0: %v)", device.DefaultScaling))
	flag.StringVar(&f.kubeletDir, "kubelet-dir", pluginapi.DevicePluginPath, "the kubelet's device-plugins directory")
	flag.StringVar(&f.nriSocket, "nri-socket", "/var/run/nri/nri.sock", "the runtime's NRI socket; empty turns NRI off")
	flag.StringVar(&f.stateDir, "state-dir", "/var/lib/mosaic", "host directory for per-container limits files and shared accounting")
	flag.StringVar(&f.enforcerLib, "enforcer-lib", "/usr/local/lib/mosaic/libmosaic-enforcer.so", "host path of libmosaic-enforcer.so; empty: no enforcer")
	flag.StringVar(&f.exempt, "exempt-namespaces", "", "comma-separated namespaces whose containers keep the cards their image or spec selects (trusted node daemons such as a GPU metrics exporter); every other container without an allocation gets none")
	flag.StringVar(&f.keyDir, "allocation-key-dir", device.DefaultKeyDir, "directory of the keys (the mosaic-allocation-key Secret) an allocation must be signed with by the scheduler: the current key and, after a rotation, the previous one; a pod whose allocation none of them signed gets no cards")
	flag.BoolVar(&f.unsigned, "unsigned-allocations", false, "check no allocation signature: any pod whose annotation names cards gets them (only where no one but the scheduler can write pods' allocations)")
	flag.StringVar(&f.corePolicy, "core-policy", string(device.CorePolicyDefault), "GPU_CORE_UTILIZATION_POLICY for containers: default, force or disable")
	flag.StringVar(&f.metricsAddr, "metrics-addr", ":9400", "address for /metrics and /healthz; empty: off")
	flag.DurationVar(&f.refresh, "refresh", 30*time.Second, "how often cards and config are read again")
	flag.Parse()
	flag.Visit(func(fl *flag.Flag) { f.keyDirSet = f.keyDirSet || fl.Name == "allocation-key-dir" })
	return f
}

func run() error {
	f := parse()
	cfg := device.NodeConfig{SplitCount: f.split, MemoryScaling: f.memScaling, CoreScaling: f.coreScaling}
	if err := cfg.Validate("flags"); err != nil {
		return err
	}
	switch p := device.CorePolicy(f.corePolicy); p {
	case device.CorePolicyDefault, device.CorePolicyForce, device.CorePolicyDisable:
	default:
		return fmt.Errorf("--core-policy %q: must be default, force or disable", p)
	}
	keys, err := allocationKeys(f)
	if err != nil {
		return err
	}
	exempt, err := namespaces(f.exempt)
	if err != nil {
		return err
	}
	backend, err := newBackend(f)
	if err != nil {
		return err
	}
	// An empty path falls back to the in-cluster config.
	rc, err := clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger := klog.FromContext(ctx)

	a, err := agent.New(agent.Options{
		NodeName: f.nodeName, Client: client, Backend: backend, Sharing: cfg, ConfigMap: f.configMap,
		KubeletDir: f.kubeletDir, NRISocket: f.nriSocket, Refresh: f.refresh,
		NRI: nri.Config{StateDir: f.stateDir, EnforcerLib: f.enforcerLib, CorePolicy: device.CorePolicy(f.corePolicy), AllocationKeys: keys,
			ExemptNamespaces: exempt},
	}, logger)
	if err != nil {
		return err
	}
	if f.metricsAddr != "" {
		if err := serveMetrics(ctx, f, a, backend); err != nil {
			return err
		}
	}
	return a.Run(ctx)
}

func newBackend(f *flags) (discovery.Backend, error) {
	switch f.backend {
	case "fake":
		if f.fakeFile == "" {
			return nil, errors.New("--backend=fake needs --fake-file")
		}
		return discovery.LoadFake(f.nodeName, f.fakeFile)
	case "nvidia":
		b, err := discovery.NewNVIDIA(discovery.NVIDIAOptions{})
		if errors.Is(err, discovery.ErrNoDriver) {
			klog.InfoS("No NVIDIA driver found; serving no devices", "err", err)
			return noDevices{"nvidia"}, nil
		}
		return b, err
	case "ascend":
		b, err := discovery.NewAscend(discovery.AscendOptions{})
		if errors.Is(err, discovery.ErrNoDriver) {
			klog.InfoS("No Ascend driver found; serving no devices", "err", err)
			return noDevices{"ascend"}, nil
		}
		return b, err
	}
	return nil, fmt.Errorf("--backend %q: must be nvidia, ascend or fake", f.backend)
}

// allocationKeys loads the keys allocations must be signed with. Without
// them the agent does not start, unless told to run unsigned: a missing
// Secret must not quietly turn the check off.
func allocationKeys(f *flags) (*device.KeySet, error) {
	if f.unsigned {
		if f.keyDirSet {
			return nil, errors.New("--unsigned-allocations and --allocation-key-dir: set one")
		}
		klog.InfoS("Allocation signatures are not checked (--unsigned-allocations)")
		return nil, nil
	}
	keys, err := device.LoadKeySet(f.keyDir)
	if err != nil {
		return nil, fmt.Errorf("--allocation-key-dir: %w (mount the mosaic-allocation-key Secret there, see docs/security.md, or pass --unsigned-allocations to check no signature)", err)
	}
	klog.InfoS("Handing out only allocations signed with a key of the directory", "allocationKeyDir", f.keyDir)
	return keys, nil
}

// namespaces splits --exempt-namespaces, leaving out empty names.
func namespaces(list string) ([]string, error) {
	var out []string
	for _, ns := range strings.Split(list, ",") {
		if ns = strings.TrimSpace(ns); ns == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("--exempt-namespaces: %q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
		out = append(out, ns)
	}
	return out, nil
}

// noDevices is the backend of a node without a driver.
type noDevices struct{ name string }

func (n noDevices) Name() string { return n.name }
func (n noDevices) Devices(context.Context) ([]device.Device, error) {
	return nil, nil
}

// serveMetrics exposes per-card capacity and allocation, computed from the
// pods bound to this node, and the cards' live use where the backend reads
// it.
func serveMetrics(ctx context.Context, f *flags, a *agent.Agent, backend discovery.Backend) error {
	collector := agent.NewCollector(f.nodeName, f.stateDir, a.Pods)
	if src, ok := backend.(discovery.TelemetrySource); ok {
		collector.SetTelemetry(src)
	}
	a.OnPublish(collector.SetCards)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := &http.Server{Addr: f.metricsAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "Metrics server stopped")
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return nil
}
