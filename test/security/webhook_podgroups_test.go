package security

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/mosaic-gpu/mosaic/manifests/charts"
)

// With webhook.podGroups the chart lets the webhook's service account get
// and create PodGroups, and nothing more: it still cannot read Secrets,
// create pods or change them, nor update or delete PodGroups.
func TestWebhookPodGroupRights(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	out, err := charts.Render(charts.PlainNamespace, map[string]any{"webhook": map[string]any{"podGroups": true}})
	if err != nil {
		t.Fatal(err)
	}
	var role *rbacv1.ClusterRole
	var binding *rbacv1.ClusterRoleBinding
	for _, doc := range out {
		dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(doc)), 4096)
		for {
			var raw runtime.RawExtension
			if err := dec.Decode(&raw); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
				break
			}
			if len(bytes.TrimSpace(raw.Raw)) == 0 || string(raw.Raw) == "null" {
				continue
			}
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(raw.Raw, nil, nil)
			if err != nil {
				continue // the operators' kinds
			}
			switch o := obj.(type) {
			case *rbacv1.ClusterRole:
				if o.Name == "mosaic-webhook-podgroups" {
					role = o
				}
			case *rbacv1.ClusterRoleBinding:
				if o.Name == "mosaic-webhook-podgroups" {
					binding = o
				}
			}
		}
	}
	if role == nil || binding == nil {
		t.Fatalf("webhook.podGroups rendered role %v and binding %v, want both", role != nil, binding != nil)
	}
	rbac := cp.Client.RbacV1()
	if _, err := rbac.ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rbac.ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{}) })
	if _, err := rbac.ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rbac.ClusterRoleBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})

	// The authorizer learns of the new role and binding from its informers,
	// so the granted verbs are awaited; the refused ones are then asked
	// once, against an authorizer that already sees the role.
	user := "system:serviceaccount:kube-system:" + webhookSA
	review := func(verb string) (bool, error) {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "team", Verb: verb, Group: "scheduling.k8s.io", Resource: "podgroups"}}}
		got, err := cp.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		return got.Status.Allowed, nil
	}
	for _, verb := range []string{"get", "create"} {
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, waitTimeout, true, func(context.Context) (bool, error) {
			allowed, err := review(verb)
			return err == nil && allowed, nil
		})
		if err != nil {
			t.Errorf("the webhook may not %s podgroups within %v, want it may", verb, waitTimeout)
		}
	}
	for _, verb := range []string{"update", "delete", "list"} {
		allowed, err := review(verb)
		if err != nil {
			t.Fatal(err)
		}
		if allowed {
			t.Errorf("the webhook may %s podgroups, want it may not", verb)
		}
	}
	ns := namespace(t, "webhook-podgroups")
	pod, err := cp.Client.CoreV1().Pods(ns).Create(ctx, plainPod(ns, "work"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secret(t, ctx)
	wh := clientFor(serviceAccount(t, "kube-system", webhookSA, nil))
	for what, err := range cannot(ctx, wh, ns, pod) {
		mustBeForbiddenByRBAC(t, "the webhook "+what, err)
	}
}
