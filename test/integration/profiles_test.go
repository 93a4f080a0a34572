package integration

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/mosaic-gpu/mosaic/config"
)

const secondProfile = "mosaic-scheduler-b"

// Two profiles of one scheduler that both enable Mosaic book the same
// cards. The first profile's pod holds the card from Reserve until its
// Binding commits; with that Binding held at the gate, the second
// profile's pod is placed while the first is only assumed, and must find
// the card taken.
func TestProfilesShareCards(t *testing.T) {
	e, g := newGatedEnv(t, twoProfiles(t), a100("profiles", 1))
	held := g.gate(e.ns, "first", holdBinding)
	e.create(e.pod(podSpec{name: "first", limits: wholeCard}))
	g.await(held)
	second := e.pod(podSpec{name: "second", limits: wholeCard})
	second.Spec.SchedulerName = secondProfile
	e.create(second)
	p := e.settle("second")
	close(held.release)
	if e.settleBound("first") == nil {
		t.Fatalf("first not bound within %v of its Binding's release", waitTimeout)
	}
	if p.Spec.NodeName != "" {
		t.Errorf("the second profile bound its pod to %s while the first profile's pod held the card", p.Spec.NodeName)
	} else if msg := unschedulable(p); !strings.Contains(msg, "GPU in exclusive use") {
		t.Errorf("second rejected with %q, want GPU in exclusive use", msg)
	}
	e.checkCapacity()
}

// twoProfiles is the shipped second-scheduler config with its profile
// repeated under another scheduler name.
func twoProfiles(t testing.TB) []byte {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal(config.SecondScheduler, &cfg); err != nil {
		t.Fatal(err)
	}
	profiles := cfg["profiles"].([]any)
	b, err := yaml.Marshal(profiles[0])
	if err != nil {
		t.Fatal(err)
	}
	var other map[string]any
	if err := yaml.Unmarshal(b, &other); err != nil {
		t.Fatal(err)
	}
	other["schedulerName"] = secondProfile
	cfg["profiles"] = append(profiles, other)
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
