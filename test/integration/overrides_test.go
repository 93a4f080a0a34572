package integration

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
	"github.com/mosaic-gpu/mosaic/pkg/webhook"
)

// warnings records the admission warnings the API server returns.
type warnings struct {
	mu  sync.Mutex
	got []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, text)
}

// take returns the warnings recorded since the last take.
func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	got := w.got
	w.got = nil
	return got
}

func privileged(c *v1.Container) { c.SecurityContext = &v1.SecurityContext{Privileged: ptr(true)} }

// The webhook, in deny mode and in warn mode, against the real API server:
// a pod that shares a card is refused, or admitted with a warning naming
// the container and the setting, for each setting that would take a
// container out of the enforcer's hold, ephemeral containers included; an
// ordinary shared pod and a privileged pod on cards of its own are
// admitted without a word.
func TestAdmissionWebhookEnforcerOverrides(t *testing.T) {
	deny, warn := newStoppedEnv(t, nil), newStoppedEnv(t, nil)
	startWebhook(t, deny, webhook.Config{SchedulerName: schedulerName, ParseOptions: webhook.DefaultParseOptions(), OverridePolicy: webhook.OverrideDeny})
	startWebhook(t, warn, webhook.Config{SchedulerName: schedulerName, ParseOptions: webhook.DefaultParseOptions(), OverridePolicy: webhook.OverrideWarn})
	w := &warnings{}
	rc := rest.CopyConfig(cp.Config)
	rc.WarningHandler = w
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}

	shared := map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}
	exclusive := map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpucores": "100"}
	app := func(edit func(c *v1.Container)) func(*v1.Pod) { return func(p *v1.Pod) { edit(&p.Spec.Containers[0]) } }
	setenv := func(name, value string) func(*v1.Pod) {
		return app(func(c *v1.Container) { c.Env = append(c.Env, v1.EnvVar{Name: name, Value: value}) })
	}
	mount := func(path string) func(*v1.Pod) {
		return func(p *v1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, v1.Volume{Name: "own", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}})
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, v1.VolumeMount{Name: "own", MountPath: path})
		}
	}
	tests := []struct {
		name   string
		limits map[string]string
		edit   func(*v1.Pod)
		want   string // the refusal, or the warning; empty: admitted as it is
	}{
		{"privileged", shared, app(privileged), "container c0 is privileged, and its pod shares a card"},
		{"privileged init container", shared, func(p *v1.Pod) {
			p.Spec.InitContainers = []v1.Container{{Name: "setup", Image: "x", SecurityContext: &v1.SecurityContext{Privileged: ptr(true)}}}
		}, "container setup is privileged"},
		{"every card", shared, setenv("NVIDIA_VISIBLE_DEVICES", "all"), `container c0 sets NVIDIA_VISIBLE_DEVICES="all"`},
		{"HAMi-core off", shared, setenv("CUDA_DISABLE_CONTROL", "true"), "container c0 sets CUDA_DISABLE_CONTROL"},
		{"own preload", shared, setenv("LD_PRELOAD", "/opt/libshim.so"), "container c0 sets LD_PRELOAD"},
		{"preload file", shared, mount("/etc/ld.so.preload"), `container c0 mounts "/etc/ld.so.preload" over Mosaic's /etc/ld.so.preload`},
		{"card regions", shared, mount("/run/mosaic/cards"), `container c0 mounts "/run/mosaic/cards" over Mosaic's /run/mosaic`},
		{"ordinary shared pod", shared, nil, ""},
		{"privileged on a card of its own", exclusive, app(privileged), ""},
	}
	for _, e := range []*env{deny, warn} {
		mode := "deny"
		if e == warn {
			mode = "warn"
		}
		for i, tc := range tests {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				p := e.pod(podSpec{name: "p" + string(rune('a'+i)), limits: tc.limits, edit: tc.edit})
				w.take()
				_, err := cs.CoreV1().Pods(e.ns).Create(e.ctx, p, metav1.CreateOptions{})
				got := w.take()
				switch {
				case tc.want == "":
					if err != nil || len(got) != 0 {
						t.Fatalf("created: %v, warnings %q; want it admitted without a warning", err, got)
					}
				case mode == "deny":
					if err == nil || !strings.Contains(err.Error(), tc.want) {
						t.Fatalf("error = %v, want a refusal containing %q", err, tc.want)
					}
					if _, err := cs.CoreV1().Pods(e.ns).Get(e.ctx, p.Name, metav1.GetOptions{}); err == nil {
						t.Error("the refused pod exists")
					}
				default:
					if err != nil || len(got) != 1 || !strings.Contains(got[0], tc.want) || !strings.Contains(got[0], "the node agent will refuse to start it") {
						t.Fatalf("created: %v, warnings %q; want one containing %q", err, got, tc.want)
					}
				}
			})
		}
		// kubectl debug --profile=sysadmin on the ordinary shared pod.
		t.Run(mode+"/privileged debug container", func(t *testing.T) {
			p, err := cs.CoreV1().Pods(e.ns).Create(e.ctx, e.pod(podSpec{name: "debugged", limits: shared}), metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, v1.EphemeralContainer{EphemeralContainerCommon: v1.EphemeralContainerCommon{
				Name: "debugger-x7k2p", Image: "x", TerminationMessagePolicy: v1.TerminationMessageReadFile, SecurityContext: &v1.SecurityContext{Privileged: ptr(true)}}})
			w.take()
			_, err = cs.CoreV1().Pods(e.ns).UpdateEphemeralContainers(e.ctx, p.Name, p, metav1.UpdateOptions{})
			got := w.take()
			const want = "container debugger-x7k2p is privileged, and its pod shares a card"
			if mode == "deny" {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error = %v, want a refusal containing %q", err, want)
				}
			} else if err != nil || len(got) != 1 || !strings.Contains(got[0], want) {
				t.Fatalf("added: %v, warnings %q; want one containing %q", err, got, want)
			}
		})
	}
}

// With no webhook in the way (as when it is bypassed or warns), the real
// scheduler binds pods whatever their containers' settings; the node
// agent, reading privilege from the pod's spec through its informer (NRI
// does not carry it), refuses to create each container of a pod sharing a
// card that would escape the enforcer, and the runtime's error says why. A
// privileged pod on a card of its own starts with it.
func TestNodeAgentRefusesEnforcerOverrides(t *testing.T) {
	e := newStoppedEnv(t, nil)
	const nodeName = "agent-overrides"
	ag := startAgent(t, e, nodeName, true)
	err := wait.PollUntilContextTimeout(ag.ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		n, err := e.cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		inv, err := device.DecodeInventory(n.Annotations[device.InventoryAnnotation])
		return err == nil && inv.NRI && len(inv.Devices) == 2, nil
	})
	if err != nil {
		t.Fatal("no inventory with NRI connected published")
	}
	e.startScheduler()
	// The exclusive pod first: spread would leave it no empty card.
	own, ownAlloc := e.mustBind(podSpec{name: "own-card", limits: map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpucores": "100"},
		edit: func(p *v1.Pod) { privileged(&p.Spec.Containers[0]) }})
	shared := map[string]string{"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}
	priv, _ := e.mustBind(podSpec{name: "privileged", limits: shared, edit: func(p *v1.Pod) { privileged(&p.Spec.Containers[0]) }})
	ordinary, ordinaryAlloc := e.mustBind(podSpec{name: "ordinary", limits: shared})
	// kubectl debug --profile=sysadmin on the ordinary pod.
	ordinary.Spec.EphemeralContainers = []v1.EphemeralContainer{{EphemeralContainerCommon: v1.EphemeralContainerCommon{
		Name: "debugger-x7k2p", Image: "x", TerminationMessagePolicy: v1.TerminationMessageReadFile, SecurityContext: &v1.SecurityContext{Privileged: ptr(true)}}}}
	if _, err := e.cs.CoreV1().Pods(e.ns).UpdateEphemeralContainers(e.ctx, ordinary.Name, ordinary, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	cudaImage := []string{nri.RequestEnv + "=nvidia.com/gpu", "NVIDIA_VISIBLE_DEVICES=all", "CUDA_VERSION=12.4.1"}
	tests := []struct {
		name string
		pod  *v1.Pod
		ctr  string
		env  []string
		want string // the refusal; empty: created with wantCards
		// wantCards is what a created container's NVIDIA_VISIBLE_DEVICES says.
		wantCards string
	}{
		{name: "privileged", pod: priv, ctr: "c0", env: cudaImage, want: "container c0 is privileged, and its pod shares a card"},
		{name: "image preloads", pod: ordinary, ctr: "c0", env: append([]string{"LD_PRELOAD=/usr/lib/libtcmalloc.so"}, cudaImage...), want: "container c0 sets LD_PRELOAD"},
		{name: "privileged debug container", pod: ordinary, ctr: "debugger-x7k2p", env: cudaImage[1:], want: "container debugger-x7k2p is privileged"},
		{name: "ordinary", pod: ordinary, ctr: "c0", env: cudaImage, wantCards: ordinaryAlloc.Containers[0].Devices[0].UUID},
		{name: "privileged on a card of its own", pod: own, ctr: "c0", env: cudaImage, wantCards: ownAlloc.Containers[0].Devices[0].UUID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctr := &api.Container{Id: tc.ctr + "-" + string(tc.pod.UID), PodSandboxId: "sb-" + string(tc.pod.UID), Name: tc.ctr, Env: tc.env}
			// Until the agent's informer shows the pod (or its ephemeral
			// container), the agent refuses for want of its spec.
			var adj *api.ContainerAdjustment
			var err error
			_ = wait.PollUntilContextTimeout(ag.ctx, 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
				adj, err = ag.rt.CreateContainer(ctx, sandbox(tc.pod), ctr)
				return err == nil || !strings.Contains(err.Error(), "has not seen the pod's spec"), nil
			})
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error = %v, want a refusal containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			env := map[string]string{}
			for _, kv := range adj.GetEnv() {
				env[kv.GetKey()] = kv.GetValue()
			}
			if env["NVIDIA_VISIBLE_DEVICES"] != tc.wantCards {
				t.Errorf("NVIDIA_VISIBLE_DEVICES=%s, want %s", env["NVIDIA_VISIBLE_DEVICES"], tc.wantCards)
			}
		})
	}
}
