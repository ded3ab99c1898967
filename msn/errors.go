package msn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// Sentinel errors. Use errors.Is: most of them arrive wrapped, or as the Unwrap target of a typed
// error below.
var (
	// ErrBadCredentials means the account or password was refused: Passport answered 401, or the
	// server refused the ticket twice in a row (USR 911 after a fresh Passport login). Retrying
	// with the same password will not help.
	ErrBadCredentials = errors.New("bad credentials")
	// ErrTimeout means the server did not answer a request (or a switchboard did not ACK a
	// message, or a contact did not join) in time.
	ErrTimeout = errors.New("request timed out")
	// ErrNotConnected means the client is not logged in (Login not called, not finished, or the
	// connection is gone).
	ErrNotConnected = errors.New("not connected")
	// ErrClosed means the connection or switchboard carrying a request was closed before the
	// request completed.
	ErrClosed = errors.New("connection closed")
	// ErrContactOffline is the meaning of error 217: the contact is offline, hidden or does not
	// accept messages from you. MSNP11 has no offline messages.
	ErrContactOffline = errors.New("contact is offline or not accepting messages")
	// ErrHidden is the meaning of error 913: switchboards cannot be opened while your status is
	// HDN (appear offline) or before the first status change.
	ErrHidden = errors.New("not allowed while hidden")
	// ErrNAK means the switchboard answered NAK: the message was not delivered.
	ErrNAK = errors.New("message not delivered")
	// ErrTooLong means a message or parameter exceeds what the protocol can carry.
	ErrTooLong = errors.New("too long")
	// ErrNoCommonVersion means the server accepted none of the offered protocol versions.
	ErrNoCommonVersion = errors.New("no common protocol version")
	// ErrSessionNotFound means no open switchboard session has the given id.
	ErrSessionNotFound = errors.New("no such session")
	// ErrUnsupported means the negotiated protocol version does not have the feature (PSM needs
	// MSNP11).
	ErrUnsupported = errors.New("not supported by the negotiated protocol")
	// ErrInvalidArgument means a caller-supplied value cannot be sent (empty, malformed handle, …).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotOnList means the contact is not in the local contact list state.
	ErrNotOnList = errors.New("contact not on list")
	// ErrAccountRestricted means the server refuses the account itself (errors 923, 924, 927,
	// 930, or USR OK with the restricted flag).
	ErrAccountRestricted = errors.New("account may not use messenger")
	// ErrInsecurePassport means the password would have gone where it must not: a Passport URL
	// (configured, named by the nexus or by a redirect) over plain http without
	// Config.AllowInsecurePassport, or a login redirect to another origin than the login URL.
	// Retrying does not help.
	ErrInsecurePassport = errors.New("passport credentials refused for an insecure or foreign url")
	// ErrUnverifiedCertificate means the Passport server's TLS certificate could not be
	// verified against the system roots and Config.CAFile (self-signed, unknown authority, wrong
	// host, expired). Retrying does not help; trusting its CA does.
	ErrUnverifiedCertificate = errors.New("cannot verify the passport server's certificate")
	// ErrContactListFull means the contact list holds Config.MaxContacts contacts already.
	ErrContactListFull = errors.New("contact list full")
	// ErrEventOverflow means the event handler fell too far behind (Config.MaxQueuedEvents) and
	// the client disconnected rather than grow its queue without bound.
	ErrEventOverflow = errors.New("event queue overflow")
)

// errorMeanings holds the meaning of each error code a client may see (docs/protocol.md §3.20).
var errorMeanings = map[int]string{
	200: "syntax error", 201: "invalid parameter", 205: "invalid user", 206: "domain name missing",
	207: "already logged in", 208: "invalid or unknown user", 209: "friendly name not allowed",
	210: "list full", 215: "already on list or in session", 216: "not on list",
	217: "user offline or not accepting messages", 218: "already in that mode",
	219: "contact on the opposite list", 223: "too many groups", 224: "invalid group",
	225: "contact not in that group", 228: "group name already exists", 229: "group name too long",
	230: "cannot remove the default group", 231: "group does not exist", 240: "invalid XML",
	241: "invalid XML", 280: "switchboard failed", 281: "transfer to switchboard failed",
	282: "bad P2P message", 300: "required field missing", 302: "not logged in",
	402: "address book service busy", 403: "address book service unavailable or bad contact id",
	500: "internal server error", 501: "database error", 502: "command disabled",
	540: "challenge response failed", 600: "server busy", 601: "server unavailable",
	603: "database connection failed", 604: "server going down", 605: "server unavailable",
	707: "could not create connection", 710: "bad CVR parameters", 711: "blocking write",
	712: "session overload", 713: "too active", 714: "too many sessions",
	715: "not expected", 717: "bad friend file", 731: "not expected",
	800: "changing too rapidly", 910: "server too busy", 911: "authentication failed",
	912: "server too busy", 913: "not allowed while hidden or offline",
	914: "server unavailable", 915: "server unavailable", 916: "server unavailable",
	917: "invalid domain", 918: "server too busy", 919: "server too busy",
	920: "not accepting new users", 921: "server too busy", 922: "server too busy",
	923: "child account without consent", 924: "account not verified",
	927: "account blocked", 928: "invalid password or ticket", 930: "enterprise domain account",
	931: "wrong server for account",
}

// ErrorMeaning returns a short description of an MSNP error code, or "request failed" for codes
// no source documents.
func ErrorMeaning(code int) string {
	if m, ok := errorMeanings[code]; ok {
		return m
	}
	return "request failed"
}

// ServerError is a numeric error reply ("217 5") to a request. Extra tokens servers append are
// ignored. errors.Is matches ErrContactOffline for 217, ErrHidden for 913 and
// ErrAccountRestricted for 923/924/927/930.
type ServerError struct {
	Code    int    // the error number
	Command string // the request it answered ("CAL", "ADC", …)
}

func (e *ServerError) Error() string {
	cmd := e.Command
	if cmd == "" {
		cmd = "request"
	}
	return fmt.Sprintf("server refused %s: error %d (%s)", cmd, e.Code, ErrorMeaning(e.Code))
}

// Meaning is ErrorMeaning(e.Code).
func (e *ServerError) Meaning() string { return ErrorMeaning(e.Code) }

// Unwrap maps the codes that have a sentinel to it.
func (e *ServerError) Unwrap() error {
	switch e.Code {
	case 217:
		return ErrContactOffline
	case 913:
		return ErrHidden
	case 923, 924, 927, 930:
		return ErrAccountRestricted
	}
	return nil
}

// Temporary reports whether the code means server trouble that may go away (busy, unavailable,
// going down, rate limits), as opposed to a refusal of the request itself.
func (e *ServerError) Temporary() bool {
	switch e.Code {
	case 500, 501, 600, 601, 603, 604, 605, 707, 711, 712, 713, 714, 800,
		910, 912, 914, 915, 916, 918, 919, 920, 921, 922, 402, 403:
		return true
	}
	return false
}

// DisconnectReason says why a notification-server session ended.
type DisconnectReason string

// Disconnect reasons. The first five are the OUT codes of docs/protocol.md §3.13.
const (
	ReasonOtherLogin DisconnectReason = "OTH"     // logged in elsewhere: do not reconnect automatically
	ReasonShutdown   DisconnectReason = "SSD"     // server shutting down: reconnect with backoff
	ReasonRetryLater DisconnectReason = "RCT"     // temporary closure: reconnect after RetryAfter
	ReasonMigrated   DisconnectReason = "MIG"     // list migrated or session moved: reconnect
	ReasonTerms      DisconnectReason = "TOU"     // terms of use must be accepted: fatal
	ReasonNone       DisconnectReason = "none"    // OUT without a reason
	ReasonNetwork    DisconnectReason = "network" // socket error, EOF, keepalive timeout, bad framing
	ReasonClosed     DisconnectReason = "closed"  // Client.Close was called
)

// DisconnectError is the cause carried by the Disconnected event (and returned by calls that
// were cut off). Err holds the underlying error for ReasonNetwork.
type DisconnectError struct {
	Reason     DisconnectReason
	RetryAfter time.Duration // from "OUT RCT <minutes>", else 0
	Err        error
}

func (e *DisconnectError) Error() string {
	var s string
	switch e.Reason {
	case ReasonOtherLogin:
		s = "disconnected: logged in from another location"
	case ReasonShutdown:
		s = "disconnected: server shutting down"
	case ReasonRetryLater:
		s = "disconnected: server asks to reconnect after " + e.RetryAfter.String()
	case ReasonMigrated:
		s = "disconnected: session moved, reconnect"
	case ReasonTerms:
		s = "disconnected: terms of use must be accepted"
	case ReasonNone:
		s = "disconnected by server"
	case ReasonClosed:
		s = "disconnected: client closed"
	default:
		s = "disconnected: connection lost"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *DisconnectError) Unwrap() error { return e.Err }

// ShouldReconnect reports whether an automatic reconnect (with backoff, honouring RetryAfter)
// is appropriate: true for network loss, SSD, RCT, MIG and a plain OUT; false for OTH, TOU and a
// local Close.
func (e *DisconnectError) ShouldReconnect() bool {
	switch e.Reason {
	case ReasonOtherLogin, ReasonTerms, ReasonClosed:
		return false
	}
	return true
}

// PassportError is a Passport 1.4 failure that is not a credentials refusal: an unexpected HTTP
// status, a missing header, a redirect loop. A 401 is reported as ErrBadCredentials instead.
type PassportError struct {
	StatusCode int    // HTTP status, 0 when the failure is not an HTTP status
	Reason     string // what went wrong, never containing the password or ticket
	Err        error  // the sentinel behind it (ErrInsecurePassport), or nil
}

func (e *PassportError) Unwrap() error { return e.Err }

func (e *PassportError) Error() string {
	msg := "passport login failed: " + e.Reason
	if e.StatusCode != 0 {
		msg = fmt.Sprintf("passport login failed: http status %d: %s", e.StatusCode, e.Reason)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// CredentialsError is a refusal of the account or password. It unwraps to ErrBadCredentials;
// Reason is the server's explanation (Passport cbtxt), possibly empty.
type CredentialsError struct {
	Reason string
}

func (e *CredentialsError) Error() string {
	if e.Reason == "" {
		return ErrBadCredentials.Error()
	}
	return ErrBadCredentials.Error() + ": " + e.Reason
}

func (e *CredentialsError) Unwrap() error { return ErrBadCredentials }

// SendError reports which part of a (possibly split) message failed and why. Parts before Part
// were delivered (ACKed); Part and the ones after it were not, or not verifiably.
type SendError struct {
	Part   int   // zero-based index of the part that failed
	Parts  int   // how many parts the text was split into
	Reason error // ErrContactOffline, ErrNAK, ErrTimeout, ErrClosed, ErrTooLong, a *ServerError …
}

func (e *SendError) Error() string {
	if e.Parts > 1 {
		return "failed to send message part " + strconv.Itoa(e.Part+1) + " of " + strconv.Itoa(e.Parts) + ": " + e.Reason.Error()
	}
	return "failed to send message: " + e.Reason.Error()
}

func (e *SendError) Unwrap() error { return e.Reason }

// Retryable reports whether err (from Login or a Disconnected event) describes a failure worth an
// automatic retry with backoff: network errors, timeouts, server trouble (5xx/6xx/9xx busy
// codes, Passport 5xx), and disconnects with ShouldReconnect. It is false for bad credentials,
// restricted accounts, OUT OTH/TOU, a missing common version, a local Close and context
// cancellation.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrAccountRestricted) ||
		errors.Is(err, ErrNoCommonVersion) || errors.Is(err, context.Canceled) ||
		errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrInsecurePassport) ||
		errors.Is(err, ErrUnverifiedCertificate) {
		return false
	}
	var de *DisconnectError
	if errors.As(err, &de) {
		return de.ShouldReconnect()
	}
	var se *ServerError
	if errors.As(err, &se) {
		return se.Temporary()
	}
	var pe *PassportError
	if errors.As(err, &pe) {
		return pe.StatusCode == 0 || pe.StatusCode >= 500 || pe.StatusCode == 429
	}
	if errors.Is(err, ErrTimeout) || errors.Is(err, ErrClosed) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, ErrLineTooLong) || errors.Is(err, ErrPayloadTooLarge) || errors.Is(err, ErrBadPayloadSize) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed)
}
