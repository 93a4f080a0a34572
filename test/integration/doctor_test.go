package integration

import (
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/doctor"
)

// kubectl mosaic doctor, against simulated nodes with one misconfiguration
// each built in, finds each one on its node and nothing on a node that is
// set up right.
func TestDoctorFindsTheUsualMisconfigurations(t *testing.T) {
	e := newStoppedEnv(t, nil, a100("doc-ok", 1), a100("doc-other-plugin", 2), a100("doc-no-nri", 1),
		a100("doc-unhealthy", 2), a100("doc-no-agent", 1), a100("doc-privileged", 2))
	editNode := func(name string, edit func(n *v1.Node, inv *device.Inventory)) {
		t.Helper()
		n, err := e.cs.CoreV1().Nodes().Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		inv, err := device.DecodeInventory(n.Annotations[device.InventoryAnnotation])
		if err != nil {
			t.Fatal(err)
		}
		edit(n, inv)
		if _, ok := n.Annotations[device.InventoryAnnotation]; ok {
			raw, err := device.EncodeInventory(inv)
			if err != nil {
				t.Fatal(err)
			}
			n.Annotations[device.InventoryAnnotation] = raw
		}
		status := n.Status // Update keeps the old status; UpdateStatus writes it
		n, err = e.cs.CoreV1().Nodes().Update(e.ctx, n, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Status = status
		if _, err := e.cs.CoreV1().Nodes().UpdateStatus(e.ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The NVIDIA device plugin registered too: the kubelet counts cards.
	editNode("doc-other-plugin", func(n *v1.Node, _ *device.Inventory) {
		n.Status.Capacity[device.ResourceNvidiaGPU] = resource.MustParse("2")
	})
	editNode("doc-no-nri", func(_ *v1.Node, inv *device.Inventory) { inv.NRI = false })
	editNode("doc-unhealthy", func(_ *v1.Node, inv *device.Inventory) { inv.Devices[1].Healthy = false })
	editNode("doc-no-agent", func(n *v1.Node, _ *device.Inventory) { delete(n.Annotations, device.InventoryAnnotation) })
	e.startScheduler()
	// A pod sharing a card with a privileged container, admitted where no
	// webhook checked it.
	priv, _ := e.mustBind(podSpec{name: "priv", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}, edit: func(p *v1.Pod) {
		p.Spec.Affinity = nodeNameAffinity("doc-privileged")
		p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{Privileged: ptr(true)}
	}})
	// An ordinary shared pod and a privileged pod with a card of its own
	// are fine.
	e.mustBind(podSpec{name: "plain", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}, edit: func(p *v1.Pod) {
		p.Spec.Affinity = nodeNameAffinity("doc-ok")
	}})
	e.mustBind(podSpec{name: "whole", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpucores": "100"}, edit: func(p *v1.Pod) {
		p.Spec.Affinity = nodeNameAffinity("doc-privileged")
		p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{Privileged: ptr(true)}
	}})

	findings, err := doctor.Run(e.ctx, e.cs, doctor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]doctor.Finding{}
	for _, f := range findings {
		if strings.HasPrefix(f.Node, "doc-") {
			got[f.Node] = append(got[f.Node], f)
		}
	}
	want := map[string]struct {
		check   doctor.Check
		pod     string
		problem string
	}{
		"doc-other-plugin": {doctor.CapacityMismatch, "", "the kubelet counts 2 nvidia.com/gpu, the node agent serves 20 (2 cards × split 10)"},
		"doc-no-nri":       {doctor.NRIDisconnected, "", "NRI plugin is not connected"},
		"doc-unhealthy":    {doctor.CardUnhealthy, "", "card 1 ("},
		"doc-no-agent":     {doctor.NoInventory, "", "no Mosaic node agent published an inventory"},
		"doc-privileged":   {doctor.EnforcerOverride, e.ns + "/" + priv.Name, "is privileged"},
	}
	for node, w := range want {
		fs := got[node]
		if len(fs) != 1 || fs[0].Check != w.check || fs[0].Pod != w.pod || !strings.Contains(fs[0].Problem, w.problem) || fs[0].Fix == "" {
			t.Errorf("%s: findings %+v, want one %s (pod %q) saying %q, with a fix", node, fs, w.check, w.pod, w.problem)
		}
	}
	if fs := got["doc-ok"]; len(fs) != 0 {
		t.Errorf("doc-ok is set up right, found %+v", fs)
	}
	// --node narrows to one node and its pods.
	one, err := doctor.Run(e.ctx, e.cs, doctor.Options{Node: "doc-privileged"})
	if err != nil {
		t.Fatal(err)
	}
	if len(one) != 1 || one[0].Node != "doc-privileged" || !slices.Equal([]doctor.Check{one[0].Check}, []doctor.Check{doctor.EnforcerOverride}) {
		t.Errorf("--node doc-privileged: %+v", one)
	}
}
