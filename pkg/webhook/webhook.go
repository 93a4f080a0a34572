// Package webhook is Mosaic's admission webhook for pods. It
//   - refuses a pod whose device request is invalid, at kubectl apply time,
//     with the message the scheduler would give (field and limit);
//   - routes pods that ask for devices to Mosaic's scheduler when they name
//     none (HAMi users write only resources);
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
	ParseOptions  device.ParseOptions
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
	if req.Kind.Kind != "Pod" || req.SubResource != "" {
		return allow()
	}
	var pod v1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(http.StatusBadRequest, "mosaic: cannot read the pod: "+err.Error())
	}
	switch req.Operation {
	case admissionv1.Create:
		return h.create(&pod)
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
	}
	return allow()
}

func (h *Handler) create(pod *v1.Pod) *admissionv1.AdmissionResponse {
	req, err := device.ParsePodRequest(pod, h.cfg.ParseOptions)
	if err != nil {
		return deny(http.StatusUnprocessableEntity, "mosaic: invalid device request: "+err.Error())
	}
	var patch []map[string]any
	var warnings []string
	for _, k := range protected {
		if _, ok := pod.Annotations[k]; ok {
			patch = append(patch, map[string]any{"op": "remove", "path": "/metadata/annotations/" + escape(k)})
			warnings = append(warnings, fmt.Sprintf("mosaic: removed annotation %s: the scheduler writes it when it binds the pod", k))
		}
	}
	if req != nil && h.cfg.SchedulerName != "" && (pod.Spec.SchedulerName == "" || pod.Spec.SchedulerName == v1.DefaultSchedulerName) {
		patch = append(patch, map[string]any{"op": "add", "path": "/spec/schedulerName", "value": h.cfg.SchedulerName})
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
