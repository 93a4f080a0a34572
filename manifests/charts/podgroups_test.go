package charts

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// webhook.podGroups gives the webhook a token, a role that gets and
// creates PodGroups and nothing else, the --pod-groups flag and
// sideEffects NoneOnDryRun; off (the default) it has none of them.
func TestWebhookPodGroups(t *testing.T) {
	for _, tc := range []struct {
		variant string
		on      bool
	}{{"", false}, {"ci/full-values.yaml", true}} {
		var role, flag bool
		var automount []bool
		var sideEffects string
		for _, o := range objects(t, render(t, tc.variant)) {
			switch o.obj.GetKind() {
			case "ClusterRole":
				if o.obj.GetName() == "mosaic-webhook-podgroups" {
					role = true
					rules, _, _ := unstructured.NestedSlice(o.obj.Object, "rules")
					if len(rules) != 1 || !strings.Contains(strings.Join(fields(rules[0]), " "), "podgroups get create") {
						t.Errorf("%q: role rules %v, want get and create on podgroups alone", tc.variant, rules)
					}
				}
			case "ServiceAccount":
				if o.obj.GetName() == "mosaic-webhook" {
					b, _, _ := unstructured.NestedBool(o.obj.Object, "automountServiceAccountToken")
					automount = append(automount, b)
				}
			case "Deployment":
				if o.obj.GetName() == "mosaic-webhook" {
					ctrs, _, _ := unstructured.NestedSlice(o.obj.Object, "spec", "template", "spec", "containers")
					args, _, _ := unstructured.NestedStringSlice(ctrs[0].(map[string]any), "args")
					flag = strings.Contains(strings.Join(args, " "), "--pod-groups")
					b, _, _ := unstructured.NestedBool(o.obj.Object, "spec", "template", "spec", "automountServiceAccountToken")
					automount = append(automount, b)
				}
			case "MutatingWebhookConfiguration":
				hooks, _, _ := unstructured.NestedSlice(o.obj.Object, "webhooks")
				if o.obj.GetName() == "mosaic-webhook" && len(hooks) == 1 {
					sideEffects, _, _ = unstructured.NestedString(hooks[0].(map[string]any), "sideEffects")
				}
			}
		}
		wantSide := map[bool]string{true: "NoneOnDryRun", false: "None"}[tc.on]
		if role != tc.on || flag != tc.on || sideEffects != wantSide || len(automount) != 2 || automount[0] != tc.on || automount[1] != tc.on {
			t.Errorf("%q: role=%v flag=%v sideEffects=%s token=%v, want all %v (sideEffects %s)", tc.variant, role, flag, sideEffects, automount, tc.on, wantSide)
		}
	}
}

// fields lists a rule's resources and verbs.
func fields(rule any) []string {
	m, _ := rule.(map[string]any)
	var out []string
	for _, k := range []string{"resources", "verbs"} {
		s, _, _ := unstructured.NestedStringSlice(m, k)
		out = append(out, s...)
	}
	return out
}
