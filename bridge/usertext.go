package bridge

import (
	"context"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// UserMessage is the one table from core errors to what a user of any frontend is told: a
// sentence starting in lower case, without a final full stop, for the frontend to capitalise,
// punctuate, prefix and escape in its own format. It never holds a password or ticket. Text
// that may come from a server (the cause of a refused login, an unknown error) is scrubbed of
// URLs but neither cleaned nor escaped nor capped: frontends show it as remote text. Hints
// that name a frontend's commands are added by the frontend.
func UserMessage(err error) string {
	var tm *TooManyAttemptsError
	var se *SendError
	var stopped *StoppedError
	var le *LoginError
	var ce *CertificateError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &tm):
		return fmt.Sprintf("too many login attempts; try again in %d s", tm.Seconds())
	case errors.Is(err, ErrUnknownChat):
		return "this MSN conversation has ended"
	case errors.As(err, &se):
		return se.userMessage()
	case errors.As(err, &stopped):
		if stopped.Reason == StopShutdown {
			return "the bridge is shutting down; try again later"
		}
		return stopped.Reason.Describe()
	case errors.Is(err, ErrAlreadyBridged):
		return "that MSN account is already bridged for someone else"
	case errors.Is(err, ErrBadCredentials):
		return "MSN refused the e-mail address or password"
	case errors.Is(err, ErrLinkedElsewhere):
		return "that MSN account is already linked to another user here"
	case errors.Is(err, ErrInvalidLinkCode):
		return "that link code is unknown, used or expired"
	case errors.Is(err, ErrInvalidHandle):
		return "that is not an MSN address (name@example.com)"
	case errors.Is(err, ErrNotOwner), errors.Is(err, ErrAccountNotFound):
		return "that MSN account is not linked to you"
	case errors.Is(err, ErrNotConnected):
		return FailureNotConnected.Describe()
	case errors.Is(err, ErrStopping):
		return "the bridge is shutting down; try again later"
	case errors.Is(err, context.DeadlineExceeded):
		return "MSN did not answer in time; try again later"
	case errors.As(err, &ce):
		return "cannot verify the MSN login server's certificate: " + ce.Reason +
			"; if the server uses a private or self-signed CA, the bridge's admin can trust it with msn.ca_file"
	case errors.As(err, &le) && le.Retryable:
		return "the MSN server is busy or unreachable; try again later"
	case errors.As(err, &le):
		return "MSN refused the login: " + ScrubError(le.Err).Error()
	}
	return ScrubError(err).Error()
}

// Sentence makes a clause of UserMessage or Describe a sentence: its first letter upper-case,
// a full stop at the end.
func Sentence(s string) string {
	if s == "" {
		return s
	}
	r, size := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[size:] + "."
}

// userMessage says why a message failed and, for a split message, how much of it arrived.
func (e *SendError) userMessage() string {
	if e.Parts > 1 && e.Part > 0 {
		return fmt.Sprintf("only the first %d of %d parts were delivered: %s", e.Part, e.Parts, e.Reason.Describe())
	}
	return e.Reason.Describe()
}

// Describe says why an account stopped, for its owner, without the frontend's hint of what to
// do next.
func (r StopReason) Describe() string {
	switch r {
	case StopOtherLocation:
		return "this MSN account signed in from another location, so the bridge stepped aside"
	case StopBadCredentials:
		return "MSN refused the password of this account"
	case StopServerGone:
		return "the MSN server refused this account for good"
	case StopKeyError:
		return "the bridge cannot read this account's stored password"
	case StopShutdown:
		return "the bridge is shutting down"
	}
	return "the MSN session stopped"
}
