//go:build cgo

package discovery

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/google/go-cmp/cmp"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery/nvidiatest"
)

type healthReport struct {
	UUID    string
	Healthy bool
}

// waitStep is one return of the event set's Wait: the backend's clock
// moves on by advance and do runs, then Wait returns event, ERROR_TIMEOUT
// when event has no type, or ret when it is set.
type waitStep struct {
	advance time.Duration
	do      func()
	event   nvml.EventData
	ret     nvml.Return
}

func xid(dev nvml.Device, code uint64) waitStep {
	return waitStep{event: nvml.EventData{Device: dev, EventType: nvml.EventTypeXidCriticalError, EventData: code}}
}

func after(d time.Duration) waitStep { return waitStep{advance: d} }

// newWatchedH200 is the backend on an H200 board whose cards register
// for XID events (card 7 does not support them) and a clock the steps
// move.
func newWatchedH200(t *testing.T, s *server.Server) (*NVIDIA, *testingclock.FakePassiveClock) {
	t.Helper()
	for _, d := range s.Devices {
		md := d.(*server.Device)
		md.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) {
			return nvml.EventTypeXidCriticalError | nvml.EventTypeSingleBitEccError, nvml.SUCCESS
		}
		if md.RegisterEventsFunc == nil {
			md.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
		}
	}
	s.Devices[7].(*server.Device).GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	n := newTestNVIDIA(t, s, t.TempDir())
	clk := testingclock.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	n.clock = clk
	return n, clk
}

// watch runs WatchHealth once, its event set's Wait answering steps; once
// they are spent it ends the watcher.
func watch(t *testing.T, n *NVIDIA, s *server.Server, clk *testingclock.FakePassiveClock, steps []waitStep) ([]healthReport, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a hang guard only
	defer cancel()
	next := 0
	set := &mock.EventSet{
		FreeFunc: func() nvml.Return { return nvml.SUCCESS },
		WaitFunc: func(uint32) (nvml.EventData, nvml.Return) {
			if next == len(steps) {
				cancel()
				return nvml.EventData{}, nvml.ERROR_TIMEOUT
			}
			st := steps[next]
			next++
			clk.SetTime(clk.Now().Add(st.advance))
			if st.do != nil {
				st.do()
			}
			switch {
			case st.ret != nvml.SUCCESS:
				return nvml.EventData{}, st.ret
			case st.event.EventType == 0:
				return nvml.EventData{}, nvml.ERROR_TIMEOUT
			}
			return st.event, nvml.SUCCESS
		},
	}
	s.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return set, nvml.SUCCESS }
	var got []healthReport
	err := n.WatchHealth(ctx, func(uuid string, healthy bool) { got = append(got, healthReport{uuid, healthy}) })
	if registered := len(s.Devices[7].(*server.Device).RegisterEventsCalls()); registered != 0 {
		t.Errorf("card 7, without XID events, was registered %d times", registered)
	}
	if len(set.FreeCalls()) != 1 {
		t.Errorf("event set freed %d times, want 1", len(set.FreeCalls()))
	}
	return got, err
}

func TestNVIDIAWatchHealth(t *testing.T) {
	s := nvidiatest.NewH200()
	// Card 6 cannot register: unhealthy before any event.
	s.Devices[6].(*server.Device).RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.ERROR_UNKNOWN }
	n, clk := newWatchedH200(t, s)
	got, err := watch(t, n, s, clk, []waitStep{
		xid(s.Devices[0], 13), // application error: ignored
		xid(s.Devices[0], 43), // application error: ignored
		{event: nvml.EventData{Device: s.Devices[2], EventType: nvml.EventTypeSingleBitEccError}}, // not an XID: ignored
		xid(s.Devices[1], 79), // fallen off the bus: that card only
		xid(nil, 48),          // no card named: all of them
	})
	if err != nil {
		t.Fatalf("WatchHealth: %v", err)
	}
	want := []healthReport{{nvidiatest.UUID(s, 6), false}, {nvidiatest.UUID(s, 1), false}}
	for i := range 8 {
		want = append(want, healthReport{nvidiatest.UUID(s, i), false})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reports (-want,+got):\n%s", diff)
	}
}

// An error of the event wait is the event source's, not a card's: it
// marks no card, and WatchHealth returns it for its caller to restart it.
func TestNVIDIAWatchHealthWaitFailsMarksNoCard(t *testing.T) {
	s := nvidiatest.NewH200()
	n, clk := newWatchedH200(t, s)
	got, err := watch(t, n, s, clk, []waitStep{xid(s.Devices[3], 79), {ret: nvml.ERROR_UNKNOWN}})
	if err == nil {
		t.Fatal("WatchHealth returned nil after the event wait failed")
	}
	if diff := cmp.Diff([]healthReport{{nvidiatest.UUID(s, 3), false}}, got); diff != "" {
		t.Errorf("reports (-want,+got):\n%s", diff)
	}
}

// A card an XID marked is healthy again once it has gone the recovery
// window (5 minutes by default) without another critical XID and passes a
// probe; a new XID or a failed probe starts the window again.
func TestNVIDIAWatchHealthRecovers(t *testing.T) {
	s := nvidiatest.NewH200()
	card := s.Devices[1].(*server.Device)
	uuid := nvidiatest.UUID(s, 1)
	lost := func() {
		card.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_GPU_IS_LOST }
	}
	back := func() {
		card.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{Total: 141 << 30}, nvml.SUCCESS }
	}
	remapPending := func() {
		card.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 1, true, false, nvml.SUCCESS }
	}
	remapped := func() {
		card.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 1, false, false, nvml.SUCCESS }
	}
	n, clk := newWatchedH200(t, s)
	got, err := watch(t, n, s, clk, []waitStep{
		xid(card, 94),          // t=0: marked
		after(4 * time.Minute), // quiet, window not over
		xid(card, 94),          // t=4m: marked again, the window starts again
		after(4 * time.Minute), // t=8m: 4m quiet
		{advance: time.Minute + time.Second, do: lost},                    // t=9m1s: window over, the probe fails: window again
		{advance: 5 * time.Minute, do: func() { back(); remapPending() }}, // t=14m1s: answers, but needs a reset
		{advance: 5 * time.Minute, do: remapped},                          // t=19m1s: reset: healthy
		after(time.Hour),                                                  // reported once
	})
	if err != nil {
		t.Fatalf("WatchHealth: %v", err)
	}
	want := []healthReport{{uuid, false}, {uuid, false}, {uuid, true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reports (-want,+got):\n%s", diff)
	}
	if n := len(card.GetRemappedRowsCalls()); n != 2 {
		t.Errorf("row remapping read %d times, want 2 (one probe per window passed with the card answering)", n)
	}
}

// The marked cards outlive one WatchHealth: after the event wait fails,
// the restarted watcher recovers them.
func TestNVIDIAWatchHealthRecoversAcrossRestarts(t *testing.T) {
	s := nvidiatest.NewH200()
	n, clk := newWatchedH200(t, s)
	uuid := nvidiatest.UUID(s, 2)
	if _, err := watch(t, n, s, clk, []waitStep{xid(s.Devices[2], 79), {ret: nvml.ERROR_UNKNOWN}}); err == nil {
		t.Fatal("WatchHealth returned nil after the event wait failed")
	}
	got, err := watch(t, n, s, clk, []waitStep{after(5 * time.Minute)})
	if err != nil {
		t.Fatalf("restarted WatchHealth: %v", err)
	}
	if diff := cmp.Diff([]healthReport{{uuid, true}}, got); diff != "" {
		t.Errorf("reports of the restarted watcher (-want,+got):\n%s", diff)
	}
}

// A card that failed to register for XID events recovers only once it
// registers.
func TestNVIDIAWatchHealthUnregisteredCardRecovers(t *testing.T) {
	s := nvidiatest.NewH200()
	card := s.Devices[6].(*server.Device)
	ret := nvml.ERROR_UNKNOWN
	card.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return ret }
	n, clk := newWatchedH200(t, s)
	uuid := nvidiatest.UUID(s, 6)
	got, err := watch(t, n, s, clk, []waitStep{
		after(5 * time.Minute), // probe passes, registration fails: window again
		{advance: 5 * time.Minute, do: func() { ret = nvml.SUCCESS }},
	})
	if err != nil {
		t.Fatalf("WatchHealth: %v", err)
	}
	if diff := cmp.Diff([]healthReport{{uuid, false}, {uuid, true}}, got); diff != "" {
		t.Errorf("reports (-want,+got):\n%s", diff)
	}
	if calls := len(card.RegisterEventsCalls()); calls != 3 {
		t.Errorf("card 6 registered %d times, want 3 (at start and at each probe)", calls)
	}
}

func TestNVIDIAHealthRecoveryMustNotBeNegative(t *testing.T) {
	_, err := NewNVIDIAFrom(nvidiatest.NewH200(), NVIDIAOptions{HealthRecovery: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "healthRecovery: -1s must be >= 0") {
		t.Fatalf("error = %v", err)
	}
}
