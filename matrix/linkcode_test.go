package matrix

import (
	"context"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// redeemAs runs the link code flow as the Matrix user mxid and returns its outcome.
func (e *glueEnv) redeemAs(mxid id.UserID, code string) (*bridgev2.LoginStep, error) {
	e.t.Helper()
	u, err := e.fe.Bridge().GetUserByMXID(e.ctx, mxid)
	must(e.t, err)
	proc, err := e.fe.Connector().CreateLogin(e.ctx, u, LoginFlowLinkCode)
	must(e.t, err)
	step, err := proc.Start(e.ctx)
	must(e.t, err)
	if step.Type != bridgev2.LoginStepTypeUserInput || len(step.UserInputParams.Fields) != 1 ||
		step.UserInputParams.Fields[0].Type != bridgev2.LoginInputFieldTypeToken {
		e.t.Fatalf("unexpected first step %+v (the code field must be a token, so bridgev2 redacts it)", step)
	}
	return proc.(bridgev2.LoginProcessUserInput).SubmitUserInput(e.ctx, map[string]string{"code": code})
}

// TestLinkCodeLoginJoinsDiscordSession: an account signed in from Discord is attached to its
// owner's Matrix user with the code from /msn link-code, through the bot's login command: a
// proper UserLogin, the contacts and their messages in Matrix, on the same MSN session. A
// stranger's wrong codes, and the used code, are refused with errors that say why, and the
// stranger is throttled after a few.
func TestLinkCodeLoginJoinsDiscordSession(t *testing.T) {
	e := newGlueEnv(t, nil)
	dc := bridge.FrontendUser{Frontend: "discord", UserID: "4242"}
	acc, err := e.core.Login(e.ctx, dc, alice, alicePW)
	must(t, err)
	waitServer(t, func() bool { return e.srv.LoggedIn(alice) })
	logins := msnLogins(e, alice)
	code, _, err := e.core.IssueLinkCode(e.ctx, alice, dc)
	must(t, err)

	if r := e.command("", "login"); !strings.Contains(r, "`link-code`") {
		t.Errorf("login without a flow replied %q, want the flows listed", r)
	}
	// As for a password login, the core holds the account's events until the UserLogin exists:
	// give its first delivery every chance to run (and wait, and count) before it is created.
	mc := e.fe.Connector()
	mc.beforeNewLogin = func() {
		for i := 0; i < 50 && mc.loginWaits.Load() == 0; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if r := e.command("", "login link-code "+strings.ToLower(code)); !strings.Contains(r, "Linked to MSN as "+alice) {
		t.Fatalf("login link-code replied %q", r)
	}
	aliceOwner := ownerOf(e.user())
	if !acc.IsOwner(aliceOwner) || !acc.IsOwner(dc) {
		t.Fatalf("owners after redeeming: %v", acc.Owners())
	}
	ul := e.fe.Bridge().GetCachedUserLoginByID(makeUserLoginID(alice))
	if ul == nil || ul.UserMXID != aliceMX || !ul.Client.IsLoggedIn() {
		t.Fatalf("UserLogin after redeeming: %+v", ul)
	}
	if n := mc.loginWaits.Load(); n != 0 {
		t.Errorf("events waited %d times for the UserLogin", n)
	}
	e.waitState("CONNECTED")
	ctx, cancel := context.WithTimeout(e.ctx, testWait)
	defer cancel()
	if !e.fm.WaitFor(ctx, func() bool {
		l := e.fm.Presence(ghostMXID(bob))
		return len(l) > 0 && l[len(l)-1].Presence == event.PresenceOnline
	}) {
		t.Fatalf("bob's presence never shown in Matrix: %+v", e.fm.Presence(ghostMXID(bob)))
	}
	must(t, e.srv.BotSay(bob, alice, "seen from matrix"))
	e.waitMessage(e.portal(bob).MXID, ghostMXID(bob), "seen from matrix")
	if n := msnLogins(e, alice); n != logins || acc.State().State != bridge.StateOnline {
		t.Errorf("%d MSN logins after linking (%d before), state %v: the session must be joined, not replaced", n, logins, acc.State())
	}

	// A stranger: the used code, then guesses, until throttled.
	mallory := id.UserID("@mallory:test")
	if _, err = e.redeemAs(mallory, code); err == nil || !strings.Contains(err.Error(), "unknown, used or expired") {
		t.Fatalf("the used code again: %v", err)
	}
	for i := range bridge.DefaultUserLoginBurst - 1 { // the burst, with the attempt above
		if _, err = e.redeemAs(mallory, "WXYZ-WXYZ-WXY"+string(rune('A'+i))); err == nil || !strings.Contains(err.Error(), "unknown, used or expired") {
			t.Fatalf("wrong code %d: %v", i, err)
		}
	}
	fresh, _, err := e.core.IssueLinkCode(e.ctx, alice, dc)
	must(t, err)
	if _, err = e.redeemAs(mallory, fresh); err == nil || !strings.Contains(err.Error(), "too many login attempts; try again in ") {
		t.Fatalf("after the burst: %v", err)
	}
	mu, err := e.fe.Bridge().GetUserByMXID(e.ctx, mallory)
	must(t, err)
	if acc.IsOwner(ownerOf(mu)) || len(mu.GetUserLogins()) != 0 {
		t.Fatalf("the stranger got in: owners %v, logins %d", acc.Owners(), len(mu.GetUserLogins()))
	}
}

// msnLogins counts the completed MSN logins of handle on msntest.
func msnLogins(e *glueEnv, handle string) int {
	n := 0
	for _, ev := range e.srv.EventsFor(handle) {
		if ev.Server == "NS" && ev.Name == "USR" && len(ev.Args) > 3 && ev.Args[1] == "TWN" && ev.Args[2] == "S" {
			n++
		}
	}
	return n
}
