package security

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/mosaic-gpu/mosaic/manifests"
	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// waitTimeout bounds every wait for the API server or a component to reach
// a state. It is a hang guard, not a speed target.
const waitTimeout = 60 * time.Second

// The identities the manifests name.
const (
	schedulerUser     = "system:serviceaccount:kube-system:mosaic-scheduler"
	kubeSchedulerUser = "system:kube-scheduler" // config/default-scheduler.yaml in place of kube-scheduler
	agentSA           = "mosaic-device-plugin"
	webhookSA         = "mosaic-webhook"
	schedulerSA       = "mosaic-scheduler"
)

// installed are the manifest files whose RBAC, service accounts,
// ConfigMaps and admission policies install applies. Workloads are left
// out: the tests run the components' code in-process, and the webhook's
// pod checks are test/integration's.
var installed = []string{"scheduler.yaml", "device-plugin.yaml", "webhook.yaml", "admission-policy.yaml"}

// install applies the manifests and returns once the admission policies
// are in force.
func install(ctx context.Context) error {
	cs := cp.Client
	for _, file := range installed {
		objs, err := manifests.Objects(file)
		if err != nil {
			return err
		}
		for _, obj := range objs {
			if err := apply(ctx, cs, obj); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
		}
	}
	// RBAC takes effect once the authorizer's informers have the
	// objects; one permission of each binding shows it has.
	sa := func(name string) string { return "system:serviceaccount:kube-system:" + name }
	for _, can := range []struct{ user, verb, resource, ns, name string }{
		{sa(schedulerSA), "create", "pods/binding", "default", ""},                                  // system:kube-scheduler
		{sa(schedulerSA), "update", "persistentvolumes", "", ""},                                    // system:volume-scheduler
		{sa(schedulerSA), "update", "leases", "kube-system", "mosaic-scheduler"},                    // mosaic-scheduler-lease
		{sa(schedulerSA), "get", "configmaps", "kube-system", "extension-apiserver-authentication"}, // ...-authentication-reader
		{sa(agentSA), "patch", "pods", "default", ""},                                               // ClusterRole mosaic-device-plugin
		{sa(agentSA), "get", "configmaps", "kube-system", "mosaic-sharing"},                         // Role mosaic-device-plugin
	} {
		if err := waitCan(ctx, can.user, can.verb, can.resource, can.ns, can.name); err != nil {
			return err
		}
	}
	return policiesInForce(ctx)
}

// waitCan waits until RBAC lets user (with a service account's groups
// when it is one) verb the resource ("pods" or "pods/binding").
func waitCan(ctx context.Context, user, verb, resource, ns, name string) error {
	groups := []string{"system:authenticated"}
	if sans, _, err := serviceaccount.SplitUsername(user); err == nil {
		groups = append(groups, serviceaccount.MakeGroupNames(sans)...)
	}
	res, sub, _ := strings.Cut(resource, "/")
	group := ""
	if res == "leases" {
		group = "coordination.k8s.io"
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: res, Subresource: sub, Namespace: ns, Name: name}}}
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		got, err := cp.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		return err == nil && got.Status.Allowed, nil
	})
	if err != nil {
		return fmt.Errorf("RBAC does not let %s %s %s %s/%s within %v", user, verb, resource, ns, name, waitTimeout)
	}
	return nil
}

func apply(ctx context.Context, cs kubernetes.Interface, obj runtime.Object) error {
	opts := metav1.CreateOptions{}
	var err error
	switch o := obj.(type) {
	case *v1.ServiceAccount:
		_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, opts)
	case *v1.ConfigMap:
		_, err = cs.CoreV1().ConfigMaps(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.ClusterRole:
		_, err = cs.RbacV1().ClusterRoles().Create(ctx, o, opts)
	case *rbacv1.ClusterRoleBinding:
		_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, o, opts)
	case *rbacv1.Role:
		_, err = cs.RbacV1().Roles(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.RoleBinding:
		_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, opts)
	case *admissionregistrationv1.ValidatingAdmissionPolicy:
		_, err = cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, o, opts)
	case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		_, err = cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, o, opts)
	}
	return err
}

// policiesInForce waits until each admission policy refuses what it
// exists to refuse. A policy takes effect a moment after it is created,
// once the admission plugin's informer has it; the probes are dry runs, so
// they leave nothing behind.
func policiesInForce(ctx context.Context) error {
	cs := cp.Client
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "policy-probe"}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return err
	}
	pod := plainPod("default", "policy-probe")
	pod.Spec.NodeName = node.Name
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return err
	}
	agent := clientFor(impersonating("system:serviceaccount:kube-system:"+agentSA, map[string][]string{nodeNameKey: {node.Name}}))
	label := []byte(`{"metadata":{"labels":{"x":"y"}}}`)
	dry := []string{metav1.DryRunAll}
	probes := map[string]func() error{
		// Even a cluster admin may not write an allocation.
		"mosaic-allocation": func() error {
			p := plainPod("default", "policy-probe-2")
			p.Annotations = map[string]string{device.AllocationAnnotation: "{}"}
			_, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{DryRun: dry})
			return err
		},
		"mosaic-node-agent-pods": func() error {
			_, err := agent.CoreV1().Pods("default").Patch(ctx, pod.Name, types.MergePatchType, label, metav1.PatchOptions{DryRun: dry})
			return err
		},
		"mosaic-node-agent-nodes": func() error {
			_, err := agent.CoreV1().Nodes().Patch(ctx, node.Name, types.MergePatchType, label, metav1.PatchOptions{DryRun: dry})
			return err
		},
	}
	for policy, probe := range probes {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, waitTimeout, true, func(context.Context) (bool, error) {
			return deniedBy(probe(), policy), nil
		})
		if err != nil {
			return fmt.Errorf("policy %s not in force within %v: %v", policy, waitTimeout, probe())
		}
	}
	zero := int64(0)
	if err := cs.CoreV1().Pods("default").Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		return err
	}
	return cs.CoreV1().Nodes().Delete(ctx, node.Name, metav1.DeleteOptions{})
}

// nodeNameKey is the user extra a pod-bound service account token carries
// its pod's node in.
const nodeNameKey = "authentication.kubernetes.io/node-name"

// impersonating is the admin's config acting as user; the API server adds
// system:authenticated, and a service account's groups.
func impersonating(user string, extra map[string][]string) *rest.Config {
	c := rest.CopyConfig(cp.Config)
	c.Impersonate = rest.ImpersonationConfig{UserName: user, Extra: extra}
	return c
}

// serviceAccount returns a config that authenticates with a fresh token of
// the service account, as a pod of it does. Bound to a pod, the token names
// the pod's node, as the tokens the kubelet mounts do.
func serviceAccount(t *testing.T, ns, name string, pod *v1.Pod) *rest.Config {
	t.Helper()
	req := &authenticationv1.TokenRequest{}
	if pod != nil {
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	tok, err := cp.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, req, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", ns, name, err)
	}
	c := rest.AnonymousClientConfig(cp.Config)
	c.BearerToken = tok.Status.Token
	c.QPS, c.Burst = cp.Config.QPS, cp.Config.Burst
	return c
}

func clientFor(c *rest.Config) kubernetes.Interface {
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		panic(err) // only a malformed config fails, and these are copies of a working one
	}
	return cs
}

// deniedBy reports whether err is the given admission policy's refusal.
func deniedBy(err error, policy string) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "ValidatingAdmissionPolicy '"+policy+"'")
}

// mustBeDeniedBy fails the test unless err is policy's refusal with a
// message containing want.
func mustBeDeniedBy(t *testing.T, what string, err error, policy, want string) {
	t.Helper()
	if !deniedBy(err, policy) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: got %v, want policy %s's refusal saying %q", what, err, policy, want)
	}
}

// mustBeForbiddenByRBAC fails the test unless err is RBAC's refusal.
func mustBeForbiddenByRBAC(t *testing.T, what string, err error) {
	t.Helper()
	if !apierrors.IsForbidden(err) || strings.Contains(err.Error(), "ValidatingAdmissionPolicy") || !strings.Contains(err.Error(), "cannot") {
		t.Errorf("%s: got %v, want RBAC's refusal", what, err)
	}
}

func mustSucceed(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// namespace creates a fresh namespace for one test.
func namespace(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

func plainPod(ns, name string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1.PodSpec{SchedulerName: "none", Containers: []v1.Container{{Name: "c", Image: "x"}}}}
}

func binding(p *v1.Pod, node string, ann map[string]string) *v1.Binding {
	return &v1.Binding{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Annotations: ann},
		Target: v1.ObjectReference{Kind: "Node", Name: node}}
}

// legacyBind posts a Binding to the namespace's bindings resource, the
// path before pods/binding.
func legacyBind(ctx context.Context, cs kubernetes.Interface, b *v1.Binding) error {
	return cs.CoreV1().RESTClient().Post().Namespace(b.Namespace).Resource("bindings").Body(b).Do(ctx).Error()
}
