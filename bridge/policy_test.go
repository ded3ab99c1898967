package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

func TestReconnectPolicy(t *testing.T) {
	cfg := ReconnectConfig{Initial: time.Second, Max: time.Minute, MaxAttempts: 10}
	netErr := &net.OpError{Op: "read", Err: errors.New("connection reset")}
	tests := []struct {
		name    string
		err     error
		attempt int
		rand    float64
		stop    bool
		reason  StopReason
		delay   time.Duration
	}{
		{"bad credentials", &msn.CredentialsError{}, 1, 0.5, true, StopBadCredentials, 0},
		{"bad credentials wrapped", fmt.Errorf("login: %w", msn.ErrBadCredentials), 3, 0.5, true, StopBadCredentials, 0},
		{"logged in elsewhere", &msn.DisconnectError{Reason: msn.ReasonOtherLogin}, 1, 0.5, true, StopOtherLocation, 0},
		{"terms of use", &msn.DisconnectError{Reason: msn.ReasonTerms}, 1, 0.5, true, StopServerGone, 0},
		{"local close", &msn.DisconnectError{Reason: msn.ReasonClosed}, 1, 0.5, true, StopShutdown, 0},
		{"cancelled", context.Canceled, 1, 0.5, true, StopShutdown, 0},
		{"restricted account", &msn.ServerError{Code: 924}, 1, 0.5, true, StopServerGone, 0},
		{"network drop, first", &msn.DisconnectError{Reason: msn.ReasonNetwork, Err: netErr}, 1, 0.5, false, "", 500 * time.Millisecond},
		{"network drop, third", &msn.DisconnectError{Reason: msn.ReasonNetwork, Err: netErr}, 3, 0.5, false, "", 2 * time.Second},
		{"full jitter can be zero", &msn.DisconnectError{Reason: msn.ReasonShutdown}, 2, 0, false, "", 0},
		{"capped at max", &msn.DisconnectError{Reason: msn.ReasonShutdown}, 9, 0.999, false, "", time.Duration(0.999 * float64(time.Minute))},
		{"server busy", &msn.ServerError{Code: 600}, 1, 0.25, false, "", 250 * time.Millisecond},
		{"dial timeout", fmt.Errorf("dial: %w", msn.ErrTimeout), 2, 0.5, false, "", time.Second},
		{"RCT floor", &msn.DisconnectError{Reason: msn.ReasonRetryLater, RetryAfter: 5 * time.Minute}, 1, 0.5, false, "", 5*time.Minute + 500*time.Millisecond},
		{"RCT floor, zero jitter", &msn.DisconnectError{Reason: msn.ReasonRetryLater, RetryAfter: 2 * time.Minute}, 1, 0, false, "", 2 * time.Minute},
		{"plain OUT", &msn.DisconnectError{Reason: msn.ReasonNone}, 1, 0.5, false, "", 500 * time.Millisecond},
		{"nil error", nil, 1, 0.5, false, "", 500 * time.Millisecond},
		{"too many attempts", &msn.DisconnectError{Reason: msn.ReasonNetwork}, 11, 0.5, true, StopServerGone, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ReconnectPolicy{Config: cfg, Rand: func() float64 { return tc.rand }}
			d := p.Decide(tc.err, tc.attempt)
			if d.Stop != tc.stop || d.Reason != tc.reason || d.Delay != tc.delay {
				t.Fatalf("Decide(%v, %d) = %+v, want stop=%v reason=%q delay=%v", tc.err, tc.attempt, d, tc.stop, tc.reason, tc.delay)
			}
		})
	}
}

func TestReconnectBackoffNeverExceedsMax(t *testing.T) {
	p := ReconnectPolicy{Config: ReconnectConfig{Initial: time.Second, Max: 30 * time.Second}, Rand: func() float64 { return 0.9999 }}
	for attempt := 1; attempt < 200; attempt++ {
		if d := p.Decide(&msn.DisconnectError{Reason: msn.ReasonNetwork}, attempt); d.Stop || d.Delay > 30*time.Second {
			t.Fatalf("attempt %d: %+v", attempt, d)
		}
	}
}

func TestPresenceCoalescer(t *testing.T) {
	// model is the owner's contact model; shown what frontends were told (as Account keeps it).
	model := map[string]presenceView{"bob@x": {Handle: "bob@x", Name: "Bob", Status: StatusOffline, MSNStatus: "FLN"}}
	shown := map[string]bool{"bob@x": true} // in the last snapshot
	var p presenceCoalescer
	set := func(v presenceView) {
		p.update(v.Handle, model[v.Handle], shown[v.Handle])
		model[v.Handle] = v
	}
	flush := func() []Event {
		return p.flush(func(h string) (presenceView, bool) {
			v, ok := model[h]
			if ok {
				shown[h] = true
			}
			return v, ok
		})
	}

	// A burst becomes one update with the latest state.
	for i := 0; i < 50; i++ {
		set(presenceView{Handle: "bob@x", Name: "Bob", Status: StatusAway, MSNStatus: "AWY"})
	}
	if p.pendingCount() != 1 {
		t.Fatalf("%d pending after a burst of one contact", p.pendingCount())
	}
	set(presenceView{Handle: "bob@x", Name: "Bob", Status: StatusOnline, MSNStatus: "NLN", PSM: "hello"})
	evts := flush()
	if len(evts) != 1 {
		t.Fatalf("burst: %#v", evts)
	}
	if cp := evts[0].(ContactPresence); cp.Status != StatusOnline || cp.PSM != "hello" {
		t.Fatalf("latest state must win: %#v", cp)
	}
	if p.pending != nil {
		t.Fatal("the pending map is kept between bursts")
	}

	// Nothing changed: nothing emitted.
	set(presenceView{Handle: "bob@x", Name: "Bob", Status: StatusOnline, MSNStatus: "NLN", PSM: "hello"})
	if evts := flush(); len(evts) != 0 {
		t.Fatalf("unchanged: %#v", evts)
	}

	// A state that changes and changes back within a window is never shown.
	set(presenceView{Handle: "bob@x", Name: "B0b", Status: StatusBusy, MSNStatus: "BSY", PSM: "hello"})
	set(presenceView{Handle: "bob@x", Name: "Bob", Status: StatusOnline, MSNStatus: "NLN", PSM: "hello"})
	if evts := flush(); len(evts) != 0 {
		t.Fatalf("flapping name and status: %#v", evts)
	}

	// A name change alone is a ContactProfile, not a presence update.
	set(presenceView{Handle: "bob@x", Name: "Robert", Status: StatusOnline, MSNStatus: "NLN", PSM: "hello"})
	evts = flush()
	if len(evts) != 1 || evts[0].(ContactProfile).Name != "Robert" {
		t.Fatalf("name change: %#v", evts)
	}

	// Contacts frontends were never told of: a presence update each, no profile, ordered by
	// handle; one removed before the flush: nothing.
	set(presenceView{Handle: "zed@x", Name: "Zed", Status: StatusBusy, MSNStatus: "BSY"})
	set(presenceView{Handle: "amy@x", Name: "Amy", Status: StatusLunch, MSNStatus: "LUN"})
	set(presenceView{Handle: "gone@x", Status: StatusOnline, MSNStatus: "NLN"})
	delete(model, "gone@x")
	evts = flush()
	if len(evts) != 2 || evts[0].(ContactPresence).Handle != "amy@x" || evts[1].(ContactPresence).Handle != "zed@x" {
		t.Fatalf("new contacts: %#v", evts)
	}
	// Once told, their changes are compared with what was told.
	set(presenceView{Handle: "zed@x", Name: "Zed", Status: StatusBusy, MSNStatus: "BSY"})
	if evts := flush(); len(evts) != 0 {
		t.Fatalf("unchanged new contact: %#v", evts)
	}

	// forget drops a pending change; reset drops them all.
	set(presenceView{Handle: "amy@x", Name: "Amy", Status: StatusOnline, MSNStatus: "NLN"})
	p.forget("amy@x")
	set(presenceView{Handle: "zed@x", Name: "Zed", Status: StatusOnline, MSNStatus: "NLN"})
	p.reset()
	if evts := flush(); len(evts) != 0 {
		t.Fatalf("after forget and reset: %#v", evts)
	}
}

func TestRateLimiterReserve(t *testing.T) {
	clock := newFakeClock()
	start := clock.Now()
	l := NewRateLimiter(10, 5, clock)
	perSecond := map[int]int{}
	for i := 0; i < 1000; i++ {
		slot := l.Reserve()
		perSecond[int(slot.Sub(start)/time.Second)]++
	}
	for sec, n := range perSecond {
		limit := 10
		if sec == 0 {
			limit = 10 + 5
		}
		if n > limit {
			t.Fatalf("second %d has %d slots, limit %d", sec, n, limit)
		}
	}
	if len(perSecond) < 99 {
		t.Fatalf("1000 slots at 10/s spread over only %d seconds", len(perSecond))
	}
}

func TestRateLimiterRefillsAfterIdle(t *testing.T) {
	clock := newFakeClock()
	l := NewRateLimiter(1, 3, clock)
	for i := 0; i < 3; i++ {
		if s := l.Reserve(); !s.Equal(clock.Now()) {
			t.Fatalf("burst slot %d delayed to %v", i, s)
		}
	}
	if s := l.Reserve(); !s.After(clock.Now()) {
		t.Fatal("4th slot not delayed")
	}
	clock.mu.Lock()
	clock.now = clock.now.Add(time.Hour)
	clock.mu.Unlock()
	for i := 0; i < 3; i++ {
		if s := l.Reserve(); !s.Equal(clock.Now()) {
			t.Fatalf("after idle, burst slot %d delayed", i)
		}
	}
}
