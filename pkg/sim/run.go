package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	schedulingv1beta1 "k8s.io/api/scheduling/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/config"
	"github.com/mosaic-gpu/mosaic/pkg/cluster"
	"github.com/mosaic-gpu/mosaic/pkg/dashboard"
)

// Options tune a run.
type Options struct {
	// SchedulerConfig is a KubeSchedulerConfiguration; nil runs Mosaic as
	// the second scheduler (config/mosaic-scheduler.yaml).
	SchedulerConfig []byte
	// Settle is how long to wait for pending pods after the last step.
	Settle time.Duration
	// StepTimeout bounds the wait for one pod to be bound or rejected.
	StepTimeout time.Duration
	// Serve, when set, is an address where the dashboard shows the
	// resulting cluster after the run, until ctx ends; Print is called
	// with the report first.
	Serve string
	// Listener, when set, is used instead of listening on Serve: a caller
	// that needs the address before the run (a test) holds the port from
	// the start, so nothing else can take it in between.
	Listener net.Listener
	Print    func(*Report) error
}

// Run executes the scenario on a fresh in-process cluster.
func Run(ctx context.Context, s *Scenario, opts Options) (*Report, error) {
	if opts.SchedulerConfig == nil {
		opts.SchedulerConfig = config.SecondScheduler
	}
	if opts.StepTimeout == 0 {
		opts.StepTimeout = 30 * time.Second
	}
	schedulerName, err := firstProfile(opts.SchedulerConfig)
	if err != nil {
		return nil, err
	}
	cp, err := cluster.StartWith(cluster.Options{Gangs: len(s.PodGroups) > 0})
	if err != nil {
		return nil, err
	}
	defer cp.Stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs := cp.Client
	if err := CreateNodes(ctx, cs, s.Nodes); err != nil {
		return nil, err
	}
	if err := cp.RunKubelet(ctx); err != nil {
		return nil, err
	}
	r := &runner{cs: cs, opts: opts, schedulerName: schedulerName, minCount: map[string]int{}, members: map[string]int{}}
	if err := r.createGroups(ctx, s.PodGroups); err != nil {
		return nil, err
	}
	if r.done, err = cp.StartScheduler(ctx, opts.SchedulerConfig); err != nil {
		return nil, err
	}
	for i, st := range s.Steps {
		if err := r.step(ctx, st); err != nil {
			return nil, fmt.Errorf("pods[%d]: %w", i, err)
		}
	}
	r.waitPending(ctx, opts.Settle)
	rep, err := buildReport(ctx, cs, r.created)
	if err != nil || (opts.Serve == "" && opts.Listener == nil) {
		return rep, err
	}
	if opts.Print != nil {
		if err := opts.Print(rep); err != nil {
			return nil, err
		}
	}
	return rep, serve(ctx, cs, schedulerName, opts.Serve, opts.Listener)
}

// serve shows the simulated cluster in the dashboard, on l or else on
// addr, until ctx ends.
func serve(ctx context.Context, cs kubernetes.Interface, schedulerName, addr string, l net.Listener) error {
	src, err := Dashboard(ctx, cs, schedulerName)
	if err != nil {
		return err
	}
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", addr); err != nil {
			return err
		}
	}
	srv := &http.Server{Handler: dashboard.Handler(*src), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type runner struct {
	cs            kubernetes.Interface
	opts          Options
	schedulerName string
	done          <-chan error
	created       []string // namespace/name, in creation order
	// minCount and members are, per pod group (namespace/name), its
	// gang's size and the pods of it created so far.
	minCount, members map[string]int
}

// createGroups creates the scenario's PodGroups, each with a gang policy.
func (r *runner) createGroups(ctx context.Context, groups []PodGroupSpec) error {
	for _, g := range groups {
		if err := ensureNamespace(ctx, r.cs, g.Namespace); err != nil {
			return err
		}
		pg := &schedulingv1beta1.PodGroup{ObjectMeta: metav1.ObjectMeta{Name: g.Name, Namespace: g.Namespace},
			Spec: schedulingv1beta1.PodGroupSpec{SchedulingPolicy: schedulingv1beta1.PodGroupSchedulingPolicy{
				Gang: &schedulingv1beta1.GangSchedulingPolicy{MinCount: g.MinCount}}}}
		if _, err := r.cs.SchedulingV1beta1().PodGroups(g.Namespace).Create(ctx, pg, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating pod group %s: %w", g.Key(), err)
		}
		r.minCount[g.Key()] = int(g.MinCount)
	}
	return nil
}

func (r *runner) step(ctx context.Context, st Step) error {
	if st.Delete != "" {
		ns, name := splitKey(st.Delete)
		zero := int64(0)
		if err := r.cs.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		// The scheduler retries pods that a delete may have made room for
		// within its requeue window; give it that long to bind them.
		r.waitPending(ctx, 3*time.Second)
		return nil
	}
	pod := st.Pod.DeepCopy()
	if pod.Spec.SchedulerName == "" {
		pod.Spec.SchedulerName = r.schedulerName
	}
	if err := ensureNamespace(ctx, r.cs, pod.Namespace); err != nil {
		return err
	}
	if _, err := r.cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	// A pod deleted and created again is reported once, at its new place.
	key := pod.Namespace + "/" + pod.Name
	r.created = slices.DeleteFunc(r.created, func(k string) bool { return k == key })
	r.created = append(r.created, key)
	// The scheduler takes up a gang's pods once minCount of them exist:
	// until then there is nothing to wait for.
	if g := group(pod); g != "" {
		if r.members[g]++; r.members[g] < r.minCount[g] {
			return nil
		}
	}
	return r.waitSettled(ctx, pod.Namespace, pod.Name)
}

// waitSettled waits until the pod is bound or the scheduler marked it
// unschedulable.
func (r *runner) waitSettled(ctx context.Context, ns, name string) error {
	deadline := time.Now().Add(r.opts.StepTimeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-r.done:
			return fmt.Errorf("scheduler stopped: %v", err)
		default:
		}
		pod, err := r.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if settled(pod) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	klog.FromContext(ctx).Info("Pod neither bound nor rejected in time", "pod", klog.KRef(ns, name), "timeout", r.opts.StepTimeout)
	return nil
}

func settled(pod *v1.Pod) bool {
	if pod.Spec.NodeName != "" {
		return true
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse && c.Reason == v1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

// waitPending waits up to d for the pods not yet bound to be bound.
func (r *runner) waitPending(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		pending := false
		for _, key := range r.created {
			ns, name := splitKey(key)
			pod, err := r.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err == nil && pod.Spec.NodeName == "" {
				pending = true
				break
			}
		}
		if !pending {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ensureNamespace(ctx context.Context, cs kubernetes.Interface, ns string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	return nil
}

// firstProfile returns the scheduler name of the config's first profile.
func firstProfile(cfg []byte) (string, error) {
	var c struct {
		Profiles []struct {
			SchedulerName string `json:"schedulerName"`
		} `json:"profiles"`
	}
	if err := yaml.Unmarshal(cfg, &c); err != nil {
		return "", fmt.Errorf("scheduler config: %w", err)
	}
	if len(c.Profiles) == 0 || c.Profiles[0].SchedulerName == "" {
		return v1.DefaultSchedulerName, nil
	}
	return c.Profiles[0].SchedulerName, nil
}

// splitKey splits a NAMESPACE/NAME key; keys are made by Parse and always
// carry a namespace.
func splitKey(k string) (string, string) {
	ns, name, _ := cache.SplitMetaNamespaceKey(k)
	return ns, name
}
