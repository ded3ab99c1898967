package discord

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

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

// TestErrorTextsAreTheCore checks that what a Discord user is told about a core error, for a
// failed action, message or login, is the core's sentence, so that it reads as on Matrix.
func TestErrorTextsAreTheCore(t *testing.T) {
	for _, err := range coreErrors {
		want := bridge.UserMessage(err)
		if got := unescape(failureText(err)); got != want {
			t.Errorf("failure text for %v: %q, want %q", err, got, want)
		}
		if got := unescape(loginError(err)); !strings.HasPrefix(got, bridge.Sentence(want)) {
			t.Errorf("login error for %v: %q, want it to start with %q", err, got, bridge.Sentence(want))
		}
	}
}
