package bridgetest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// CoreErrors returns one error of each kind the core gives a frontend to explain to a user,
// wrapped as the core returns them, for tests that check what each frontend says about them.
func CoreErrors() []error {
	return []error{
		fmt.Errorf("login: %w", &bridge.TooManyAttemptsError{RetryAfter: 3 * time.Second}),
		&bridge.LoginError{Err: fmt.Errorf("msn: %w", bridge.ErrBadCredentials)},
		bridge.ErrAlreadyBridged,
		fmt.Errorf("attach: %w", bridge.ErrLinkedElsewhere),
		bridge.ErrInvalidLinkCode,
		fmt.Errorf("%w: %q", bridge.ErrInvalidHandle, "nobody"),
		bridge.ErrNotOwner,
		bridge.ErrAccountNotFound,
		bridge.ErrNotConnected,
		bridge.ErrStopping,
		fmt.Errorf("add: %w", context.DeadlineExceeded),
		&bridge.LoginError{Retryable: true, Err: errors.New("dial tcp: connection refused")},
		&bridge.LoginError{Err: errors.New("account suspended")},
		&bridge.SendError{Reason: bridge.FailureInvalid, Parts: 1, Err: bridge.ErrUnknownChat},
		&bridge.SendError{Reason: bridge.FailureContactOffline, Part: 1, Parts: 2},
		&bridge.StoppedError{Reason: bridge.StopOtherLocation},
	}
}
