package gang

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"

	"github.com/mosaic-gpu/mosaic/pkg/cluster"
	"github.com/mosaic-gpu/mosaic/pkg/webhook"
)

// startWebhook serves the admission webhook, mapping group annotations
// with the API server's PodGroups, and registers it for the env's
// namespace as the chart does with webhook.podGroups on. It returns once
// the API server calls it.
func (e *env) startWebhook() {
	e.t.Helper()
	logger, _ := ktesting.NewTestContext(e.t)
	cfg := webhook.Config{SchedulerName: schedulerName, ParseOptions: webhook.DefaultParseOptions(), PodGroups: e.cs.SchedulingV1beta1().PodGroups}
	// The webhook creates PodGroups, but never on a dry run.
	stop, err := cluster.ServePodWebhook(e.ctx, e.cs, webhook.New(cfg, logger), e.ns, admissionregistrationv1.SideEffectClassNoneOnDryRun)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(stop)
	// The API server picks the configuration up within a moment: wait
	// until a bad minimum is refused.
	probe := e.koordinatorPod("webhook-probe", "probe", "x")
	err = wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := e.cs.CoreV1().Pods(e.ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), webhook.KoordinatorGangMinAvailable), nil
	})
	if err != nil {
		e.t.Fatal("the webhook never refused a bad minimum")
	}
}

// koordinatorPod is a 2-card pod of a Koordinator gang, with no schedulerName
// and no schedulingGroup: the webhook sets both.
func (e *env) koordinatorPod(name, group, minAvailable string) *v1.Pod {
	p := e.podObject(name, "", 2)
	p.Spec.SchedulerName = ""
	p.Annotations = map[string]string{webhook.KoordinatorGangName: group, webhook.KoordinatorGangMinAvailable: minAvailable}
	return p
}

// A job written for Koordinator's gang (name and min-available
// annotations) runs as an upstream gang: the webhook creates the PodGroup
// and names it in each pod, the group waits whole while it does not fit
// and binds whole once it does. A non-integer minimum is refused at
// creation, naming the annotation and the limit.
func TestKoordinatorGangAnnotations(t *testing.T) {
	e := newEnv(t, h200("gang-k"))
	e.startWebhook()
	_, err := e.cs.CoreV1().Pods(e.ns).Create(e.ctx, e.koordinatorPod("bad", "train", "-2"), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), `annotation gang.scheduling.koordinator.sh/min-available="-2" must be an integer in 1..2147483647`) {
		t.Fatalf("a negative min-available: %v, want refused naming the annotation and the limit", err)
	}
	e.pod("holder", "", 2)
	e.poll("holder bound", func(p map[string]*v1.Pod) bool { return bound(p, "holder") == 1 })
	names := members("train", 4)
	for _, name := range names {
		if _, err := e.cs.CoreV1().Pods(e.ns).Create(e.ctx, e.koordinatorPod(name, "train", "4"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating %s: %v", name, err)
		}
	}
	pg, err := e.cs.SchedulingV1beta1().PodGroups(e.ns).Get(e.ctx, "train", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the webhook created no PodGroup: %v", err)
	}
	if g := pg.Spec.SchedulingPolicy.Gang; g == nil || g.MinCount != 4 {
		t.Errorf("PodGroup train has %+v, want a gang of minCount 4", pg.Spec.SchedulingPolicy)
	}
	pods := e.poll("the group rejected", func(p map[string]*v1.Pod) bool { return rejected(p, names...) })
	for _, name := range names {
		if g := pods[name].Spec.SchedulingGroup; g == nil || g.PodGroupName == nil || *g.PodGroupName != "train" {
			t.Errorf("%s has schedulingGroup %+v, want podGroupName train", name, g)
		}
	}
	e.checkCapacity()
	e.delete("holder")
	e.poll("the group bound", func(p map[string]*v1.Pod) bool { return e.whole(p, names) })
	if got := e.checkCapacity(); got != 4 {
		t.Errorf("%d pods hold cards, want the group's 4", got)
	}
}
