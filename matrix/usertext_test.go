package matrix

import (
	"context"
	"errors"
	"strings"
	"testing"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/format"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/bridge/bridgetest"
)

// TestErrorTextsAreTheCore checks that what a Matrix user is told about a core error, in a
// command reply, a login error and a message status, is the core's sentence, so that it reads
// as on Discord.
func TestErrorTextsAreTheCore(t *testing.T) {
	for _, err := range bridgetest.CoreErrors() {
		want := bridge.UserMessage(err)
		if reply := format.RenderMarkdown(humanError(err), true, false).Body; reply != want {
			t.Errorf("command reply for %v: %q, want %q", err, reply, want)
		}
		if got := loginErrorMessage(err).Error(); !strings.HasPrefix(got, want) {
			t.Errorf("login error for %v: %q, want it to start with %q", err, got, want)
		}
		var st bridgev2.MessageStatus
		if !errors.As(sendErrorStatus(err), &st) || !strings.HasSuffix(st.Message, want) {
			t.Errorf("message status for %v: %q, want it to end with %q", err, st.Message, want)
		}
	}
}

// TestLoginFormRefusesWithTheCoreSentence: the e-mail field of the login form, checked before
// anything is sent, says what the core says of a handle that is not one.
func TestLoginFormRefusesWithTheCoreSentence(t *testing.T) {
	step, err := (&PasswordLogin{}).Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, bad := bridge.ValidateHandle("not-an-address")
	want := bridge.UserMessage(bad)
	for _, f := range step.UserInputParams.Fields {
		if f.ID != "email" {
			continue
		}
		if _, err := f.Validate("not-an-address"); err == nil || err.Error() != want {
			t.Fatalf("e-mail field refuses with %v, want %q", err, want)
		}
		return
	}
	t.Fatal("no e-mail field")
}
