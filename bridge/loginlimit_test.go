package bridge

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// TestLoginAttemptsLimitedPerUser has one user flood the login with wrong passwords, then many
// users try one each: the flooder is refused without reaching MSN, with a lockout that grows
// with its refused passwords, and neither another user's login nor a reconnect of a running
// account waits behind any of it. Waits are read off the virtual clock.
func TestLoginAttemptsLimitedPerUser(t *testing.T) {
	ctx := context.Background()
	core := newTestCore(t, testStore(t), newFakeServer(), Config{}) // 2 logins/s (burst 5), 10 s per user (burst 3)
	acc := loggedIn(t, core)
	core.srv.mu.Lock()
	core.srv.passwords["bob@example.com"] = "bob-pw"
	core.srv.mu.Unlock()
	mallory := FrontendUser{"discord", "666"}

	start := core.clock.Now()
	var refused []*TooManyAttemptsError
	for i := range 30 {
		_, err := core.Login(ctx, mallory, "alice@example.com", fmt.Sprintf("guess-%d", i))
		var tm *TooManyAttemptsError
		switch {
		case i < DefaultUserLoginBurst && !errors.Is(err, ErrBadCredentials):
			t.Fatalf("attempt %d: %v, want a refused password", i, err)
		case i >= DefaultUserLoginBurst && !errors.As(err, &tm):
			t.Fatalf("attempt %d: %v, want TooManyAttemptsError", i, err)
		}
		if tm != nil {
			refused = append(refused, tm)
		}
	}
	if n := core.srv.verificationCount(); n != DefaultUserLoginBurst {
		t.Errorf("%d passwords checked with MSN, want %d: refused attempts must not reach it", n, DefaultUserLoginBurst)
	}
	if !core.clock.Now().Equal(start) {
		t.Errorf("the flood waited %v for the global limiter", core.clock.Now().Sub(start))
	}
	if last := refused[len(refused)-1]; last.RetryAfter != DefaultUserLoginInterval || !errors.Is(last, ErrTooManyAttempts) ||
		last.Error() != "too many login attempts, try again in 10 s" {
		t.Errorf("refusal %q after %v", last, last.RetryAfter)
	}

	// Another user's login does not wait.
	carol := FrontendUser{"matrix", "@carol:example.org"}
	if _, err := core.Login(ctx, carol, "bob@example.com", "bob-pw"); err != nil {
		t.Fatal(err)
	}
	if !core.clock.Now().Equal(start) {
		t.Errorf("another user's login waited %v behind the flood", core.clock.Now().Sub(start))
	}

	// Further refused passwords lock the flooder out, twice as long each time.
	for i, want := range []time.Duration{2 * DefaultUserLoginInterval, 4 * DefaultUserLoginInterval, 8 * DefaultUserLoginInterval} {
		_ = core.clock.SleepUntil(ctx, core.clock.Now().Add(time.Hour/2))
		if _, err := core.Login(ctx, mallory, "alice@example.com", "again"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("attempt %d after the wait: %v", i, err)
		}
		var tm *TooManyAttemptsError
		if _, err := core.Login(ctx, mallory, "alice@example.com", "again"); !errors.As(err, &tm) || tm.RetryAfter != want {
			t.Fatalf("lockout %d: %v, want %v", i, err, want)
		}
	}

	// Many users, one attempt each: they share the users' budget, not the reconnects'.
	for i := range 30 {
		u := FrontendUser{"matrix", fmt.Sprintf("@guest%d:example.org", i)}
		if _, err := core.Login(ctx, u, "alice@example.com", "guess"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("guest %d: %v", i, err)
		}
	}
	if slot := core.Limiter().Reserve(); !slot.Equal(core.clock.Now()) {
		t.Errorf("the reconnects' next slot is %v away: strangers spent their budget", slot.Sub(core.clock.Now()))
	}
	logins := core.srv.loginCount()
	dropped := core.clock.Now()
	core.srv.kick("alice@example.com", msn.ReasonNetwork)
	for deadline := time.Now().Add(15 * time.Second); core.srv.loginCount() == logins || acc.State().State != StateOnline; {
		if time.Now().After(deadline) {
			t.Fatal("alice did not reconnect")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The only wait is the backoff (Rand 0.5 of the 2 s initial ceiling): the slot reserved above
	// was refilled meanwhile.
	if waited := core.clock.Now().Sub(dropped); waited != time.Second {
		t.Errorf("the reconnect waited %v, want the 1 s backoff alone", waited)
	}
}

// TestLoginGateBoundedAndForgets: the users tracked stay bounded however many try, and a user's
// refused passwords are forgotten once they have been quiet for loginMemory.
func TestLoginGateBoundedAndForgets(t *testing.T) {
	clock := newFakeClock()
	g := newLoginGate(10*time.Second, 2, clock)
	for i := range maxLoginUsers + 100 {
		if err := g.admit(FrontendUser{"matrix", fmt.Sprintf("@u%d:x", i)}); err != nil {
			t.Fatalf("user %d: %v", i, err)
		}
	}
	if n := len(g.users); n > maxLoginUsers {
		t.Fatalf("%d users tracked, want at most %d", n, maxLoginUsers)
	}

	mallory := FrontendUser{"discord", "666"}
	for range 3 {
		_ = clock.SleepUntil(context.Background(), clock.Now().Add(10*time.Second))
		if err := g.admit(mallory); err != nil {
			t.Fatal(err)
		}
		g.done(mallory, ErrBadCredentials)
	}
	if err := g.admit(mallory); !errors.Is(err, ErrTooManyAttempts) {
		t.Fatalf("after 3 refused passwords: %v, want a lockout", err)
	}
	_ = clock.SleepUntil(context.Background(), clock.Now().Add(loginMemory+time.Second))
	if err := g.admit(mallory); err != nil {
		t.Fatalf("after a quiet hour: %v", err)
	}
	g.done(mallory, ErrBadCredentials)
	if err := g.admit(mallory); err != nil {
		t.Fatalf("one refusal after the quiet hour locked out: %v", err)
	}
}
