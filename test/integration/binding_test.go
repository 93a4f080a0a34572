package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/config"
)

// A Binding that the API server refuses releases the pod's reservation,
// and the pods that only this reservation kept out are retried at once.
// The scheduler reports the release as a delete of its own copy of the
// pod, which carries no allocation (only the Binding did); the waiter must
// still be bound within waitTimeout, far below the scheduler's five-minute
// flush of unschedulable pods.
func TestRefusedBindingReleasesCards(t *testing.T) {
	e, g := newGatedEnv(t, nil, a100("refuse", 1))
	e.refuseBindings("refused")
	held := g.gate(e.ns, "refused", holdBinding)
	e.create(e.pod(podSpec{name: "refused", limits: wholeCard}))
	g.await(held)
	// The card is only reserved: refused's Binding waits at the gate.
	e.mustReject(podSpec{name: "waiter", limits: wholeCard}, "GPU in exclusive use")
	start := time.Now()
	close(held.release)
	if e.settleBound("waiter") == nil {
		t.Fatalf("waiter not bound within %v of the refused binding", waitTimeout)
	}
	t.Logf("waiter bound %v after the binding was released", time.Since(start))
	if p, err := e.cs.CoreV1().Pods(e.ns).Get(e.ctx, "refused", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if p.Spec.NodeName != "" {
		t.Errorf("refused pod bound to %s despite the policy", p.Spec.NodeName)
	}
	e.checkCapacity()
}

// A Binding whose answer is lost after it committed (the client sees a
// timeout) bound the pod: the scheduler reports it scheduled, not failed,
// and keeps its cards counted, so no later pod is placed on them.
func TestLostAnswerOfCommittedBinding(t *testing.T) {
	e, g := newGatedEnv(t, nil, a100("lost", 1))
	lost := g.gate(e.ns, "lost", loseAnswer)
	e.create(e.pod(podSpec{name: "lost", limits: wholeCard}))
	g.await(lost)
	close(lost.release)
	if got := e.awaitBindingOutcome("lost"); got != "Scheduled" {
		t.Errorf("the scheduler reported %s for a pod whose Binding committed, want Scheduled", got)
	}
	e.mustReject(podSpec{name: "next", limits: wholeCard}, "GPU in exclusive use")
	if got := e.checkCapacity(); got != 1 {
		t.Errorf("%d pods hold cards, want 1 (lost)", got)
	}
}

// A Binding still on its way to the API server when the client gave up
// may commit later. Meanwhile its cards must not go to another pod: once
// the late Binding has landed (or been refused), the API objects hold the
// capacity invariant and the pod placed after the failure is not on them.
// The scheduler's own retry of the pod waits a minute here, so that the
// next pod placed on the card is next, as on a cluster where pods wait.
func TestLateBindingKeepsCards(t *testing.T) {
	e, g := newGatedEnv(t, withBackoff(t, 60), a100("late", 1))
	late := g.gate(e.ns, "late", commitLate)
	e.create(e.pod(podSpec{name: "late", limits: wholeCard}))
	g.await(late)
	e.awaitBindingOutcome("late")
	e.create(e.pod(podSpec{name: "next", limits: wholeCard}))
	next := e.settle("next")
	close(late.release)
	select {
	case code := <-late.sent:
		t.Logf("the late Binding was answered %d", code)
	case <-time.After(waitTimeout):
		t.Fatalf("the late Binding got no answer within %v", waitTimeout)
	}
	if e.settleBound("late") == nil {
		t.Errorf("late not bound")
	}
	if next.Spec.NodeName != "" {
		t.Errorf("next bound to %s, on the card of a Binding still on its way", next.Spec.NodeName)
	}
	e.checkCapacity()
}

// withBackoff is the shipped second-scheduler config with the backoff of
// a pod's retries set to seconds.
func withBackoff(t testing.TB, seconds int) []byte {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal(config.SecondScheduler, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["podInitialBackoffSeconds"], cfg["podMaxBackoffSeconds"] = seconds, seconds
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// refuseBindings has the API server refuse every Binding of the named pod
// in e's namespace, through a ValidatingAdmissionPolicy on pods/binding,
// and returns once the policy is in force.
func (e *env) refuseBindings(pod string) {
	e.t.Helper()
	const message = "binding refused by the test's policy"
	fail := admissionregistrationv1.Fail
	name := "refuse-binding-" + e.ns
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": e.ns}},
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/binding"}},
				}}},
			},
			Validations: []admissionregistrationv1.Validation{{Expression: fmt.Sprintf("object.metadata.name != %q", pod), Message: message}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	api := e.cs.AdmissionregistrationV1()
	if _, err := api.ValidatingAdmissionPolicies().Create(e.ctx, policy, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		_ = api.ValidatingAdmissionPolicies().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	if _, err := api.ValidatingAdmissionPolicyBindings().Create(e.ctx, binding, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		_ = api.ValidatingAdmissionPolicyBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	// The API server applies a policy once its informers have it. Admission
	// runs before the pod is looked up, so a dry-run Binding of a pod that
	// does not exist yet tells.
	var bindErr error
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		probe := &v1.Binding{ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: e.ns}, Target: v1.ObjectReference{Kind: "Node", Name: "nowhere"}}
		bindErr = e.cs.CoreV1().Pods(e.ns).Bind(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return bindErr != nil && strings.Contains(bindErr.Error(), message), nil
	})
	if err != nil {
		e.t.Fatalf("the binding policy is not in force after %v: last dry run: %v", waitTimeout, bindErr)
	}
}

// awaitBindingOutcome waits until the scheduler has finished with the
// pod's binding, successful or not: it records an event either way, after
// it has released or kept the pod's reservation. It returns the event's
// reason, Scheduled or FailedScheduling.
func (e *env) awaitBindingOutcome(pod string) (reason string) {
	e.t.Helper()
	err := wait.PollUntilContextTimeout(e.ctx, 20*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		l, err := e.cs.EventsV1().Events(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, ev := range l.Items {
			if ev.Regarding.Name == pod && (ev.Reason == "Scheduled" || ev.Reason == "FailedScheduling") {
				e.t.Logf("scheduler: %s %s: %s", ev.Reason, pod, ev.Note)
				reason = ev.Reason
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		e.t.Fatalf("the scheduler recorded no outcome of %s's binding within %v", pod, waitTimeout)
	}
	return reason
}
