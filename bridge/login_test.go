package bridge_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/bridge/bridgetest"
	"github.com/msn-bridge/msn-bridge/msn"
)

// These tests try alice's handle from the side of other users of the same bridge, who know her
// e-mail address but not her password, while her session runs or is stopped. Their attempts
// must leave her MSN session, her stored state and her contacts' view of her exactly as they
// were, and must fail as an attempt on a handle nobody bridged fails.

var (
	eveMatrix  = bridge.FrontendUser{Frontend: "matrix", UserID: "@eve:example.org"}
	eveDiscord = bridge.FrontendUser{Frontend: "discord", UserID: "6666"}
)

// sameRefusal fails the test unless err is the refusal of a wrong password, and reads like ref
// (the refusal for another handle) but for the handle itself.
func sameRefusal(t *testing.T, what string, err, ref error, handle, refHandle string) {
	t.Helper()
	var le, rle *bridge.LoginError
	if !errors.As(err, &le) || !errors.Is(err, bridge.ErrBadCredentials) || !errors.As(ref, &rle) {
		t.Fatalf("%s: got %v, want a LoginError with ErrBadCredentials (reference: %v)", what, err, ref)
	}
	if le.Retryable != rle.Retryable || strings.ReplaceAll(err.Error(), handle, "H") != strings.ReplaceAll(ref.Error(), refHandle, "H") {
		t.Fatalf("%s: %q does not read like the refusal for an unknown handle, %q", what, err, ref)
	}
}

// passportChecks counts the Passport logins msntest answered for handle.
func (e *env) passportChecks(handle string) int {
	n := 0
	for _, ev := range e.srv.Events() {
		if ev.Server == "HTTP" && ev.Name == "LOGIN" && ev.Handle == handle {
			n++
		}
	}
	return n
}

// sawOffline reports whether the peer was told, after its first n events, that handle went
// offline or that its own session ended.
func (p *peer) sawOffline(n int, handle string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ev := range p.events[n:] {
		switch e := ev.(type) {
		case *msn.PresenceChanged:
			if e.Handle == handle && e.Status == msn.StatusOffline {
				return true
			}
		case *msn.Disconnected:
			return true
		}
	}
	return false
}

func (p *peer) eventCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.events)
}

// sawPSM reports whether the peer was told handle's personal message is psm.
func (p *peer) sawPSM(handle, psm string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ev := range p.events {
		if e, ok := ev.(*msn.PersonalMessageChanged); ok && e.Handle == handle && e.PSM == psm {
			return true
		}
	}
	return false
}

func TestIntegrationStrangerLoginLeavesSessionAlone(t *testing.T) {
	e := newEnv(t)
	mx, dc := bridgetest.NewRecorder("matrix"), bridgetest.NewRecorder("discord")
	core := e.core(e.config(), mx, dc)
	acc := e.login(core, matrixOwner)
	mx.WaitForState(t, alice, bridge.StateOnline)
	watcher := e.peer(bob, "x")
	ctx := ctxT(t)
	seen, states, checks := watcher.eventCount(), len(ofType[bridge.AccountState](mx)), e.passportChecks(alice)

	for _, u := range []bridge.FrontendUser{discordOwner, eveMatrix, eveDiscord} {
		// The same mistake on a handle nobody bridged (carol exists on the server).
		_, ref := core.Login(ctx, u, carol, "guessed-password")
		_, err := core.Login(ctx, u, alice, "guessed-password")
		sameRefusal(t, u.String(), err, ref, alice, carol)
	}
	if got := e.passportChecks(alice) - checks; got != 3 {
		t.Errorf("%d Passport checks of alice's guessed passwords, want 3", got)
	}
	if n := e.logins(); n != 1 {
		t.Errorf("alice logged in %d times, want once: a guess ended her session", n)
	}
	// Once her new personal message reaches bob, so has anything the guesses caused before it.
	if err := acc.SetPSM(ctx, "matrix", "still here"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "bob sees alice's new PSM", func() bool { return watcher.sawPSM(alice, "still here") })
	if watcher.sawOffline(seen, alice) {
		t.Error("bob saw alice go offline")
	}
	if got := ofType[bridge.AccountState](mx); len(got) != states || acc.State().State != bridge.StateOnline {
		t.Errorf("alice's state changed: %+v", got[states:])
	}
	if pw, err := core.Store().Credentials(ctx, alice); err != nil || pw != alicePW {
		t.Errorf("stored credentials changed: %v", err)
	}
	links, err := core.Store().LinksFor(ctx, alice)
	if err != nil || !slices.Equal(links, []bridge.FrontendUser{matrixOwner}) {
		t.Errorf("links %v %v, want only the owner's", links, err)
	}

	// The right password proves the user knows it, and only then tells them the account is
	// bridged: the owner attaches other users and frontends with a link code.
	for _, u := range []bridge.FrontendUser{discordOwner, eveMatrix} {
		if _, err := core.Login(ctx, u, alice, alicePW); !errors.Is(err, bridge.ErrAlreadyBridged) {
			t.Errorf("%s with the right password: %v, want ErrAlreadyBridged", u, err)
		}
		if acc.IsOwner(u) {
			t.Errorf("%s linked by a login", u)
		}
	}
	if n := e.logins(); n != 1 || len(dc.Events()) != 0 {
		t.Errorf("after the right password: %d logins, %d events on discord", n, len(dc.Events()))
	}
}

func TestIntegrationLoginWhileStoppedChangesNothing(t *testing.T) {
	e := newEnv(t)
	mx := bridgetest.NewRecorder("matrix")
	cfg := e.config()
	cfg.UserLoginBurst = 10 // the owner makes more than the default burst of attempts here
	core := e.core(cfg, mx)
	acc := e.login(core, matrixOwner)
	// Alice signs in with her own MSN client: the bridge's session is ended with OUT OTH.
	own := e.peer(alice, alicePW)
	st := mx.WaitForState(t, alice, bridge.StateStopped)
	if st.Reason != bridge.StopOtherLocation {
		t.Fatalf("stopped with %+v", st)
	}
	ctx := ctxT(t)
	seen, states := own.eventCount(), len(ofType[bridge.AccountState](mx))

	for _, u := range []bridge.FrontendUser{discordOwner, eveMatrix, matrixOwner} {
		_, ref := core.Login(ctx, u, carol, "guessed-password")
		_, err := core.Login(ctx, u, alice, "guessed-password")
		sameRefusal(t, u.String(), err, ref, alice, carol)
	}
	loginsStable(t, e, 2) // the bridge's, then her own client's
	// A round trip on her own client's session: anything the attempts caused has arrived.
	if err := own.SetPersonalMessage(ctx, "my own client", nil); err != nil {
		t.Fatal(err)
	}
	if own.sawOffline(seen, alice) {
		t.Error("alice's own client was kicked")
	}
	if got := ofType[bridge.AccountState](mx); len(got) != states || acc.State().Reason != bridge.StopOtherLocation {
		t.Errorf("state changed: %+v", got[states:])
	}
	rec, err := core.Store().GetAccount(ctx, alice)
	if err != nil || rec.LoggedIn {
		t.Errorf("stored account %+v %v, want not logged in", rec, err)
	}
	if pw, err := core.Store().Credentials(ctx, alice); err != nil || pw != alicePW {
		t.Errorf("stored credentials changed: %v", err)
	}

	// The owner's right password takes the session back, as she asked.
	if _, err := core.Login(ctx, matrixOwner, alice, alicePW); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "alice's own client kicked", func() bool { return own.sawOffline(seen, alice) })
	if s := acc.State(); s.State != bridge.StateOnline {
		t.Fatalf("state after the owner's login: %+v", s)
	}
}

func TestIntegrationOwnerNewPasswordReplacesSession(t *testing.T) {
	e := newEnv(t)
	mx := bridgetest.NewRecorder("matrix")
	core := e.core(e.config(), mx)
	acc := e.login(core, matrixOwner)
	ctx := ctxT(t)
	const newPW = "alice-New-pw-2024"
	if err := e.srv.SetPassword(alice, newPW); err != nil {
		t.Fatal(err)
	}
	checks := e.passportChecks(alice)

	// A stranger who learnt the new password is told the account is bridged, and nothing else
	// happens: MSN proved the password without a session.
	if _, err := core.Login(ctx, eveDiscord, alice, newPW); !errors.Is(err, bridge.ErrAlreadyBridged) {
		t.Fatalf("stranger with the new password: %v", err)
	}
	if e.passportChecks(alice) != checks+1 || e.logins() != 1 {
		t.Fatalf("%d Passport checks, %d logins after the stranger's attempt", e.passportChecks(alice)-checks, e.logins())
	}

	// The owner's new password replaces the session and the stored password.
	if got, err := core.Login(ctx, matrixOwner, alice, newPW); err != nil || got != acc {
		t.Fatalf("owner's new password: %v", err)
	}
	waitUntil(t, "the new session online", func() bool { return e.logins() == 2 && acc.State().State == bridge.StateOnline })
	if pw, err := core.Store().Credentials(ctx, alice); err != nil || pw != newPW {
		t.Fatalf("stored credentials not replaced: %v", err)
	}
}
