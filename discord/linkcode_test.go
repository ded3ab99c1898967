package discord

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
)

var linkCodeRE = regexp.MustCompile(`[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}`)

// TestLinkCodeIssuedToOwnerOnly: /msn link-code gives the owner of an account signed in from
// Discord a private one-time code that attaches a Matrix user to the same session; another
// member of the guild gets no code, neither in #general nor in the account's own channel.
func TestLinkCodeIssuedToOwnerOnly(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	acc := h.core.Account(alice)
	var rosterID string
	h.waitFor("roster channel", func() bool { rosterID, _ = h.roster(); return rosterID != "" })

	mallory := h.dc.AddUser("mallory")
	for _, ch := range []string{h.gen, rosterID} {
		iid, tok := h.slash(mallory, ch, "link-code", nil)
		if _, text := h.answer(iid, tok); linkCodeRE.MatchString(text) ||
			!(strings.Contains(text, "no MSN account here yet") || strings.Contains(text, "belongs to someone else")) {
			t.Errorf("a stranger's /msn link-code in %s answered %q", ch, text)
		}
	}

	iid, tok := h.slash(h.dc.OwnerID(), h.gen, "link-code", nil)
	first, text := h.answer(iid, tok)
	if first.Flags&discordgo.MessageFlagsEphemeral == 0 {
		t.Error("the link code answer is not ephemeral")
	}
	code := linkCodeRE.FindString(text)
	if code == "" || !strings.Contains(text, alice) || !strings.Contains(text, "login link-code "+code) || !strings.Contains(text, "<t:") {
		t.Fatalf("/msn link-code answered %q", text)
	}

	mx := bridge.FrontendUser{Frontend: "matrix", UserID: "@alice:example.org"}
	if got, err := h.core.RedeemLinkCode(context.Background(), code, mx); err != nil || got != acc {
		t.Fatalf("redeeming the code: %v", err)
	}
	if !acc.IsOwner(mx) || acc.State().State != bridge.StateOnline {
		t.Fatalf("after redeeming: owners %v, state %v", acc.Owners(), acc.State())
	}
	if _, err := h.core.RedeemLinkCode(context.Background(), code, bridge.FrontendUser{Frontend: "matrix", UserID: "@eve:example.org"}); !errors.Is(err, bridge.ErrInvalidLinkCode) {
		t.Fatalf("the code redeemed twice: %v", err)
	}
}
