package bridge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors returned by the core. Compare with errors.Is: most arrive wrapped.
var (
	// ErrWrongKey means stored credentials cannot be decrypted with the configured key.
	ErrWrongKey = errors.New("stored credentials cannot be decrypted: wrong key?")
	// ErrKeyFilePermissions means the key file is readable or writable by others.
	ErrKeyFilePermissions = errors.New("key file permissions are too open")
	// ErrInvalidKey means a configured key is not base64 of exactly 32 bytes.
	ErrInvalidKey = errors.New("invalid key: want base64 of 32 bytes")
	// ErrAccountNotFound means no account with that handle is known to the core.
	ErrAccountNotFound = errors.New("account not found")
	// ErrNotOwner means the frontend user is not linked to the account.
	ErrNotOwner = errors.New("account is not linked to this user")
	// ErrLinkedElsewhere means another user of the same frontend already owns the account.
	ErrLinkedElsewhere = errors.New("account is already linked to another user of this frontend")
	// ErrAlreadyBridged means a login with the right password was made for an account that
	// other users own: only its owner attaches another frontend or user, with a link code.
	ErrAlreadyBridged = errors.New("account is already bridged: its owner can attach another frontend with link-code")
	// ErrTooManyAttempts is matched by *TooManyAttemptsError.
	ErrTooManyAttempts = errors.New("too many login attempts")
	// ErrInvalidLinkCode means a link code is unknown, already used or expired.
	ErrInvalidLinkCode = errors.New("invalid or expired link code")
	// ErrInvalidHandle means a string is not an MSN handle (an e-mail address or tel: number).
	ErrInvalidHandle = errors.New("invalid msn handle")
	// ErrNotConnected means the account has no live MSN session right now.
	ErrNotConnected = errors.New("account is not connected to msn")
	// ErrStopping means the core is shutting down and accepts no new work.
	ErrStopping = errors.New("bridge is stopping")
	// ErrBadCredentials means MSN refused the handle or password.
	ErrBadCredentials = errors.New("msn refused the handle or password")
	// ErrUnverifiedCertificate means the MSN login (Passport) server's TLS certificate could not
	// be verified; msn.ca_file (or the system roots) must hold its CA.
	ErrUnverifiedCertificate = errors.New("cannot verify the msn login server's certificate")
	// ErrUnknownChat means a chat id does not name a chat of this account.
	ErrUnknownChat = errors.New("unknown chat")
	// ErrInvalidArgument means an action was given a value that cannot be sent to MSN.
	ErrInvalidArgument = errors.New("invalid argument")
)

// LoginError is returned by Core.Login when MSN refused or failed the login. Err is the cause
// (errors.Is(err, ErrBadCredentials) for a refused password). Retryable reports whether trying
// again later may help (server busy or unreachable).
type LoginError struct {
	Handle    string
	Retryable bool
	Err       error
}

func (e *LoginError) Error() string {
	return fmt.Sprintf("failed to log in %s: %v", e.Handle, e.Err)
}

func (e *LoginError) Unwrap() error { return e.Err }

// CertificateError is a login that failed because the MSN login server's certificate could not
// be verified. Reason is the verifier's explanation ("x509: certificate signed by unknown
// authority"). errors.Is(err, ErrUnverifiedCertificate) matches it, and errors.As finds the
// verifier's error (x509.UnknownAuthorityError …) in Err.
type CertificateError struct {
	Reason string
	Err    error
}

func (e *CertificateError) Error() string {
	if e.Reason == "" {
		return ErrUnverifiedCertificate.Error()
	}
	return ErrUnverifiedCertificate.Error() + ": " + e.Reason
}

func (e *CertificateError) Unwrap() []error { return []error{ErrUnverifiedCertificate, e.Err} }

// certificateReason is the verifier's explanation in err, a certificate verification failure.
func certificateReason(err error) string {
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ve) && ve.Err != nil {
		err = ve.Err
	}
	return CleanLine(ScrubURLs(err.Error()), 200)
}

// TooManyAttemptsError is returned by Core.Login when the frontend user made too many login
// attempts, or had too many passwords refused, recently. Nothing was tried; RetryAfter says when
// the next attempt will be admitted. errors.Is(err, ErrTooManyAttempts) matches it.
type TooManyAttemptsError struct {
	RetryAfter time.Duration
}

func (e *TooManyAttemptsError) Error() string {
	return fmt.Sprintf("too many login attempts, try again in %d s", e.Seconds())
}

// Seconds is RetryAfter in whole seconds, rounded up, at least 1.
func (e *TooManyAttemptsError) Seconds() int {
	return max(1, int((e.RetryAfter+time.Second-1)/time.Second))
}

func (e *TooManyAttemptsError) Unwrap() error { return ErrTooManyAttempts }

// SendFailure classifies why a message or nudge was not delivered, so frontends can show it.
type SendFailure string

// Send failure reasons.
const (
	FailureContactOffline    SendFailure = "contact_offline"
	FailureNAK               SendFailure = "nak"
	FailureTimeout           SendFailure = "timeout"
	FailureSwitchboardClosed SendFailure = "switchboard_closed"
	FailureTooLong           SendFailure = "too_long"
	FailureNotConnected      SendFailure = "not_connected"
	FailureHidden            SendFailure = "hidden"
	FailureInvalid           SendFailure = "invalid"
	FailureRateLimited       SendFailure = "rate_limited"
	FailureOther             SendFailure = "other"
)

// Describe returns a short human sentence for the failure, suitable for showing to a user.
func (f SendFailure) Describe() string {
	switch f {
	case FailureContactOffline:
		return "the contact is offline (MSN has no offline messages)"
	case FailureNAK:
		return "the server did not deliver the message"
	case FailureTimeout:
		return "no delivery confirmation in time; the message may not have arrived"
	case FailureSwitchboardClosed:
		return "the conversation was closed before the message was delivered"
	case FailureTooLong:
		return "the message is too long for MSN"
	case FailureNotConnected:
		return "the MSN account is not connected"
	case FailureHidden:
		return "you cannot start conversations while appearing offline"
	case FailureInvalid:
		return "the message cannot be sent to MSN"
	case FailureRateLimited:
		return "too many messages at once: this one was not sent (MSN takes only a few per second)"
	default:
		return "the message could not be sent"
	}
}

// SendError is returned by the send actions when MSN did not accept a message. Part and Parts
// say which part of a split message failed (parts before Part were delivered). Err is the
// underlying cause.
type SendError struct {
	Reason SendFailure
	Part   int
	Parts  int
	Err    error
}

func (e *SendError) Error() string {
	if e.Parts > 1 {
		return fmt.Sprintf("failed to send part %d of %d: %s", e.Part+1, e.Parts, e.Reason.Describe())
	}
	return "failed to send message: " + e.Reason.Describe()
}

func (e *SendError) Unwrap() error { return e.Err }

// StoppedError says why an account stopped and will not reconnect on its own. It is carried by
// AccountState events and returned by actions on a stopped account.
type StoppedError struct {
	Reason StopReason
	Err    error
}

func (e *StoppedError) Error() string {
	if e.Err != nil {
		return "account stopped: " + string(e.Reason) + ": " + e.Err.Error()
	}
	return "account stopped: " + string(e.Reason)
}

func (e *StoppedError) Unwrap() error { return e.Err }

// retryError is used internally to carry the earliest retry time a server asked for.
type retryError struct {
	after time.Duration
	err   error
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }
