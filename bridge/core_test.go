package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

var (
	matrixUser  = FrontendUser{"matrix", "@alice:example.org"}
	discordUser = FrontendUser{"discord", "4242"}
)

func TestLoginStoresOnlyOnSuccess(t *testing.T) {
	ctx := context.Background()
	store := testStore(t)
	srv := newFakeServer()
	srv.passwords["alice@example.com"] = "right"
	core := newTestCore(t, store, srv, Config{})
	if err := core.Start(ctx); err != nil {
		t.Fatal(err)
	}

	_, err := core.Login(ctx, matrixUser, "alice@example.com", "wrong")
	var le *LoginError
	if !errors.As(err, &le) || !errors.Is(err, ErrBadCredentials) || le.Retryable {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := store.GetAccount(ctx, "alice@example.com"); !errors.Is(err, ErrAccountNotFound) {
		t.Fatalf("account stored after failed login: %v", err)
	}
	if core.Account("alice@example.com") != nil {
		t.Fatal("account kept after failed login")
	}

	srv.mu.Lock()
	srv.down = true
	srv.mu.Unlock()
	_, err = core.Login(ctx, matrixUser, "alice@example.com", "right")
	if !errors.As(err, &le) || !le.Retryable {
		t.Fatalf("server down: %v", err)
	}
	if _, err := store.GetAccount(ctx, "alice@example.com"); !errors.Is(err, ErrAccountNotFound) {
		t.Fatal("account stored while server down")
	}
	srv.mu.Lock()
	srv.down = false
	srv.mu.Unlock()

	acc, err := core.Login(ctx, matrixUser, "Alice@Example.com", "right")
	if err != nil {
		t.Fatal(err)
	}
	if acc.Handle() != "alice@example.com" || !acc.IsOwner(matrixUser) {
		t.Fatalf("account %q owners %v", acc.Handle(), acc.Owners())
	}
	if pw, err := store.Credentials(ctx, "alice@example.com"); err != nil || pw != "right" {
		t.Fatalf("stored credentials: %v", err)
	}
	if got := core.AccountsFor(matrixUser); len(got) != 1 || got[0] != acc {
		t.Fatalf("AccountsFor: %v", got)
	}

	// The right password from another frontend, or another matrix user, does not attach: only
	// the owner does, with a link code. No second MSN login is made (it would kick the first).
	before := srv.loginCount()
	for _, u := range []FrontendUser{discordUser, {"matrix", "@eve:x"}} {
		if _, err := core.Login(ctx, u, "alice@example.com", "right"); !errors.Is(err, ErrAlreadyBridged) {
			t.Fatalf("%v: %v", u, err)
		}
		if acc.IsOwner(u) {
			t.Fatalf("%v linked by a login", u)
		}
	}
	if srv.loginCount() != before {
		t.Fatal("a second MSN login was made for an already connected account")
	}
}

func loggedIn(t *testing.T, core *testCore, fes ...Frontend) *Account {
	t.Helper()
	for _, fe := range fes {
		core.AddFrontend(fe)
	}
	core.srv.mu.Lock()
	core.srv.passwords["alice@example.com"] = "pw"
	core.srv.contacts["alice@example.com"] = []msn.Contact{
		{Handle: "bob@example.com", StoredName: "Bob", Lists: msn.ListForward | msn.ListAllow, Status: msn.StatusOffline},
	}
	core.srv.mu.Unlock()
	if err := core.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	acc, err := core.Login(context.Background(), matrixUser, "alice@example.com", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.store.LinksFor(context.Background(), acc.handle); err != nil {
		t.Fatal(err)
	}
	return acc
}

func TestTwoFrontendsSameEventsAndEchoSuppression(t *testing.T) {
	ctx := context.Background()
	core := newTestCore(t, testStore(t), newFakeServer(), Config{})
	mx, dc := &recorder{name: "matrix"}, &recorder{name: "discord"}
	acc := loggedIn(t, core, mx, dc)

	// Attach Discord through a link code.
	code, _, err := core.IssueLinkCode(ctx, acc.Handle(), matrixUser)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.RedeemLinkCode(ctx, code, discordUser); err != nil {
		t.Fatal(err)
	}
	if _, err := core.RedeemLinkCode(ctx, code, discordUser); !errors.Is(err, ErrInvalidLinkCode) {
		t.Fatalf("code reused: %v", err)
	}
	mx.waitFor(t, "online", hasState(StateOnline))
	dc.waitFor(t, "online", hasState(StateOnline))

	// An incoming message and a presence burst reach both, in order.
	sess := core.srv.session("alice@example.com")
	sess.emit(&msn.PresenceChanged{Handle: "bob@example.com", Status: msn.StatusAway, FriendlyName: "Bobby"})
	sess.emit(&msn.PresenceChanged{Handle: "bob@example.com", Status: msn.StatusOnline, FriendlyName: "Bobby"})
	sess.emit(&msn.MessageReceived{SessionID: "1", From: "bob@example.com", FromName: "Bobby", Participants: []string{"bob@example.com"}, Text: "hi", Time: time.Unix(1000, 0)})
	sess.emit(&msn.MessageReceived{SessionID: "1", From: "bob@example.com", FromName: "Bobby", Participants: []string{"bob@example.com"}, Text: "there", Time: time.Unix(1001, 0)})
	for _, r := range []*recorder{mx, dc} {
		r.waitFor(t, "two messages", func(e []Event) bool { return countType[Message](e) == 2 })
	}
	core.clock.fire() // the presence window ends
	for _, r := range []*recorder{mx, dc} {
		evts := r.waitFor(t, "presence", func(e []Event) bool { return countType[ContactPresence](e) >= 1 })
		if n := countType[ContactPresence](evts); n != 1 {
			t.Fatalf("%s: %d presence updates for one burst", r.name, n)
		}
		var texts []string
		for _, e := range evts {
			if m, ok := e.(Message); ok {
				texts = append(texts, m.Text)
				if m.Chat != DirectChat("bob@example.com") || m.ID == "" {
					t.Fatalf("message: %+v", m)
				}
			}
		}
		if fmt.Sprint(texts) != "[hi there]" {
			t.Fatalf("%s: order %v", r.name, texts)
		}
	}

	// A message sent from Matrix shows on Discord, not back on Matrix.
	id, err := acc.SendText(ctx, "matrix", DirectChat("bob@example.com"), "from matrix", Format{})
	if err != nil || id == "" {
		t.Fatalf("send: %q %v", id, err)
	}
	dc.waitFor(t, "echo on discord", func(e []Event) bool {
		for _, x := range e {
			if m, ok := x.(Message); ok && m.FromMe && m.Origin == "matrix" && m.Text == "from matrix" && m.ID == id {
				return true
			}
		}
		return false
	})
	// Matrix gets a later event (a nudge from Discord), then we know no echo came before it.
	if err := acc.SendNudge(ctx, "discord", DirectChat("bob@example.com")); err != nil {
		t.Fatal(err)
	}
	evts := mx.waitFor(t, "nudge", func(e []Event) bool { return countType[Nudge](e) == 1 })
	for _, e := range evts {
		if m, ok := e.(Message); ok && m.FromMe {
			t.Fatalf("matrix got its own message echoed: %+v", m)
		}
	}
}

func TestSendFailureResult(t *testing.T) {
	ctx := context.Background()
	core := newTestCore(t, testStore(t), newFakeServer(), Config{})
	mx := &recorder{name: "matrix"}
	acc := loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))

	tests := []struct {
		err    error
		reason SendFailure
	}{
		{&msn.SendError{Parts: 1, Reason: &msn.ServerError{Code: 217, Command: "CAL"}}, FailureContactOffline},
		{&msn.SendError{Parts: 1, Reason: msn.ErrNAK}, FailureNAK},
		{&msn.SendError{Parts: 1, Reason: msn.ErrTimeout}, FailureTimeout},
		{&msn.SendError{Parts: 1, Reason: msn.ErrClosed}, FailureSwitchboardClosed},
		{&msn.SendError{Parts: 1, Reason: msn.ErrTooLong}, FailureTooLong},
	}
	for _, tc := range tests {
		core.srv.mu.Lock()
		core.srv.sendErr = tc.err
		core.srv.mu.Unlock()
		_, err := acc.SendText(ctx, "matrix", DirectChat("bob@example.com"), "hello?", Format{})
		var se *SendError
		if !errors.As(err, &se) || se.Reason != tc.reason {
			t.Fatalf("%v: got %v", tc.err, err)
		}
	}
	// Not connected.
	core.srv.kick("alice@example.com", msn.ReasonOtherLogin)
	mx.waitFor(t, "stopped", hasState(StateStopped))
	_, err := acc.SendText(ctx, "matrix", DirectChat("bob@example.com"), "hello?", Format{})
	var se *SendError
	if !errors.As(err, &se) || se.Reason != FailureNotConnected {
		t.Fatalf("not connected: %v", err)
	}
}

func TestOtherLocationStopsWithoutReconnect(t *testing.T) {
	ctx := context.Background()
	store := testStore(t)
	core := newTestCore(t, store, newFakeServer(), Config{})
	mx := &recorder{name: "matrix"}
	acc := loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	logins := core.srv.loginCount()

	core.srv.kick("alice@example.com", msn.ReasonOtherLogin)
	evts := mx.waitFor(t, "stopped", hasState(StateStopped))
	last := evts[len(evts)-1].(AccountState)
	if last.Reason != StopOtherLocation {
		t.Fatalf("stop reason %q", last.Reason)
	}
	// Wait for the loop to end, then make sure no login was attempted.
	for i := 0; i < 500 && acc.isRunning(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if acc.isRunning() || core.srv.loginCount() != logins {
		t.Fatalf("reconnected after OUT OTH (running=%v, logins %d→%d)", acc.isRunning(), logins, core.srv.loginCount())
	}
	rec, err := store.GetAccount(ctx, "alice@example.com")
	if err != nil || rec.LoggedIn {
		t.Fatalf("stored state after OTH: %+v %v", rec, err)
	}
	// The owner can reconnect explicitly.
	if err := acc.Reconnect(ctx); err != nil {
		t.Fatal(err)
	}
	mx.waitFor(t, "online again", func(e []Event) bool {
		n := 0
		for _, x := range e {
			if s, ok := x.(AccountState); ok && s.State == StateOnline {
				n++
			}
		}
		return n >= 2
	})
}

func TestDroppedConnectionReconnects(t *testing.T) {
	core := newTestCore(t, testStore(t), newFakeServer(), Config{})
	mx := &recorder{name: "matrix"}
	loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	logins := core.srv.loginCount()

	before := len(mx.events())
	core.srv.kick("alice@example.com", msn.ReasonNetwork)
	// Reconnecting is a state-like event: a frontend that lags may only see the latest state,
	// so wait for the new login and the account being online again.
	mx.waitFor(t, "reconnected", func(e []Event) bool {
		for _, x := range e[before:] {
			if s, ok := x.(AccountState); ok && s.State == StateOnline {
				return core.srv.loginCount() == logins+1
			}
		}
		return false
	})
	if core.srv.session("alice@example.com") == nil {
		t.Fatal("no active session after reconnect")
	}
}

func TestBadPasswordOnReconnectStops(t *testing.T) {
	core := newTestCore(t, testStore(t), newFakeServer(), Config{})
	mx := &recorder{name: "matrix"}
	loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	core.srv.mu.Lock()
	core.srv.passwords["alice@example.com"] = "changed elsewhere"
	core.srv.mu.Unlock()
	core.srv.kick("alice@example.com", msn.ReasonShutdown)
	evts := mx.waitFor(t, "stopped", hasState(StateStopped))
	st := evts[len(evts)-1].(AccountState)
	if st.Reason != StopBadCredentials || !errors.Is(st.Err, ErrBadCredentials) {
		t.Fatalf("state %+v", st)
	}
}

// storedLogin logs alice in on a core over a new store and stops the core, leaving alice stored
// as logged in, as a bridge leaves its accounts when it stops.
func storedLogin(t *testing.T) (*Store, *fakeServer) {
	t.Helper()
	ctx := context.Background()
	store := testStore(t)
	srv := newFakeServer()
	core := newTestCore(t, store, srv, Config{})
	loggedIn(t, core, &recorder{name: "matrix"})
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := core.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if srv.session("alice@example.com") != nil {
		t.Fatal("session still active after Stop")
	}
	if _, err := core.Login(ctx, matrixUser, "alice@example.com", "pw"); !errors.Is(err, ErrStopping) {
		t.Fatalf("login after stop: %v", err)
	}
	return store, srv
}

func TestRestartRelogsStoredAccounts(t *testing.T) {
	ctx := context.Background()
	store, srv := storedLogin(t)

	core2 := newTestCore(t, store, srv, Config{})
	mx := &recorder{name: "matrix"}
	core2.AddFrontend(mx)
	if err := core2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mx.waitFor(t, "online after restart", hasState(StateOnline))
	acc := core2.Account("alice@example.com")
	if acc == nil || !acc.IsOwner(matrixUser) {
		t.Fatal("account or owner not restored")
	}
	if cs := acc.Contacts(); len(cs) != 1 || cs[0].Handle != "bob@example.com" || cs[0].Name != "Bob" {
		t.Fatalf("contacts after restart: %+v", cs)
	}

	// A wrong key refuses to start.
	wrong := openStore(t, store.DB(), testKey(99))
	core3 := newTestCore(t, wrong, srv, Config{})
	if err := core3.Start(ctx); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("start with wrong key: %v", err)
	}
}

// TestLoadBeforeStart: a frontend started between Load and Start (as the bridge starts its
// frontends) finds the stored account, connecting, and attached; Start then logs it in without
// a second Connecting, and no login happens before Start.
func TestLoadBeforeStart(t *testing.T) {
	ctx := context.Background()
	store, srv := storedLogin(t)
	logins := srv.loginCount()

	core2 := newTestCore(t, store, srv, Config{})
	if err := core2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := core2.Load(ctx); err != nil {
		t.Fatalf("second Load: %v", err)
	}
	acc := core2.Account("alice@example.com")
	if acc == nil || !acc.IsOwner(matrixUser) {
		t.Fatal("Load did not restore the account and its owner")
	}
	if st := acc.State().State; st != StateConnecting {
		t.Fatalf("state after Load: %s, want %s", st, StateConnecting)
	}
	mx := &recorder{name: "matrix"}
	core2.AddFrontend(mx)
	mx.waitFor(t, "the loaded state", hasState(StateConnecting))
	if got := acc.Attached(); len(got) != 1 || got[0] != "matrix" {
		t.Fatalf("attached after Load: %v", got)
	}
	if n := srv.loginCount(); n != logins {
		t.Fatalf("%d logins before Start", n-logins)
	}
	if err := core2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	evts := mx.waitFor(t, "online", hasState(StateOnline))
	connecting := 0
	for _, e := range evts {
		if st, ok := e.(AccountState); ok && st.State == StateConnecting {
			connecting++
		}
	}
	if connecting != 1 {
		t.Fatalf("%d Connecting states, want 1: %v", connecting, evts)
	}
	if err := core2.Start(ctx); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("second Start: %v", err)
	}
}

// TestStartRateLimit restores 1,000 accounts and checks that every login waited for the global
// limiter and that the limiter's slots never exceed the configured rate.
func TestStartRateLimit(t *testing.T) {
	ctx := context.Background()
	store := testStore(t)
	srv := newFakeServer()
	const n = 1000
	err := store.DB().DoTxn(ctx, nil, func(ctx context.Context) error {
		for i := 0; i < n; i++ {
			h := fmt.Sprintf("user%04d@example.com", i)
			srv.passwords[h] = "pw"
			if err := store.SaveLogin(ctx, &AccountRecord{Handle: h, LoggedIn: true}, "pw", FrontendUser{"matrix", "@" + h}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	core := newTestCore(t, store, srv, Config{LoginRate: 20, LoginBurst: 10})
	var logins, violations atomic.Int64
	var mu sync.Mutex
	srv.onLogin = func(string) {
		mu.Lock()
		defer mu.Unlock()
		// Every login attempt must follow its own limiter wait.
		if core.clock.sleepCount() <= logins.Load() {
			violations.Add(1)
		}
		logins.Add(1)
	}
	if err := core.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3000 && logins.Load() < n; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if logins.Load() != n {
		t.Fatalf("%d of %d accounts logged in", logins.Load(), n)
	}
	if violations.Load() != 0 {
		t.Fatalf("%d logins did not wait for the limiter", violations.Load())
	}
	slots := core.clock.sleepTargets()
	start := slots[0]
	for _, s := range slots {
		if s.Before(start) {
			start = s
		}
	}
	perSecond := map[int]int{}
	for _, s := range slots {
		perSecond[int(s.Sub(start)/time.Second)]++
	}
	for sec, c := range perSecond {
		limit := 20
		if sec == 0 {
			limit += 10
		}
		if c > limit {
			t.Fatalf("second %d: %d login attempts, limit %d", sec, c, limit)
		}
	}
	if len(perSecond) < (n-10)/20 {
		t.Fatalf("%d attempts spread over only %d seconds", n, len(perSecond))
	}
}

// eventMarker returns a func that emits a marker event on sess and returns the events mx was
// shown since the previous marker, once those emitted before it were handled. The window
// starts where the previous marker ended, not when this one is called: an event emitted just
// before the call may already have been shown by then.
func eventMarker(t *testing.T, mx *recorder, sess *fakeSession) func() []Event {
	n, last := 0, 0
	return func() []Event {
		t.Helper()
		n++
		sess.emit(&msn.TypingReceived{From: "bob@example.com", SessionID: fmt.Sprint("sb", n)})
		end := 0
		evts := mx.waitFor(t, "the marker", func(evts []Event) bool {
			end = last + 1 + slices.IndexFunc(evts[last:], func(e Event) bool { _, ok := e.(Typing); return ok })
			return end > last
		})
		window := evts[last:end]
		last = end
		return window
	}
}

// A change of the own profile the server reports (not Requested) but that was overtaken by the
// core's own change must not undo it: the name reported during login, delivered after the user
// chose another, once replaced the choice, and the next profile change stored the old name.
// Overtaken is either reported while the core's call waits for the server, or no longer the
// session's value when delivered. A change made elsewhere after the core's is still adopted.
func TestOvertakenOwnProfileReport(t *testing.T) {
	ctx := context.Background()
	store := testStore(t)
	core := newTestCore(t, store, newFakeServer(), Config{})
	mx := &recorder{name: "matrix"}
	acc := loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	sess := core.srv.session("alice@example.com")
	marker := eventMarker(t, mx, sess)
	checkProfile := func(when string, wantStatus Status, wantPSM, wantName string) {
		t.Helper()
		if st, psm, name := acc.Profile(); st != wantStatus || psm != wantPSM || name != wantName {
			t.Fatalf("%s: profile %v %q %q, want %v %q %q", when, st, psm, name, wantStatus, wantPSM, wantName)
		}
	}
	if err := acc.SetName(ctx, "matrix", "Chosen"); err != nil {
		t.Fatal(err)
	}
	if err := acc.SetStatus(ctx, "matrix", StatusBusy); err != nil {
		t.Fatal(err)
	}
	marker()

	// Reports of values the session no longer has, delivered late.
	sess.emit(&msn.OwnNameChanged{Name: "Name at login"})
	sess.emit(&msn.OwnStatusChanged{Status: msn.StatusAway})
	sess.emit(&msn.OwnPersonalMessageChanged{PSM: "old psm"})
	if n := countType[OwnProfile](marker()); n != 0 {
		t.Fatalf("%d profiles shown for overtaken reports", n)
	}
	checkProfile("after overtaken reports", StatusBusy, "", "Chosen")
	if err := acc.SetPSM(ctx, "matrix", "now"); err != nil {
		t.Fatal(err)
	}
	if rec, err := store.GetAccount(ctx, "alice@example.com"); err != nil || rec.FriendlyName != "Chosen" || rec.DesiredStatus != StatusBusy {
		t.Fatalf("stored after the next change: %+v, %v; want Chosen, busy", rec, err)
	}

	// A report while the core's own change waits for the server: the session still has the
	// old name, and the new one is about to replace it.
	entered, release := make(chan struct{}), make(chan struct{})
	core.srv.mu.Lock()
	sess.setHook = func() { close(entered); <-release }
	core.srv.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- acc.SetName(ctx, "matrix", "Newest") }()
	<-entered
	sess.emit(&msn.OwnNameChanged{Name: "Chosen"})
	if n := countType[OwnProfile](marker()); n != 0 {
		t.Fatalf("%d profiles shown for a report during the core's own change", n)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	core.srv.mu.Lock()
	sess.setHook = nil
	core.srv.mu.Unlock()
	checkProfile("after a report during the core's change", StatusBusy, "now", "Newest")

	// Made elsewhere, after: adopted.
	sess.reportOwn(func(s *msn.Self) { s.FriendlyName = "Elsewhere" }, &msn.OwnNameChanged{Name: "Elsewhere"})
	if n := countType[OwnProfile](marker()); n != 1 {
		t.Fatalf("%d profiles shown for a name set elsewhere, want 1", n)
	}
	checkProfile("after a name set elsewhere", StatusBusy, "now", "Elsewhere")
}

// The msn client confirms each own status, PSM and name the core sets with an event (marked
// Requested) that is delivered after the call returned. A confirmation arriving after a newer
// value was set must not undo it (nor show the old value on a frontend); a change the core did
// not make (another client, the server) still is adopted.
func TestLateOwnProfileConfirmation(t *testing.T) {
	ctx := context.Background()
	core := newTestCore(t, testStore(t), newFakeServer(), Config{})
	mx := &recorder{name: "matrix"}
	acc := loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	sess := core.srv.session("alice@example.com")

	for _, step := range []func() error{
		func() error { return acc.SetName(ctx, "matrix", "Alice one") },
		func() error { return acc.SetName(ctx, "matrix", " Alice two ") },
		func() error { return acc.SetPSM(ctx, "matrix", "psm one") },
		func() error { return acc.SetPSM(ctx, "matrix", "psm two") },
		func() error { return acc.SetStatus(ctx, "matrix", StatusAway) },
		func() error { return acc.SetStatus(ctx, "matrix", StatusBusy) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	marker := eventMarker(t, mx, sess)
	profiles := func(evts []Event) (shown []OwnProfile) {
		for _, e := range evts {
			if p, ok := e.(OwnProfile); ok {
				shown = append(shown, p)
			}
		}
		return shown
	}
	marker()
	// The first confirmation of each pair, late: after the second value was set.
	sess.emit(&msn.OwnNameChanged{Name: "Alice one", Requested: true})
	sess.emit(&msn.OwnPersonalMessageChanged{PSM: "psm one", Requested: true})
	sess.emit(&msn.OwnStatusChanged{Status: msn.StatusAway, Requested: true})
	if shown := profiles(marker()); len(shown) != 0 {
		t.Fatalf("late confirmations of older values were shown: %+v", shown)
	}
	if st, psm, name := acc.Profile(); st != StatusBusy || psm != "psm two" || name != "Alice two" {
		t.Fatalf("after late confirmations of older values: %v %q %q, want busy, psm two, Alice two (trimmed)", st, psm, name)
	}
	// Then the second ones, and a name the core did not set.
	sess.emit(&msn.OwnNameChanged{Name: "Alice two", Requested: true})
	sess.emit(&msn.OwnPersonalMessageChanged{PSM: "psm two", Requested: true})
	sess.emit(&msn.OwnStatusChanged{Status: msn.StatusBusy, Requested: true})
	if shown := profiles(marker()); len(shown) != 0 {
		t.Fatalf("confirmations of the current values were shown: %+v", shown)
	}
	sess.reportOwn(func(s *msn.Self) { s.FriendlyName = "Set elsewhere" }, &msn.OwnNameChanged{Name: "Set elsewhere"})
	shown := profiles(marker())
	if len(shown) != 1 || shown[0].Name != "Set elsewhere" || shown[0].PSM != "psm two" || shown[0].Status != StatusBusy {
		t.Fatalf("profiles shown after a name set elsewhere: %+v, want one: Set elsewhere, psm two, busy", shown)
	}
	if st, psm, name := acc.Profile(); st != StatusBusy || psm != "psm two" || name != "Set elsewhere" {
		t.Fatalf("profile %v %q %q, want busy, psm two, Set elsewhere", st, psm, name)
	}
}
