package discord

import (
	"context"
	"strings"
	"testing"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// TestLoginRefusalsExplained: a login of an account bridged through Matrix, and a flood of
// wrong passwords, are answered with what to do, and leave nothing behind.
func TestLoginRefusalsExplained(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	mx := bridge.FrontendUser{Frontend: "matrix", UserID: "@alice:example.org"}
	acc, err := h.core.Login(context.Background(), mx, alice, alicePW)
	if err != nil {
		t.Fatal(err)
	}
	if _, text := h.submitLogin(h.dc.OwnerID(), alice, alicePW); !strings.Contains(text, "already bridged for someone else") || !strings.Contains(text, "`/msn link`") {
		t.Errorf("login of a bridged account answered %q", text)
	}
	for i := range bridge.DefaultUserLoginBurst - 1 { // the burst, with the attempt above
		if _, text := h.submitLogin(h.dc.OwnerID(), alice, "wrong"); !strings.Contains(text, "refused the e-mail address or password") {
			t.Fatalf("wrong password %d answered %q", i, text)
		}
	}
	if _, text := h.submitLogin(h.dc.OwnerID(), alice, "wrong"); !strings.Contains(text, "Too many login attempts; try again in ") {
		t.Errorf("after the burst answered %q", text)
	}
	if len(acc.Owners()) != 1 || h.rosterChannel(alice) != nil {
		t.Fatalf("owners %v, roster %v after refused logins", acc.Owners(), h.rosterChannel(alice))
	}
}
