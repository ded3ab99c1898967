package msn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Status is a presence status code as it travels on the wire.
type Status string

// Statuses (PROTOCOL.md §3.2). StatusHidden appears offline to contacts and cannot open
// switchboards; StatusOffline is never sent, it is what contacts that are not online have.
const (
	StatusOnline  Status = "NLN"
	StatusBusy    Status = "BSY"
	StatusIdle    Status = "IDL"
	StatusBRB     Status = "BRB"
	StatusAway    Status = "AWY"
	StatusPhone   Status = "PHN"
	StatusLunch   Status = "LUN"
	StatusHidden  Status = "HDN"
	StatusOffline Status = "FLN"
)

// Valid reports whether s is one of the status constants.
func (s Status) Valid() bool {
	switch s {
	case StatusOnline, StatusBusy, StatusIdle, StatusBRB, StatusAway, StatusPhone, StatusLunch, StatusHidden, StatusOffline:
		return true
	}
	return false
}

// statuses are the status constants, for interning.
var statuses = [...]Status{StatusOnline, StatusBusy, StatusIdle, StatusBRB, StatusAway, StatusPhone, StatusLunch, StatusHidden, StatusOffline}

// intern returns the constant equal to s (s itself when it is not one), so that a status kept
// per contact neither allocates nor keeps the line it was read from.
func (s Status) intern() Status {
	for _, k := range statuses {
		if s == k {
			return k
		}
	}
	return s
}

// Defaults applied by NewClient to zero Config fields.
const (
	DefaultClientVersion      = "7.0.0816"
	DefaultCapabilities       = 0x40000000
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
	// Capabilities are sent with every CHG (default 0x40000000, "MSN 7.0", no P2P features).
	Capabilities uint32
	// InitialStatus is set by Login (default StatusOnline; StatusOffline is not allowed).
	InitialStatus Status
	// InitialPSM is the personal message published by Login (MSNP11 only).
	InitialPSM string

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

// Login connects, authenticates through Passport, downloads the contact list and sets the
// initial status. It returns after the SYN burst is complete and the first CHG is acknowledged;
// LoggedIn is then the first event delivered. ctx bounds the whole login (each step also has
// its own timeout). Login may be called once; on failure the Client is closed, no events are
// delivered, and the error tells bad credentials (errors.Is ErrBadCredentials) from server
// trouble (*ServerError, *PassportError) and network errors; see Retryable.
func (c *Client) Login(ctx context.Context) error {
	c.mu.Lock()
	if c.state != stateNew {
		c.mu.Unlock()
		return fmt.Errorf("%w: login already attempted", ErrInvalidArgument)
	}
	c.state = stateLoggingIn
	c.mu.Unlock()

	// Stop the login when the client is closed meanwhile.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()

	err := c.login(ctx)
	c.pp = nil // a Client logs in once: its Passport client (and own transport) are garbage now
	if err != nil {
		c.mu.Lock()
		ns, out := c.ns, c.out
		c.mu.Unlock()
		if out != nil && errors.Is(err, ErrClosed) {
			err = fmt.Errorf("failed to log in: %w", out)
		}
		c.events.discard()
		c.mu.Lock()
		dropped := len(c.sb.invites)
		c.sb.invites = nil
		c.mu.Unlock()
		if dropped > 0 {
			// Not answered, so nothing was taken: the contacts' clients see no one join and
			// tell their users the messages were not delivered.
			c.log.Warn().Int("invitations", dropped).Msg("Login failed: not answering the switchboard invitations received during it")
		}
		c.shutdown(&DisconnectError{Reason: ReasonClosed, Err: err})
		if ns != nil {
			_ = ns.Close()
		}
		c.waitSessions()
		c.wg.Wait()
		if c.ctx.Err() != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return fmt.Errorf("login aborted: %w", ErrClosed)
		}
		return err
	}
	c.mu.Lock()
	if c.state != stateLoggingIn {
		c.mu.Unlock()
		return fmt.Errorf("login aborted: %w", ErrClosed)
	}
	c.state = stateOnline
	proto := c.protocol
	ns := c.ns
	c.ka.ns = ns
	c.keepaliveArmLocked(0) // the first PNG right away, to learn the server's interval
	// Released under c.mu, in the same step as stateOnline: a shutdown that follows sees the
	// session online and queues Disconnected behind LoggedIn.
	c.events.release(&LoggedIn{Self: c.self, Protocol: proto})
	invites := c.takeInvitesLocked()
	c.mu.Unlock()
	c.log.Info().Str("protocol", proto).Msg("Logged in")
	for _, inv := range invites {
		go c.answerInvite(inv)
	}
	// The connection may have died between the last reply and now.
	if err := ns.Err(); err != nil {
		c.onNSClosed(ns, err)
	}
	return nil
}

func (c *Client) login(ctx context.Context) error {
	addr := c.cfg.Server
	redone := false
	for hop := 0; ; hop++ {
		if hop > maxLoginHops {
			return fmt.Errorf("failed to log in: more than %d redirects or retries", maxLoginHops)
		}
		redirect, err := c.authenticate(ctx, addr)
		switch {
		case err == nil && redirect != "":
			c.log.Debug().Str("server", redirect).Msg("Redirected to another notification server")
			addr = redirect
			continue
		case errors.Is(err, errTicketRejected) && !redone:
			c.log.Warn().Msg("Ticket refused, repeating Passport login once")
			redone = true
			continue
		case errors.Is(err, errTicketRejected):
			return &CredentialsError{Reason: "ticket refused twice"}
		case err != nil:
			return err
		}
		break
	}
	if err := c.syncList(ctx); err != nil {
		return err
	}
	ns := c.nsConn()
	if c.Protocol() == "MSNP11" {
		if cmd, err := ns.call(ctx, c.cfg.RequestTimeout, "GCF", []string{"Shields.xml"}, nil); err != nil {
			if isFatal(err) {
				return fmt.Errorf("failed to get configuration: %w", err)
			}
			c.log.Debug().Err(err).Msg("Ignoring failed GCF")
		} else {
			c.log.Debug().Int("bytes", len(cmd.Payload)).Msg("Got Shields.xml")
		}
	}
	if err := c.changeStatus(ctx, c.cfg.InitialStatus); err != nil {
		return fmt.Errorf("failed to set initial status: %w", err)
	}
	if c.Protocol() == "MSNP11" {
		if err := c.publishPSM(ctx, c.cfg.InitialPSM, nil); err != nil {
			if isFatal(err) {
				return fmt.Errorf("failed to set personal message: %w", err)
			}
			c.log.Warn().Err(err).Msg("Failed to set initial personal message")
		}
	}
	return nil
}

// isFatal tells errors that end a login (connection gone, cancelled) from refusals of one
// optional request.
func isFatal(err error) bool {
	var se *ServerError
	return !errors.As(err, &se)
}

var errTicketRejected = errors.New("ticket rejected")

// authenticate runs VER/CVR/USR on addr. It returns a redirect address (XFR NS), or nil when
// USR OK was received, with c.ns set to the logged-in connection.
func (c *Client) authenticate(ctx context.Context, addr string) (string, error) {
	nc, err := dial(ctx, addr, c.cfg.DialTimeout)
	if err != nil {
		return "", err
	}
	cn := newConn(nc, ClientPayloads, c.log, c.cfg.RequestTimeout, c.handleNS, c.onNSClosed)
	cn.run()
	c.mu.Lock()
	old := c.ns
	c.ns = cn
	c.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	// Close the connection when ctx ends mid-step, so no read or write can hang.
	stop := context.AfterFunc(ctx, func() { cn.closeWith(ctx.Err()) })
	defer stop()
	for restart := 0; restart < maxLoginHops; restart++ {
		redirect, again, err := c.handshake(ctx, cn)
		if err != nil {
			if ctx.Err() != nil {
				return "", fmt.Errorf("failed to log in: %w", ctx.Err())
			}
			return "", err
		}
		if !again {
			if redirect != "" {
				_ = cn.Close()
			}
			return redirect, nil
		}
	}
	return "", errors.New("failed to log in: server keeps restarting the handshake")
}

// handshake is one VER/CVR/USR pass. again = "XFR NS 0": start over on the same connection.
func (c *Client) handshake(ctx context.Context, cn *conn) (redirect string, again bool, err error) {
	t := c.cfg.RequestTimeout
	ver, err := cn.call(ctx, t, "VER", append(append([]string(nil), c.cfg.Protocols...), "CVR0"), nil)
	if err != nil {
		return "", false, fmt.Errorf("failed to negotiate version: %w", err)
	}
	proto := ""
	for _, a := range ver.Args[1:] {
		if strings.HasPrefix(a, "MSNP") {
			for _, p := range c.cfg.Protocols {
				if a == p {
					proto = a
					break
				}
			}
			break
		}
	}
	if proto == "" {
		return "", false, fmt.Errorf("server offered %q: %w", strings.Join(ver.Args[1:], " "), ErrNoCommonVersion)
	}
	c.mu.Lock()
	c.protocol = proto
	c.mu.Unlock()

	if _, err := cn.call(ctx, t, "CVR", []string{"0x0409", "winnt", "5.1", "i386", "MSNMSGR", c.cfg.ClientVersion, "MSMSGS", c.handle}, nil); err != nil {
		return "", false, fmt.Errorf("failed to send client version: %w", err)
	}
	usr, err := cn.call(ctx, t, "USR", []string{"TWN", "I", c.handle}, nil, "USR", "XFR")
	if err != nil {
		return "", false, fmt.Errorf("failed to start authentication: %w", loginError(err, false))
	}
	if usr.Name == "XFR" {
		if usr.Arg(1) != "NS" || usr.Arg(2) == "" {
			return "", false, fmt.Errorf("failed to start authentication: unexpected %q", usr.String())
		}
		if usr.Arg(2) == "0" {
			return "", true, nil
		}
		return usr.Arg(2), false, nil
	}
	if usr.Arg(1) != "TWN" || usr.Arg(2) != "S" || len(usr.Args) < 4 {
		return "", false, fmt.Errorf("failed to start authentication: unexpected reply %s %s", usr.Name, truncate(usr.Arg(1)+" "+usr.Arg(2), 40))
	}
	challenge := strings.Join(usr.Args[3:], " ")
	ticket, err := c.pp.login(ctx, c.handle, c.password, challenge)
	if err != nil {
		return "", false, err
	}
	if c.verifyOnly {
		return "", false, nil
	}
	ok, err := cn.call(ctx, t, "USR", []string{"TWN", "S", ticket}, nil)
	if err != nil {
		return "", false, fmt.Errorf("failed to authenticate: %w", loginError(err, true))
	}
	if ok.Arg(1) != "OK" {
		return "", false, fmt.Errorf("failed to authenticate: unexpected reply %q", truncate(ok.Arg(1), 20))
	}
	// "USR t OK handle verified restricted" (some servers insert a name): flags are last.
	if n := len(ok.Args); n >= 5 && ok.Args[n-1] == "1" {
		return "", false, fmt.Errorf("failed to authenticate: %w", ErrAccountRestricted)
	}
	return "", false, nil
}

// loginError classifies USR error replies (PROTOCOL.md §2.3).
func loginError(err error, ticketStep bool) error {
	var se *ServerError
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code {
	case 911:
		if ticketStep {
			return errTicketRejected
		}
		return fmt.Errorf("%w: server refused the handle: %w", ErrInvalidArgument, err)
	case 928:
		return &CredentialsError{Reason: se.Meaning()}
	}
	return err
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

// syncList sends "SYN 0 0" and waits until every announced LST and LSG line has arrived. The
// wait has no fixed deadline; it fails when the server goes silent for RequestTimeout.
func (c *Client) syncList(ctx context.Context) error {
	c.mu.Lock()
	c.syncing = true
	c.syncLST, c.syncLSG = 0, 0
	ns := c.ns
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.syncing = false
		c.mu.Unlock()
	}()
	reply, err := ns.call(ctx, c.cfg.RequestTimeout, "SYN", []string{"0", "0"}, nil)
	if err != nil {
		return fmt.Errorf("failed to sync contact list: %w", err)
	}
	wantLST, wantLSG := 0, 0
	if len(reply.Args) >= 5 {
		wantLST, _ = strconv.Atoi(reply.Args[3])
		wantLSG, _ = strconv.Atoi(reply.Args[4])
	}
	idle := time.NewTimer(c.cfg.RequestTimeout)
	defer idle.Stop()
	for {
		c.mu.Lock()
		done := c.syncLST >= wantLST && c.syncLSG >= wantLSG
		c.mu.Unlock()
		if done {
			break
		}
		select {
		case <-c.syncSignal:
			idle.Reset(c.cfg.RequestTimeout)
		case <-idle.C:
			return fmt.Errorf("failed to sync contact list: list stalled: %w", ErrTimeout)
		case <-ns.Closed():
			return fmt.Errorf("failed to sync contact list: %w: %w", ErrClosed, ns.Err())
		case <-ctx.Done():
			return fmt.Errorf("failed to sync contact list: %w", ctx.Err())
		}
	}
	contacts, groups := c.Contacts(), c.Groups()
	c.emit(&ContactListSynced{Contacts: contacts, Groups: groups})
	for _, ct := range contacts {
		if ct.Lists&ListPending != 0 {
			c.emit(&ContactRequest{Handle: ct.Handle, Name: ct.StoredName})
		}
	}
	c.log.Debug().Int("contacts", len(contacts)).Int("groups", len(groups)).Msg("Contact list synced")
	return nil
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
// including the delivery of the remaining events (the handler call in progress, the queued
// events and Disconnected) unless Close is called from the handler itself, where it returns
// without waiting for the delivery it runs on. It is idempotent and safe to call at any time,
// also concurrently with Login (which then fails).
func (c *Client) Close() error {
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
	c.wg.Wait()
	if !c.events.onDelivery() {
		c.events.wait()
	}
	return nil
}

// keepalive is the state of the NS keepalive (PROTOCOL.md §3.10), guarded by Client.mu. It runs
// no goroutine of its own: one timer at a time is scheduled, either for the next PNG or, while a
// PNG is unanswered, for its PingTimeout deadline. Each scheduled step counts in Client.wg until
// it has run or been stopped, so Close waits for a PNG being written.
type keepalive struct {
	ns      *conn
	timer   *time.Timer // the scheduled step, nil when none
	gen     uint32      // bumped by every arm and stop: a step of an older arm does nothing
	waiting bool        // a PNG is out and its QNG has not come yet
}

// keepaliveArmLocked schedules the next keepalive step in d, replacing the scheduled one. c.mu
// must be held with the session online, so that the Add never races with Close's Wait.
func (c *Client) keepaliveArmLocked(d time.Duration) {
	c.keepaliveStopLocked()
	gen := c.ka.gen
	c.wg.Add(1)
	c.ka.timer = time.AfterFunc(d, func() {
		defer c.wg.Done()
		c.keepaliveStep(gen)
	})
}

// keepaliveStopLocked cancels the scheduled step; a step already running does nothing more
// than finish its write. c.mu must be held.
func (c *Client) keepaliveStopLocked() {
	c.ka.gen++
	if c.ka.timer != nil && c.ka.timer.Stop() {
		c.wg.Done() // the step will not run
	}
	c.ka.timer = nil
}

// keepaliveStep runs on its timer's goroutine. At a PNG's deadline it declares the connection
// dead; otherwise it sends PNG (which may block on a slow socket, but never blocks the reader)
// and schedules the deadline, unless the QNG has already come.
func (c *Client) keepaliveStep(gen uint32) {
	c.mu.Lock()
	if gen != c.ka.gen || c.state != stateOnline {
		c.mu.Unlock()
		return
	}
	ns := c.ka.ns
	c.ka.timer = nil
	if c.ka.waiting {
		c.ka.waiting = false
		c.mu.Unlock()
		c.log.Warn().Dur("timeout", c.cfg.PingTimeout).Msg("No answer to keepalive, dropping connection")
		ns.closeWith(fmt.Errorf("no QNG within %s: %w", c.cfg.PingTimeout, ErrTimeout))
		return
	}
	c.ka.waiting = true // a QNG that comes from now on answers this PNG
	c.mu.Unlock()
	c.leaveIdleSessions()
	if err := ns.send(&Command{Name: "PNG"}); err != nil {
		return // the connection is closed: its reader ends the session
	}
	c.mu.Lock()
	if gen == c.ka.gen && c.ka.waiting && c.state == stateOnline {
		c.keepaliveArmLocked(c.cfg.PingTimeout)
	}
	c.mu.Unlock()
}

// handleQNG takes the answer to a PNG (n: seconds until the next one, -1 when unreadable) and
// schedules the next PNG. A QNG while no PNG is out is ignored. It runs on the reader goroutine
// and does not block.
func (c *Client) handleQNG(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ka.waiting || c.state != stateOnline {
		return
	}
	c.ka.waiting = false
	interval := time.Duration(n) * time.Second
	if n < 0 {
		interval = 45 * time.Second
	}
	interval = min(max(interval, minServerPingInterval), maxServerPingInterval)
	if c.cfg.PingInterval > 0 {
		interval = c.cfg.PingInterval
	}
	c.keepaliveArmLocked(interval)
}

// handleCHL answers a challenge on a separate goroutine (the reply wait must not block the
// reader).
func (c *Client) handleCHL(cmd *Command) {
	chl := cmd.Arg(1)
	if chl == "" {
		return
	}
	c.mu.Lock()
	ns, proto := c.ns, c.protocol
	if c.state == stateClosed || ns == nil {
		c.mu.Unlock()
		return
	}
	// Added under c.mu while not closed, so it never races with Close's Wait.
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		id, answer := ProductIDMSNP11, ""
		if proto == "MSNP10" {
			id, answer = ProductIDMSNP10, ChallengeMD5(chl, ProductKeyMSNP10)
		} else {
			answer = ChallengeMSNP11(chl, ProductIDMSNP11, ProductKeyMSNP11, c.cfg.ChallengePadAlways)
		}
		if _, err := ns.call(c.ctx, c.cfg.RequestTimeout, "QRY", []string{id}, []byte(answer)); err != nil {
			c.log.Warn().Err(err).Msg("Challenge answer not accepted")
		}
	}()
}

// emit queues an event for the handler. When the queue overflows the session is dropped.
func (c *Client) emit(ev Event) {
	if !c.events.push(ev, false) {
		c.log.Error().Msg("Event handler too slow, dropping connection")
		if ns := c.nsConn(); ns != nil {
			ns.closeWith(ErrEventOverflow)
		}
	}
}

// deliverEvent hands one event to the handler, on the event queue's delivery goroutine. A
// panic in the handler is logged, and the next event is delivered.
func (c *Client) deliverEvent(ev Event) {
	if c.handler == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error().Str("panic", fmt.Sprint(r)).Msg("Event handler panicked")
		}
	}()
	c.handler(ev)
}

// eventQueue is the bounded FIFO between the goroutines that produce events (connection
// readers, callers of Client methods) and the handler. Pushes never block. No goroutine waits on
// an empty queue: a push that makes events deliverable while no delivery runs starts a delivery
// goroutine, which hands the events to deliver one at a time and in order and exits when it
// finds the queue empty. The start and that check are both made under mu, so an event is
// either taken by the running delivery or starts the next one, and there is never more than
// one delivery goroutine. While held (during Login) events are kept back, to be released after
// LoggedIn or discarded.
type eventQueue struct {
	deliver func(Event)
	max     int

	mu      sync.Mutex
	items   []Event
	held    bool
	ended   bool
	running bool // a delivery goroutine runs: set when it is started, cleared by it, under mu

	wg  sync.WaitGroup // the delivery goroutine
	gid atomic.Uint64  // id of the latest delivery goroutine, 0 before the first (never reused)
}

func (q *eventQueue) init(max int, deliver func(Event)) {
	q.held, q.max, q.deliver = true, max, deliver
}

// push appends ev; it reports false when the queue is full (force bypasses the bound) and
// drops events pushed after finish.
func (q *eventQueue) push(ev Event, force bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ended {
		return true
	}
	if !force && len(q.items) >= q.max {
		return false
	}
	q.items = append(q.items, ev)
	q.startLocked()
	return true
}

// startLocked starts a delivery goroutine when events are deliverable and none runs. q.mu must
// be held and the queue not finished: after finish no delivery starts, so wait misses none.
func (q *eventQueue) startLocked() {
	if q.running || q.held || len(q.items) == 0 {
		return
	}
	q.running = true
	q.wg.Add(1)
	go q.run()
}

// release puts first in front of the held events and lets them all through. It does nothing
// after finish; Login releases under Client.mu in the step that marks the session online, which
// orders it before the shutdown's finish.
func (q *eventQueue) release(first Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ended {
		return
	}
	q.items = append([]Event{first}, q.items...)
	q.held = false
	q.startLocked()
}

// discard drops the queued events.
func (q *eventQueue) discard() {
	q.mu.Lock()
	q.items = nil
	q.mu.Unlock()
}

// finish accepts no more events; a delivery that runs still delivers the queued ones.
func (q *eventQueue) finish() {
	q.mu.Lock()
	q.ended = true
	q.mu.Unlock()
}

// wait returns when no delivery goroutine runs. After finish none can start, so it then
// returns once every queued event is delivered. It must not be called from the delivery
// goroutine (see onDelivery), where it would wait for itself.
func (q *eventQueue) wait() { q.wg.Wait() }

// onDelivery reports whether the calling goroutine is the queue's delivery goroutine, that is,
// whether the caller runs inside the handler.
func (q *eventQueue) onDelivery() bool {
	id := q.gid.Load()
	return id != 0 && id == goid()
}

// run is the delivery goroutine: it delivers batches until it finds the queue empty.
func (q *eventQueue) run() {
	defer q.wg.Done()
	q.gid.Store(goid())
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		batch := q.items
		q.items = nil
		q.mu.Unlock()
		for i, ev := range batch {
			batch[i] = nil // delivered events are not kept by the rest of the batch
			q.deliver(ev)
		}
	}
}

// goid returns the current goroutine's id. It lets Close know whether it runs on the delivery
// goroutine, where waiting for that goroutine would deadlock.
func goid() uint64 {
	var buf [32]byte
	n := runtime.Stack(buf[:], false)
	s := strings.TrimPrefix(string(buf[:n]), "goroutine ")
	if i := strings.IndexByte(s, ' '); i > 0 {
		s = s[:i]
	}
	id, _ := strconv.ParseUint(s, 10, 64)
	return id
}
