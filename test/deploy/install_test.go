package deploy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

const (
	keySecret   = "mosaic-allocation-key"
	tlsSecret   = "mosaic-webhook-tls"
	webhookName = "mosaic-webhook"
)

// secrets is what an upgrade must keep: the signing key, the webhook's
// certificate and the CA the API server trusts it by.
type secrets struct {
	key, tls map[string][]byte
	caBundle []byte
}

func readSecrets(t *testing.T, ctx context.Context, ns string) secrets {
	t.Helper()
	var s secrets
	for name, into := range map[string]*map[string][]byte{keySecret: &s.key, tlsSecret: &s.tls} {
		sec, err := cp.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("Secret %s: %v", name, err)
		}
		*into = sec.Data
	}
	mwc, err := cp.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, webhookName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.caBundle = mwc.Webhooks[0].ClientConfig.CABundle
	return s
}

// checkSecrets checks that the key is one the scheduler accepts and that
// the webhook's certificate is for its Service, signed by the CA the
// webhook configuration names.
func checkSecrets(t *testing.T, ns string, s secrets) {
	t.Helper()
	if k := strings.TrimSpace(string(s.key[device.CurrentKey])); len(k) < device.MinKeyBytes {
		t.Errorf("signing key %q: %d bytes, want at least %d", device.CurrentKey, len(k), device.MinKeyBytes)
	}
	if string(s.caBundle) != string(s.tls["ca.crt"]) {
		t.Errorf("the webhook configuration trusts another CA than the Secret's ca.crt")
	}
	parse := func(what string, b []byte) *x509.Certificate {
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: no PEM block", what)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return c
	}
	ca := parse("ca.crt", s.tls["ca.crt"])
	cert := parse("tls.crt", s.tls["tls.crt"])
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: webhookName + "." + ns + ".svc"}); err != nil {
		t.Errorf("the webhook's certificate: %v", err)
	}
	if _, err := tlsKeyPair(s.tls); err != nil {
		t.Errorf("tls.crt and tls.key: %v", err)
	}
}

// Helm's install, upgrade and uninstall actions against the API server:
// the install generates the signing key and the webhook's certificate; an
// upgrade keeps both (and a key rotated by hand), and generates a new
// certificate only when told to; uninstall removes the webhook's
// registration before the webhook, and leaves no Mosaic object behind.
func TestInstallUpgradeUninstall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*waitTimeout)
	defer cancel()
	const ns = "kube-system"
	rel := install(t, ns, nil)
	if rel.Info.Status != "deployed" {
		t.Fatalf("release status %s", rel.Info.Status)
	}
	installed := readSecrets(t, ctx, ns)
	checkSecrets(t, ns, installed)

	// A changed value reaches its object; the secrets stay.
	upgrade(t, ns, map[string]any{"devicePlugin": map[string]any{"deviceSplitCount": 5}})
	cm, err := cp.Client.CoreV1().ConfigMaps(ns).Get(ctx, "mosaic-sharing", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data["config.yaml"], "splitCount: 5,") {
		t.Errorf("after the upgrade mosaic-sharing holds %s", cm.Data["config.yaml"])
	}
	if got := readSecrets(t, ctx, ns); !sameSecrets(got, installed) {
		t.Error("the upgrade changed the signing key or the webhook's certificate")
	}

	// A key rotated by hand (docs/security.md) stays rotated.
	key, err := cp.Client.CoreV1().Secrets(ns).Get(ctx, keySecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key.Data[device.PreviousKey] = key.Data[device.CurrentKey]
	key.Data[device.CurrentKey] = []byte(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("r", 32))))
	if _, err := cp.Client.CoreV1().Secrets(ns).Update(ctx, key, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	upgrade(t, ns, nil)
	rotated := readSecrets(t, ctx, ns)
	if !maps.EqualFunc(rotated.key, key.Data, bytesEqual) || !sameCerts(rotated, installed) {
		t.Errorf("the upgrade undid a rotation of the key: %d keys", len(rotated.key))
	}

	// webhook.certificates.rotate generates a new certificate and CA, and
	// leaves the key.
	upgrade(t, ns, map[string]any{"webhook": map[string]any{"certificates": map[string]any{"rotate": true}}})
	renewed := readSecrets(t, ctx, ns)
	checkSecrets(t, ns, renewed)
	if sameCerts(renewed, installed) || !maps.EqualFunc(renewed.key, key.Data, bytesEqual) {
		t.Error("rotate: want a new certificate and the same key")
	}

	deleted := watchDeletes(t, ctx, ns)
	res, err := uninstall(t, ns)
	if err != nil {
		t.Fatal(err)
	}
	if res.Info != "" {
		t.Errorf("uninstall kept: %s", res.Info)
	}
	order := deleted("MutatingWebhookConfiguration/"+webhookName, "Deployment/"+webhookName, "Service/"+webhookName)
	registration, ok := order["MutatingWebhookConfiguration/"+webhookName]
	if !ok {
		t.Fatalf("no delete of the webhook's registration seen: %v", order)
	}
	for _, obj := range []string{"Deployment/" + webhookName, "Service/" + webhookName} {
		rv, ok := order[obj]
		if !ok {
			t.Errorf("no delete of %s seen", obj)
			continue
		}
		if c, err := resourceversion.CompareResourceVersion(registration, rv); err != nil || c >= 0 {
			t.Errorf("the webhook's registration was deleted at %s, %s at %s: want the registration first", registration, obj, rv)
		}
	}
	if left := leftovers(t, ctx); len(left) > 0 {
		t.Errorf("left after uninstall: %v", left)
	}
	for _, name := range []string{keySecret, tlsSecret} {
		if _, err := cp.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("Secret %s after uninstall: %v", name, err)
		}
	}
	releases, err := cp.Client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + releaseName})
	if err != nil || len(releases.Items) != 0 {
		t.Errorf("Helm's release records after uninstall: %d, %v", len(releases.Items), err)
	}
}

// watchDeletes watches the webhook's registration, Deployments and
// Services of ns; the returned function waits until the deletes of want
// (kind/name) were seen and returns the resourceVersion of each delete
// seen, by kind/name. Every object lives in the one etcd, so
// resourceVersions order the deletes.
func watchDeletes(t *testing.T, ctx context.Context, ns string) func(want ...string) map[string]string {
	t.Helper()
	cs := cp.Client
	var mu sync.Mutex
	seen := map[string]string{}
	wctx, stop := context.WithCancel(ctx)
	for kind, w := range map[string]func() (watch.Interface, error){
		"MutatingWebhookConfiguration": func() (watch.Interface, error) {
			return cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Watch(wctx, metav1.ListOptions{})
		},
		"Deployment": func() (watch.Interface, error) { return cs.AppsV1().Deployments(ns).Watch(wctx, metav1.ListOptions{}) },
		"Service":    func() (watch.Interface, error) { return cs.CoreV1().Services(ns).Watch(wctx, metav1.ListOptions{}) },
	} {
		wi, err := w()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for ev := range wi.ResultChan() {
				m, err := meta.Accessor(ev.Object)
				if ev.Type != watch.Deleted || err != nil {
					continue
				}
				mu.Lock()
				seen[kind+"/"+m.GetName()] = m.GetResourceVersion()
				mu.Unlock()
			}
		}()
	}
	return func(want ...string) map[string]string {
		defer stop()
		_ = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, waitTimeout, true, func(context.Context) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, w := range want {
				if _, ok := seen[w]; !ok {
					return false, nil
				}
			}
			return true, nil
		})
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(seen)
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

func sameCerts(a, b secrets) bool {
	return maps.EqualFunc(a.tls, b.tls, bytesEqual) && string(a.caBundle) == string(b.caBundle)
}

func sameSecrets(a, b secrets) bool {
	return sameCerts(a, b) && maps.EqualFunc(a.key, b.key, bytesEqual)
}

func tlsKeyPair(data map[string][]byte) (tls.Certificate, error) {
	return tls.X509KeyPair(data["tls.crt"], data["tls.key"])
}

// A signing key created by hand for the plain manifests, marked for
// adoption as docs/install.md says, is the one the chart installs with.
func TestInstallAdoptsTheSigningKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	const ns = "kube-system"
	key := []byte(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))))
	sec := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: keySecret, Namespace: ns,
		Labels:      map[string]string{"app.kubernetes.io/managed-by": "Helm"},
		Annotations: map[string]string{"meta.helm.sh/release-name": releaseName, "meta.helm.sh/release-namespace": ns}},
		Data: map[string][]byte{device.CurrentKey: key}}
	if _, err := cp.Client.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	install(t, ns, nil)
	got, err := cp.Client.CoreV1().Secrets(ns).Get(ctx, keySecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data[device.CurrentKey]) != string(key) || len(got.Data) != 1 {
		t.Errorf("after install the Secret holds %d keys, current %q; want the adopted key", len(got.Data), got.Data[device.CurrentKey])
	}
	if got.Labels["app.kubernetes.io/part-of"] != "mosaic" {
		t.Errorf("the adopted Secret's labels %v: want the chart's", got.Labels)
	}
	if _, err := uninstall(t, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Client.CoreV1().Secrets(ns).Get(ctx, keySecret, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the adopted Secret after uninstall: %v", err)
	}
}
