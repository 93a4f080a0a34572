package nri

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
)

// EventReasonUnverified is the reason of the Warning event on a pod whose
// allocation failed the signature check, so that its containers started
// with no card. kubectl describe pod shows it with the cause.
const EventReasonUnverified = "AllocationNotVerified"

// ReportUnverified records on the pod that a container of it gets no card
// and why. A nil recorder records nothing.
func ReportUnverified(rec events.EventRecorder, namespace, name string, uid types.UID, container string, why error) {
	if rec == nil {
		return
	}
	pod := &v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: namespace, Name: name, UID: uid}
	rec.Eventf(pod, nil, v1.EventTypeWarning, EventReasonUnverified, "WithholdDevices",
		"container %s gets no device: %v", container, why)
}
