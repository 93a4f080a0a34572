package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The simulator end to end: a real control plane and scheduler, read back
// through the JSON report.
func TestRunReportsPlacementAndUsage(t *testing.T) {
	s, err := Parse([]byte(`
nodes:
- name: g
  gpus: [{vendor: NVIDIA, model: "NVIDIA L4", memoryMiB: 23034, count: 2, numa: [0, 1]}]
  deviceConfig: {splitCount: 3}
pods:
- {kind: Pod, metadata: {name: a}, spec: {containers: [{name: c, image: x, resources: {limits: {nvidia.com/gpu: 1, nvidia.com/gpumem: 10000, nvidia.com/gpucores: 40}}}]}}
- {kind: Pod, metadata: {name: b}, spec: {containers: [{name: c, image: x, resources: {limits: {nvidia.com/gpu: 2, nvidia.com/gpumem: 10000}}}]}}
- {kind: Pod, metadata: {name: c}, spec: {containers: [{name: c, image: x, resources: {limits: {nvidia.com/gpu: 1, nvidia.com/gpumem: 10000}}}]}}
- {delete: default/a}
- {kind: Pod, metadata: {name: a}, spec: {containers: [{name: c, image: x, resources: {limits: {nvidia.com/gpu: 1, nvidia.com/gpumem: 1000}}}]}}
- {kind: Pod, metadata: {name: d}, spec: {containers: [{name: c, image: x, resources: {limits: {nvidia.com/gpu: 1, nvidia.com/gpumem: 30000}}}]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	// StepTimeout is a hang guard (a loaded machine may take seconds to
	// start the scheduler), not a speed target.
	rep, err := Run(context.Background(), s, Options{Settle: 5 * time.Second, StepTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Pods []struct {
			Name       string
			Node       string
			Scheduled  bool
			Reason     string
			Containers []struct{ Devices []struct{ MemoryMiB int64 } }
		}
		Nodes []struct {
			Name    string
			Devices []struct {
				UsedMemoryMiB, MemoryMiB int64
				UsedSlots, Slots         int
			}
		}
	}
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range out.Pods {
		got[p.Name] = p.Scheduled
	}
	// a, b and c fit (3 slots per card, 23034 MiB each); a is deleted and
	// created again (listed once, after c); d asks for more memory than a
	// card has.
	if len(out.Pods) != 4 || out.Pods[2].Name != "a" || !got["a"] || !got["b"] || !got["c"] || got["d"] {
		t.Fatalf("pods = %+v", out.Pods)
	}
	for _, p := range out.Pods {
		if p.Name == "d" && !strings.Contains(p.Reason, "exceeds every GPU") {
			t.Errorf("d's reason = %q", p.Reason)
		}
	}
	var used int64
	for _, d := range out.Nodes[0].Devices {
		used += d.UsedMemoryMiB
		if d.UsedSlots > d.Slots || d.UsedMemoryMiB > d.MemoryMiB {
			t.Errorf("card over capacity: %+v", d)
		}
	}
	if used != 31000 {
		t.Errorf("used memory = %d MiB, want 31000 (b: 2x10000, c: 10000, a: 1000)", used)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil || !strings.Contains(table.String(), "default/b") {
		t.Errorf("table output: %v\n%s", err, table.String())
	}
}

// With Serve, the simulated cluster is shown in the dashboard after the
// run, until the context ends.
func TestRunServesDashboard(t *testing.T) {
	s, err := Parse([]byte(`
nodes:
- name: g
  gpus: [{vendor: NVIDIA, model: "NVIDIA L4", memoryMiB: 23034}]
pods:
- {kind: Pod, metadata: {name: shown}, spec: {containers: [{name: c, image: x, resources: {limits: {nvidia.com/gpu: 1, nvidia.com/gpumem: 3000}}}]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	// The run serves on this listener: no other process can take the port
	// between picking it and serving.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	// A hang guard: the run ends as soon as the page has been read.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var page string
	printed := false
	opts := Options{Settle: time.Second, StepTimeout: time.Minute, Listener: l, Print: func(*Report) error {
		printed = true
		go func() {
			defer cancel()
			for ctx.Err() == nil {
				rsp, err := http.Get("http://" + addr + "/api/nodes")
				if err == nil {
					b, _ := io.ReadAll(rsp.Body)
					rsp.Body.Close()
					page = string(b)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		return nil
	}}
	if _, err := Run(ctx, s, opts); err != nil {
		t.Fatal(err)
	}
	if !printed || !strings.Contains(page, `"namespace":"default","pod":"shown","memoryMiB":3000`) ||
		!strings.Contains(page, `"memoryMiB":23034,"allocatedMemoryMiB":3000`) {
		t.Errorf("printed %v, nodes:\n%s", printed, page)
	}
}

// examples/topology.yaml: multi-card pods get linked cards, the node with
// the better-linked set wins, and a required link no node offers keeps
// its pod pending with the reason.
func TestTopologyExample(t *testing.T) {
	s, err := Load("../../examples/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), s, Options{Settle: time.Second, StepTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	type where struct {
		Node  string
		Cards []int
	}
	want := map[string]where{
		"train-a": {"hgx-h200", []int{0, 1, 2, 3}}, "train-b": {"hgx-h200", []int{4, 5, 6, 7}},
		"pair-a": {"mixed", []int{0, 1}}, "pair-b": {"mixed", []int{2, 3}}, "pair-c": {"mixed", []int{4, 5}},
	}
	for _, p := range rep.Pods {
		if p.Name == "train-nvlink" {
			if p.Scheduled || !strings.Contains(p.Reason, "linked to each other by NVLink") {
				t.Errorf("train-nvlink: scheduled %v, reason %q; want pending for want of linked cards", p.Scheduled, p.Reason)
			}
			continue
		}
		got := where{Node: p.Node}
		for _, c := range p.Containers {
			for _, d := range c.Devices {
				got.Cards = append(got.Cards, d.Index)
			}
		}
		slices.Sort(got.Cards)
		if !p.Scheduled || !reflect.DeepEqual(got, want[p.Name]) {
			t.Errorf("%s: scheduled %v on %+v, want %+v", p.Name, p.Scheduled, got, want[p.Name])
		}
	}
	if len(rep.Pods) != 6 {
		t.Errorf("%d pods reported, want 6", len(rep.Pods))
	}
}

// examples/gang.yaml: a training group that fits only after another job
// finishes binds no worker before, holds no cards while it waits, and
// binds whole after.
func TestGangExample(t *testing.T) {
	s, err := Load("../../examples/gang.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), s, Options{Settle: 10 * time.Second, StepTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var workers []int
	for _, p := range rep.Pods {
		if !strings.HasPrefix(p.Name, "train-") {
			t.Errorf("%s still exists", p.Name)
			continue
		}
		if !p.Scheduled || p.Node != "hgx-h200" {
			t.Errorf("%s: scheduled %v on %q, want bound to hgx-h200", p.Name, p.Scheduled, p.Node)
		}
		for _, d := range p.Containers[0].Devices {
			workers = append(workers, d.Index)
		}
	}
	slices.Sort(workers)
	if !slices.Equal(workers, []int{0, 1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("the workers hold cards %v, want each of the 8 once", workers)
	}
}
