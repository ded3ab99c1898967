// Package bridgetest provides helpers for testing code that uses the bridge core, such as a
// Frontend that records every event it receives.
package bridgetest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// Recorder is a bridge.Frontend that records the events it is given, per account. Set Err to
// make HandleEvent fail (the core must carry on). It is safe for concurrent use.
type Recorder struct {
	FrontendName string

	mu     sync.Mutex
	events []Recorded
	err    error
}

// Recorded is one received event with the account it was for.
type Recorded struct {
	Account string
	Event   bridge.Event
}

var _ bridge.Frontend = (*Recorder)(nil)

// NewRecorder returns a Recorder named name.
func NewRecorder(name string) *Recorder { return &Recorder{FrontendName: name} }

// Name implements bridge.Frontend.
func (r *Recorder) Name() string { return r.FrontendName }

// HandleEvent implements bridge.Frontend. It never blocks.
func (r *Recorder) HandleEvent(_ context.Context, acc *bridge.Account, evt bridge.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, Recorded{Account: acc.Handle(), Event: evt})
	return r.err
}

// SetErr makes later HandleEvent calls return err (nil to succeed again).
func (r *Recorder) SetErr(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// Events returns a copy of everything recorded so far, in delivery order.
func (r *Recorder) Events() []Recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Reset forgets the recorded events.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}

// WaitFor polls until match returns true for some recorded event and returns that event. It
// fails t after timeout (10 s when zero).
func (r *Recorder) WaitFor(t testing.TB, timeout time.Duration, what string, match func(Recorded) bool) Recorded {
	t.Helper()
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		for _, e := range r.Events() {
			if match(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out waiting for %s (%d events recorded)", r.FrontendName, what, len(r.Events()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitForState waits for an AccountState of kind for account handle.
func (r *Recorder) WaitForState(t testing.TB, handle string, kind bridge.AccountStateKind) bridge.AccountState {
	t.Helper()
	rec := r.WaitFor(t, 0, "account state "+string(kind), func(e Recorded) bool {
		s, ok := e.Event.(bridge.AccountState)
		return ok && e.Account == handle && s.State == kind
	})
	return rec.Event.(bridge.AccountState)
}
