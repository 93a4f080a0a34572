package cluster

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ServePodWebhook serves h over TLS and registers it with the API server as
// the mutating webhook of pods in namespace ns, with the chart's rules
// (creates and updates of pods and their ephemeral containers, failing
// closed). stop removes the registration and stops the server. The API
// server takes a moment to call it: callers wait for a request it refuses.
func ServePodWebhook(ctx context.Context, cs kubernetes.Interface, h http.Handler, ns string,
	sideEffects admissionregistrationv1.SideEffectClass) (stop func(), err error) {
	srv := httptest.NewTLSServer(h)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	url := srv.URL + "/pods"
	fail := admissionregistrationv1.Fail
	reg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "mosaic-" + ns},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "pods.mosaic.io",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca},
			Rules: []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods", "pods/ephemeralcontainers"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			FailurePolicy:           &fail,
			SideEffects:             &sideEffects,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, reg, metav1.CreateOptions{}); err != nil {
		srv.Close()
		return nil, err
	}
	return func() {
		_ = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), reg.Name, metav1.DeleteOptions{})
		srv.Close()
	}, nil
}
