package webhook

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	v1 "k8s.io/api/core/v1"
	schedulingv1beta1 "k8s.io/api/scheduling/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	schedulingclient "k8s.io/client-go/kubernetes/typed/scheduling/v1beta1"
)

// Group annotations of other gang schedulers, mapped at pod creation onto
// Kubernetes' own gang API (a scheduling.k8s.io PodGroup with a gang
// policy, named in the pod's spec.schedulingGroup, which is immutable
// once the pod exists). Only names that come with their minimum map
// cleanly: Koordinator's lightweight gang gives both on the pod. The
// coscheduling label of scheduler-plugins and Volcano's group annotation
// name a group whose minimum (minMember) lives in those projects' own
// PodGroup CRDs, which Mosaic does not read: they are mapped only onto an
// upstream PodGroup of that name that already exists.
const (
	KoordinatorGangName         = "gang.scheduling.koordinator.sh/name"
	KoordinatorGangMinAvailable = "gang.scheduling.koordinator.sh/min-available"
	CoschedulingPodGroupLabel   = "scheduling.x-k8s.io/pod-group"
	VolcanoGroupName            = "scheduling.k8s.io/group-name"
)

// PodGroups is what the webhook needs of the API to map group
// annotations: typed client-go's PodGroup client.
type PodGroups func(namespace string) schedulingclient.PodGroupInterface

// groupCallTimeout bounds the webhook's own API calls, within the API
// server's timeout for the webhook.
const groupCallTimeout = 2 * time.Second

// groupMapping is the outcome of reading a pod's group annotations: the
// PodGroup to name, warnings, or a refusal.
type groupMapping struct {
	name     string
	warnings []string
	refusal  *admissionv1.AdmissionResponse
}

// mapGroup reads the group annotations of a device pod that Mosaic's
// scheduler places and names none of Kubernetes' groups, creating the
// Koordinator group's PodGroup if it does not exist (not on a dry run).
func (h *Handler) mapGroup(pod *v1.Pod, dryRun bool) groupMapping {
	if h.cfg.PodGroups == nil || pod.Spec.SchedulingGroup != nil {
		return groupMapping{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupCallTimeout)
	defer cancel()
	if name, ok := pod.Annotations[KoordinatorGangName]; ok {
		return h.koordinatorGroup(ctx, pod, name, dryRun)
	}
	for _, ref := range []struct{ key, name, owner string }{
		{"label " + CoschedulingPodGroupLabel, pod.Labels[CoschedulingPodGroupLabel], "scheduler-plugins' scheduling.x-k8s.io PodGroup"},
		{"annotation " + VolcanoGroupName, pod.Annotations[VolcanoGroupName], "Volcano's scheduling.volcano.sh PodGroup"},
	} {
		if ref.name == "" {
			continue
		}
		_, err := h.cfg.PodGroups(pod.Namespace).Get(ctx, ref.name, metav1.GetOptions{})
		switch {
		case err == nil:
			return groupMapping{name: ref.name}
		case apierrors.IsNotFound(err):
			return groupMapping{warnings: []string{fmt.Sprintf("mosaic: %s=%q not mapped: no scheduling.k8s.io PodGroup %q in namespace %s (its minimum is in %s, which Mosaic does not read); the pod is scheduled alone", ref.key, ref.name, ref.name, pod.Namespace, ref.owner)}}
		default:
			return groupMapping{refusal: deny(http.StatusServiceUnavailable, fmt.Sprintf("mosaic: reading PodGroup %s/%s for %s: %v", pod.Namespace, ref.name, ref.key, err))}
		}
	}
	return groupMapping{}
}

// koordinatorGroup maps Koordinator's gang annotations onto a PodGroup of
// that name with minCount min-available.
func (h *Handler) koordinatorGroup(ctx context.Context, pod *v1.Pod, name string, dryRun bool) groupMapping {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return refuse(fmt.Sprintf("mosaic: annotation %s=%q is not a valid PodGroup name: %s", KoordinatorGangName, name, strings.Join(errs, "; ")))
	}
	raw, ok := pod.Annotations[KoordinatorGangMinAvailable]
	if !ok {
		return refuse(fmt.Sprintf("mosaic: annotation %s is required with %s: the number of the group's pods that must be placed together, an integer in 1..%d", KoordinatorGangMinAvailable, KoordinatorGangName, math.MaxInt32))
	}
	minCount, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 32)
	if err != nil || minCount < 1 {
		return refuse(fmt.Sprintf("mosaic: annotation %s=%q must be an integer in 1..%d", KoordinatorGangMinAvailable, raw, math.MaxInt32))
	}
	groups := h.cfg.PodGroups(pod.Namespace)
	pg, err := groups.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && dryRun {
		// A dry run has no side effects (sideEffects: NoneOnDryRun).
		return groupMapping{name: name}
	}
	if apierrors.IsNotFound(err) {
		want := &schedulingv1beta1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: pod.Namespace, Labels: map[string]string{"app.kubernetes.io/created-by": "mosaic-webhook"}},
			Spec: schedulingv1beta1.PodGroupSpec{SchedulingPolicy: schedulingv1beta1.PodGroupSchedulingPolicy{
				Gang: &schedulingv1beta1.GangSchedulingPolicy{MinCount: int32(minCount)}}},
		}
		pg, err = groups.Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// Another member created it meanwhile.
			pg, err = groups.Get(ctx, name, metav1.GetOptions{})
		}
	}
	if err != nil {
		return groupMapping{refusal: deny(http.StatusServiceUnavailable, fmt.Sprintf("mosaic: PodGroup %s/%s for annotation %s: %v", pod.Namespace, name, KoordinatorGangName, err))}
	}
	m := groupMapping{name: name}
	if g := pg.Spec.SchedulingPolicy.Gang; g == nil || int64(g.MinCount) != minCount {
		have := "no gang policy"
		if g != nil {
			have = fmt.Sprintf("minCount %d", g.MinCount)
		}
		m.warnings = append(m.warnings, fmt.Sprintf("mosaic: PodGroup %s/%s already exists with %s; %s=%s is not applied", pod.Namespace, name, have, KoordinatorGangMinAvailable, raw))
	}
	return m
}

func refuse(msg string) groupMapping {
	return groupMapping{refusal: deny(http.StatusUnprocessableEntity, msg)}
}
