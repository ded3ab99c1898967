// Package discord is the Discord frontend of the bridge: a bot in one guild that mirrors each
// linked MSN account into a category of its own — a channel per contact (messages through a
// per-channel webhook carrying the contact's name), a roster channel whose pinned message lists
// every contact by status, and channel topics carrying each contact's status and personal
// message — and carries the owner's messages and /msn commands back to MSN through the core.
//
// Presence is mirrored within Discord's limits: the roster message is debounced (a burst of
// changes becomes one edit with the latest state) and channel topics are coalesced under the
// frontend's own per-channel budget (Discord allows 2 name/topic edits per 10 minutes per
// channel), sent under their own rate-limit bucket so they never hold up messages.
package discord

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// FrontendName is the frontend's Name(): the Frontend of its bridge.FrontendUser links and the
// Origin of the actions it takes.
const FrontendName = "discord"

// Intents are the gateway intents the frontend identifies with. MessageContent is privileged
// and must be enabled for the application in the Developer Portal.
const Intents = discordgo.IntentsGuilds | discordgo.IntentsGuildMessages |
	discordgo.IntentMessageContent | discordgo.IntentsGuildMessageTyping

// Option customises a Frontend (see WithHTTPClient, WithSessionFactory).
type Option func(*Frontend)

// WithHTTPClient makes the session send every REST request through client, for example a
// client whose transport points at a test server. discordgo's global endpoint variables are
// never changed.
func WithHTTPClient(client *http.Client) Option {
	return func(f *Frontend) { f.httpClient = client }
}

// WithSessionFactory replaces discordgo.New: factory receives the token with its "Bot " prefix
// and returns an unopened session. The frontend then sets the intents and its handlers.
func WithSessionFactory(factory func(token string) (*discordgo.Session, error)) Option {
	return func(f *Frontend) { f.newSession = factory }
}

// Frontend is the Discord frontend. Create it with New, then Start; Stop ends it. It implements
// bridge.Frontend and serves every account that has a Discord user among its owners. All
// methods are safe for concurrent use.
type Frontend struct {
	core       *bridge.Core
	cfg        Config
	log        zerolog.Logger
	httpClient *http.Client
	newSession func(token string) (*discordgo.Session, error)
	now        func() time.Time

	s      *discordgo.Session
	appID  string
	botID  string
	budget *invalidBudget // Discord's invalid answers, for every request of s

	gwMu          sync.Mutex
	gwOpened      time.Time     // when the gateway connection was last opened
	gwDown        chan struct{} // the gateway connection ended
	gwConn        net.Conn      // the gateway connection's socket while it is being opened
	gwOpenTimeout time.Duration

	bgCtx    context.Context
	bgCancel context.CancelFunc

	mu        sync.Mutex
	wg        sync.WaitGroup // every goroutine the frontend started
	started   bool
	stopped   bool
	portals   map[string]*portal // by account handle
	byChannel map[string]channelRef
	buttons   map[string]buttonAction

	uploadMax    atomic.Int64              // the guild's upload limit per file; 0 until read
	maxUpload    int64                     // when > 0, caps uploadMax (tests)
	avatars      *recentIndex[avatarImage] // contacts' pictures by SHA1D, as events brought them
	avatarEvery  time.Duration             // least time between two webhook picture edits per account
	catchUp      *catchUp                  // orders new messages around gateway gaps
	hooks        *hookPacer                // webhook executes per channel
	refusedNames *recentIndex[string]      // username Discord refused → the one it took
}

// channelRef says what a Discord channel mirrors.
type channelRef struct {
	p    *portal
	chat bridge.ChatID // "" for the roster channel
}

var _ bridge.Frontend = (*Frontend)(nil)

// New returns a Frontend for core. It validates cfg and does no I/O.
func New(core *bridge.Core, cfg Config, log zerolog.Logger, opts ...Option) (*Frontend, error) {
	if core == nil {
		return nil, errors.New("no bridge core")
	}
	cfg.Enabled = true
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid discord config: %w", err)
	}
	f := &Frontend{
		core:      core,
		cfg:       cfg.withDefaults(),
		log:       log.With().Str("component", "discord").Logger(),
		now:       time.Now,
		appID:     cfg.ApplicationID,
		portals:   map[string]*portal{},
		byChannel: map[string]channelRef{},
		buttons:   map[string]buttonAction{},
		gwDown:    make(chan struct{}, 1),

		gwOpenTimeout: gatewayOpenTimeout,
	}
	f.newSession = discordgo.New
	var cursors *cursorStore
	if st := core.Store(); st != nil {
		cursors = newCursorStore(st.DB(), f.log)
	}
	f.catchUp = newCatchUp(f, cursors)
	f.hooks = newHookPacer(webhookPostsPerChannel, webhookPostWindow, time.Now)
	f.refusedNames = newRecentIndex[string](256)
	f.avatars = newRecentIndex[avatarImage](32)
	f.avatarEvery = avatarEditInterval
	for _, o := range opts {
		o(f)
	}
	f.bgCtx, f.bgCancel = context.WithCancel(context.Background())
	return f, nil
}

// Name implements bridge.Frontend.
func (f *Frontend) Name() string { return FrontendName }

// Session returns the discordgo session (nil before Start).
func (f *Frontend) Session() *discordgo.Session { return f.s }

// Start opens the gateway (Guilds, GuildMessages, GuildMessageTyping and the privileged
// MessageContent intent), registers the /msn guild command, and registers the frontend with
// the core, which attaches it to every account linked to a Discord user. ctx bounds the
// start-up requests; the session itself lives until Stop. Start fails when the token is
// refused, the intents are not allowed, the bot's role lacks a permission the bridge needs (a
// *MissingPermissionsError naming each) or the commands cannot be registered.
func (f *Frontend) Start(ctx context.Context) error {
	f.mu.Lock()
	if f.started || f.stopped {
		f.mu.Unlock()
		return errors.New("discord frontend already started")
	}
	f.started = true
	f.mu.Unlock()

	if err := f.catchUp.load(ctx); err != nil {
		return err
	}
	token := f.cfg.Token
	if !strings.HasPrefix(token, "Bot ") {
		token = "Bot " + token
	}
	s, err := f.newSession(token)
	if err != nil {
		return fmt.Errorf("failed to create discord session: %w", err)
	}
	if f.httpClient != nil {
		s.Client = f.httpClient
	}
	f.budget = newInvalidBudget(f.cfg.InvalidRequestBudget, f.log)
	s.Client = withBudget(s.Client, f.budget)
	s.Identify.Intents = Intents
	s.Dialer = &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: 45 * time.Second,
		NetDialContext: f.dialGateway}
	s.ShouldReconnectOnError = false // see gatewayLoop
	s.SyncEvents = true
	s.StateEnabled = true
	s.AddHandler(f.onReady)
	s.AddHandler(f.onConnect)
	s.AddHandler(f.onDisconnect)
	s.AddHandler(f.onResumed)
	s.AddHandler(f.onMessageCreate)
	s.AddHandler(f.onMessageUpdate)
	s.AddHandler(f.onMessageDelete)
	s.AddHandler(f.onTypingStart)
	s.AddHandler(f.onChannelDelete)
	s.AddHandler(f.onInteraction)
	f.s = s
	if err = f.openGateway(); err != nil {
		return fmt.Errorf("failed to open discord gateway: %w", err)
	}
	s.State.RLock()
	if s.State.User != nil {
		f.botID = s.State.User.ID
	}
	if f.appID == "" && s.State.Application != nil {
		f.appID = s.State.Application.ID
	}
	s.State.RUnlock()
	if f.botID == "" {
		me, err := s.User("@me", discordgo.WithContext(ctx))
		if err != nil {
			f.closeSession()
			return fmt.Errorf("failed to get the bot user: %w", err)
		}
		f.botID = me.ID
	}
	if f.appID == "" {
		f.closeSession()
		return errors.New("no application id in READY; set discord.application_id")
	}
	if err = f.checkPermissions(ctx); err != nil {
		f.closeSession()
		return fmt.Errorf("failed to check the bot's permissions: %w", err)
	}
	if _, err = s.ApplicationCommandBulkOverwrite(f.appID, f.cfg.GuildID, commands(), discordgo.WithContext(ctx)); err != nil {
		f.closeSession()
		return fmt.Errorf("failed to register slash commands: %w", err)
	}
	f.log.Info().Str("bot_id", f.botID).Str("application_id", f.appID).Str("guild_id", f.cfg.GuildID).
		Msg("Discord frontend started")
	f.goTracked(f.catchUp.flushLoop)
	f.goTracked(func() { f.budget.report(f.bgCtx) })
	f.goTracked(f.gatewayLoop)
	f.core.AddFrontend(f)
	return nil
}

// Stop ends the frontend: it detaches from the core (mirroring the events already queued, bounded
// by ctx), stops mirroring, waits (bounded by ctx) for the work in flight to end, and closes the
// gateway without reconnecting. Stop blocks about a second inside discordgo's Close.
func (f *Frontend) Stop(ctx context.Context) {
	f.mu.Lock()
	stopped := f.stopped
	f.mu.Unlock()
	if stopped {
		return
	}
	// A newer instance that replaced this one keeps its registration.
	if fe := f.core.Frontend(f.Name()); fe == nil || fe == bridge.Frontend(f) {
		f.core.RemoveFrontend(ctx, f.Name())
	}
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	f.stopped = true
	portals := make([]*portal, 0, len(f.portals))
	for _, p := range f.portals {
		portals = append(portals, p)
	}
	f.mu.Unlock()
	f.bgCancel()
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		f.log.Warn().Msg("Stopping with Discord work still in flight")
	}
	f.closeSession()
	f.log.Info().Int("accounts", len(portals)).Msg("Discord frontend stopped")
}

func (f *Frontend) closeSession() {
	if f.s == nil {
		return
	}
	if err := f.s.Close(); err != nil {
		f.log.Debug().Err(bridge.ScrubError(err)).Msg("Failed to close the Discord session cleanly")
	}
}

// Gateway connections.
//
// discordgo's heartbeat and reader goroutines, when their own connection fails, close the
// session's connection and (with ShouldReconnectOnError) open another; but they act on
// whatever connection the session holds by then: a heartbeat that outlives the connection it
// was started with closes the one that replaced it, whose heartbeat may do the same, over and
// over, and two of them reconnecting at once can leave the session with a connection nobody
// reads. So the session never reconnects by itself. Every way discordgo ends a connection goes
// through Session.Close, which emits Disconnect; gatewayLoop then opens the next connection
// itself, one at a time, after a pause in which the goroutines of the connection that ended run
// out on it. Should one of them still close the new connection, that close emits Disconnect too
// and the loop opens another: the gateway is never left closed. A new connection RESUMEs when
// Discord still knows the session and IDENTIFYs otherwise; the catch-up fetches what a fresh
// session missed.

const (
	// gatewayRetryMin is the pause before a new gateway connection; it doubles, up to
	// gatewayRetryMax, while connections fail or end within gatewayStable of their opening.
	// The longest pause stays well inside the time Discord keeps a dropped session resumable,
	// so a drop is resumed, with its missed events replayed, rather than caught up over REST.
	gatewayRetryMin = time.Second
	gatewayRetryMax = 15 * time.Second
	gatewayStable   = 10 * time.Second
)

// gatewayOpenTimeout bounds the opening of a gateway connection: discordgo's Open waits for
// HELLO and then for READY or RESUMED without a deadline, holding the session's lock, so a gateway
// that accepts the connection and then says nothing would leave the frontend without one.
const gatewayOpenTimeout = 30 * time.Second

// dialGateway dials the gateway's socket and keeps it while the connection is being opened.
func (f *Frontend) dialGateway(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 30 * time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	f.gwMu.Lock()
	f.gwConn = c
	f.gwMu.Unlock()
	return c, nil
}

// openGateway opens a gateway connection, cutting its socket when the gateway has not said
// READY or RESUMED within gwOpenTimeout (Open then fails).
func (f *Frontend) openGateway() error {
	f.gwMu.Lock()
	f.gwOpened, f.gwConn = f.now(), nil
	f.gwMu.Unlock()
	opening := true
	cut := time.AfterFunc(f.gwOpenTimeout, func() {
		f.gwMu.Lock()
		defer f.gwMu.Unlock()
		if opening && f.gwConn != nil {
			f.log.Warn().Dur("timeout", f.gwOpenTimeout).Msg("Discord gateway did not answer in time, closing the connection")
			_ = f.gwConn.Close()
		}
	})
	err := f.s.Open()
	cut.Stop()
	f.gwMu.Lock()
	opening, f.gwConn = false, nil
	f.gwMu.Unlock()
	return err
}

// gatewayLoop opens a new gateway connection each time the one in use ends, until the frontend
// stops.
func (f *Frontend) gatewayLoop() {
	ctx := f.bgCtx
	wait := gatewayRetryMin
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.gwDown:
		}
		f.gwMu.Lock()
		lasted := f.now().Sub(f.gwOpened)
		f.gwMu.Unlock()
		if lasted >= gatewayStable {
			wait = gatewayRetryMin
		}
		for {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			wait = min(2*wait, gatewayRetryMax)
			err := f.openGateway()
			if err == nil || errors.Is(err, discordgo.ErrWSAlreadyOpen) {
				if err == nil {
					f.log.Info().Msg("Discord gateway connected again")
				}
				break
			}
			f.log.Warn().Err(bridge.ScrubError(err)).Dur("retry_in", wait).Msg("Failed to connect to the Discord gateway")
		}
	}
}

// goTracked runs fn on a new goroutine that Stop waits for. It reports false (and does not run
// fn) once the frontend is stopping.
func (f *Frontend) goTracked(fn func()) bool {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return false
	}
	f.wg.Add(1)
	f.mu.Unlock()
	go func() {
		defer f.wg.Done()
		fn()
	}()
	return true
}

// track marks the calling goroutine (a discordgo handler) as work Stop waits for; call the
// returned function when done. ok is false once the frontend is stopping.
func (f *Frontend) track() (done func(), ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return nil, false
	}
	f.wg.Add(1)
	return f.wg.Done, true
}

// tracked runs fn on a goroutine of its own that Stop waits for, with a context that ends
// after d or when the frontend stops; it does nothing once the frontend has stopped. Gateway
// handlers run on discordgo's reader, in order, so whatever waits for the network goes here.
func (f *Frontend) tracked(d time.Duration, fn func(ctx context.Context)) {
	f.goTracked(func() {
		ctx, cancel := context.WithTimeout(f.bgCtx, d)
		defer cancel()
		fn(ctx)
	})
}

// HandleEvent implements bridge.Frontend: it shows one event of acc in Discord. It may block on
// Discord's rate limits and, while Discord refuses the account's requests (401, 403), for as
// long as the account's breaker is open (holding up only acc's queue, which the core keeps in
// order); presence changes only update state and wake the account's presence loop.
func (f *Frontend) HandleEvent(ctx context.Context, acc *bridge.Account, evt bridge.Event) error {
	done, ok := f.track()
	if !ok {
		return nil
	}
	defer done()
	p := f.portalFor(acc)
	if p == nil {
		return nil
	}
	ctx, cancel := mergeCancel(ctx, f.bgCtx)
	defer cancel()
	for {
		// While Discord refuses the account's requests, this event (and the account's queue
		// behind it, in the core) waits; then it is tried again.
		if err := p.waitBreaker(ctx); err != nil {
			return fmt.Errorf("gave up waiting for discord to accept requests: %w", err)
		}
		err := p.syncPermissions(ctx)
		if err == nil {
			err = p.handleEvent(ctx, evt)
		}
		if p.trip(ctx, err) {
			continue
		}
		if err == nil && postsToDiscord(evt) {
			p.reset(ctx)
		} else if err != nil && ctx.Err() == nil {
			p.reportLost(ctx, evt, err)
		}
		return err
	}
}

// mergeCancel returns a context derived from ctx that is also cancelled when other is.
func mergeCancel(ctx, other context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(other, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// portalFor returns acc's portal, creating it (and starting its goroutines) on first use. It
// returns nil once the frontend is stopping.
func (f *Frontend) portalFor(acc *bridge.Account) *portal {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return nil
	}
	if p, ok := f.portals[acc.Handle()]; ok {
		f.mu.Unlock()
		p.setAccount(acc) // never take p.mu under f.mu
		return p
	}
	defer f.mu.Unlock()
	p := newPortal(f, acc)
	f.portals[acc.Handle()] = p
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		p.presenceLoop(f.bgCtx)
	}()
	go func() {
		defer f.wg.Done()
		p.outboxLoop(f.bgCtx)
	}()
	return p
}

// portalByHandle returns the portal of an account, or nil.
func (f *Frontend) portalByHandle(handle string) *portal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.portals[bridge.NormalizeHandle(handle)]
}

// channel returns what a Discord channel mirrors.
func (f *Frontend) channel(id string) (channelRef, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ref, ok := f.byChannel[id]
	return ref, ok
}

// bindChannel routes channel id to ref; a chat's channel is followed for catch-up after
// gateway gaps.
func (f *Frontend) bindChannel(id string, ref channelRef) {
	f.mu.Lock()
	f.byChannel[id] = ref
	f.mu.Unlock()
	if ref.chat != "" {
		f.catchUp.track(id)
	}
}

func (f *Frontend) unbindChannel(id string) {
	f.mu.Lock()
	delete(f.byChannel, id)
	f.mu.Unlock()
	f.catchUp.forget(id)
	f.hooks.forget(id)
}

// Gateway lifecycle.

// onReady starts the catch-up of a gateway gap when the READY begins a new session after an
// earlier one (see catchUp).
func (f *Frontend) onReady(_ *discordgo.Session, r *discordgo.Ready) {
	f.log.Debug().Str("session_id", r.SessionID).Msg("Discord gateway ready")
	f.catchUp.sessionStarted()
}

func (f *Frontend) onConnect(_ *discordgo.Session, _ *discordgo.Connect) {
	f.log.Debug().Msg("Discord gateway connected")
}

// onDisconnect has gatewayLoop open the next gateway connection.
func (f *Frontend) onDisconnect(_ *discordgo.Session, _ *discordgo.Disconnect) {
	f.mu.Lock()
	stopped := f.stopped
	f.mu.Unlock()
	if stopped {
		return
	}
	f.log.Warn().Msg("Discord gateway disconnected, reconnecting")
	select {
	case f.gwDown <- struct{}{}:
	default:
	}
}

func (f *Frontend) onResumed(_ *discordgo.Session, _ *discordgo.Resumed) {
	f.log.Info().Msg("Discord gateway resumed")
}

// onChannelDelete forgets a deleted channel so that the next message recreates it.
func (f *Frontend) onChannelDelete(_ *discordgo.Session, e *discordgo.ChannelDelete) {
	if e.Channel == nil {
		return
	}
	if ref, ok := f.channel(e.ID); ok {
		ref.p.forgetChannel(e.ID)
	}
}

// isUnknown reports whether err is Discord's error code code (10003 unknown channel, 10008
// unknown message, 10015 unknown webhook).
func isUnknown(err error, code int) bool {
	var re *discordgo.RESTError
	return errors.As(err, &re) && re.Message != nil && re.Message.Code == code
}

// noMentions suppresses every mention.
func noMentions() *discordgo.MessageAllowedMentions {
	return &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
}
