package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// tokenClient connects as a service account of the release with a fresh
// token, bound to pod when given (so that it names the pod's node, as the
// kubelet's tokens do).
func tokenClient(t *testing.T, ctx context.Context, ns, sa string, pod *v1.Pod) kubernetes.Interface {
	t.Helper()
	req := &authenticationv1.TokenRequest{}
	if pod != nil {
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tok, err := cp.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token of %s/%s: %v", ns, sa, err)
	}
	c := rest.AnonymousClientConfig(cp.Config)
	c.BearerToken = tok.Status.Token
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// eventually retries call until it succeeds: RBAC and admission policies
// take effect a moment after they are created.
func eventually(t *testing.T, ctx context.Context, what string, call func() error) {
	t.Helper()
	var err error
	if werr := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, waitTimeout, true, func(context.Context) (bool, error) {
		err = call()
		return err == nil, nil
	}); werr != nil {
		t.Errorf("%s: %v", what, err)
	}
}

func forbidden(t *testing.T, what string, err error, by string) {
	t.Helper()
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), by) {
		t.Errorf("%s: got %v, want a refusal mentioning %q", what, err, by)
	}
}

// Installed into a namespace of its own, the chart's service accounts,
// roles and admission policies name that namespace: each component can
// make the calls its job needs and is refused the rest, allocations
// included. (test/security runs the components themselves under the
// kube-system render.)
func TestChartRightsInItsNamespace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
	defer cancel()
	const ns, tenant = "mosaic-rbac", "rbac-tenant"
	// No webhook runs here; ignoring its failures lets the tenant's pods
	// through and changes no one's rights.
	install(t, ns, map[string]any{"webhook": map[string]any{"failurePolicy": "Ignore"}})
	cs := cp.Client
	nodes := gpuNodes(t, ctx, "rbac", 2, 1)
	mine, other := nodes[0], nodes[1]
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenant}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := func(ns, name, node, sa string) *v1.Pod {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1.PodSpec{SchedulerName: "none", NodeName: node, ServiceAccountName: sa, Containers: []v1.Container{{Name: "c", Image: "x"}}}}
		p, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		zero := int64(0)
		t.Cleanup(func() {
			_ = cs.CoreV1().Pods(ns).Delete(context.Background(), p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		})
		return p
	}
	pending := pod(tenant, "pending", "", "")
	onMine := pod(tenant, "on-mine", mine, "")
	onOther := pod(tenant, "on-other", other, "")
	agentPod := pod(ns, "mosaic-device-plugin-"+mine, mine, "mosaic-device-plugin")

	sched := tokenClient(t, ctx, ns, "mosaic-scheduler", nil)
	agent := tokenClient(t, ctx, ns, "mosaic-device-plugin", agentPod)
	hook := tokenClient(t, ctx, ns, "mosaic-webhook", nil)
	allocation := map[string]string{device.AllocationAnnotation: "{}", device.SignatureAnnotation: "x"}

	// Even the cluster admin may not write an allocation: the policy is in
	// force (checked by dry run).
	patchAlloc := func(c kubernetes.Interface, p *v1.Pod, dry bool) error {
		opts := metav1.PatchOptions{}
		if dry {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		_, err := c.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, []byte(`{"metadata":{"annotations":{"mosaic.io/allocation":"{}"}}}`), opts)
		return err
	}
	refused := func(err error) error {
		if !apierrors.IsForbidden(err) {
			return fmt.Errorf("not refused: %v", err)
		}
		return nil
	}
	eventually(t, ctx, "the allocation policy refusing the admin", func() error { return refused(patchAlloc(cs, onMine, true)) })

	// The scheduler binds with an allocation, and keeps its lease.
	eventually(t, ctx, "the scheduler binding with an allocation", func() error {
		return sched.CoreV1().Pods(tenant).Bind(ctx, &v1.Binding{ObjectMeta: metav1.ObjectMeta{Name: pending.Name, Namespace: tenant, Annotations: allocation},
			Target: v1.ObjectReference{Kind: "Node", Name: mine}}, metav1.CreateOptions{})
	})
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "mosaic-scheduler", Namespace: ns}}
	eventually(t, ctx, "the scheduler creating its lease", func() error {
		_, err := sched.CoordinationV1().Leases(ns).Create(ctx, lease, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
	eventually(t, ctx, "the scheduler renewing its lease", func() error {
		l, err := sched.CoordinationV1().Leases(ns).Get(ctx, lease.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		_, err = sched.CoordinationV1().Leases(ns).Update(ctx, l, metav1.UpdateOptions{})
		return err
	})
	_, err := sched.CoreV1().Secrets(ns).Get(ctx, keySecret, metav1.GetOptions{})
	forbidden(t, "the scheduler reading the signing key's Secret", err, "cannot get resource")
	_, err = sched.CoreV1().Pods(tenant).Patch(ctx, onOther.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
	forbidden(t, "the scheduler patching a pod", err, "cannot patch resource")
	_, err = sched.CoordinationV1().Leases(ns).Get(ctx, "other-component", metav1.GetOptions{})
	forbidden(t, "the scheduler reading another lease of the namespace", err, "cannot get resource")

	// The node agent reads its ConfigMap, publishes its inventory, labels
	// its node's pods; nothing else.
	eventually(t, ctx, "the agent reading mosaic-sharing", func() error {
		_, err := agent.CoreV1().ConfigMaps(ns).Get(ctx, "mosaic-sharing", metav1.GetOptions{})
		return err
	})
	label := []byte(`{"metadata":{"labels":{"mosaic.io/handed-out":"true"}}}`)
	eventually(t, ctx, "the agent labelling its node's pod", func() error {
		_, err := agent.CoreV1().Pods(tenant).Patch(ctx, onMine.Name, types.MergePatchType, label, metav1.PatchOptions{})
		return err
	})
	eventually(t, ctx, "the agent publishing its inventory", func() error {
		n, err := cs.CoreV1().Nodes().Get(ctx, mine, metav1.GetOptions{})
		if err != nil {
			return err
		}
		p := []byte(`{"metadata":{"annotations":{"mosaic.io/devices":` + quote(n.Annotations[device.InventoryAnnotation]) + `}}}`)
		_, err = agent.CoreV1().Nodes().Patch(ctx, mine, types.MergePatchType, p, metav1.PatchOptions{})
		return err
	})
	// The node agent's policy, in force once it refuses a dry run.
	eventually(t, ctx, "the node agent's pod policy in force", func() error {
		_, err := agent.CoreV1().Pods(tenant).Patch(ctx, onOther.Name, types.MergePatchType, label, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		return refused(err)
	})
	_, err = agent.CoreV1().Secrets(ns).Get(ctx, keySecret, metav1.GetOptions{})
	forbidden(t, "the agent reading the signing key's Secret", err, "cannot get resource")
	_, err = agent.CoreV1().ConfigMaps(ns).Get(ctx, "mosaic-scheduler-config", metav1.GetOptions{})
	forbidden(t, "the agent reading another ConfigMap", err, "cannot get resource")
	_, err = agent.CoreV1().Pods(tenant).Patch(ctx, onOther.Name, types.MergePatchType, label, metav1.PatchOptions{})
	forbidden(t, "the agent labelling another node's pod", err, "mosaic-node-agent-pods")
	forbidden(t, "the agent writing an allocation", patchAlloc(agent, onMine, false), "ValidatingAdmissionPolicy")
	_, err = agent.CoreV1().Pods(tenant).Create(ctx, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "sneaky"}, Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "x"}}}}, metav1.CreateOptions{})
	forbidden(t, "the agent creating a pod", err, "cannot create resource")

	// The webhook calls nothing.
	_, err = hook.CoreV1().Pods(tenant).List(ctx, metav1.ListOptions{})
	forbidden(t, "the webhook listing pods", err, "cannot list resource")
	_, err = hook.CoreV1().Secrets(ns).Get(ctx, "mosaic-webhook-tls", metav1.GetOptions{})
	forbidden(t, "the webhook reading its Secret", err, "cannot get resource")
	forbidden(t, "the webhook writing an allocation", patchAlloc(hook, onMine, false), "cannot patch resource")
}

// quote is s as a JSON string.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
