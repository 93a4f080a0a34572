package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mosaic-gpu/mosaic/pkg/doctor"
)

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"status"}, {"doctor", "-o", "yaml"}, {"doctor", "extra"}, {"doctor", "--no-such-flag"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, errb.String())
		}
	}
}

func TestWrite(t *testing.T) {
	fs := []doctor.Finding{
		{Check: doctor.NRIDisconnected, Node: "a", Problem: "p1", Fix: "enable NRI"},
		{Check: doctor.NRIDisconnected, Node: "b", Problem: "p1", Fix: "enable NRI"},
		{Check: doctor.EnforcerOverride, Node: "b", Pod: "ns/x", Problem: "p2", Fix: "recreate it"},
	}
	var b bytes.Buffer
	if err := write(&b, "table", fs); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if !strings.Contains(s, "b     ns/x  enforcer-override  p2") || strings.Count(s, "enable NRI") != 1 || !strings.Contains(s, "- enforcer-override: recreate it") {
		t.Errorf("table:\n%s", s)
	}
	b.Reset()
	if err := write(&b, "table", nil); err != nil || b.String() != "No problems found.\n" {
		t.Errorf("no findings: %q, %v", b.String(), err)
	}
	b.Reset()
	if err := write(&b, "json", nil); err != nil {
		t.Fatal(err)
	}
	var back []doctor.Finding
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back == nil || len(back) != 0 {
		t.Errorf("json of no findings: %q (%v)", b.String(), err)
	}
}
