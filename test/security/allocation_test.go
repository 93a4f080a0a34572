package security

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

const allocationPolicy = "mosaic-allocation"

// An ordinary user whom RBAC lets write pods through every path (create,
// update, patch, pods/status, pods/binding and the legacy bindings) cannot
// set, change or remove an allocation through any of them, while the same
// calls without the annotations go through. The scheduler's identities, its
// service account and system:kube-scheduler, bind with an allocation.
func TestOnlyTheSchedulerWritesAllocations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	ns := namespace(t, "tenant")
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: ns}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "create", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods/status"}, Verbs: []string{"update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods/binding", "bindings"}, Verbs: []string{"create"}},
	}}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: ns},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "alice", APIGroup: rbacv1.GroupName}},
		RoleRef:  rbacv1.RoleRef{Kind: "Role", Name: "tenant", APIGroup: rbacv1.GroupName}}
	if _, err := cp.Client.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Client.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitCan(ctx, "alice", "create", "pods", ns, ""); err != nil {
		t.Fatal(err)
	}
	alice := clientFor(impersonating("alice", nil))
	scheduler := clientFor(serviceAccount(t, "kube-system", schedulerSA, nil))
	kubeScheduler := clientFor(impersonating(kubeSchedulerUser, nil))

	allocation := map[string]string{device.AllocationAnnotation: `{"v":1}`, device.SignatureAnnotation: "sig"}
	withAnn := func(p *v1.Pod, ann map[string]string) *v1.Pod {
		p.Annotations = ann
		return p
	}
	create := func(name string) *v1.Pod {
		t.Helper()
		p, err := alice.CoreV1().Pods(ns).Create(ctx, plainPod(ns, name), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("alice creating a plain pod: %v", err)
		}
		return p
	}
	const want = "may not set, change or remove them"

	// Creation, bound or not.
	_, err := alice.CoreV1().Pods(ns).Create(ctx, withAnn(plainPod(ns, "c1"), allocation), metav1.CreateOptions{})
	mustBeDeniedBy(t, "create with an allocation", err, allocationPolicy, "alice "+want)
	_, err = alice.CoreV1().Pods(ns).Create(ctx, withAnn(plainPod(ns, "c2"), map[string]string{device.SignatureAnnotation: "sig"}), metav1.CreateOptions{})
	mustBeDeniedBy(t, "create with a signature", err, allocationPolicy, want)
	bound := withAnn(plainPod(ns, "c3"), allocation)
	bound.Spec.NodeName = "gpu-1"
	_, err = alice.CoreV1().Pods(ns).Create(ctx, bound, metav1.CreateOptions{})
	mustBeDeniedBy(t, "create already bound with an allocation", err, allocationPolicy, want)
	_, err = cp.Client.CoreV1().Pods(ns).Create(ctx, withAnn(plainPod(ns, "c4"), allocation), metav1.CreateOptions{})
	mustBeDeniedBy(t, "a cluster admin creating with an allocation", err, allocationPolicy, want)

	// Update, patch and status of an unbound pod.
	p := create("plain")
	p.Annotations = allocation
	_, err = alice.CoreV1().Pods(ns).Update(ctx, p, metav1.UpdateOptions{})
	mustBeDeniedBy(t, "update adding an allocation", err, allocationPolicy, want)
	_, err = alice.CoreV1().Pods(ns).Patch(ctx, "plain", types.MergePatchType, []byte(`{"metadata":{"annotations":{"mosaic.io/allocation":"{}"}}}`), metav1.PatchOptions{})
	mustBeDeniedBy(t, "patch adding an allocation", err, allocationPolicy, want)
	_, err = alice.CoreV1().Pods(ns).Patch(ctx, "plain", types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"a"}}}`), metav1.PatchOptions{})
	mustSucceed(t, "patch adding a label", err)
	p, err = alice.CoreV1().Pods(ns).Get(ctx, "plain", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Annotations = allocation
	_, err = alice.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	mustBeDeniedBy(t, "pods/status adding an allocation", err, allocationPolicy, want)
	p.Annotations = nil
	p.Status.Conditions = append(p.Status.Conditions, v1.PodCondition{Type: "example.com/Ready", Status: v1.ConditionTrue})
	_, err = alice.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	mustSucceed(t, "pods/status adding a condition", err)

	// Bindings: both paths carry annotations onto the pod.
	b1, b2 := create("bind-1"), create("bind-2")
	err = alice.CoreV1().Pods(ns).Bind(ctx, binding(b1, "gpu-1", allocation), metav1.CreateOptions{})
	mustBeDeniedBy(t, "pods/binding with an allocation", err, allocationPolicy, want)
	err = legacyBind(ctx, alice, binding(b2, "gpu-1", allocation))
	mustBeDeniedBy(t, "bindings with an allocation", err, allocationPolicy, want)
	mustSucceed(t, "pods/binding without annotations", alice.CoreV1().Pods(ns).Bind(ctx, binding(b1, "gpu-1", nil), metav1.CreateOptions{}))
	mustSucceed(t, "bindings without annotations", legacyBind(ctx, alice, binding(b2, "gpu-1", nil)))

	// The scheduler's identities bind with an allocation, through both
	// paths; the API server copies it onto the pod.
	s1, s2, s3 := create("sched-1"), create("sched-2"), create("sched-3")
	mustSucceed(t, "the scheduler's pods/binding", scheduler.CoreV1().Pods(ns).Bind(ctx, binding(s1, "gpu-1", allocation), metav1.CreateOptions{}))
	mustSucceed(t, "the scheduler's bindings", legacyBind(ctx, scheduler, binding(s2, "gpu-1", allocation)))
	mustSucceed(t, "system:kube-scheduler's pods/binding", kubeScheduler.CoreV1().Pods(ns).Bind(ctx, binding(s3, "gpu-1", allocation), metav1.CreateOptions{}))
	for _, name := range []string{"sched-1", "sched-2", "sched-3"} {
		got, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.NodeName != "gpu-1" || got.Annotations[device.AllocationAnnotation] != allocation[device.AllocationAnnotation] {
			t.Errorf("%s: node %q, annotations %v; want the Binding's", name, got.Spec.NodeName, got.Annotations)
		}
	}

	// On a pod the scheduler bound, an allocation can be neither changed
	// nor removed; other edits still go through.
	_, err = alice.CoreV1().Pods(ns).Patch(ctx, "sched-1", types.MergePatchType, []byte(`{"metadata":{"annotations":{"mosaic.io/allocation":"{\"v\":2}"}}}`), metav1.PatchOptions{})
	mustBeDeniedBy(t, "patch changing an allocation", err, allocationPolicy, want)
	_, err = alice.CoreV1().Pods(ns).Patch(ctx, "sched-1", types.MergePatchType, []byte(`{"metadata":{"annotations":{"mosaic.io/allocation":null}}}`), metav1.PatchOptions{})
	mustBeDeniedBy(t, "patch removing an allocation", err, allocationPolicy, want)
	_, err = alice.CoreV1().Pods(ns).Patch(ctx, "sched-1", types.JSONPatchType, []byte(`[{"op":"remove","path":"/metadata/annotations/mosaic.io~1allocation-signature"}]`), metav1.PatchOptions{})
	mustBeDeniedBy(t, "JSON patch removing a signature", err, allocationPolicy, want)
	_, err = alice.CoreV1().Pods(ns).Patch(ctx, "sched-1", types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"a"},"annotations":{"note":"x"}}}`), metav1.PatchOptions{})
	mustSucceed(t, "patch of a bound pod's label and another annotation", err)
}
