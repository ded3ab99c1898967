package matrix

import (
	"strings"
	"testing"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// TestLoginRefusalsExplained: a login of an account bridged for someone else, and a flood of
// wrong passwords, are refused with errors that say what to do, and store nothing.
func TestLoginRefusalsExplained(t *testing.T) {
	e := newGlueEnv(t, nil)
	other := bridge.FrontendUser{Frontend: "discord", UserID: "4242"}
	if _, err := e.core.Login(e.ctx, other, alice, alicePW); err != nil {
		t.Fatal(err)
	}
	_, err := e.login(alicePW)
	if err == nil || !strings.Contains(err.Error(), "already bridged for someone else") || !strings.Contains(err.Error(), "link code") {
		t.Fatalf("login of a bridged account: %v", err)
	}
	for i := range bridge.DefaultUserLoginBurst - 1 { // the burst, with the attempt above
		if _, err = e.login("wrong"); err == nil || !strings.Contains(err.Error(), "refused the e-mail address or password") {
			t.Fatalf("wrong password %d: %v", i, err)
		}
	}
	_, err = e.login("wrong")
	if err == nil || !strings.Contains(err.Error(), "too many login attempts; try again in ") {
		t.Fatalf("after the burst: %v", err)
	}
	if logins := e.user().GetUserLogins(); len(logins) != 0 {
		t.Fatalf("bridgev2 has %d logins after refused ones", len(logins))
	}
}
