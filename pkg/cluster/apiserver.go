package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kubeapiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// ControlPlane is a running etcd and kube-apiserver.
type ControlPlane struct {
	// Config reaches the API server with full rights.
	Config *rest.Config
	Client kubernetes.Interface
	// Kubeconfig is a file holding Config, for components that take a path.
	Kubeconfig string
	// KeyDir holds the allocation signing key generated at Start, laid
	// out as the mosaic-allocation-key Secret is mounted: the file
	// device.CurrentKey. The scheduler signs with it (StartScheduler).
	KeyDir string
	dir    string
	stop   []func()
}

// Options are what a control plane serves beyond the defaults.
type Options struct {
	// Gangs serves the Workload and PodGroup API (scheduling.k8s.io/v1beta1)
	// and turns on the GenericWorkload gate, beta and off by default in
	// Kubernetes 1.37. The gate is the process's: a scheduler started in
	// the same process (StartScheduler) schedules groups with
	// GangScheduling. Without Gangs the gate is set off, whatever an
	// earlier control plane of the process set.
	Gangs bool
}

// genericWorkload is the feature gate of the Workload and PodGroup API
// and of the scheduler's GangScheduling plugin.
const genericWorkload = "GenericWorkload"

// Gangs is Options for gang scheduling.
var Gangs = Options{Gangs: true}

// Start brings up etcd and the API server on free loopback ports, in a
// fresh temporary directory. Stop tears both down.
func Start() (*ControlPlane, error) { return StartWith(Options{}) }

// StartWith is Start serving opts.
func StartWith(opts Options) (*ControlPlane, error) {
	dir, err := os.MkdirTemp("", "mosaic-cluster-")
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{dir: dir, KeyDir: filepath.Join(dir, "allocation-key")}
	if err := WriteKey(cp.KeyDir); err != nil {
		cp.Stop()
		return nil, err
	}
	if err := cp.start(opts); err != nil {
		cp.Stop()
		return nil, err
	}
	return cp, nil
}

func (cp *ControlPlane) start(opts Options) error {
	etcdURL, err := cp.startEtcd()
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	sc := storagebackend.NewDefaultConfig("/registry", nil)
	sc.Transport.ServerList = []string{etcdURL}
	tb := newProcessTB(cp.dir)
	// TaintNodesByCondition would taint every new node not-ready, and no
	// node lifecycle controller runs here to lift it; nodes are plain API
	// objects. ServiceAccount admission needs a token controller.
	// Privileged containers are allowed, as kubeadm's clusters allow them:
	// what Mosaic does with them is for the tests to see. Requests are
	// authorized as in a real cluster (RBAC; Config is in system:masters),
	// and ValidatingAdmissionPolicy, on by default, is named so that the
	// manifests' policies are known to be enforced.
	flags := []string{
		"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
		"--enable-admission-plugins=ValidatingAdmissionPolicy",
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
	}
	flags = append(flags, fmt.Sprintf("--feature-gates=%s=%t", genericWorkload, opts.Gangs))
	if opts.Gangs {
		flags = append(flags, "--runtime-config=scheduling.k8s.io/v1beta1=true")
	}
	srv, err := kubeapiservertesting.StartTestServer(tb, nil, flags, sc)
	if err != nil {
		return fmt.Errorf("starting kube-apiserver: %w", err)
	}
	cp.stop = append(cp.stop, srv.TearDownFn, tb.cleanup)
	cp.Config = rest.CopyConfig(srv.ClientConfig)
	cp.Config.QPS, cp.Config.Burst = 5000, 5000
	if cp.Client, err = kubernetes.NewForConfig(cp.Config); err != nil {
		return err
	}
	cp.Kubeconfig = filepath.Join(cp.dir, "kubeconfig")
	return WriteKubeconfig(cp.Kubeconfig, cp.Config)
}

func (cp *ControlPlane) startEtcd() (string, error) {
	ports, err := freePorts(2)
	if err != nil {
		return "", err
	}
	cu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", ports[0]))
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", ports[1]))
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(cp.dir, "etcd")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	// etcd is an implementation detail here; its errors surface through
	// the API server, and its shutdown chatter is noise.
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return "", err
	}
	cp.stop = append(cp.stop, e.Close)
	select {
	case <-e.Server.ReadyNotify():
		return cu.String(), nil
	case <-time.After(60 * time.Second):
		return "", fmt.Errorf("etcd not ready after 60s")
	}
}

// Stop tears the control plane down and removes its files.
func (cp *ControlPlane) Stop() {
	for i := len(cp.stop) - 1; i >= 0; i-- {
		cp.stop[i]()
	}
	cp.stop = nil
	os.RemoveAll(cp.dir)
}

// Context returns a context for API calls with a generous timeout.
func Context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// WriteKey writes a fresh random signing key to dir/current, as an
// install creates the mosaic-allocation-key Secret.
func WriteKey(dir string) error {
	key := make([]byte, device.MinKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, device.CurrentKey), []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
}

// WriteKubeconfig writes a kubeconfig file that reaches the server of c
// with c's credentials.
func WriteKubeconfig(path string, c *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["mosaic"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData, TLSServerName: c.ServerName, InsecureSkipTLSVerify: c.Insecure}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: c.BearerToken, ClientCertificateData: c.CertData, ClientKeyData: c.KeyData,
		Impersonate: c.Impersonate.UserName, ImpersonateGroups: c.Impersonate.Groups, ImpersonateUserExtra: c.Impersonate.Extra}
	kc.Contexts["mosaic"] = &clientcmdapi.Context{Cluster: "mosaic", AuthInfo: "admin"}
	kc.CurrentContext = "mosaic"
	return clientcmd.WriteToFile(*kc, path)
}
