// Package webhook is Mosaic's admission webhook for pods. It
//   - refuses a pod whose device request is invalid, at kubectl apply time,
//     with the message the scheduler would give (field and limit), reading
//     the request with the scheduler's own args (--config);
//   - refuses (or warns of) a pod that shares a card and has a container
//     whose settings would take it out of the enforcer's hold (privileged,
//     its own LD_PRELOAD, ...: device.EnforcerOverrides), ephemeral
//     containers included; the node agent refuses the same at container
//     creation, since a webhook can be bypassed;
//   - routes pods that ask for devices to Mosaic's scheduler when they name
//     none (HAMi users write only resources);
//   - maps other gang schedulers' group annotations onto Kubernetes'
//     PodGroups when given a PodGroup client (groups.go);
//   - strips allocation annotations from new pods (a copied manifest must
//     not carry another pod's cards) and refuses updates that change them:
//     only the scheduler writes them, through the pod's Binding, which this
//     webhook does not see.
package webhook

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/mosaic-gpu/mosaic/pkg/device"
)

// Config tunes the webhook.
type Config struct {
	// SchedulerName is set on device pods that name no scheduler or the
	// default one; empty leaves schedulerName alone.
	SchedulerName string
	// ParseOptions reads the device requests of pods whose scheduler
	// Profiles does not list.
	ParseOptions device.ParseOptions
	// Profiles holds, by schedulerName, what each profile of Mosaic's
	// scheduler reads requests with (ReadSchedulerConfig): a pod is
	// checked as the profile that will schedule it reads it.
	Profiles map[string]device.ParseOptions
	// OverridePolicy is what becomes of a pod that shares a card and has a
	// container that defeats the enforcer; empty is OverrideDeny.
	OverridePolicy OverridePolicy
	// PodGroups, when set, maps other gang schedulers' group annotations
	// onto Kubernetes' PodGroups (groups.go) for the pods Mosaic's
	// scheduler places; nil leaves them alone.
	PodGroups PodGroups
}

// OverridePolicy is the webhook's answer to a pod that shares a card and
// has a container whose settings defeat the enforcer.
type OverridePolicy string

const (
	// OverrideDeny refuses the pod.
	OverrideDeny OverridePolicy = "deny"
	// OverrideWarn admits it with an admission warning per container. The
	// node agent still refuses those containers when they are created:
	// warn shows which workloads deny would refuse, without refusing them
	// at kubectl apply time.
	OverrideWarn OverridePolicy = "warn"
)

// ParseOverridePolicy accepts deny or warn.
func ParseOverridePolicy(s string) (OverridePolicy, error) {
	switch p := OverridePolicy(s); p {
	case OverrideDeny, OverrideWarn:
		return p, nil
	}
	return "", fmt.Errorf("%q is not one of %s, %s", s, OverrideDeny, OverrideWarn)
}

// Handler serves AdmissionReview v1 for pods.
type Handler struct {
	cfg    Config
	logger klog.Logger
}

// New returns the webhook's HTTP handler.
func New(cfg Config, logger klog.Logger) *Handler { return &Handler{cfg: cfg, logger: logger} }

// protected are the annotations only the scheduler writes.
var protected = []string{device.AllocationAnnotation, device.SignatureAnnotation}

// maxBody bounds a review's size (a pod is far smaller).
const maxBody = 3 << 20

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("want an AdmissionReview with a request: %v", err), http.StatusBadRequest)
		return
	}
	rsp := h.Review(review.Request)
	rsp.UID = review.Request.UID
	review.Response = rsp
	review.Request = nil
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&review)
}

// Review decides one admission request.
func (h *Handler) Review(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	// kubectl debug adds ephemeral containers through their subresource,
	// whose object is the whole pod.
	if req.Kind.Kind != "Pod" || (req.SubResource != "" && req.SubResource != "ephemeralcontainers") {
		return allow()
	}
	var pod v1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(http.StatusBadRequest, "mosaic: cannot read the pod: "+err.Error())
	}
	switch req.Operation {
	case admissionv1.Create:
		return h.create(&pod, req.DryRun != nil && *req.DryRun)
	case admissionv1.Update:
		var old v1.Pod
		if err := json.Unmarshal(req.OldObject.Raw, &old); err != nil {
			return deny(http.StatusBadRequest, "mosaic: cannot read the old pod: "+err.Error())
		}
		for _, k := range protected {
			if old.Annotations[k] != pod.Annotations[k] {
				return deny(http.StatusForbidden, fmt.Sprintf("mosaic: annotation %s is written by the scheduler only", k))
			}
		}
		if req.SubResource == "ephemeralcontainers" {
			return h.ephemeral(&pod, &old)
		}
	}
	return allow()
}

// routes reports whether the webhook sends the pod, if it asks for
// devices, to Mosaic's scheduler.
func (h *Handler) routes(pod *v1.Pod) bool {
	return h.cfg.SchedulerName != "" && (pod.Spec.SchedulerName == "" || pod.Spec.SchedulerName == v1.DefaultSchedulerName)
}

// mosaicSchedules reports whether schedulerName is one of Mosaic's
// scheduler's profiles.
func (h *Handler) mosaicSchedules(schedulerName string) bool {
	if schedulerName != "" && schedulerName == h.cfg.SchedulerName {
		return true
	}
	_, ok := h.cfg.Profiles[schedulerName]
	return ok
}

// parse reads the pod's device request as the scheduler profile that will
// place it does.
func (h *Handler) parse(pod *v1.Pod) (*device.PodRequest, error) {
	name := pod.Spec.SchedulerName
	if h.routes(pod) {
		name = h.cfg.SchedulerName
	}
	opts, ok := h.cfg.Profiles[name]
	if !ok {
		opts = h.cfg.ParseOptions
	}
	return device.ParsePodRequest(pod, opts)
}

// overrides checks the containers of a pod that shares a card: a refusal,
// or with OverrideWarn the warnings to admit it with.
func (h *Handler) overrides(ctrs []device.ContainerSettings) (refusal *admissionv1.AdmissionResponse, warnings []string) {
	var msgs []string
	for i := range ctrs {
		if found := device.EnforcerOverrides(&ctrs[i], nil); len(found) > 0 {
			msgs = append(msgs, device.OverrideError(ctrs[i].Name, found).Error())
		}
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	if h.cfg.OverridePolicy == OverrideWarn {
		for _, m := range msgs {
			warnings = append(warnings, "mosaic: "+m+"; the node agent will refuse to start it")
		}
		return nil, warnings
	}
	return deny(http.StatusForbidden, "mosaic: "+strings.Join(msgs, "; ")), nil
}

// ephemeral checks the ephemeral containers an update adds to a pod.
func (h *Handler) ephemeral(pod, old *v1.Pod) *admissionv1.AdmissionResponse {
	// A request the args no longer read (they changed since the pod was
	// created) may share a card: check it as one that does.
	if req, err := h.parse(pod); err == nil && (req == nil || !req.SharesCards()) {
		return allow()
	}
	had := map[string]bool{}
	for _, c := range old.Spec.EphemeralContainers {
		had[c.Name] = true
	}
	var added []device.ContainerSettings
	for i := range pod.Spec.EphemeralContainers {
		if c := v1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon); !had[c.Name] {
			added = append(added, device.SpecSettings(&c))
		}
	}
	refusal, warnings := h.overrides(added)
	if refusal != nil {
		return refusal
	}
	rsp := allow()
	rsp.Warnings = warnings
	return rsp
}

func (h *Handler) create(pod *v1.Pod, dryRun bool) *admissionv1.AdmissionResponse {
	req, err := h.parse(pod)
	if err != nil {
		return deny(http.StatusUnprocessableEntity, "mosaic: invalid device request: "+err.Error())
	}
	var patch []map[string]any
	var warnings []string
	if req != nil && req.SharesCards() {
		refusal, w := h.overrides(device.PodSettings(pod))
		if refusal != nil {
			return refusal
		}
		warnings = w
	}
	for _, k := range protected {
		if _, ok := pod.Annotations[k]; ok {
			patch = append(patch, map[string]any{"op": "remove", "path": "/metadata/annotations/" + escape(k)})
			warnings = append(warnings, fmt.Sprintf("mosaic: removed annotation %s: the scheduler writes it when it binds the pod", k))
		}
	}
	routed := req != nil && h.routes(pod)
	if routed {
		patch = append(patch, map[string]any{"op": "add", "path": "/spec/schedulerName", "value": h.cfg.SchedulerName})
	}
	if routed || h.mosaicSchedules(pod.Spec.SchedulerName) {
		g := h.mapGroup(pod, dryRun)
		if g.refusal != nil {
			return g.refusal
		}
		warnings = append(warnings, g.warnings...)
		if g.name != "" {
			patch = append(patch, map[string]any{"op": "add", "path": "/spec/schedulingGroup", "value": map[string]any{"podGroupName": g.name}})
		}
	}
	rsp := allow()
	rsp.Warnings = warnings
	if len(patch) > 0 {
		b, _ := json.Marshal(patch)
		pt := admissionv1.PatchTypeJSONPatch
		rsp.Patch, rsp.PatchType = b, &pt
	}
	return rsp
}

// escape encodes a key as a JSON Pointer token.
func escape(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1") }

func allow() *admissionv1.AdmissionResponse { return &admissionv1.AdmissionResponse{Allowed: true} }

func deny(code int32, msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Status: metav1.StatusFailure, Code: code, Message: msg}}
}
