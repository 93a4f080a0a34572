package deploy

import (
	"context"
	"path/filepath"
	"sort"
	"testing"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mosaic-gpu/mosaic/manifests/charts"
)

// Every values variant of the chart (its ci/ files), rendered as helm
// template renders it, is accepted object by object by the API server,
// with the operators' groups served; so are its hooks, created as Helm
// creates them, once the release's own objects are gone. The variants
// install into a namespace of their own, beside kube-system.
func TestEveryVariantIsAccepted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*waitTimeout)
	defer cancel()
	a := newAPI(t)
	defer serveGroups(t, ctx, a)()
	variants, err := charts.Variants()
	if err != nil {
		t.Fatal(err)
	}
	for _, variant := range variants {
		for _, ns := range []string{"kube-system", "mosaic-system"} {
			t.Run(filepath.Base(variant)+"/"+ns, func(t *testing.T) {
				vals, err := charts.ValuesFile(variant)
				if err != nil {
					t.Fatal(err)
				}
				out, err := charts.Render(ns, vals, "cert-manager.io/v1", "monitoring.coreos.com/v1")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					t.Fatal(err)
				}
				var names []string
				for n := range out {
					names = append(names, n)
				}
				sort.Strings(names)
				var objs, hooks []*unstructured.Unstructured
				for _, n := range names {
					for _, u := range decode(t, n, out[n]) {
						if isHook(u) {
							hooks = append(hooks, u)
						} else {
							objs = append(objs, u)
						}
					}
				}
				if len(objs) < 20 {
					t.Fatalf("%d objects rendered", len(objs))
				}
				for _, u := range objs {
					if err := a.create(ctx, u, metav1.CreateOptions{}); err != nil {
						t.Errorf("%s %s/%s refused: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
					}
				}
				for _, u := range objs {
					if err := a.delete(ctx, u); err != nil {
						t.Errorf("deleting %s %s: %v", u.GetKind(), u.GetName(), err)
					}
				}
				for _, u := range hooks {
					if err := a.create(ctx, u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
						t.Errorf("hook %s %s refused: %v", u.GetKind(), u.GetName(), err)
					}
				}
				if left := leftovers(t, ctx); len(left) > 0 {
					t.Errorf("left after deleting the variant's objects: %v", left)
				}
			})
		}
	}
}
