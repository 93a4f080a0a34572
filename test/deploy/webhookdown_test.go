package deploy

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// With the chart installed and its webhook not running (no pod behind the
// Service: nothing here runs Deployments), the registration fails closed
// for tenants' pods, and blocks neither the system namespaces' pods nor
// the webhook's own, nor the scheduler's and node agent's in the release's
// namespace.
func TestWebhookDownBlocksNoSystemPod(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
	defer cancel()
	const ns, tenant = "mosaic-system", "webhook-down-tenant"
	install(t, ns, nil)
	cs := cp.Client
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenant}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	plain := func(ns, name string) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "x"}}}}
	}
	create := func(p *v1.Pod) error {
		_, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
		if err == nil {
			zero := int64(0)
			t.Cleanup(func() {
				_ = cs.CoreV1().Pods(p.Namespace).Delete(context.Background(), p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
			})
		}
		return err
	}
	calledWebhook := func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "failed calling webhook") && strings.Contains(err.Error(), "pods.mosaic.io")
	}

	// The registration is in force once a tenant's pod is refused by it;
	// the API server's webhook informer takes a moment. Dry runs leave
	// nothing behind.
	probe := plain(tenant, "probe")
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		_, last = cs.CoreV1().Pods(tenant).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return calledWebhook(last), nil
	})
	if err != nil {
		t.Fatalf("a tenant's pod with the webhook down: %v, want the webhook's failure", last)
	}
	if err := create(plain(tenant, "work")); !calledWebhook(err) || !apierrors.IsInternalError(err) {
		t.Errorf("a tenant's pod with the webhook down: %v, want refused (fail closed)", err)
	}

	for _, system := range []string{"kube-system", "kube-public", "kube-node-lease"} {
		if err := create(plain(system, "critical")); err != nil {
			t.Errorf("a pod in %s with the webhook down: %v", system, err)
		}
	}
	// The release's own pods, as their controllers would create them.
	templates := map[string]v1.PodTemplateSpec{}
	for _, name := range []string{"mosaic-webhook", "mosaic-scheduler"} {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		templates[name] = d.Spec.Template
	}
	ds, err := cs.AppsV1().DaemonSets(ns).Get(ctx, "mosaic-device-plugin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	templates[ds.Name] = ds.Spec.Template
	for name, tmpl := range templates {
		p := &v1.Pod{ObjectMeta: *tmpl.ObjectMeta.DeepCopy(), Spec: *tmpl.Spec.DeepCopy()}
		p.Name, p.Namespace = name+"-0", ns
		if err := create(p); err != nil {
			t.Errorf("%s's pod with the webhook down: %v", name, err)
		}
	}
}
