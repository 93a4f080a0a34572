package deploy

import (
	"context"
	"errors"
	"io"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// partOf selects every object the chart makes.
const partOf = "app.kubernetes.io/part-of=mosaic"

// decode splits YAML documents into objects, leaving out empty ones.
func decode(t *testing.T, what, text string) []*unstructured.Unstructured {
	t.Helper()
	dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("%s: %v", what, err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// api is a dynamic client with a mapper that learns new kinds (CRDs) when
// reset.
type api struct {
	dyn    dynamic.Interface
	disc   discovery.CachedDiscoveryInterface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newAPI(t *testing.T) *api {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	disc := memory.NewMemCacheClient(dc)
	return &api{dyn: dyn, disc: disc, mapper: restmapper.NewDeferredDiscoveryRESTMapper(disc)}
}

func (a *api) resource(u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	m, err := a.mapper.RESTMapping(u.GroupVersionKind().GroupKind(), u.GroupVersionKind().Version)
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.dyn.Resource(m.Resource).Namespace(u.GetNamespace()), nil
	}
	return a.dyn.Resource(m.Resource), nil
}

func (a *api) create(ctx context.Context, u *unstructured.Unstructured, opts metav1.CreateOptions) error {
	r, err := a.resource(u)
	if err != nil {
		return err
	}
	_, err = r.Create(ctx, u, opts)
	return err
}

// delete deletes u and waits until it is gone.
func (a *api) delete(ctx context.Context, u *unstructured.Unstructured) error {
	r, err := a.resource(u)
	if err != nil {
		return err
	}
	if err := r.Delete(ctx, u.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := r.Get(ctx, u.GetName(), metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

// serveGroups creates testdata/crds.yaml and waits until discovery serves
// their groups; the returned function removes them again and waits until
// discovery no longer does.
func serveGroups(t *testing.T, ctx context.Context, a *api) func() {
	t.Helper()
	b, err := os.ReadFile("testdata/crds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	crds := decode(t, "testdata/crds.yaml", string(b))
	for _, c := range crds {
		if err := a.create(ctx, c, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	served := func(want bool) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
			a.disc.Invalidate()
			a.mapper.Reset()
			for _, gv := range []string{"cert-manager.io/v1", "monitoring.coreos.com/v1"} {
				_, err := a.disc.ServerResourcesForGroupVersion(gv)
				if (err == nil) != want {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("discovery serving the operators' groups = %v, want %v, within %v", !want, want, waitTimeout)
		}
	}
	served(true)
	return func() {
		for _, c := range crds {
			if err := a.delete(ctx, c); err != nil {
				t.Errorf("removing CRD %s: %v", c.GetName(), err)
			}
		}
		served(false)
	}
}

// leftovers lists every object labelled part of Mosaic, of every kind the
// API server serves, as kind/namespace/name.
func leftovers(t *testing.T, ctx context.Context) []string {
	t.Helper()
	a := newAPI(t)
	lists, err := a.disc.ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range lists {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !hasVerb(r.Verbs, "list") {
				continue
			}
			items, err := a.dyn.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{LabelSelector: partOf})
			if err != nil {
				t.Fatalf("listing %s: %v", r.Name, err)
			}
			for _, it := range items.Items {
				out = append(out, r.Kind+" "+it.GetNamespace()+"/"+it.GetName())
			}
		}
	}
	sort.Strings(out)
	return out
}

func hasVerb(verbs []string, v string) bool {
	for _, x := range verbs {
		if x == v {
			return true
		}
	}
	return false
}

// isHook reports whether a rendered object is a Helm hook, which Helm
// creates only at the hook's event.
func isHook(u *unstructured.Unstructured) bool { return u.GetAnnotations()["helm.sh/hook"] != "" }
