package main

import (
	"net"
	"testing"
)

func TestDashboardURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:18080": "http://127.0.0.1:18080/",
		"0.0.0.0:18080":   "http://localhost:18080/",
		"[::]:18080":      "http://localhost:18080/",
		"[::1]:18080":     "http://[::1]:18080/",
		"10.1.2.3:80":     "http://10.1.2.3:80/",
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := dashboardURL(a); got != want {
			t.Errorf("%s: %s, want %s", addr, got, want)
		}
	}
}
