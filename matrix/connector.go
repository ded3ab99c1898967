package matrix

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/configupgrade"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/status"
	"maunium.net/go/mautrix/event"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// MSNConnector is the bridgev2 NetworkConnector of the MSN network. It owns no MSN session:
// sessions live in the core (bridge.Core), and each UserLogin's MSNClient attaches to the
// core's Account of the same handle.
type MSNConnector struct {
	Bridge *bridgev2.Bridge
	Core   *bridge.Core
	Config Config

	fe       *Frontend
	log      zerolog.Logger
	nameTmpl *template.Template
	presence *presenceManager
	// media is the core's media calls (a seam for tests); emoticons the uploaded custom
	// emoticons.
	media     mediaCore
	emoticons emoticonCache
	// features are the room features, made at their first use with the core's file size cap.
	featuresOnce sync.Once
	features     *event.RoomFeatures

	// ghostLocks serialise the name updates of one ghost (chosen by handle) across logins.
	ghostLocks [64]sync.Mutex

	loadedMu sync.Mutex
	loaded   chan struct{} // closed and replaced whenever a UserLogin is loaded
	waited   map[string]bool
	// loginWaits counts the times an event had to wait for a UserLogin being created.
	loginWaits atomic.Int64
	// beforeNewLogin, when set (by tests), runs between the core's login and the UserLogin's
	// creation.
	beforeNewLogin func()
}

var (
	_ bridgev2.NetworkConnector            = (*MSNConnector)(nil)
	_ bridgev2.IdentifierValidatingNetwork = (*MSNConnector)(nil)
	_ bridgev2.ConfigValidatingNetwork     = (*MSNConnector)(nil)
	_ bridgev2.StoppableNetwork            = (*MSNConnector)(nil)
)

// NewConnector returns the connector for core with cfg (which must be valid). It does no I/O.
func NewConnector(core *bridge.Core, cfg Config) (*MSNConnector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tmpl, err := template.New("displayname").Parse(cfg.DisplaynameTemplate)
	if err != nil {
		return nil, fmt.Errorf("matrix config: displayname_template: %w", err)
	}
	if cfg.LoginTimeout <= 0 {
		cfg.LoginTimeout = time.Minute
	}
	return &MSNConnector{
		Core:     core,
		Config:   cfg,
		nameTmpl: tmpl,
		media:    coreMedia{core},
		loaded:   make(chan struct{}),
		waited:   map[string]bool{},
	}, nil
}

// Init stores the bridge and registers the MSN commands. It does no I/O.
func (mc *MSNConnector) Init(br *bridgev2.Bridge) {
	mc.Bridge = br
	mc.log = br.Log.With().Str("component", "msn_connector").Logger()
	mc.presence = newPresenceManager(mc.Config.Presence, mc.log)
	if proc, ok := br.Commands.(*commands.Processor); ok {
		proc.AddHandlers(mc.commandHandlers()...)
		proc.AddHandler(mc.versionCommand())
	}
}

// versionCommand is the bot's version command, as mautrix bridges have it.
func (mc *MSNConnector) versionCommand() *commands.FullHandler {
	return &commands.FullHandler{
		Name: "version",
		Help: commands.HelpMeta{Section: commands.HelpSectionGeneral, Description: "Get the bridge version."},
		Func: func(ce *commands.Event) {
			ce.Reply("msn-bridge %s (mautrix-go %s, %s)", mc.version(), mautrix.VersionWithCommit, runtime.Version())
		},
	}
}

// version is the bridge's version, "unknown" when the program set none.
func (mc *MSNConnector) version() string {
	if mc.Config.Version == "" {
		return "unknown"
	}
	return mc.Config.Version
}

// Start starts the presence refresher; logins are started by bridgev2 separately.
func (mc *MSNConnector) Start(ctx context.Context) error {
	mc.presence.start()
	return nil
}

// Stop stops the presence refresher.
func (mc *MSNConnector) Stop() {
	mc.presence.stop()
}

// GetName describes the network for m.bridge events and the bridge bot.
func (mc *MSNConnector) GetName() bridgev2.BridgeName {
	return bridgev2.BridgeName{
		DisplayName:          "MSN",
		NetworkURL:           "https://escargot.chat",
		NetworkID:            "msn",
		BeeperBridgeType:     "github.com/msn-bridge/msn-bridge",
		DefaultPort:          29340,
		DefaultCommandPrefix: "!msn",
	}
}

// GetDBMetaTypes returns no metadata types: everything MSN-specific is in the core's tables.
func (mc *MSNConnector) GetDBMetaTypes() database.MetaTypes {
	return database.MetaTypes{}
}

// GetConfig returns the target of the frontend's own options, without an example or upgrader:
// only mxmain reads them, and the main program, which decodes the options itself, documents
// them in config.example.yaml.
func (mc *MSNConnector) GetConfig() (example string, data any, upgrader configupgrade.Upgrader) {
	return "", &mc.Config, nil
}

// ValidateConfig implements bridgev2.ConfigValidatingNetwork.
func (mc *MSNConnector) ValidateConfig() error { return mc.Config.Validate() }

// GetBridgeInfoVersion is bumped when m.bridge content or room capabilities change.
func (mc *MSNConnector) GetBridgeInfoVersion() (info, capabilities int) { return 1, 2 }

// ValidateUserID reports whether id is an MSN handle.
func (mc *MSNConnector) ValidateUserID(id networkid.UserID) bool {
	_, err := parseUserID(id)
	return err == nil
}

// LoadUserLogin fills login.Client with an MSNClient for the core's account of the same
// handle. It does no I/O; Connect attaches to the account.
func (mc *MSNConnector) LoadUserLogin(ctx context.Context, login *bridgev2.UserLogin) error {
	login.Client = newMSNClient(mc, login)
	mc.loadedMu.Lock()
	delete(mc.waited, string(login.ID))
	close(mc.loaded)
	mc.loaded = make(chan struct{})
	mc.loadedMu.Unlock()
	return nil
}

// userLogin returns the UserLogin of handle. A login that is not stored yet is waited for, up to
// loginWait, once per handle. The password login holds the core's delivery until the UserLogin
// exists, so this wait is only a safety net (e.g. for a login stored by another process).
func (mc *MSNConnector) userLogin(ctx context.Context, handle string) (*bridgev2.UserLogin, error) {
	const loginWait = 30 * time.Second
	id := makeUserLoginID(handle)
	deadline := time.NewTimer(loginWait)
	defer deadline.Stop()
	for {
		mc.loadedMu.Lock()
		ch := mc.loaded
		mc.loadedMu.Unlock()
		login, err := mc.existingLogin(ctx, id)
		if err != nil || login != nil {
			return login, err
		}
		mc.loadedMu.Lock()
		waited := mc.waited[string(id)]
		mc.loadedMu.Unlock()
		if waited {
			return nil, nil
		}
		mc.loginWaits.Add(1)
		select {
		case <-ch:
		case <-time.After(250 * time.Millisecond):
		case <-deadline.C:
			mc.loadedMu.Lock()
			mc.waited[string(id)] = true
			mc.loadedMu.Unlock()
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// lockGhost locks the ghost of handle for a name update and returns its unlock.
func (mc *MSNConnector) lockGhost(handle string) (unlock func()) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(handle))
	mu := &mc.ghostLocks[h.Sum32()%uint32(len(mc.ghostLocks))]
	mu.Lock()
	return mu.Unlock
}

// existingLogin returns the stored UserLogin id (nil when there is none), loading its user, and
// with it the user's logins, when bridgev2 has not loaded them yet. It does not use
// Bridge.GetExistingUserLoginByID for a login that is not loaded: bridgev2 v0.32.0 then loads
// the login twice (once with its user, then again), leaving a second UserLogin with a client and
// a bridge state goroutine of its own.
func (mc *MSNConnector) existingLogin(ctx context.Context, id networkid.UserLoginID) (*bridgev2.UserLogin, error) {
	if login := mc.Bridge.GetCachedUserLoginByID(id); login != nil {
		return login, nil
	}
	row, err := mc.Bridge.DB.UserLogin.GetByID(ctx, id)
	if err != nil || row == nil {
		return nil, err
	}
	if _, err = mc.Bridge.GetUserByMXID(ctx, row.UserMXID); err != nil {
		return nil, err
	}
	return mc.Bridge.GetCachedUserLoginByID(id), nil
}

// Frontend is the Matrix frontend: a bridgev2 bridge whose network connector mirrors the core's
// accounts. It implements bridge.Frontend.
type Frontend struct {
	core      *bridge.Core
	connector *MSNConnector
	br        *bridgev2.Bridge
	mx        *matrix.Connector // nil when a test supplies its own MatrixConnector
	log       zerolog.Logger

	mu      sync.Mutex
	started bool
	// beforeStartLogins, when set (by tests), runs between the frontend's registration with the
	// core (whose deliveries may then begin) and bridgev2 loading the stored logins.
	beforeStartLogins func()
}

var _ bridge.Frontend = (*Frontend)(nil)

// New builds the bridgev2 stack (the bridgev2/matrix connector, bridgev2.NewBridge with the
// command processor, and the MSN connector) for bcfg's homeserver, appservice, bridge, matrix
// and provisioning sections. db is opened by the caller and shared with the core; bridgev2
// upgrades its own tables in it (its "version" table) on Start and never closes it. Nothing
// runs until Start.
func New(core *bridge.Core, bcfg *bridgeconfig.Config, cfg Config, db *dbutil.Database, log zerolog.Logger) (*Frontend, error) {
	if core == nil || bcfg == nil || db == nil {
		return nil, errors.New("matrix frontend needs a core, a bridge config and a database")
	}
	if bcfg.Bridge.BridgeStatusNotices == "" {
		bcfg.Bridge.BridgeStatusNotices = "errors"
	}
	mx := matrix.NewConnector(bcfg)
	mx.IgnoreUnsupportedServer = cfg.IgnoreUnsupportedServer
	mx.BridgeStateVersion = &StateVersion{
		Name:           "msn-bridge",
		Version:        cfg.Version,
		GoVersion:      runtime.Version(),
		MautrixVersion: mautrix.VersionWithCommit,
	}
	if cfg.IgnoreUnsupportedServer {
		log = log.Hook(outdatedServerHook(mx, log))
	}
	fe, err := newFrontend(core, cfg, mx, &bcfg.Bridge, db, log)
	if err != nil {
		return nil, err
	}
	if err = checkEncryption(&bcfg.Encryption, mx); err != nil {
		return nil, err
	}
	fe.mx = mx
	// bridgev2 recognises the echoes of double-puppeted events by this marker; mxmain sets it
	// to the bridge's name.
	mx.AS.DoublePuppetValue = DoublePuppetValue
	// The appservice API reads whole request bodies into memory before checking them; a
	// homeserver never sends transactions anywhere near this size, so cap them.
	mx.AS.Middleware = append(mx.AS.Middleware, limitBody(MaxTransactionBytes))
	return fe, nil
}

// StateErrors explains each error code of the bridge states the frontend sends, for clients
// and status endpoints that show a state by its code.
var StateErrors = status.BridgeStateErrorMap{
	"msn-reconnecting":           "Connection to MSN lost, reconnecting",
	"msn-bad-credentials":        badCredentialsMessage,
	"msn-logged-in-elsewhere":    loggedInElsewhereMessage,
	"msn-credentials-unreadable": credentialsUnreadableMessage,
	"msn-server-refused":         "The MSN server refused the session",
	"msn-stopped":                "The MSN session stopped",
	"msn-not-logged-in":          notLoggedInMessage,
}

// The messages of the states whose text never varies: bridgev2 replaces the message of a state
// whose code is in status.BridgeStateHumanErrors with the table's text, so only these codes are
// registered there, with the very text the frontend sends. The others carry details (the time of
// the next attempt, the server's error) that the table would erase.
var (
	badCredentialsMessage        = bridge.Sentence(bridge.StopBadCredentials.Describe()) + " Log in again with the new password."
	loggedInElsewhereMessage     = bridge.Sentence(bridge.StopOtherLocation.Describe()) + " Use `reconnect` to take the session back."
	credentialsUnreadableMessage = bridge.Sentence(bridge.StopKeyError.Describe()) + " Log in again."
	notLoggedInMessage           = "The MSN account is not logged in to the bridge; log in again"
)

func init() {
	for _, code := range []status.BridgeStateErrorCode{"msn-bad-credentials", "msn-logged-in-elsewhere", "msn-credentials-unreadable", "msn-not-logged-in"} {
		status.BridgeStateHumanErrors[code] = StateErrors[code]
	}
}

// StateVersion is the version sent in every bridge state (the "version" field), as mautrix
// bridges send it.
type StateVersion struct {
	Name           string `json:"name"`
	Version        string `json:"version"`
	GoVersion      string `json:"go_version"`
	MautrixVersion string `json:"mautrix_version"`
}

// outdatedServerMsg starts the line bridgev2 logs at error level at every start against a
// homeserver advertising spec versions older than it wants.
const outdatedServerMsg = "The homeserver is outdated"

// outdatedServerHook replaces bridgev2's error about an outdated homeserver, which
// ignore_unsupported_server lets the bridge run with, by one warning for the frontend's
// lifetime: an error at every start for a setting the admin chose is noise that hides real
// errors.
func outdatedServerHook(mx *matrix.Connector, log zerolog.Logger) zerolog.Hook {
	var warned atomic.Bool
	return zerolog.HookFunc(func(e *zerolog.Event, level zerolog.Level, msg string) {
		if level != zerolog.ErrorLevel || !strings.HasPrefix(msg, outdatedServerMsg) {
			return
		}
		e.Discard()
		if !warned.CompareAndSwap(false, true) {
			return
		}
		ev := log.Warn().Str("component", "matrix").Stringer("bridge_requires", matrix.MinSpecVersion)
		if mx.SpecVersions != nil {
			ev = ev.Stringer("server_supports", mx.SpecVersions.GetLatest())
		}
		ev.Msg("The homeserver advertises older Matrix spec versions than bridgev2 requires; running anyway because matrix.ignore_unsupported_server is on")
	})
}

// MaxTransactionBytes caps the body of any request to the appservice API (transactions are
// batches of events; Synapse sends at most 100 PDUs and 100 EDUs per transaction).
const MaxTransactionBytes = 16 << 20

// limitBody makes reading a request body past n bytes fail, so the handler answers with an
// error instead of buffering an arbitrarily large request.
func limitBody(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				http.Error(w, `{"errcode":"M_TOO_LARGE","error":"request body too large"}`, http.StatusRequestEntityTooLarge)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, n)
			next.ServeHTTP(w, r)
		})
	}
}

// NewWithConnector is New around a MatrixConnector of the caller's (such as the fake of
// matrix/matrixtest, to run the frontend headless in tests), with bcfg as the bridge section.
func NewWithConnector(core *bridge.Core, cfg Config, mx bridgev2.MatrixConnector, bcfg *bridgeconfig.BridgeConfig, db *dbutil.Database, log zerolog.Logger) (*Frontend, error) {
	if core == nil || mx == nil || bcfg == nil || db == nil {
		return nil, errors.New("matrix frontend needs a core, a matrix connector, a bridge config and a database")
	}
	return newFrontend(core, cfg, mx, bcfg, db, log)
}

// newFrontend builds the frontend around any MatrixConnector (tests use a fake one).
func newFrontend(core *bridge.Core, cfg Config, mx bridgev2.MatrixConnector, bcfg *bridgeconfig.BridgeConfig, db *dbutil.Database, log zerolog.Logger) (*Frontend, error) {
	conn, err := NewConnector(core, cfg)
	if err != nil {
		return nil, err
	}
	log = log.With().Str("component", "matrix").Logger()
	fe := &Frontend{core: core, connector: conn, log: log}
	conn.fe = fe
	fe.br = bridgev2.NewBridge("", db, log, bcfg, mx, conn, commands.NewProcessor)
	// The database belongs to the main program: bridgev2 must not close it.
	fe.br.ExternallyManagedDB = true
	return fe, nil
}

// Bridge returns the bridgev2 bridge (for the provisioning API and tests).
func (f *Frontend) Bridge() *bridgev2.Bridge { return f.br }

// Connector returns the MSN network connector.
func (f *Frontend) Connector() *MSNConnector { return f.connector }

// Name implements bridge.Frontend.
func (f *Frontend) Name() string { return FrontendName }

// Start upgrades bridgev2's tables, starts the Matrix connector (the appservice HTTP listener
// and the homeserver check), registers the frontend with the core and connects the stored
// logins. It returns once everything is running; failures are returned, never exit the
// process.
func (f *Frontend) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started {
		return errors.New("matrix frontend already started")
	}
	ctx = f.log.WithContext(ctx)
	if err := f.br.DB.Upgrade(ctx); err != nil {
		return fmt.Errorf("failed to upgrade bridgev2 database: %w", err)
	}
	if err := f.br.StartConnectors(ctx); err != nil {
		return fmt.Errorf("failed to start matrix connectors: %w", err)
	}
	f.core.AddFrontend(f)
	if f.beforeStartLogins != nil {
		f.beforeStartLogins()
	}
	if err := f.br.StartLogins(ctx); err != nil {
		return fmt.Errorf("failed to start matrix logins: %w", err)
	}
	go f.br.PostStart(f.log.WithContext(context.Background()))
	f.started = true
	return nil
}

// Stop detaches the frontend from every account (letting queued events drain until ctx ends),
// then stops bridgev2. The core keeps running; the database stays open.
func (f *Frontend) Stop(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.started {
		return
	}
	f.started = false
	// A newer instance that replaced this one keeps its registration.
	if fe := f.core.Frontend(FrontendName); fe == nil || fe == bridge.Frontend(f) {
		f.core.RemoveFrontend(ctx, FrontendName)
	}
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Second)
	}
	f.br.StopWithTimeout(timeout)
}

// HandleEvent implements bridge.Frontend: it hands evt to the MSNClient of acc's UserLogin.
// Events of accounts without a Matrix login are dropped (logged at debug level).
func (f *Frontend) HandleEvent(ctx context.Context, acc *bridge.Account, evt bridge.Event) error {
	login, err := f.connector.userLogin(ctx, acc.Handle())
	if err != nil {
		return fmt.Errorf("failed to get user login: %w", err)
	} else if login == nil {
		f.log.Debug().Str("account", acc.Handle()).Str("event_type", evt.EventType()).
			Msg("Dropping event of account without a Matrix login")
		return nil
	}
	client, ok := login.Client.(*MSNClient)
	if !ok {
		return fmt.Errorf("user login %s has no msn client", login.ID)
	}
	return client.handleEvent(ctx, acc, evt)
}

// renderName renders a ghost's display name from the contact's handle and friendly name,
// both cleaned to one line and capped first, the result capped again.
func (mc *MSNConnector) renderName(handle, name string) string {
	handle = bridge.CleanLine(handle, bridge.MaxShownName)
	if name = bridge.CleanLine(name, bridge.MaxShownName); name == "" {
		name = handle
	}
	var b strings.Builder
	if err := mc.nameTmpl.Execute(&b, displaynameParams{Name: name, Handle: handle}); err != nil || b.Len() == 0 {
		return name
	}
	return bridge.CleanLine(b.String(), maxDisplayName)
}
