package integration

import (
	"slices"
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/nri/nritest"
)

// Containers from a CUDA image (NVIDIA_VISIBLE_DEVICES=all) created through
// the node agent's NRI plugin: the container the real scheduler gave cards
// to starts with exactly those; its pod's sidecar without a request, a
// kubectl debug container added to it, and a pod without a GPU request
// start with none.
func TestNRIOnlyAllocatedContainersGetCards(t *testing.T) {
	e := newEnv(t, nil, a100("iso", 4))
	gpu, alloc := e.mustBind(podSpec{name: "gpu", limits: map[string]string{"nvidia.com/gpu": "2", "nvidia.com/gpumem": "1000"},
		edit: func(p *v1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: "sidecar", Image: "x"})
		}})
	gpu.Spec.EphemeralContainers = []v1.EphemeralContainer{{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "debugger-x7k2p", Image: "x", TerminationMessagePolicy: v1.TerminationMessageReadFile}}}
	gpu, err := e.cs.CoreV1().Pods(e.ns).UpdateEphemeralContainers(e.ctx, gpu.Name, gpu, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plain := e.run(podSpec{name: "plain"})
	rt, _ := startNRIPlugin(t, e, nri.Config{NodeName: "iso"}, gpu)

	cudaImage := []string{"NVIDIA_VISIBLE_DEVICES=all", "CUDA_VERSION=12.4.1"}
	shares := e.busOrder("iso", alloc.Containers[0].Devices)
	granted := shares[0].UUID + "," + shares[1].UUID
	tests := []struct {
		name, ctr string
		sandbox   *api.PodSandbox
		env       []string
		want      string
	}{
		{"allocated container", "c0", sandbox(gpu), append([]string{nri.RequestEnv + "=nvidia.com/gpu"}, cudaImage...), granted},
		{"unlisted sidecar", "sidecar", sandbox(gpu), cudaImage, "void"},
		{"kubectl debug container", "debugger-x7k2p", sandbox(gpu), cudaImage, "void"},
		{"pod without a GPU request", "c0", sandbox(plain), cudaImage, "void"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctr := &api.Container{Id: tc.ctr + "-" + tc.sandbox.Uid, PodSandboxId: tc.sandbox.Id, Name: tc.ctr, Env: append([]string(nil), tc.env...)}
			spec, _, err := rt.CreateContainerSpec(e.ctx, tc.sandbox, ctr)
			if err != nil {
				t.Fatal(err)
			}
			if got := nritest.Env(spec)["NVIDIA_VISIBLE_DEVICES"]; got != tc.want {
				t.Errorf("NVIDIA_VISIBLE_DEVICES=%s, want %s", got, tc.want)
			}
			// The same cards as /dev/null mounts, for a toolkit that
			// takes only those (in any order: the runtime sorts mounts).
			var listed, want []string
			for _, m := range spec.Mounts {
				if card, ok := strings.CutPrefix(m.Destination, "/var/run/nvidia-container-devices/"); ok {
					listed = append(listed, card)
				}
			}
			if tc.want != "void" {
				want = strings.Split(tc.want, ",")
			}
			slices.Sort(listed)
			slices.Sort(want)
			if !slices.Equal(listed, want) {
				t.Errorf("device-list mounts name %v, want %v", listed, want)
			}
		})
	}
}
