package bridge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/internal/testenv/goroutines"
	"github.com/msn-bridge/msn-bridge/msn"
)

// waitCoreGoroutines fails t unless, within a bounded wait, the core runs exactly want.
func waitCoreGoroutines(t *testing.T, when string, want int) {
	t.Helper()
	if got := goroutines.Await("github.com/msn-bridge/msn-bridge/bridge", want, 5*time.Second); got != want {
		t.Fatalf("%s: the core runs %d goroutines, want %d\n%s", when, got, want, goroutines.Dump())
	}
}

// An online account with frontends attached holds no goroutine of the core while nothing
// happens: the connection loop is parked on the session and each frontend's delivery runs only
// while it has events. Events still arrive in order and once, a dropped session is reconnected
// from the parked loop, and Stop closes the parked session.
func TestIdleAccountHoldsNoGoroutine(t *testing.T) {
	core := newTestCore(t, testStore(t), newFakeServer(), Config{})
	mx, dc := &recorder{name: "matrix"}, &recorder{name: "discord"}
	before := goroutines.Started("github.com/msn-bridge/msn-bridge/bridge")
	acc := loggedIn(t, core, mx)
	acc.Attach(dc)
	mx.waitFor(t, "online", hasState(StateOnline))
	dc.waitFor(t, "the snapshot", func(e []Event) bool { return countType[ContactSnapshot](e) > 0 })
	waitCoreGoroutines(t, "online and idle", before)

	const n = 300
	sess := core.srv.session("alice@example.com")
	for i := range n {
		sess.emit(&msn.MessageReceived{SessionID: "s1", From: "bob@example.com", Text: fmt.Sprint(i), Time: time.Now()})
		if i%50 == 0 {
			time.Sleep(5 * time.Millisecond) // let deliveries finish and start again
		}
	}
	for _, fe := range []*recorder{mx, dc} {
		evts := fe.waitFor(t, "every message", func(e []Event) bool { return countType[Message](e) >= n })
		next := 0
		for _, e := range evts {
			if m, ok := e.(Message); ok {
				if m.Text != fmt.Sprint(next) {
					t.Fatalf("%s: message %q where %d was due", fe.name, m.Text, next)
				}
				next++
			}
		}
		if next != n {
			t.Fatalf("%s: %d messages, want %d", fe.name, next, n)
		}
	}
	waitCoreGoroutines(t, "after a burst", before)

	logins := core.srv.loginCount()
	seen := len(mx.events())
	core.srv.kick("alice@example.com", msn.ReasonNetwork)
	mx.waitFor(t, "reconnected", func(e []Event) bool {
		for _, x := range e[seen:] {
			if s, ok := x.(AccountState); ok && s.State == StateOnline {
				return core.srv.loginCount() == logins+1
			}
		}
		return false
	})
	waitCoreGoroutines(t, "reconnected and idle", before)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := core.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if core.srv.session("alice@example.com") != nil {
		t.Fatal("Stop left the parked session open")
	}
	if core.Account("alice@example.com").isRunning() {
		t.Fatal("the connection loop still runs after Stop")
	}
	waitCoreGoroutines(t, "stopped", before)
}
