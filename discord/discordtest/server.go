// Package discordtest is an in-process fake Discord: the REST API under /api/v9 and a websocket
// gateway, both on 127.0.0.1, that discordgo v0.29.0 talks to unchanged.
//
// It holds one guild with an owner, extra human users, the bot user and its application, and
// keeps channels, messages, pins, reactions, webhooks, application commands and interactions in
// memory. It is faithful where Discord bites a bridge: per-route rate-limit buckets with
// X-RateLimit-* headers and 429 bodies in float seconds, the 2-per-10-minutes name/topic edit
// limit per channel, Discord's error codes (10003, 10008, 10015, 10062, 40060, 50006, 50035, …),
// webhook deletion, uploads capped per file (413, 40005) and needing Attach Files, webhook
// avatars only from data URIs of real images, signed attachment URLs served on loopback, RESUME
// with replay of missed dispatches (and sessions ended by a client's close 1000 or expired, as
// Discord ends them), zlib frames, privileged intents and the blanking of message content
// without the MessageContent intent.
//
// Point a session at a Server with NewSession, or set Session.Client to HTTPClient(): discordgo
// reads the gateway URL from GET /gateway, so neither its global endpoint variables nor its
// websocket dialer need changing and parallel tests stay independent.
//
// Defaults follow Discord: message posts 5 per 5 s per channel, webhook executes 5 per 2 s per
// webhook and 30 per minute per channel, 50 requests per second globally. discordgo honours the X-RateLimit-* headers by
// waiting inside the call, so a test that posts many messages either expects that or loosens
// Options.RouteLimits.
//
// A typical test:
//
//	srv := discordtest.New(discordtest.Options{HeartbeatInterval: 100 * time.Millisecond})
//	t.Cleanup(srv.Close) // registered first, so it runs after the session's cleanup
//	sess, err := srv.NewSession("")
//	if err != nil {
//		t.Fatal(err)
//	}
//	t.Cleanup(func() { discordtest.CloseSession(sess) })
//	if err := sess.Open(); err != nil {
//		t.Fatal(err)
//	}
//	srv.InjectUserMessage(srv.ChannelByName("general").ID, srv.OwnerID(), "hello")
//
// Every method of Server is safe for concurrent use. Inspection methods return copies.
package discordtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
)

// BridgeIntents are the gateway intents the bridge identifies with: guilds, guild messages and
// the privileged MessageContent intent (33281, as DISCORD.md captured it).
const BridgeIntents = discordgo.IntentsGuilds | discordgo.IntentsGuildMessages | discordgo.IntentMessageContent

// privilegedIntents are the intents Discord only grants when enabled for the application.
const privilegedIntents = discordgo.IntentsGuildMembers | discordgo.IntentsGuildPresences | discordgo.IntentMessageContent

// Limit is a rate-limit bucket: at most Requests requests per Per, in fixed windows that start
// with the first request, as Discord's buckets do.
type Limit struct {
	Requests int
	Per      time.Duration
}

// Options configure a Server. The zero value is usable: every empty field gets a default.
type Options struct {
	// Token is the bot token without the "Bot " prefix. Default "test-token".
	Token string

	// GuildID and GuildName name the one guild. Defaults: a generated snowflake and "MSN Bridge".
	GuildID   string
	GuildName string
	// OwnerID and OwnerName name the guild owner, a human. Defaults: a snowflake and "owner".
	OwnerID   string
	OwnerName string
	// Users are extra human members of the guild; an empty ID gets a snowflake.
	Users []*discordgo.User
	// BotID and BotName name the bot user; ApplicationID its application. Defaults: snowflakes,
	// "msn-bridge".
	BotID         string
	BotName       string
	ApplicationID string
	// BotPermissions are the permissions of the bot's own role (besides @everyone's); zero
	// means DefaultBotPermissions, NoPermissions none. The fake enforces them as Discord does
	// (see SetBotPermissions).
	BotPermissions int64
	// Channels are the guild's initial channels (text and categories); an empty ID gets a
	// snowflake and GuildID is filled in. When nil the guild starts with a category "Text
	// Channels" holding a text channel "general".
	Channels []*discordgo.Channel

	// HeartbeatInterval is sent in HELLO. Default 41.25 s; tests want a few tens of milliseconds.
	HeartbeatInterval time.Duration
	// SessionTimeout is how long a gateway session without a connection stays resumable;
	// later a RESUME is refused with op 9 and the dispatches meanwhile are gone. Discord does
	// not publish its value. Default 2 minutes.
	SessionTimeout time.Duration
	// Compress makes the gateway send zlib-compressed binary frames after an IDENTIFY with
	// "compress": true, as Discord's payload compression does.
	Compress bool
	// DenyMessageContent disables the privileged MessageContent intent for the application:
	// IDENTIFY asking for it is closed with 4014. AllowGuildMembers and AllowGuildPresences
	// enable the other two privileged intents, which are disabled by default.
	DenyMessageContent  bool
	AllowGuildMembers   bool
	AllowGuildPresences bool

	// EditLimit name/topic changes are allowed per channel within EditWindow. Defaults: 2 per
	// 10 minutes, Discord's long-standing limit.
	EditLimit  int
	EditWindow time.Duration

	// InteractionDeadline is how long after creation an interaction accepts its initial
	// response (default 3 s); InteractionTokenTTL how long its token works for followups and
	// edits (default 15 minutes).
	InteractionDeadline time.Duration
	InteractionTokenTTL time.Duration

	// RouteLimits override the per-route buckets, keyed by "METHOD /route/{pattern}" as in
	// Touched (for example "POST /channels/{c}/messages"). Buckets are kept per route and major
	// parameter (channel, guild or webhook). DefaultLimit applies to routes without an entry
	// (default 50 per second), GlobalLimit to all bot-authenticated requests together (default
	// 50 per second). A Limit with Requests < 0 disables that bucket.
	RouteLimits  map[string]Limit
	DefaultLimit Limit
	GlobalLimit  Limit
	// WebhookChannelLimit caps webhook executes per channel, whatever the webhook (default 30
	// per minute, as Discord is reported to); Requests < 0 disables it.
	WebhookChannelLimit Limit

	// AttachmentURLTTL is how long an attachment URL works: URLs are signed (ex, is and hm
	// query parameters) and expire as Discord's CDN URLs do. Default 24 hours.
	AttachmentURLTTL time.Duration

	// MaxBodyBytes caps a request body; larger requests get 413 with code 40005. Default 25 MiB.
	MaxBodyBytes int64
	// MaxFileBytes caps each uploaded file, as a guild's upload limit does: a larger one gets
	// 413 with code 40005. Default 10 MiB, Discord's limit for a guild without boosts.
	MaxFileBytes int64
	// MaxLoggedBody caps the body kept per entry of Requests(). Default 64 KiB.
	MaxLoggedBody int
	// MaxLoggedRequests caps Requests(); the oldest entries go first. Default 100,000.
	MaxLoggedRequests int
}

// defaultRouteLimits are the buckets Discord is reported to use for the routes a bridge hammers.
var defaultRouteLimits = map[string]Limit{
	"POST /channels/{c}/messages":                         {5, 5 * time.Second},
	"PATCH /channels/{c}/messages/{m}":                    {5, 5 * time.Second},
	"DELETE /channels/{c}/messages/{m}":                   {5, time.Second},
	"POST /webhooks/{w}/{tok}":                            {5, 2 * time.Second},
	"PUT /channels/{c}/messages/{m}/reactions/{e}/@me":    {1, 250 * time.Millisecond},
	"DELETE /channels/{c}/messages/{m}/reactions/{e}/@me": {1, 250 * time.Millisecond},
	"POST /channels/{c}/typing":                           {5, 5 * time.Second},
	"PATCH /channels/{c}":                                 {10, 15 * time.Second},
}

// Attachment is a file a human attaches to an injected message.
type Attachment struct {
	Filename    string
	ContentType string
	Data        []byte
}

// File is an uploaded file as the fake stored it.
type File struct {
	Filename    string
	ContentType string
	Data        []byte
}

// Message is a stored message with what its sender asked for beyond the message itself.
type Message struct {
	*discordgo.Message
	// AvatarURL is the avatar_url a webhook execute asked for, if any.
	AvatarURL string
	// AllowedMentions is the allowed_mentions object as sent; nil when absent.
	AllowedMentions *discordgo.MessageAllowedMentions
	// Files are the uploaded files, in attachment order.
	Files []File
	// Ephemeral is set for interaction responses and followups sent with flag 64; they are
	// never stored in a channel.
	Ephemeral bool
}

// InteractionResponse is one initial response POSTed to an interaction's callback.
type InteractionResponse struct {
	// Accepted is set for the response the fake took; Code is the Discord error code of a
	// refused one (10062 too late, 40060 already acknowledged, 50006, 50035, 10008).
	Accepted bool
	Code     int
	Type     discordgo.InteractionResponseType
	Content  string
	Flags    discordgo.MessageFlags
	CustomID string // modal responses
	Title    string // modal responses
	Raw      json.RawMessage
	At       time.Time
}

// Request is one logged REST request.
type Request struct {
	Method string
	Route  string // "METHOD /pattern", as in Touched; "" when no route matched
	Path   string
	Query  string
	Status int
	Body   []byte // the raw body, truncated to Options.MaxLoggedBody
	At     time.Time
}

// GatewayStats counts what happened on the gateway.
type GatewayStats struct {
	Connections int // websocket upgrades
	Identifies  int // accepted IDENTIFYs
	Resumes     int // accepted RESUMEs
	Heartbeats  int // op 1 received
	Acks        int // op 11 sent
	Dispatches  int // op 0 frames produced (buffered or sent), READY and RESUMED included
	Invalidated int // sessions ended by the client closing with 1000 or 1001
	Expired     int // sessions forgotten after Options.SessionTimeout without a connection
	Unanswered  int // IDENTIFYs and RESUMEs left unanswered (SetMute)
}

// Server is a running fake Discord. Create it with New and stop it with Close.
type Server struct {
	opts     Options
	ln       net.Listener
	http     *http.Server
	base     string // http://127.0.0.1:port
	mux      *http.ServeMux
	tr       *http.Transport
	closed   chan struct{}
	closeOne sync.Once
	wg       sync.WaitGroup

	mu       sync.Mutex
	lastID   uint64
	guild    guildState
	botRole  string
	botPerms int64
	users    map[string]*discordgo.User
	channels map[string]*channelState
	order    []string // channel ids in creation order
	msgChan  map[string]string
	webhooks map[string]*webhookState
	commands map[string][]*discordgo.ApplicationCommand // by guild id; "" for global
	inters   map[string]*interactionState
	byToken  map[string]*interactionState
	files    map[string]File // attachment id → file
	urlKey   []byte          // signs attachment URLs

	touched      map[string]int
	requests     []Request
	count429     int
	injected429  int // 429s answered from Inject429 and InjectGlobal429
	routes429    map[string]int
	invalid      int
	inject       []*injection
	faults       []*faultInjection
	buckets      map[string]*bucket
	hookBuckets  map[string]*bucket // webhook executes per channel
	refused      []string           // RefuseUsernames, lower case
	global       bucket
	noAck        bool
	mute         bool // IDENTIFY and RESUME go unanswered
	sessions     map[string]*gwSession
	conns        map[*gwConn]struct{}
	stats        GatewayStats
	presences    []json.RawMessage
	gatewaySends int
}

type guildState struct {
	id, name, ownerID string
	joined            time.Time
}

type channelState struct {
	ch         *discordgo.Channel
	messages   []*Message
	pins       []string
	topicEdits []time.Time // successful name/topic changes
}

type webhookState struct {
	wh      *discordgo.Webhook
	avatar  *avatarImage // nil: none
	deleted bool
}

type interactionState struct {
	i         *discordgo.Interaction
	created   time.Time
	responses []InteractionResponse
	original  *Message
	followups []*Message
}

// New starts a fake Discord on 127.0.0.1 with a random port, as Start does, and panics when it
// cannot listen on loopback, as httptest.NewServer does. Stop it with Close, typically from a
// t.Cleanup registered before any session's cleanup.
func New(opts Options) *Server {
	s, err := Start(opts)
	if err != nil {
		panic(fmt.Sprintf("discordtest: %v", err))
	}
	return s
}

// Start starts a fake Discord on 127.0.0.1 with a random port. It fails only when it cannot
// listen.
func Start(opts Options) (*Server, error) {
	opts = withDefaults(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("failed to listen on loopback: %w", err)
	}
	s := &Server{
		opts:        opts,
		ln:          ln,
		base:        "http://" + ln.Addr().String(),
		mux:         http.NewServeMux(),
		closed:      make(chan struct{}),
		users:       map[string]*discordgo.User{},
		channels:    map[string]*channelState{},
		msgChan:     map[string]string{},
		webhooks:    map[string]*webhookState{},
		commands:    map[string][]*discordgo.ApplicationCommand{},
		inters:      map[string]*interactionState{},
		byToken:     map[string]*interactionState{},
		files:       map[string]File{},
		touched:     map[string]int{},
		routes429:   map[string]int{},
		buckets:     map[string]*bucket{},
		hookBuckets: map[string]*bucket{},
		sessions:    map[string]*gwSession{},
		conns:       map[*gwConn]struct{}{},
	}
	s.tr = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	s.global = bucket{limit: opts.GlobalLimit}
	s.seed()
	s.routes()
	s.http = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.http.Serve(ln)
	}()
	return s, nil
}

func withDefaults(o Options) Options {
	if o.Token == "" {
		o.Token = "test-token"
	}
	o.Token = strings.TrimPrefix(o.Token, "Bot ")
	if o.GuildName == "" {
		o.GuildName = "MSN Bridge"
	}
	if o.OwnerName == "" {
		o.OwnerName = "owner"
	}
	if o.BotName == "" {
		o.BotName = "msn-bridge"
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 41250 * time.Millisecond
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 2 * time.Minute
	}
	if o.EditLimit <= 0 {
		o.EditLimit = 2
	}
	if o.EditWindow <= 0 {
		o.EditWindow = 10 * time.Minute
	}
	if o.InteractionDeadline <= 0 {
		o.InteractionDeadline = 3 * time.Second
	}
	if o.InteractionTokenTTL <= 0 {
		o.InteractionTokenTTL = 15 * time.Minute
	}
	limits := make(map[string]Limit, len(defaultRouteLimits)+len(o.RouteLimits))
	for k, v := range defaultRouteLimits {
		limits[k] = v
	}
	for k, v := range o.RouteLimits {
		limits[k] = v
	}
	o.RouteLimits = limits
	if o.DefaultLimit.Requests == 0 || o.DefaultLimit.Per <= 0 && o.DefaultLimit.Requests > 0 {
		o.DefaultLimit = Limit{50, time.Second}
	}
	if o.GlobalLimit.Requests == 0 || o.GlobalLimit.Per <= 0 && o.GlobalLimit.Requests > 0 {
		o.GlobalLimit = Limit{50, time.Second}
	}
	if o.WebhookChannelLimit.Requests == 0 || o.WebhookChannelLimit.Per <= 0 && o.WebhookChannelLimit.Requests > 0 {
		o.WebhookChannelLimit = Limit{30, time.Minute}
	}
	if o.AttachmentURLTTL <= 0 {
		o.AttachmentURLTTL = 24 * time.Hour
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 25 << 20
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = 10 << 20
	}
	if o.MaxLoggedBody <= 0 {
		o.MaxLoggedBody = 64 << 10
	}
	if o.MaxLoggedRequests <= 0 {
		o.MaxLoggedRequests = 100000
	}
	return o
}

// seed creates the guild, its users and its initial channels.
func (s *Server) seed() {
	o := &s.opts
	now := time.Now().UTC().Truncate(time.Millisecond)
	if o.GuildID == "" {
		o.GuildID = s.nextID()
	}
	if o.OwnerID == "" {
		o.OwnerID = s.nextID()
	}
	if o.BotID == "" {
		o.BotID = s.nextID()
	}
	if o.ApplicationID == "" {
		o.ApplicationID = s.nextID()
	}
	s.guild = guildState{id: o.GuildID, name: o.GuildName, ownerID: o.OwnerID, joined: now}
	s.botRole = s.nextID()
	switch o.BotPermissions {
	case 0:
		s.botPerms = DefaultBotPermissions
	case NoPermissions:
		s.botPerms = 0
	default:
		s.botPerms = o.BotPermissions
	}
	s.users[o.OwnerID] = &discordgo.User{ID: o.OwnerID, Username: o.OwnerName, Discriminator: "0", GlobalName: o.OwnerName}
	s.users[o.BotID] = &discordgo.User{ID: o.BotID, Username: o.BotName, Discriminator: "0", Bot: true}
	users := make([]*discordgo.User, 0, len(o.Users))
	for _, u := range o.Users {
		if u == nil {
			continue
		}
		c := *u
		if c.ID == "" {
			c.ID = s.nextID()
		}
		if c.Username == "" {
			c.Username = "user" + c.ID
		}
		if c.Discriminator == "" {
			c.Discriminator = "0"
		}
		s.users[c.ID] = &c
		users = append(users, &c)
	}
	o.Users = users
	if o.Channels == nil {
		cat := &discordgo.Channel{Name: "Text Channels", Type: discordgo.ChannelTypeGuildCategory}
		gen := &discordgo.Channel{Name: "general", Type: discordgo.ChannelTypeGuildText}
		s.addChannel(cat)
		gen.ParentID = cat.ID
		s.addChannel(gen)
		return
	}
	for i, c := range o.Channels {
		if c == nil {
			continue
		}
		cp := *c
		if cp.Position == 0 {
			cp.Position = i
		}
		s.addChannel(&cp)
	}
}

// addChannel stores ch, filling in its id and guild. The caller holds s.mu or is seeding.
func (s *Server) addChannel(ch *discordgo.Channel) {
	if ch.ID == "" {
		ch.ID = s.nextID()
	}
	ch.GuildID = s.guild.id
	if ch.PermissionOverwrites == nil {
		ch.PermissionOverwrites = []*discordgo.PermissionOverwrite{}
	}
	s.channels[ch.ID] = &channelState{ch: ch}
	s.order = append(s.order, ch.ID)
}

// Close stops the server: it closes every gateway connection and the HTTP listener and waits for
// the server's goroutines. Sessions still open see a dropped gateway. Close is idempotent.
func (s *Server) Close() {
	s.closeOne.Do(func() {
		close(s.closed)
		s.mu.Lock()
		for c := range s.conns {
			c.kill()
		}
		s.mu.Unlock()
		_ = s.http.Close()
		s.tr.CloseIdleConnections()
		s.wg.Wait()
	})
}

// URL is the server's base URL, http://127.0.0.1:port. The REST API is under URL()+"/api/v9/"
// and the gateway at ws://127.0.0.1:port/gateway.
func (s *Server) URL() string { return s.base }

// GatewayURL is the websocket URL GET /gateway hands out.
func (s *Server) GatewayURL() string { return "ws" + strings.TrimPrefix(s.base, "http") + "/gateway" }

// Token is the bot token without the "Bot " prefix.
func (s *Server) Token() string { return s.opts.Token }

// GuildID is the id of the one guild.
func (s *Server) GuildID() string { return s.opts.GuildID }

// OwnerID is the id of the guild owner.
func (s *Server) OwnerID() string { return s.opts.OwnerID }

// BotID is the bot user's id.
func (s *Server) BotID() string { return s.opts.BotID }

// ApplicationID is the bot's application id.
func (s *Server) ApplicationID() string { return s.opts.ApplicationID }

// Users are the extra human users (Options.Users and AddUser), with their ids filled in.
func (s *Server) Users() []*discordgo.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*discordgo.User, 0, len(s.opts.Users))
	for _, u := range s.opts.Users {
		c := *u
		out = append(out, &c)
	}
	return out
}

// HTTPClient returns a client whose transport sends every request, whatever its scheme and host,
// to this server. Give it to a session (Session.Client) or to one request (discordgo.WithClient).
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Transport: rewriteTransport{base: s.tr, host: strings.TrimPrefix(s.base, "http://")}, Timeout: 20 * time.Second}
}

type rewriteTransport struct {
	base http.RoundTripper
	host string
}

// RoundTrip implements http.RoundTripper. It clones the request before rewriting its URL.
func (t rewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.URL.Scheme = "http"
	r.URL.Host = t.host
	r.Host = t.host
	return t.base.RoundTrip(r)
}

// NewSession returns a discordgo session for this server's bot: token with the "Bot " prefix
// (added when missing), HTTPClient() as its client and BridgeIntents. An empty token means the
// server's own. The session is not opened; close it with CloseSession, for example from
// t.Cleanup.
func (s *Server) NewSession(token string) (*discordgo.Session, error) {
	if token == "" {
		token = s.opts.Token
	}
	if !strings.HasPrefix(token, "Bot ") {
		token = "Bot " + token
	}
	sess, err := discordgo.New(token)
	if err != nil {
		return nil, fmt.Errorf("failed to create session: %w", err)
	}
	sess.Client = s.HTTPClient()
	sess.Identify.Intents = BridgeIntents
	return sess, nil
}

// CloseSession stops a session for good: it turns reconnecting off first, so that a heartbeat or
// a dropped socket racing with the close cannot start a reconnect, then closes it. Close blocks
// about one second inside discordgo. A nil session is ignored.
//
// discordgo reads ShouldReconnectOnError without a lock, so call CloseSession once the session
// has settled (for example after waiting for its Resumed or Ready event), not while a reconnect
// is in flight, or the race detector reports discordgo's read.
func CloseSession(sess *discordgo.Session) {
	if sess == nil {
		return
	}
	sess.ShouldReconnectOnError = false
	_ = sess.Close()
}

// nextID returns a fresh snowflake: the current time since Discord's epoch in the upper bits,
// strictly increasing per server. The caller holds s.mu or is seeding.
func (s *Server) nextID() string {
	const discordEpoch = 1420070400000
	id := uint64(time.Now().UnixMilli()-discordEpoch) << 22
	if id <= s.lastID {
		id = s.lastID + 1
	}
	s.lastID = id
	return fmt.Sprint(id)
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Inspection.

// Touched returns how many requests each route received, keyed by "METHOD /pattern" (for example
// "PATCH /channels/{c}"), whatever their outcome.
func (s *Server) Touched() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.touched))
	for k, v := range s.touched {
		out[k] = v
	}
	return out
}

// Requests returns the log of REST requests in the order they finished, at most
// Options.MaxLoggedRequests of the latest.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count429 is the number of 429 responses sent, of every kind (route buckets, global, name/topic
// edits, injected).
func (s *Server) Count429() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count429
}

// Injected429 is the number of 429 responses sent because of Inject429 or InjectGlobal429: of
// Count429 and InvalidRequests, the part a test caused rather than the client.
func (s *Server) Injected429() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.injected429
}

// Routes429 returns the 429 responses sent per route.
func (s *Server) Routes429() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.routes429))
	for k, v := range s.routes429 {
		out[k] = v
	}
	return out
}

// InvalidRequests is the number of 401, 403 and 429 responses, the requests Discord counts
// towards its 10,000 per 10 minutes ban.
func (s *Server) InvalidRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.invalid
}

// Channels returns the guild's channels sorted by position, then id.
func (s *Server) Channels() []*discordgo.Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedChannels()
}

func (s *Server) sortedChannels() []*discordgo.Channel {
	out := make([]*discordgo.Channel, 0, len(s.channels))
	for _, id := range s.order {
		if cs, ok := s.channels[id]; ok {
			c := *cs.ch
			out = append(out, &c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Position < out[j].Position })
	return out
}

// Channel returns the channel with id, or nil.
func (s *Server) Channel(id string) *discordgo.Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.channels[id]
	if !ok {
		return nil
	}
	c := *cs.ch
	return &c
}

// ChannelByName returns the first channel named name, or nil.
func (s *Server) ChannelByName(name string) *discordgo.Channel {
	for _, c := range s.Channels() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Messages returns the channel's live messages, oldest first; nil for an unknown channel.
func (s *Server) Messages(channelID string) []*Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.channels[channelID]
	if !ok {
		return nil
	}
	out := make([]*Message, 0, len(cs.messages))
	for _, m := range cs.messages {
		out = append(out, copyMessage(m))
	}
	return out
}

// Pins returns the ids of the channel's pinned messages, most recent pin first.
func (s *Server) Pins(channelID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs, ok := s.channels[channelID]; ok {
		return append([]string(nil), cs.pins...)
	}
	return nil
}

// Webhooks returns the live (not deleted) webhooks.
func (s *Server) Webhooks() []*discordgo.Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*discordgo.Webhook
	for _, w := range s.webhooks {
		if !w.deleted {
			c := *w.wh
			out = append(out, &c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return idLess(out[i].ID, out[j].ID) })
	return out
}

// Commands returns the application commands registered for guildID ("" for global ones).
func (s *Server) Commands(guildID string) []*discordgo.ApplicationCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*discordgo.ApplicationCommand, 0, len(s.commands[guildID]))
	for _, c := range s.commands[guildID] {
		cp := *c
		out = append(out, &cp)
	}
	return out
}

// InteractionResponses returns every initial response POSTed for an interaction, in order,
// accepted or refused.
func (s *Server) InteractionResponses(interactionID string) []InteractionResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.inters[interactionID]; ok {
		return append([]InteractionResponse(nil), in.responses...)
	}
	return nil
}

// Followups returns the followup messages sent with an interaction token, oldest first.
func (s *Server) Followups(token string) []*Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.byToken[token]
	if !ok {
		return nil
	}
	out := make([]*Message, 0, len(in.followups))
	for _, m := range in.followups {
		out = append(out, copyMessage(m))
	}
	return out
}

// Original returns the current @original response message of an interaction token, or nil when
// the interaction has none (no response yet, a modal, or deleted).
func (s *Server) Original(token string) *Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.byToken[token]; ok && in.original != nil {
		return copyMessage(in.original)
	}
	return nil
}

// TopicEdits returns when the channel's accepted name/topic changes happened, oldest first; its
// length is their count.
func (s *Server) TopicEdits(channelID string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs, ok := s.channels[channelID]; ok {
		return append([]time.Time(nil), cs.topicEdits...)
	}
	return nil
}

// Presences returns the op 3 presence updates the bot sent, raw.
func (s *Server) Presences() []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]json.RawMessage(nil), s.presences...)
}

// Stats returns the gateway counters.
func (s *Server) Stats() GatewayStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// File returns the stored file of an attachment id.
func (s *Server) File(attachmentID string) (File, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[attachmentID]
	return f, ok
}

// copyMessage deep-copies m through JSON, components included.
func copyMessage(m *Message) *Message {
	out := *m
	out.Message = cloneMsg(m.Message)
	out.Files = append([]File(nil), m.Files...)
	if m.AllowedMentions != nil {
		am := *m.AllowedMentions
		out.AllowedMentions = &am
	}
	return &out
}

func cloneMsg(m *discordgo.Message) *discordgo.Message {
	if m == nil {
		return nil
	}
	b, err := marshalMessage(m)
	if err != nil {
		c := *m
		return &c
	}
	var c discordgo.Message
	if err := json.Unmarshal(b, &c); err != nil {
		c := *m
		return &c
	}
	return &c
}

type plainMessage discordgo.Message

// marshalMessage encodes m with its components, which discordgo.Message leaves out of JSON.
func marshalMessage(m *discordgo.Message) ([]byte, error) {
	comps := m.Components
	if comps == nil {
		comps = []discordgo.MessageComponent{}
	}
	return json.Marshal(struct {
		*plainMessage
		Components []discordgo.MessageComponent `json:"components"`
	}{(*plainMessage)(m), comps})
}

// idLess orders snowflakes numerically.
func idLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func nowUTC() time.Time { return time.Now().UTC() }
