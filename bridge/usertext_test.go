package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestUserMessage(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"too many attempts", fmt.Errorf("login: %w", &TooManyAttemptsError{RetryAfter: 1500 * time.Millisecond}), "too many login attempts; try again in 2 s"},
		{"bad credentials inside a login error", &LoginError{Handle: "a@b.c", Err: fmt.Errorf("msn: %w", ErrBadCredentials)}, "MSN refused the e-mail address or password"},
		{"already bridged", ErrAlreadyBridged, "that MSN account is already bridged for someone else"},
		{"linked elsewhere", fmt.Errorf("attach: %w", ErrLinkedElsewhere), "that MSN account is already linked to another user here"},
		{"link code", ErrInvalidLinkCode, "that link code is unknown, used or expired"},
		{"handle", fmt.Errorf("%w: %q", ErrInvalidHandle, "x"), "that is not an MSN address (name@example.com)"},
		{"not owner", ErrNotOwner, "that MSN account is not linked to you"},
		{"not found", ErrAccountNotFound, "that MSN account is not linked to you"},
		{"not connected", ErrNotConnected, "the MSN account is not connected"},
		{"stopping", ErrStopping, "the bridge is shutting down; try again later"},
		{"deadline", fmt.Errorf("add: %w", context.DeadlineExceeded), "MSN did not answer in time; try again later"},
		{"retryable login", &LoginError{Retryable: true, Err: errors.New("dial tcp: refused")}, "the MSN server is busy or unreachable; try again later"},
		{"unverifiable certificate inside a login error", &LoginError{Err: &CertificateError{Reason: "x509: certificate signed by unknown authority"}},
			"cannot verify the MSN login server's certificate: x509: certificate signed by unknown authority; if the server uses a private or self-signed CA, the bridge's admin can trust it with msn.ca_file"},
		{"refused login quotes the cause", &LoginError{Err: errors.New("account suspended")}, "MSN refused the login: account suspended"},
		{"ended chat, even inside a send error", &SendError{Reason: FailureInvalid, Parts: 1, Err: ErrUnknownChat}, "this MSN conversation has ended"},
		{"send error", &SendError{Reason: FailureContactOffline, Parts: 1}, FailureContactOffline.Describe()},
		{"first part failed", &SendError{Reason: FailureNAK, Part: 0, Parts: 3}, FailureNAK.Describe()},
		{"later part failed", &SendError{Reason: FailureNAK, Part: 2, Parts: 3}, "only the first 2 of 3 parts were delivered: " + FailureNAK.Describe()},
		{"stopped before its cause", &StoppedError{Reason: StopBadCredentials, Err: ErrBadCredentials}, StopBadCredentials.Describe()},
		{"stopped for shutdown", &StoppedError{Reason: StopShutdown}, "the bridge is shutting down; try again later"},
		{"unknown", errors.New("something else"), "something else"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UserMessage(tt.err); got != tt.want {
				t.Fatalf("UserMessage(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

// TestUserMessageHidesSecrets checks that a cause quoting a URL with a ticket in it, as a
// Passport error can, is not shown to the user.
func TestUserMessageHidesSecrets(t *testing.T) {
	const ticket = "t=SECRETTICKET123"
	for _, err := range []error{
		&LoginError{Err: errors.New("redirected to https://login.example/ppsecure?" + ticket)},
		fmt.Errorf("failed: %w", errors.New("GET https://nexus.example/?"+ticket+" failed")),
	} {
		if got := UserMessage(err); strings.Contains(got, "SECRETTICKET") {
			t.Errorf("UserMessage(%v) = %q shows the ticket", err, got)
		}
	}
}

func TestSentence(t *testing.T) {
	for in, want := range map[string]string{"": "", "the bridge": "The bridge.", "éa": "Éa.", "MSN x": "MSN x."} {
		if got := Sentence(in); got != want {
			t.Errorf("Sentence(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStopReasonDescribe checks that every reason has its own sentence and an unknown one a
// generic sentence, never its raw code.
func TestStopReasonDescribe(t *testing.T) {
	seen := map[string]StopReason{}
	for _, r := range []StopReason{StopBadCredentials, StopOtherLocation, StopServerGone, StopKeyError, StopShutdown, "new_reason"} {
		d := r.Describe()
		if prev, ok := seen[d]; ok {
			t.Errorf("%q and %q share %q", prev, r, d)
		}
		seen[d] = r
		if strings.Contains(d, string(r)) || strings.Contains(d, "_") {
			t.Errorf("%q describes itself by its code: %q", r, d)
		}
	}
}
