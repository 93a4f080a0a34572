package security

import (
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/cel/openapi/resolver"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/restmapper"
	"k8s.io/kubernetes/pkg/generated/openapi"

	"github.com/mosaic-gpu/mosaic/manifests"
)

// Every expression of the admission policies type-checks against the
// schemas of the kinds it matches (Pod, Binding, Node), with the checker
// kube-controller-manager runs to fill a policy's status: a misspelt field
// would otherwise only show as an error at admission, which the policies'
// failurePolicy turns into refusing every matching request.
func TestAdmissionPoliciesTypeCheck(t *testing.T) {
	objs, err := manifests.Objects("admission-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tc := &validating.TypeChecker{
		SchemaResolver: resolver.NewDefinitionsSchemaResolver(openapi.GetOpenAPIDefinitions, scheme.Scheme),
		RestMapper:     restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cp.Client.Discovery())),
	}
	checked := 0
	for _, obj := range objs {
		p, ok := obj.(*admissionregistrationv1.ValidatingAdmissionPolicy)
		if !ok {
			continue
		}
		checked++
		for _, w := range tc.Check(p) {
			t.Errorf("policy %s: %s: %s", p.Name, w.FieldRef, w.Warning)
		}
	}
	if checked != 3 {
		t.Errorf("checked %d policies, want 3", checked)
	}
}
