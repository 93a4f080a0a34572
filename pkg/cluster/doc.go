// Package cluster runs a real Kubernetes control plane in-process: an
// embedded etcd and kube-apiserver, and the real Mosaic scheduler. The
// simulator and the integration tests use it; nothing in it is a mock.
// There is no kubelet: nodes are API objects, and Kubelet stands in for the
// one duty the scheduler depends on (confirming that a deleted pod is gone).
// As in a real cluster, requests are authorized by RBAC and admitted by
// the built-in ValidatingAdmissionPolicy plugin, and the scheduler signs
// allocations with a key made at Start, as at install.
package cluster
