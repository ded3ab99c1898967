package discord

import (
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
