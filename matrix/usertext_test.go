package matrix

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/format"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// coreErrors are errors the core returns to a frontend, as they arrive (wrapped).
var coreErrors = []error{
	fmt.Errorf("login: %w", &bridge.TooManyAttemptsError{RetryAfter: 3e9}),
	&bridge.LoginError{Err: fmt.Errorf("msn: %w", bridge.ErrBadCredentials)},
	bridge.ErrAlreadyBridged,
	fmt.Errorf("attach: %w", bridge.ErrLinkedElsewhere),
	fmt.Errorf("%w: %q", bridge.ErrInvalidHandle, "nobody"),
	bridge.ErrNotOwner,
	bridge.ErrAccountNotFound,
	bridge.ErrNotConnected,
	bridge.ErrStopping,
	fmt.Errorf("add: %w", context.DeadlineExceeded),
	&bridge.LoginError{Retryable: true, Err: errors.New("dial tcp: connection refused")},
	&bridge.SendError{Reason: bridge.FailureInvalid, Parts: 1, Err: bridge.ErrUnknownChat},
	&bridge.SendError{Reason: bridge.FailureContactOffline, Part: 1, Parts: 2},
	&bridge.StoppedError{Reason: bridge.StopOtherLocation},
}

// TestErrorTextsAreTheCore checks that what a Matrix user is told about a core error, in a
// command reply, a login error and a message status, is the core's sentence, so that it reads
// as on Discord.
func TestErrorTextsAreTheCore(t *testing.T) {
	for _, err := range coreErrors {
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
