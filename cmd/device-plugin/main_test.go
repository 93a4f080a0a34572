package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNamespaces(t *testing.T) {
	got, err := namespaces(" gpu-operator,,kube-system ")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"gpu-operator", "kube-system"}, got); diff != "" {
		t.Errorf("namespaces (-want,+got):\n%s", diff)
	}
	if _, err := namespaces("team a"); err == nil || !strings.Contains(err.Error(), `--exempt-namespaces: "team a" is not a namespace name`) {
		t.Errorf("error = %v", err)
	}
}
