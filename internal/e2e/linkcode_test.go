package e2e

import (
	"context"
	"strings"
	"testing"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/matrix"
)

// TestDiscordAccountLinkedIntoMatrix: alice signs in from Discord, gets a code with
// /msn link-code, and redeems it in Matrix with the bot's `login link-code`: her Matrix user
// becomes an owner with a UserLogin, sees her contacts and their messages, and both sides go
// through the one MSN session. A stranger on Matrix cannot use the spent code, and is throttled
// after a few wrong ones.
func TestDiscordAccountLinkedIntoMatrix(t *testing.T) {
	m := newMirror(t)
	if ans := m.loginModal(alice, alicePW); !strings.Contains(ans, "Signed in") {
		t.Fatalf("Discord login answered %q", ans)
	}
	waitFor(t, "alice online on MSN", func() bool { return m.ms.Online(alice) })
	acc := m.core.Account(alice)

	ans := m.slash("link-code", nil)
	code := linkCodeRE.FindString(ans)
	if code == "" {
		t.Fatalf("/msn link-code answered %q", ans)
	}
	if r := m.command("login link-code " + code); !strings.Contains(r, "Linked to MSN as "+alice) {
		t.Fatalf("login link-code replied %q", r)
	}
	if owners := acc.Owners(); len(owners) != 2 || !acc.IsOwner(bridge.FrontendUser{Frontend: matrix.FrontendName, UserID: string(aliceMX)}) {
		t.Fatalf("owners after linking: %v", owners)
	}
	if ul := m.mx.Bridge().GetCachedUserLoginByID("alice@example.com"); ul == nil || ul.UserMXID != aliceMX {
		t.Fatalf("Matrix UserLogin after linking: %+v", ul)
	}
	waitFor(t, "both frontends attached", func() bool { return len(acc.Attached()) == 2 })

	// Her contacts in Matrix: bob's presence, and his message in both.
	ctx, cancel := context.WithTimeout(m.ctx, waitTimeout)
	defer cancel()
	if !m.fm.WaitFor(ctx, func() bool {
		p := m.fm.Presence(ghostMXID(bob))
		return len(p) > 0 && p[len(p)-1].Presence == event.PresenceOnline && strings.Contains(p[len(p)-1].StatusMsg, "building")
	}) {
		t.Errorf("Matrix presence of bob: %+v", m.fm.Presence(ghostMXID(bob)))
	}
	must(t, m.ms.BotSay(bob, alice, "hello linked"))
	if ev := m.matrixMessage("bob's message", "hello linked"); ev.Sender != ghostMXID(bob) {
		t.Errorf("bob's message in Matrix sent by %s", ev.Sender)
	}
	var bobCh string
	waitFor(t, "bob's Discord channel", func() bool {
		if c := m.dc.ChannelByName("bob-at-example-com"); c != nil {
			bobCh = c.ID
		}
		return bobCh != ""
	})
	m.discordMessage(bobCh, "bob's message", "hello linked")
	if n := m.logins(); n != 1 {
		t.Errorf("%d MSN logins, want 1: linking must join the session", n)
	}

	// A stranger on Matrix: the spent code, then guesses, then throttled even with a real code.
	mallory, err := m.mx.Bridge().GetUserByMXID(m.ctx, id.UserID("@mallory:test"))
	must(t, err)
	redeem := func(code string) error {
		proc, err := m.mx.Connector().CreateLogin(m.ctx, mallory, matrix.LoginFlowLinkCode)
		must(t, err)
		_, err = proc.Start(m.ctx)
		must(t, err)
		_, err = proc.(bridgev2.LoginProcessUserInput).SubmitUserInput(m.ctx, map[string]string{"code": code})
		return err
	}
	if err = redeem(code); err == nil || !strings.Contains(err.Error(), "unknown, used or expired") {
		t.Fatalf("the spent code again: %v", err)
	}
	for i := range bridge.DefaultUserLoginBurst - 1 {
		if err = redeem("QQQQ-QQQQ-QQQ" + string(rune('A'+i))); err == nil || !strings.Contains(err.Error(), "unknown, used or expired") {
			t.Fatalf("wrong code %d: %v", i, err)
		}
	}
	fresh := linkCodeRE.FindString(m.slash("link-code", nil))
	if fresh == "" {
		t.Fatal("no second code")
	}
	if err = redeem(fresh); err == nil || !strings.Contains(err.Error(), "too many login attempts") {
		t.Fatalf("after the burst: %v", err)
	}
	if len(acc.Owners()) != 2 || len(mallory.GetUserLogins()) != 0 {
		t.Fatalf("the stranger got in: owners %v", acc.Owners())
	}
}
