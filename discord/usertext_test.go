package discord

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/bridge/bridgetest"
)

// TestErrorTextsAreTheCore checks that what a Discord user is told about a core error, for a
// failed action, message or login, is the core's sentence, so that it reads as on Matrix.
func TestErrorTextsAreTheCore(t *testing.T) {
	for _, err := range bridgetest.CoreErrors() {
		want := bridge.UserMessage(err)
		if got := unescape(failureText(err)); got != want {
			t.Errorf("failure text for %v: %q, want %q", err, got, want)
		}
		if got := unescape(loginError(err)); !strings.HasPrefix(got, bridge.Sentence(want)) {
			t.Errorf("login error for %v: %q, want it to start with %q", err, got, bridge.Sentence(want))
		}
	}
}

// TestLinkRefusalIsTheCoreSentence: frank redeems a code for an account that eve, another
// Discord user, already has here. The answer is the core's sentence for it, escaped, and he
// gets nothing of the account.
func TestLinkRefusalIsTheCoreSentence(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ctx := context.Background()
	frank := h.dc.AddUser("frank")
	h.loginAs(h.eve, alice, alicePW)
	code, _, err := h.core.IssueLinkCode(ctx, alice, bridge.FrontendUser{Frontend: FrontendName, UserID: h.eve})
	if err != nil {
		t.Fatal(err)
	}
	iid, tok := h.slash(frank, h.gen, "link", map[string]string{"code": code})
	_, text := h.answer(iid, tok)
	if want := bridge.UserMessage(bridge.ErrLinkedElsewhere); !strings.Contains(unescape(text), want) {
		t.Fatalf("link answer %q, want the core's %q", text, want)
	}
	if owners := h.core.Account(alice).Owners(); slices.Contains(owners, bridge.FrontendUser{Frontend: FrontendName, UserID: frank}) {
		t.Fatalf("frank owns the account after a refused link: %v", owners)
	}
}

// TestLoginRefusalIsText: the cause of a refused login, which a server words, is shown escaped
// and on one line in the answer to /msn login.
func TestLoginRefusalIsText(t *testing.T) {
	got := loginError(&bridge.LoginError{Handle: "a@b.c", Err: errors.New("refused: **x** <@1> @everyone\n\u202eline")})
	for _, raw := range []string{"**x**", " <@1>", " @everyone", "\n", "\u202e"} {
		if strings.Contains(got, raw) {
			t.Errorf("loginError shows %q raw: %q", raw, got)
		}
	}
}
