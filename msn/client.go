package msn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Defaults applied by NewClient to zero Config fields.
const (
	DefaultClientVersion      = "7.0.0816"
	DefaultCapabilities       = 0x4000C02C
	DefaultDialTimeout        = 15 * time.Second
	DefaultRequestTimeout     = 30 * time.Second
	DefaultJoinTimeout        = 30 * time.Second
	DefaultAckTimeout         = 30 * time.Second
	DefaultPingTimeout        = 30 * time.Second
	DefaultMaxQueuedEvents    = 10000
	DefaultMaxSessions        = 64
	DefaultMaxContacts        = 1000
	DefaultSessionIdleTimeout = 10 * time.Minute
	maxServerPingInterval     = 50 * time.Second
	minServerPingInterval     = 5 * time.Second
	maxLoginHops              = 5
)

// Config configures a Client. Server and one of NexusURL/LoginURL are required; every other zero
// field gets a default.
type Config struct {
	// Server is the dispatch or notification server, "host:port" (Escargot: port 1863).
	Server string
	// NexusURL is the Passport nexus ("https://host/rdr/pprdr.asp"); LoginURL, when set, is the
	// Passport login URL and skips the nexus.
	NexusURL, LoginURL string
	// CAFile adds the PEM certificates of a file to the system roots for Passport HTTPS.
	CAFile string
	// InsecureSkipVerify disables TLS certificate verification for Passport. Tests only.
	InsecureSkipVerify bool
	// AllowInsecurePassport allows plain http:// for the nexus, the login URL and the DALogin
	// the nexus names, which sends the password in clear. Only for a local test server. Without
	// it such URLs are refused (ErrInsecurePassport). Either way the password is replayed in a
	// redirect only to the login URL's own origin.
	AllowInsecurePassport bool
	// HTTPClient replaces the Passport HTTP client (its redirect policy is overridden: redirects
	// are followed by hand). CAFile and InsecureSkipVerify are ignored when it is set.
	HTTPClient *http.Client

	// Protocols are offered in VER, highest first (default MSNP11, MSNP10); CVR0 is appended.
	Protocols []string
	// ClientVersion is sent in CVR (default "7.0.0816").
	ClientVersion string
	// Capabilities are sent with every CHG (default 0x4000C02C: MSNC version 4, "MSN 7.0", which
	// announces MSNP2P, plus the feature bits of the peers P2P was verified against, winks
	// 0x8000 among them).
	Capabilities uint32
	// InitialStatus is set by Login (default StatusOnline; StatusOffline is not allowed).
	InitialStatus Status
	// InitialPSM is the personal message published by Login (MSNP11 only).
	InitialPSM string
	// DisplayPicture (PNG), when set, is published by Login: its msnobj goes with the first
	// CHG, so contacts see it in ILN/NLN. SetDisplayPicture changes it later. One over
	// MaxObjectSize is not published (a warning is logged; a login is not worth failing for
	// it): scale it first, peers fetch no more than 1 MiB.
	DisplayPicture []byte
	// MaxObjectSize caps a fetched msnobj's data (default 1 MiB); MaxFileSize caps a file
	// received or sent (default 64 MiB).
	MaxObjectSize, MaxFileSize int64
	// P2PIdleTimeout is how long a file transfer or an object fetch may make no progress before
	// it fails with ErrTransferStalled (default 60 s): a peer that stops half way.
	P2PIdleTimeout time.Duration

	// DialTimeout bounds each TCP connect; RequestTimeout each request/reply; JoinTimeout the
	// wait for a contact to join a new switchboard; AckTimeout the wait for a message's ACK.
	DialTimeout, RequestTimeout, JoinTimeout, AckTimeout time.Duration
	// PingInterval, when set, overrides the keepalive interval the server asks for with QNG
	// (min(n, 50) s otherwise). PingTimeout is how long a PNG may stay unanswered before the
	// connection is declared dead (default 30 s).
	PingInterval, PingTimeout time.Duration
	// ChallengePadAlways selects the always-pad variant of the MSNP11 challenge (§3.11).
	ChallengePadAlways bool
	// MaxQueuedEvents bounds the events waiting for the handler; when exceeded the client
	// disconnects with ErrEventOverflow (default 10000).
	MaxQueuedEvents int
	// MaxSessions bounds the open switchboard sessions (default 64). At the limit, a new
	// session (an invitation or a message to a contact without one) leaves the least recently
	// active idle session first; when every session awaits an ACK, invitations are ignored and
	// sends fail.
	MaxSessions int
	// SessionIdleTimeout is how long a one-to-one switchboard session may go without a message
	// either way before the client leaves it (default 10 minutes; negative: never). A server
	// such as Escargot never closes an idle switchboard, so without it every conversation would
	// keep its connection and reader until the contact closes the window, the account logs out
	// or MaxSessions is reached. The next message either way opens a new session. Sessions that
	// had more than one other participant are kept: they cannot be rejoined. Checked at each
	// keepalive (PingInterval), so a session is left up to one interval late.
	SessionIdleTimeout time.Duration
	// MaxContacts bounds the contacts the client keeps, on all lists together (default 1000,
	// above what an MSN client would list). What the server lists or adds beyond it is
	// ignored, with one warning per Client, and AddToList refuses a new handle with
	// ErrContactListFull: a server cannot make the client, or whatever mirrors its contacts,
	// grow without bound.
	MaxContacts int

	// Log receives the library's logs. Passwords and tickets are never logged.
	Log zerolog.Logger
}

func (cfg *Config) setDefaults() {
	if len(cfg.Protocols) == 0 {
		cfg.Protocols = []string{"MSNP11", "MSNP10"}
	}
	if cfg.ClientVersion == "" {
		cfg.ClientVersion = DefaultClientVersion
	}
	if cfg.Capabilities == 0 {
		cfg.Capabilities = DefaultCapabilities
	}
	if cfg.InitialStatus == "" {
		cfg.InitialStatus = StatusOnline
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.DialTimeout, DefaultDialTimeout)
	def(&cfg.RequestTimeout, DefaultRequestTimeout)
	def(&cfg.JoinTimeout, DefaultJoinTimeout)
	def(&cfg.AckTimeout, DefaultAckTimeout)
	def(&cfg.PingTimeout, DefaultPingTimeout)
	if cfg.MaxQueuedEvents <= 0 {
		cfg.MaxQueuedEvents = DefaultMaxQueuedEvents
	}
	if cfg.SessionIdleTimeout == 0 {
		cfg.SessionIdleTimeout = DefaultSessionIdleTimeout
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxContacts <= 0 {
		cfg.MaxContacts = DefaultMaxContacts
	}
	if cfg.MaxObjectSize <= 0 {
		cfg.MaxObjectSize = DefaultMaxObjectSize
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
}

type clientState int

const (
	stateNew clientState = iota
	stateLoggingIn
	stateOnline
	stateClosed
)

// Client is one MSNP11 login. It is safe for concurrent use. A Client logs in once: after a
// failed Login or a Disconnected event, Close it and make a new one to reconnect.
type Client struct {
	cfg      Config
	handle   string
	password string
	handler  Handler
	log      zerolog.Logger
	pp       *passport

	ctx    context.Context // lifetime of the session, cancelled by shutdown
	cancel context.CancelFunc
	// wg counts the goroutines started by the client (QRY answers, keepalive steps) and every
	// keepalive step still scheduled; switchboards have their own (sb.wg).
	wg sync.WaitGroup

	mu       sync.Mutex
	state    clientState
	ns       *conn
	protocol string
	self     Self
	contacts contactStore
	groups   map[string]*Group
	groupSeq []string // group ids in arrival order
	out      *DisconnectError
	syncing  bool
	syncLST  int
	syncLSG  int
	lastLST  string
	sb       sbManager
	ka       keepalive
	// p2p carries display pictures, emoticons, winks and files; p2pSB is, by contact, the
	// switchboard session that last carried P2P from them; displayPicture is the own picture
	// (nil: none); emoticons are definitions waiting for their text message.
	p2p            *P2P
	p2pSB          map[string]string
	p2pOut         map[string]*session // by contact, the session P2P packets go on
	displayPicture *MSNObject
	emoticons      map[string][]Emoticon
	// otherGUIDs holds, by handle, the contact ids that are not GUIDs of one letter case
	// (guidOther); nil when there are none.
	otherGUIDs map[string]string
	// listFullLogged is set once the client has logged that its list reached MaxContacts.
	listFullLogged bool
	// badHandleLogged is set once the client has logged a server line with an invalid handle
	// at warn level; the later ones are logged at debug level.
	badHandleLogged atomic.Bool

	syncSignal chan struct{}
	// verifyOnly makes the handshake stop at the Passport ticket (see VerifyCredentials).
	verifyOnly bool

	events       eventQueue
	shutdownOnce sync.Once
}

// NewClient validates cfg and returns a Client for the account handle. It does not connect;
// call Login. h may be nil (events are then dropped).
func NewClient(cfg Config, handle, password string, h Handler) (*Client, error) {
	handle = strings.ToLower(strings.TrimSpace(handle))
	if cfg.Server == "" {
		return nil, fmt.Errorf("%w: config has no server address", ErrInvalidArgument)
	}
	if cfg.NexusURL == "" && cfg.LoginURL == "" {
		return nil, fmt.Errorf("%w: config needs a passport nexus or login url", ErrInvalidArgument)
	}
	if !validHandle(handle) {
		return nil, fmt.Errorf("%w: handle %q is not an e-mail address", ErrInvalidArgument, truncate(handle, 64))
	}
	if password == "" {
		return nil, fmt.Errorf("%w: empty password", ErrInvalidArgument)
	}
	cfg.setDefaults()
	if cfg.InitialStatus == StatusOffline || !cfg.InitialStatus.Valid() {
		return nil, fmt.Errorf("%w: initial status %q", ErrInvalidArgument, cfg.InitialStatus)
	}
	pp, err := newPassport(cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:        cfg,
		handle:     handle,
		password:   password,
		handler:    h,
		log:        cfg.Log.With().Str("component", "msn").Str("handle", handle).Logger(),
		pp:         pp,
		groups:     make(map[string]*Group),
		syncSignal: make(chan struct{}, 1),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.self = Self{Handle: handle, Status: StatusOffline, Capabilities: cfg.Capabilities}
	c.events.init(cfg.MaxQueuedEvents, c.deliverEvent)
	c.sb.init()
	c.initP2P()
	return c, nil
}

// validHandle accepts what MSN accepts as a handle: something@something, no spaces or controls.
func validHandle(h string) bool {
	if len(h) < 3 || len(h) > 129 || strings.Count(h, "@") != 1 || h[0] == '@' || h[len(h)-1] == '@' {
		return false
	}
	for i := 0; i < len(h); i++ {
		if h[i] <= ' ' || h[i] == 0x7f {
			return false
		}
	}
	return true
}

// Handle returns the account's lower-cased handle.
func (c *Client) Handle() string { return c.handle }

// Protocol returns the negotiated dialect ("MSNP11", "MSNP10"), or "" before login.
func (c *Client) Protocol() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.protocol
}

func (c *Client) nsConn() *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ns
}

// online returns the NS connection when logged in, or ErrNotConnected.
func (c *Client) online() (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateOnline || c.ns == nil {
		return nil, ErrNotConnected
	}
	return c.ns, nil
}

// request sends an NS request on a logged-in client and waits for the reply.
func (c *Client) request(ctx context.Context, name string, args []string, payload []byte, expect ...string) (*Command, error) {
	ns, err := c.online()
	if err != nil {
		return nil, err
	}
	return ns.call(ctx, c.cfg.RequestTimeout, name, args, payload, expect...)
}

// handleNS handles every notification-server command that is not a reply. It runs on the NS
// reader goroutine and never blocks.
func (c *Client) handleNS(cmd *Command) {
	switch cmd.Name {
	case "LST":
		c.handleLST(cmd)
	case "LSG":
		c.handleLSG(cmd)
	case "BPR", "SBS", "NOT", "IPG", "GCF", "UUX", "URL", "SBP", "QRY", "GSB":
		c.log.Trace().Str("command", cmd.Name).Msg("Ignoring notification")
	case "GTC", "BLP":
		c.handlePrivacy(cmd)
	case "PRP":
		c.handlePRP(cmd)
	case "ILN", "NLN":
		c.handlePresence(cmd)
	case "FLN":
		c.handleFLN(cmd)
	case "UBX":
		c.handleUBX(cmd)
	case "CHG":
		c.handleCHGPush(cmd)
	case "ADC", "REM":
		c.handleListPush(cmd)
	case "ADG", "RMG", "REG":
		c.log.Debug().Str("command", cmd.Name).Msg("Ignoring unsolicited group change")
	case "MSG":
		c.handleHotmail(cmd)
	case "CHL":
		c.handleCHL(cmd)
	case "QNG":
		n, err := strconv.Atoi(cmd.Arg(0))
		if err != nil {
			n = -1
		}
		c.handleQNG(n)
	case "RNG":
		c.handleRNG(cmd)
	case "OUT":
		c.handleOUT(cmd)
	case "XFR":
		if cmd.Arg(1) == "NS" {
			c.mu.Lock()
			c.out = &DisconnectError{Reason: ReasonMigrated, Err: errors.New("server moved the session")}
			c.mu.Unlock()
			c.nsConn().closeWith(nil)
		}
	default:
		c.log.Debug().Str("command", truncate(cmd.Name, 8)).Msg("Ignoring unknown command")
	}
}

func (c *Client) handleOUT(cmd *Command) {
	de := &DisconnectError{Reason: ReasonNone}
	switch r := cmd.Arg(0); r {
	case "OTH":
		de.Reason = ReasonOtherLogin
	case "SSD":
		de.Reason = ReasonShutdown
	case "MIG":
		de.Reason = ReasonMigrated
	case "TOU":
		de.Reason = ReasonTerms
	case "RCT":
		de.Reason = ReasonRetryLater
		if m, err := strconv.Atoi(cmd.Arg(1)); err == nil && m > 0 && m < 7*24*60 {
			de.RetryAfter = time.Duration(m) * time.Minute
		}
	case "":
	default:
		de.Err = fmt.Errorf("unknown reason %q", truncate(r, 16))
	}
	c.mu.Lock()
	if c.out == nil {
		c.out = de
	}
	c.mu.Unlock()
	c.log.Info().Str("reason", string(de.Reason)).Msg("Server ended the session")
}

// onNSClosed runs on the NS reader goroutine when the connection closes.
func (c *Client) onNSClosed(cn *conn, err error) {
	c.mu.Lock()
	if c.ns != cn || c.state != stateOnline {
		c.mu.Unlock()
		return
	}
	cause := c.out
	c.mu.Unlock()
	if cause == nil {
		cause = &DisconnectError{Reason: ReasonNetwork, Err: err}
	}
	if errors.Is(err, ErrEventOverflow) {
		cause = &DisconnectError{Reason: ReasonNetwork, Err: ErrEventOverflow}
	}
	c.log.Warn().Err(cause).Msg("Disconnected")
	c.shutdown(cause)
}

// shutdown ends the session once: marks the client closed, closes every connection without
// waiting, and queues Disconnected when the session had logged in.
func (c *Client) shutdown(cause *DisconnectError) {
	c.shutdownOnce.Do(func() {
		c.mu.Lock()
		wasOnline := c.state == stateOnline
		c.state = stateClosed
		ns := c.ns
		c.keepaliveStopLocked()
		c.mu.Unlock()
		c.cancel()
		c.p2p.halt()
		if ns != nil {
			ns.closeWith(cause)
		}
		c.closeAllSessions()
		if wasOnline {
			c.events.push(&Disconnected{Err: cause}, true)
		}
		c.events.finish()
	})
}

// Close logs out (OUT), closes every connection and waits for the client's goroutines,
// including the delivery of the remaining events: the handler call in progress, the queued
// events and Disconnected. So it must not be called from the handler, where it would wait for
// the call it runs in; the handler uses CloseFromHandler. Close is idempotent and safe to call
// at any time from any other goroutine, also concurrently with Login (which then fails).
func (c *Client) Close() error {
	c.close()
	c.events.wait()
	return nil
}

// CloseFromHandler is Close for the handler: it does all that Close does but wait for the
// delivery of events, which runs the handler that calls it. The events still queued, and
// Disconnected, are delivered after the handler returns. Called from another goroutine, it
// returns while the handler may still run; Close, called afterwards, waits for it.
func (c *Client) CloseFromHandler() error {
	c.close()
	return nil
}

// close ends the session and waits for every goroutine of the client but the event delivery.
func (c *Client) close() {
	c.mu.Lock()
	ns := c.ns
	online := c.state == stateOnline
	if c.out == nil {
		// Decided before OUT goes out: the server's answer may close the connection, and the
		// reader must then report the session as closed by us, not as lost.
		c.out = &DisconnectError{Reason: ReasonClosed}
	}
	c.mu.Unlock()
	if online && ns != nil {
		_ = ns.send(&Command{Name: "OUT"})
	}
	c.shutdown(&DisconnectError{Reason: ReasonClosed})
	if ns != nil {
		_ = ns.Close()
	}
	c.waitSessions()
	c.p2p.Close()
	c.wg.Wait()
}
