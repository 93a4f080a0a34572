package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/pkg/cluster"
	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/usage"
)

// schedulerProcess is one scheduler replica: the mosaic-scheduler binary's
// code in a process of its own (TestMain), its log kept.
type schedulerProcess struct {
	cmd *exec.Cmd
	log *syncBuffer
	// done is closed once the process has exited, with err its exit.
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// leads reports whether the replica has logged taking the lease.
func (p *schedulerProcess) leads() bool {
	return strings.Contains(strings.ToLower(p.log.String()), "successfully acquired lease")
}

func startReplica(t *testing.T, config string) *schedulerProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--config="+config, "--secure-port=0", "--v=1")
	cmd.Env = append(os.Environ(), schedulerProcessEnv+"=1")
	p := &schedulerProcess{cmd: cmd, log: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("scheduler replica %d log:\n%s", cmd.Process.Pid, tail(p.log.String(), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// replicaConfig writes the scheduler config the chart installed (its
// ConfigMap, leader election as the chart sets it) for a replica that
// runs as the chart's service account, with the key the chart generated,
// as the Deployment mounts them; it returns the file's path.
func replicaConfig(t *testing.T, ctx context.Context, ns string) (path string, key []byte) {
	t.Helper()
	dir := t.TempDir()
	cm, err := cp.Client.CoreV1().ConfigMaps(ns).Get(ctx, "mosaic-scheduler-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := cp.Client.CoreV1().Secrets(ns).Get(ctx, keySecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key = sec.Data[device.CurrentKey]
	keyFile := filepath.Join(dir, device.CurrentKey)
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := cp.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "mosaic-scheduler", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	as := rest.AnonymousClientConfig(cp.Config)
	as.BearerToken = tok.Status.Token
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := cluster.WriteKubeconfig(kubeconfig, as); err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["clientConnection"] = map[string]any{"kubeconfig": kubeconfig, "qps": 500, "burst": 500}
	for _, p := range cfg["profiles"].([]any) {
		for _, pc := range p.(map[string]any)["pluginConfig"].([]any) {
			if pc := pc.(map[string]any); pc["name"] == "Mosaic" {
				pc["args"].(map[string]any)["allocationKeyFile"] = keyFile
			}
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, key
}

// Two scheduler replicas as the chart runs them (its config, its service
// account, its key, leader election on), 500 device pods arriving: the
// leader is killed mid-stream; the other takes the lease once it expires
// and binds the rest. Every pod ends up bound once, those bound before the
// kill where they were, each with an allocation signed by the chart's key,
// and no card holds more than it offers (from the API objects).
func TestLeaderKilledMidStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*waitTimeout)
	defer cancel()
	const ns, podNS, pods = "kube-system", "leader-election", 500
	install(t, ns, map[string]any{"webhook": map[string]any{"enabled": false}})
	config, key := replicaConfig(t, ctx, ns)
	cs := cp.Client

	// 7 nodes x 8 cards x 10 shares: 560 shares for 500 pods of one share
	// and a tenth of a card's memory each, so a card booked twice shows.
	gpuNodes(t, ctx, "leader", 7, 8)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: podNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		zero := int64(0)
		_ = cs.CoreV1().Pods(podNS).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_ = cs.CoordinationV1().Leases(ns).Delete(ctx, "mosaic-scheduler", metav1.DeleteOptions{})
	})

	replicas := []*schedulerProcess{startReplica(t, config), startReplica(t, config)}
	var leader, standby *schedulerProcess
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, waitTimeout, true, func(context.Context) (bool, error) {
		for i, r := range replicas {
			select {
			case <-r.done:
				return false, fmt.Errorf("replica %d exited: %v", i, r.err)
			default:
			}
		}
		switch {
		case replicas[0].leads() && replicas[1].leads():
			return false, fmt.Errorf("both replicas lead")
		case replicas[0].leads():
			leader, standby = replicas[0], replicas[1]
		case replicas[1].leads():
			leader, standby = replicas[1], replicas[0]
		}
		return leader != nil, nil
	})
	if err != nil {
		t.Fatalf("no replica took the lease: %v", err)
	}
	before, err := cs.CoordinationV1().Leases(ns).Get(ctx, "mosaic-scheduler", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	create := func(from, to int) {
		for i := from; i < to; i++ {
			limits := v1.ResourceList{device.ResourceNvidiaGPU: resource.MustParse("1"), device.ResourceNvidiaMem: resource.MustParse("8192")}
			p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("work-%03d", i), Namespace: podNS},
				Spec: v1.PodSpec{SchedulerName: "mosaic-scheduler", Containers: []v1.Container{{Name: "c", Image: "x", Resources: v1.ResourceRequirements{Limits: limits}}}}}
			if _, err := cs.CoreV1().Pods(podNS).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Errorf("creating %s: %v", p.Name, err)
			}
		}
	}
	boundPods := func() map[string]string {
		l, err := cs.CoreV1().Pods(podNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, p := range l.Items {
			if p.Spec.NodeName != "" {
				out[p.Name] = p.Spec.NodeName
			}
		}
		return out
	}
	waitBound := func(n int, within time.Duration) map[string]string {
		var got map[string]string
		_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, within, true, func(context.Context) (bool, error) {
			got = boundPods()
			return len(got) >= n, nil
		})
		if len(got) < n {
			t.Fatalf("%d pods bound within %v, want %d", len(got), within, n)
		}
		return got
	}

	// The first half arrives while the leader runs; it is killed once a
	// fifth of all pods are bound, the rest of the first half still
	// arriving or queued.
	firstHalf := make(chan struct{})
	go func() { defer close(firstHalf); create(0, pods/2) }()
	waitBound(pods/5, waitTimeout)
	// A leader that lost its lease on a loaded machine has exited by
	// itself, as kube-scheduler does; that is a kill too.
	if err := leader.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	<-leader.done
	killed := time.Now()
	boundAtKill := boundPods()
	// The dead leader's last renewal: the standby may take the lease only
	// a lease duration after it, or two replicas would lead at once.
	last, err := cs.CoordinationV1().Leases(ns).Get(ctx, "mosaic-scheduler", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	<-firstHalf
	create(pods/2, pods)

	var after leaseRecord
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		l, err := cs.CoordinationV1().Leases(ns).Get(ctx, "mosaic-scheduler", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == *before.Spec.HolderIdentity {
			return false, nil
		}
		after = leaseRecord{holder: *l.Spec.HolderIdentity, transitions: *l.Spec.LeaseTransitions, acquired: l.Spec.AcquireTime.Time}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the lease still names the killed leader %s after %v", *before.Spec.HolderIdentity, waitTimeout)
	}
	if !standby.leads() {
		t.Errorf("the lease went to %s, but the standby replica did not log taking it", after.holder)
	}
	if after.transitions != *before.Spec.LeaseTransitions+1 {
		t.Errorf("lease transitions %d -> %d, want one hand-over", *before.Spec.LeaseTransitions, after.transitions)
	}
	duration := time.Duration(*last.Spec.LeaseDurationSeconds) * time.Second
	if *last.Spec.HolderIdentity == *before.Spec.HolderIdentity && after.acquired.Before(last.Spec.RenewTime.Add(duration)) {
		t.Errorf("the standby took the lease at %v, within %v of the dead leader's last renewal at %v", after.acquired, duration, last.Spec.RenewTime.Time)
	}
	t.Logf("leader killed with %d pods bound; the standby took the lease %v after the kill, %v after the last renewal (lease duration %v)",
		len(boundAtKill), after.acquired.Sub(killed).Round(100*time.Millisecond), after.acquired.Sub(last.Spec.RenewTime.Time).Round(100*time.Millisecond), duration)

	final := waitBound(pods, 5*waitTimeout)
	for name, node := range boundAtKill {
		if final[name] != node {
			t.Errorf("%s was bound to %s before the kill and is on %q after", name, node, final[name])
		}
	}
	checkBoundOnce(t, ctx, podNS, pods, key)
}

type leaseRecord struct {
	holder      string
	transitions int32
	acquired    time.Time
}

// checkBoundOnce checks, from the API objects, that want pods are bound,
// each with an allocation signed with key, and that no card holds more
// than it offers.
func checkBoundOnce(t *testing.T, ctx context.Context, ns string, want int, key []byte) {
	t.Helper()
	nl, err := cp.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keys := device.NewKeySet([]byte(strings.TrimSpace(string(key))))
	var nodes []*v1.Node
	for i := range nl.Items {
		nodes = append(nodes, &nl.Items[i])
	}
	var pods []*v1.Pod
	holding := 0
	for i := range pl.Items {
		p := &pl.Items[i]
		pods = append(pods, p)
		if _, _, ok, err := device.PodFootprint(p); err != nil || !ok {
			t.Errorf("pod %s on %q holds no allocation (%v)", p.Name, p.Spec.NodeName, err)
			continue
		}
		holding++
		if err := keys.Verify(string(p.UID), p.Annotations[device.AllocationAnnotation], p.Annotations[device.SignatureAnnotation]); err != nil {
			t.Errorf("pod %s: %v", p.Name, err)
		}
	}
	if holding != want {
		t.Errorf("%d pods hold cards, want %d", holding, want)
	}
	slots := 0
	for _, n := range usage.Compute(nodes, pods, device.DefaultNodeConfig()) {
		for _, c := range n.Cards {
			slots += c.UsedSlots
			if c.OverCommitted() {
				t.Errorf("node %s card %d over capacity: %+v", n.Name, c.Index, c)
			}
		}
	}
	if slots != want {
		t.Errorf("%d shares used across the cards, want %d (one per pod)", slots, want)
	}
}
