package bridge

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/msn-bridge/msn-bridge/msn"
)

// Config tunes the core. Zero fields take the defaults noted.
type Config struct {
	// MSN is the template of every account's msn.Config (server, Passport URLs, timeouts). Its
	// InitialStatus and InitialPSM are replaced by each account's stored choice; its Log by
	// Options.Log.
	MSN msn.Config `yaml:"-"`
	// LoginRate is the number of MSN login attempts per second allowed across all accounts
	// (default 2); LoginBurst how many may start at once (default 5). The logins the core makes
	// itself (stored accounts at Start, reconnects) and those users ask for each have a budget
	// of that size, so that users' attempts never delay a reconnect: the server sees at most
	// twice the rate.
	LoginRate  float64 `yaml:"login_rate"`
	LoginBurst int     `yaml:"login_burst"`
	// UserLoginInterval is how often one frontend user may attempt a login once
	// UserLoginBurst attempts are spent (defaults DefaultUserLoginInterval and
	// DefaultUserLoginBurst). After more than UserLoginBurst refused passwords in a row, each
	// further refusal locks the user out for twice as long as the one before, from two
	// intervals up to 15 minutes.
	UserLoginInterval time.Duration `yaml:"user_login_interval"`
	UserLoginBurst    int           `yaml:"user_login_burst"`
	// Reconnect tunes the backoff after a lost session or failed re-login.
	Reconnect ReconnectConfig `yaml:"reconnect"`
	// StableAfter is how long a session must last for the backoff to start over (default 1 min).
	StableAfter time.Duration `yaml:"stable_after"`
	// PresenceWindow is the coalescing window of contact presence updates (default 250 ms).
	PresenceWindow time.Duration `yaml:"presence_window"`
	// PresenceGrace is how long after a reconnect contacts keep the presence and PSM they had
	// before it, unless the server reports them meanwhile (default 3 s): the server sends them
	// after the contact list, and frontends should not see everyone go offline and back.
	PresenceGrace time.Duration `yaml:"presence_grace"`
	// FrontendQueueSize bounds the non-coalescable events waiting per account and frontend
	// (default 4096). See Frontend for the overflow policy.
	FrontendQueueSize int `yaml:"frontend_queue_size"`
	// LinkCodeTTL is how long a link code stays valid (default 10 min).
	LinkCodeTTL time.Duration `yaml:"link_code_ttl"`
	// SendLimit paces what each account sends to MSN.
	SendLimit SendLimitConfig `yaml:"send_limit"`
	// Media bounds display pictures, emoticons, winks and files (see MediaConfig).
	Media MediaConfig `yaml:"media"`
}

func (c *Config) setDefaults() {
	if c.LoginRate <= 0 {
		c.LoginRate = 2
	}
	if c.LoginBurst <= 0 {
		c.LoginBurst = 5
	}
	if c.StableAfter <= 0 {
		c.StableAfter = time.Minute
	}
	if c.PresenceWindow <= 0 {
		c.PresenceWindow = DefaultPresenceWindow
	}
	if c.PresenceGrace <= 0 {
		c.PresenceGrace = DefaultPresenceGrace
	}
	if c.FrontendQueueSize <= 0 {
		c.FrontendQueueSize = DefaultFrontendQueueSize
	}
	if c.LinkCodeTTL <= 0 {
		c.LinkCodeTTL = 10 * time.Minute
	}
	c.Reconnect = c.Reconnect.withDefaults()
	c.SendLimit = c.SendLimit.withDefaults()
	c.Media = c.Media.withDefaults()
	// The session enforces the same caps while data arrives.
	if c.MSN.MaxObjectSize <= 0 || c.MSN.MaxObjectSize > c.Media.MaxObjectSize {
		c.MSN.MaxObjectSize = c.Media.MaxObjectSize
	}
	if c.MSN.MaxFileSize <= 0 || c.MSN.MaxFileSize > c.Media.MaxFileSize {
		c.MSN.MaxFileSize = c.Media.MaxFileSize
	}
}

// Options are the collaborators of a Core. Store is required.
type Options struct {
	Store   *Store
	Log     zerolog.Logger
	Metrics *Metrics // nil records nothing
	Clock   Clock    // nil is the wall clock
	// Rand is the jitter source of the reconnect backoff (uniform in [0, 1)); nil is math/rand.
	Rand func() float64

	dial   dialFunc   // tests replace the MSN client
	verify verifyFunc // and the credential check
}

// verifyFunc checks a password without logging in (msn.VerifyCredentials).
type verifyFunc func(ctx context.Context, handle, password string) error

// Core owns every Account, the store, the login rate limiters and the registered frontends.
// Create it with NewCore, Load the stored accounts, register frontends with AddFrontend (or
// start frontends that do), then Start. All methods are safe for concurrent use. Long-lived
// work (connection loops, presence timers) hangs off the Core's own background context, never
// a caller's.
type Core struct {
	cfg     Config
	store   *Store
	log     zerolog.Logger
	metrics *Metrics
	clock   Clock
	limiter *RateLimiter // the logins the core makes itself
	// attempts is the budget of the logins users ask for; gate limits each user's.
	attempts *RateLimiter
	gate     *loginGate
	policy   ReconnectPolicy
	media    *mediaCore
	dial     dialFunc
	verify   verifyFunc

	bgCtx    context.Context
	bgCancel context.CancelFunc

	mu        sync.Mutex
	accounts  map[string]*Account
	frontends map[string]Frontend
	loaded    bool           // Load took the stored accounts in
	pending   []pendingLogin // loaded accounts for Start to log in
	// loggingIn marks, by handle, the login holding the handle's lock (see lockHandle); its
	// channel is closed when that login ends.
	loggingIn map[string]chan struct{}
	started   bool
	stopping  bool
	actions   sync.WaitGroup
}

// NewCore returns a Core. It does no network I/O; it reads cfg.MSN.CAFile when set.
func NewCore(cfg Config, opts Options) (*Core, error) {
	if opts.Store == nil {
		return nil, fmt.Errorf("%w: no store", ErrInvalidArgument)
	}
	cfg.setDefaults()
	if cfg.MSN.HTTPClient == nil && opts.dial == nil {
		// One Passport client for every session: one connection pool, and no transport of
		// its own in every account's client.
		hc, err := msn.NewPassportHTTPClient(cfg.MSN)
		if err != nil {
			return nil, err
		}
		cfg.MSN.HTTPClient = hc
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	log := opts.Log.With().Str("component", "bridge").Logger()
	cfg.MSN.Log = opts.Log
	c := &Core{
		cfg:       cfg,
		store:     opts.Store,
		log:       log,
		metrics:   opts.Metrics,
		clock:     opts.Clock,
		limiter:   NewRateLimiter(cfg.LoginRate, cfg.LoginBurst, opts.Clock),
		attempts:  NewRateLimiter(cfg.LoginRate, cfg.LoginBurst, opts.Clock),
		gate:      newLoginGate(cfg.UserLoginInterval, cfg.UserLoginBurst, opts.Clock),
		policy:    ReconnectPolicy{Config: cfg.Reconnect, Rand: opts.Rand},
		dial:      opts.dial,
		verify:    opts.verify,
		accounts:  map[string]*Account{},
		frontends: map[string]Frontend{},
		loggingIn: map[string]chan struct{}{},
	}
	if c.dial == nil {
		c.dial = msnDialer(cfg.MSN)
	}
	media, err := newMediaCore(c)
	if err != nil {
		return nil, err
	}
	c.media = media
	if c.verify == nil {
		mc := cfg.MSN
		c.verify = func(ctx context.Context, handle, password string) error {
			return msn.VerifyCredentials(ctx, mc, handle, password)
		}
	}
	c.bgCtx, c.bgCancel = context.WithCancel(context.Background())
	return c, nil
}

// Store returns the core's store.
func (c *Core) Store() *Store { return c.store }

// Limiter returns the rate limiter of the logins the core makes itself (Start, reconnects).
func (c *Core) Limiter() *RateLimiter { return c.limiter }

func (c *Core) beginAction() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return ErrStopping
	}
	c.actions.Add(1)
	return nil
}

func (c *Core) endAction() { c.actions.Done() }

// AddFrontend registers a frontend. From then on it is attached to every account (loaded,
// logged in or linked later) that has a user of that frontend among its owners, starting at
// once with the accounts the core already has. A frontend registered under the same name
// before is replaced: it is detached from every account (its queued events are still handed to
// it, in the background) and the new one attached in its place, starting with a fresh
// AccountState and ContactSnapshot. Register frontends before Start so no event is missed.
func (c *Core) AddFrontend(fe Frontend) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frontends[fe.Name()] = fe
	for _, a := range c.accountList() {
		c.attachOwnedLocked(a, "")
	}
}

// Frontend returns the frontend registered under name, or nil.
func (c *Core) Frontend(name string) Frontend {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frontends[name]
}

// RemoveFrontend unregisters the frontend named name and detaches it from every account,
// delivering the events already queued for it until ctx is done (then delivery is abandoned and
// the frontend's HandleEvent ctx cancelled). Once it returns, the core hands that frontend no
// more events and attaches it to no account; its users stay linked, so registering a frontend
// of that name again attaches it again. Removing an unknown name is a no-op.
func (c *Core) RemoveFrontend(ctx context.Context, name string) {
	c.mu.Lock()
	delete(c.frontends, name)
	accounts := c.accountList()
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.Detach(ctx, name)
		}()
	}
	wg.Wait()
}

// attachOwned attaches the registered frontends that have an owner of a and are not attached
// yet (or attached as another instance). The one named held, if any, is attached with delivery
// held (see LoginOptions.HoldDelivery).
func (c *Core) attachOwned(a *Account, held string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attachOwnedLocked(a, held)
}

// attachOwnedLocked is attachOwned with c.mu held, so that no frontend is attached after
// RemoveFrontend unregistered it.
func (c *Core) attachOwnedLocked(a *Account, held string) {
	var fes []Frontend
	for _, owner := range a.Owners() {
		if fe, ok := c.frontends[owner.Frontend]; ok && !slices.ContainsFunc(fes, func(f Frontend) bool { return f.Name() == fe.Name() }) {
			fes = append(fes, fe)
		}
	}
	for _, fe := range fes {
		a.attach(fe, held != "" && fe.Name() == held, true)
	}
}

func (c *Core) accountList() []*Account {
	out := make([]*Account, 0, len(c.accounts))
	for _, a := range c.accounts {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].handle < out[j].handle })
	return out
}

// Load reads the stored accounts and their links into the core, without logging any in: from
// then on Account finds them, and frontends registered with AddFrontend are attached to the
// accounts they own, so a frontend started before the core sees every stored account (an
// account about to log in is StateConnecting) instead of none. Start loads first when Load was
// not called. Load fails when no stored password can be decrypted (a wrong credentials key);
// calling it again after it succeeded is a no-op.
func (c *Core) Load(ctx context.Context) error {
	c.mu.Lock()
	if c.loaded || c.stopping {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()

	recs, err := c.store.ListAccounts(ctx)
	if err != nil {
		return err
	}
	allLinks, err := c.store.AllLinks(ctx)
	if err != nil {
		return err
	}
	var toStart []pendingLogin
	var keyFailures, tried int
	accounts := make([]*Account, 0, len(recs))
	for _, rec := range recs {
		acc := newAccount(c, rec)
		acc.owners = allLinks[rec.Handle]
		accounts = append(accounts, acc)
		if !rec.LoggedIn {
			if rec.LastError != "" {
				acc.state = AccountState{State: StateStopped, Err: errors.New(rec.LastError)}
				c.metrics.accountState(StateLoggedOut, StateStopped)
			}
			continue
		}
		tried++
		password, err := c.store.Credentials(ctx, rec.Handle)
		if errors.Is(err, ErrWrongKey) {
			keyFailures++
			acc.state = AccountState{State: StateStopped, Reason: StopKeyError, Err: ErrWrongKey}
			c.metrics.accountState(StateLoggedOut, StateStopped)
			continue
		} else if err != nil {
			return err
		}
		acc.state = AccountState{State: StateConnecting}
		c.metrics.accountState(StateLoggedOut, StateConnecting)
		toStart = append(toStart, pendingLogin{acc, password})
	}
	if tried > 0 && keyFailures == tried {
		for _, a := range accounts {
			c.metrics.accountState(a.state.State, "")
		}
		return fmt.Errorf("failed to decrypt any stored password: %w", ErrWrongKey)
	}
	c.mu.Lock()
	if c.loaded {
		c.mu.Unlock()
		for _, a := range accounts {
			c.metrics.accountState(a.state.State, "")
		}
		return nil
	}
	c.loaded = true
	for _, a := range accounts {
		c.accounts[a.handle] = a
	}
	c.pending = toStart
	c.mu.Unlock()
	for _, a := range accounts {
		c.attachOwned(a, "")
	}
	if keyFailures > 0 {
		c.log.Error().Int("accounts", keyFailures).Msg("Stored credentials of some accounts cannot be decrypted")
	}
	c.log.Info().Int("accounts", len(accounts)).Int("to_log_in", len(toStart)).Msg("Loaded stored accounts")
	return nil
}

// pendingLogin is a loaded account that Start logs in.
type pendingLogin struct {
	acc      *Account
	password string
}

// Start loads the stored accounts (see Load) unless that was done, then logs in those stored as
// logged in, through the login rate limiter: it returns quickly and the logins go on in the
// background. It fails as Load does; an account whose credentials alone cannot be decrypted is
// stopped with StopKeyError.
func (c *Core) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.started || c.stopping {
		c.mu.Unlock()
		return fmt.Errorf("%w: core already started", ErrInvalidArgument)
	}
	c.started = true
	c.mu.Unlock()

	if err := c.Load(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	toStart := c.pending
	c.pending = nil
	n := len(c.accounts)
	c.mu.Unlock()
	for _, p := range toStart {
		p.acc.startLoop(p.password, nil)
	}
	c.media.startTrim() // the cache may be over a cache_size lowered since the last run
	c.log.Info().Int("accounts", n).Int("logging_in", len(toStart)).Msg("Bridge core started")
	return nil
}

// Stop shuts the core down in order: new actions are refused (ErrStopping), actions in flight
// (sends waiting for their ACK) are given until ctx ends to finish, frontends are detached after
// their queued events are delivered (again bounded by ctx), and finally every MSN session is
// logged out. Accounts stay marked logged in, so the next Start logs them back in.
func (c *Core) Stop(ctx context.Context) error {
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return nil
	}
	c.stopping = true
	accounts := c.accountList()
	c.mu.Unlock()

	actionsDone := make(chan struct{})
	go func() {
		c.actions.Wait()
		close(actionsDone)
	}()
	select {
	case <-actionsDone:
	case <-ctx.Done():
		c.log.Warn().Msg("Stopping with actions still in flight")
	}

	var wg sync.WaitGroup
	for _, a := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.detachAll(ctx)
		}()
	}
	wg.Wait()

	c.bgCancel()
	for _, a := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.stopLoop(ctx)
			a.mu.Lock()
			a.setStateLocked(AccountState{State: StateStopped, Reason: StopShutdown})
			a.mu.Unlock()
		}()
	}
	wg.Wait()
	c.media.close()
	c.log.Info().Msg("Bridge core stopped")
	return ctx.Err()
}

// Account returns the account with handle, or nil.
func (c *Core) Account(handle string) *Account {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accounts[NormalizeHandle(handle)]
}

// Accounts returns every account, sorted by handle.
func (c *Core) Accounts() []*Account {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accountList()
}

// AccountsFor returns the accounts user is linked to, sorted by handle.
func (c *Core) AccountsFor(user FrontendUser) []*Account {
	var out []*Account
	for _, a := range c.Accounts() {
		if a.IsOwner(user) {
			out = append(out, a)
		}
	}
	return out
}

// LoginOptions change what Core.LoginWith does once the login succeeded.
type LoginOptions struct {
	// HoldDelivery attaches the owner's frontend with delivery held: the account's events are
	// queued for it from the login on (under the usual queue policy, so nothing is lost), but
	// its HandleEvent is not called until the caller calls Account.ResumeDelivery with its
	// name — typically once it has stored its own record of the login, which HandleEvent needs.
	// If the frontend is detached before that (e.g. by a Logout undoing the login), the held
	// events are discarded. It has no effect when the frontend is already attached.
	HoldDelivery bool
}

// Login logs handle in to MSN with password on behalf of owner, blocking until MSN accepted or
// refused it (ctx bounds the wait, including the waits for the rate limiters). Only a
// successful login stores anything: the account, the password (encrypted) and owner's link.
// Then the owner's frontend, if registered, is attached, and the session is kept alive by the
// reconnect policy. It is LoginWith with zero options.
//
// The password of a login of a known account is proved before anything of the account is
// touched: by a constant-time match with the stored one, or else by MSN without starting a
// session (msn.VerifyCredentials), which leaves a live session alone. A refused password
// changes nothing, running or stopped, and fails as it would for an unknown handle, so an
// attempt does not tell whether a handle is bridged. Once the password is proved:
//   - a user who is not an owner gets ErrAlreadyBridged (owners attach other users and
//     frontends with IssueLinkCode);
//   - an owner whose account runs with the same password is just attached again, without a
//     second MSN login (it would kick the first with OUT OTH);
//   - otherwise (a new password, or a stopped account) the account is logged in with it,
//     replacing the running session.
//
// Each frontend user has a limit of attempts of their own (Config.UserLoginInterval and
// UserLoginBurst), tightening after refused passwords; refused attempts fail with
// *TooManyAttemptsError. Users' attempts share one budget of Config.LoginRate, apart from the
// core's own logins.
//
// Errors: ErrInvalidHandle, ErrAlreadyBridged, *TooManyAttemptsError, *LoginError (errors.Is
// ErrBadCredentials for a refused password; Retryable for a busy or unreachable server),
// ErrStopping.
func (c *Core) Login(ctx context.Context, owner FrontendUser, handle, password string) (*Account, error) {
	return c.LoginWith(ctx, owner, handle, password, LoginOptions{})
}

// LoginWith is Login with options; see LoginOptions.
func (c *Core) LoginWith(ctx context.Context, owner FrontendUser, handle, password string, opts LoginOptions) (*Account, error) {
	held := ""
	if opts.HoldDelivery {
		held = owner.Frontend
	}
	if err := c.beginAction(); err != nil {
		return nil, err
	}
	defer c.endAction()
	h, err := ValidateHandle(handle)
	if err != nil {
		return nil, err
	}
	if password == "" {
		return nil, fmt.Errorf("%w: empty password", ErrInvalidArgument)
	}
	if owner.Frontend == "" || owner.UserID == "" {
		return nil, fmt.Errorf("%w: no owner", ErrInvalidArgument)
	}
	if err = c.gate.admit(owner); err != nil {
		c.log.Info().Str("owner", owner.String()).Msg("Login attempt refused: too many attempts")
		return nil, err
	}
	acc, err := c.login(ctx, owner, h, password, held)
	c.gate.done(owner, err)
	return acc, err
}

// login is LoginWith once the attempt is admitted.
func (c *Core) login(ctx context.Context, owner FrontendUser, h, password, held string) (*Account, error) {
	proved := false
	for {
		known, err := c.known(ctx, h)
		if err != nil {
			return nil, err
		}
		if known && !proved {
			if err = c.prove(ctx, h, password); err != nil {
				return nil, err
			}
			proved = true
		}
		unlock, err := c.lockHandle(ctx, h)
		if err != nil {
			return nil, err
		}
		// The account may have been logged in by someone else while the lock was awaited.
		if !proved {
			if known, err = c.known(ctx, h); err != nil || known {
				unlock()
				if err != nil {
					return nil, err
				}
				continue
			}
		}
		defer unlock()
		return c.loginLocked(ctx, owner, h, password, held)
	}
}

// known reports whether the core has an account h, or links to one.
func (c *Core) known(ctx context.Context, h string) (bool, error) {
	if c.Account(h) != nil {
		return true, nil
	}
	links, err := c.store.LinksFor(ctx, h)
	return len(links) > 0, err
}

// prove checks password for the known account h without touching it: a constant-time match
// with the stored password needs no network; otherwise MSN checks it up to the Passport ticket,
// which ends no session. A refusal is the *LoginError a login with that password returns.
func (c *Core) prove(ctx context.Context, h, password string) error {
	if stored, err := c.store.Credentials(ctx, h); err == nil && subtle.ConstantTimeCompare([]byte(stored), []byte(password)) == 1 {
		return nil
	}
	if err := c.attempts.Wait(ctx); err != nil {
		return err
	}
	err := c.verify(ctx, h, password)
	if err != nil {
		c.metrics.loginAttempt(loginResult(err))
		return c.loginFailed(h, err)
	}
	c.metrics.loginAttempt("success")
	return nil
}

// loginFailed returns the error of a refused or failed login of h (the same whether h is
// known or not) and logs it.
func (c *Core) loginFailed(h string, err error) error {
	lerr := &LoginError{Handle: h, Retryable: msn.Retryable(err), Err: publicError(err)}
	c.log.Info().Err(lerr.Err).Str("account", h).Msg("MSN login failed")
	return lerr
}

// lockHandle waits until no other login of h is past its password check, then marks this one
// so until unlock is called. Only proved logins, and first logins of unknown handles, take it,
// so an attempt with a wrong password cannot hold up the owner's.
func (c *Core) lockHandle(ctx context.Context, h string) (unlock func(), err error) {
	for {
		c.mu.Lock()
		busy, ok := c.loggingIn[h]
		if !ok {
			mine := make(chan struct{})
			c.loggingIn[h] = mine
			c.mu.Unlock()
			return func() {
				c.mu.Lock()
				delete(c.loggingIn, h)
				c.mu.Unlock()
				close(mine)
			}, nil
		}
		c.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// loginLocked is the login of h once its password is proved (or h is unknown), with the
// handle's lock held.
func (c *Core) loginLocked(ctx context.Context, owner FrontendUser, h, password, held string) (*Account, error) {
	links, err := c.store.LinksFor(ctx, h)
	if err != nil {
		return nil, err
	}
	if len(links) > 0 && !slices.Contains(links, owner) {
		return nil, ErrAlreadyBridged
	}

	existing := c.Account(h)
	if existing != nil && existing.isRunning() {
		stored, err := c.store.Credentials(ctx, h)
		if err == nil && subtle.ConstantTimeCompare([]byte(stored), []byte(password)) == 1 {
			if err = c.store.AddLink(ctx, owner, h); err != nil {
				return nil, err
			}
			existing.addOwner(owner)
			c.attachOwned(existing, held)
			return existing, nil
		}
	}

	acc := existing
	var before AccountState
	wasRunning := false
	if acc == nil {
		acc = newAccount(c, &AccountRecord{Handle: h, DesiredStatus: StatusOnline})
	} else {
		before, wasRunning = acc.State(), acc.isRunning()
	}
	if err = c.attempts.Wait(ctx); err != nil {
		if existing == nil {
			c.metrics.accountState(StateLoggedOut, "")
		}
		return nil, err
	}
	if wasRunning {
		// Log the old session out first: two logins of one account kick each other.
		existing.stopLoop(ctx)
	}
	acc.setState(AccountState{State: StateConnecting})
	live, err := acc.connect(ctx, password)
	if err != nil {
		switch {
		case wasRunning:
			// Keep the account going with its stored password.
			if old, cerr := c.store.Credentials(c.bgCtx, h); cerr == nil {
				existing.startLoop(old, nil)
			}
		case existing != nil:
			existing.setState(before)
		default:
			c.metrics.accountState(StateConnecting, "")
		}
		return nil, c.loginFailed(h, err)
	}
	rec := &AccountRecord{Handle: h, Created: c.clock.Now(), DesiredStatus: StatusOnline, LoggedIn: true, State: string(StateOnline)}
	if existing != nil {
		st, psm, name := existing.Profile()
		rec.DesiredStatus, rec.PSM, rec.FriendlyName = st, psm, name
	}
	if err = c.store.SaveLogin(ctx, rec, password, owner); err != nil {
		acc.endSession(live)
		return nil, err
	}
	acc.addOwner(owner)
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		acc.endSession(live)
		return nil, ErrStopping
	}
	c.accounts[h] = acc
	c.mu.Unlock()
	acc.startLoop(password, live)
	c.attachOwned(acc, held)
	c.log.Info().Str("account", h).Str("owner", owner.String()).Msg("MSN account logged in")
	return acc, nil
}

// Logout unlinks owner from the account and detaches owner's frontend. When no owner is left,
// the MSN session is logged out and the account, its credentials and its links are deleted.
// It fails with ErrAccountNotFound or ErrNotOwner.
func (c *Core) Logout(ctx context.Context, owner FrontendUser, handle string) error {
	if err := c.beginAction(); err != nil {
		return err
	}
	defer c.endAction()
	acc := c.Account(handle)
	if acc == nil {
		return ErrAccountNotFound
	}
	remaining, err := c.store.RemoveLink(ctx, owner, acc.handle)
	if err != nil {
		return err
	}
	acc.removeOwner(owner)
	if !slices.ContainsFunc(acc.Owners(), func(u FrontendUser) bool { return u.Frontend == owner.Frontend }) {
		acc.Detach(ctx, owner.Frontend)
	}
	if remaining > 0 {
		return nil
	}
	acc.stopLoop(ctx)
	acc.setState(AccountState{State: StateLoggedOut})
	acc.detachAll(ctx)
	c.metrics.accountState(StateLoggedOut, "")
	c.mu.Lock()
	delete(c.accounts, acc.handle)
	c.mu.Unlock()
	if err = c.store.DeleteAccount(ctx, acc.handle); err != nil {
		return err
	}
	c.log.Info().Str("account", acc.handle).Msg("MSN account logged out")
	return nil
}

// linkCodeAlphabet avoids look-alike characters (no 0/O, 1/I/L).
const linkCodeAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

// IssueLinkCode returns a one-time code with which another frontend user can attach to the
// account (RedeemLinkCode), valid for Config.LinkCodeTTL. issuer must own the account. Only a
// hash of the code is stored.
func (c *Core) IssueLinkCode(ctx context.Context, handle string, issuer FrontendUser) (code string, expires time.Time, err error) {
	acc := c.Account(handle)
	if acc == nil {
		return "", time.Time{}, ErrAccountNotFound
	}
	if !acc.IsOwner(issuer) {
		return "", time.Time{}, ErrNotOwner
	}
	raw := make([]byte, 12)
	if _, err = rand.Read(raw); err != nil {
		return "", time.Time{}, fmt.Errorf("failed to generate link code: %w", err)
	}
	var b strings.Builder
	for i, x := range raw {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(linkCodeAlphabet[int(x)%len(linkCodeAlphabet)])
	}
	code = b.String()
	expires = c.clock.Now().Add(c.cfg.LinkCodeTTL)
	if err = c.store.PutLinkCode(ctx, normalizeLinkCode(code), acc.handle, issuer, expires); err != nil {
		return "", time.Time{}, err
	}
	return code, expires, nil
}

func normalizeLinkCode(code string) string {
	code = strings.ToUpper(code)
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, code)
}

// RedeemLinkCode consumes a link code and links newOwner to its account, attaching newOwner's
// frontend. It is RedeemLinkCodeWith with zero options.
func (c *Core) RedeemLinkCode(ctx context.Context, code string, newOwner FrontendUser) (*Account, error) {
	return c.RedeemLinkCodeWith(ctx, code, newOwner, LoginOptions{})
}

// RedeemLinkCodeWith consumes a link code and links newOwner to its account, attaching
// newOwner's frontend (with delivery held when opts.HoldDelivery; see LoginOptions). A code
// works once, whether or not it succeeds, and only while its issuer still owns the account.
// Redeeming counts as a login attempt of newOwner: it passes the same per-user limit as Login,
// and a wrong code counts as a refused password, so codes cannot be guessed in bulk.
//
// Errors: ErrInvalidLinkCode for an unknown, used or expired code; ErrLinkedElsewhere if
// another user of newOwner's frontend owns the account; *TooManyAttemptsError; ErrStopping.
func (c *Core) RedeemLinkCodeWith(ctx context.Context, code string, newOwner FrontendUser, opts LoginOptions) (*Account, error) {
	if err := c.beginAction(); err != nil {
		return nil, err
	}
	defer c.endAction()
	if newOwner.Frontend == "" || newOwner.UserID == "" {
		return nil, fmt.Errorf("%w: no owner", ErrInvalidArgument)
	}
	if err := c.gate.admit(newOwner); err != nil {
		c.log.Info().Str("owner", newOwner.String()).Msg("Link code refused: too many attempts")
		return nil, err
	}
	acc, err := c.redeem(ctx, code, newOwner, opts)
	c.gate.done(newOwner, err)
	if errors.Is(err, ErrInvalidLinkCode) {
		c.log.Info().Str("owner", newOwner.String()).Msg("Invalid link code")
	}
	return acc, err
}

// redeem is RedeemLinkCodeWith once the attempt is admitted.
func (c *Core) redeem(ctx context.Context, code string, newOwner FrontendUser, opts LoginOptions) (*Account, error) {
	handle, issuer, err := c.store.TakeLinkCode(ctx, normalizeLinkCode(code), c.clock.Now())
	if err != nil {
		return nil, err
	}
	acc := c.Account(handle)
	if acc == nil || !acc.IsOwner(issuer) {
		return nil, ErrInvalidLinkCode
	}
	if err = c.store.AddLink(ctx, newOwner, handle); err != nil {
		return nil, err
	}
	acc.addOwner(newOwner)
	held := ""
	if opts.HoldDelivery {
		held = newOwner.Frontend
	}
	c.attachOwned(acc, held)
	c.log.Info().Str("account", handle).Str("owner", newOwner.String()).Msg("Frontend user linked with a link code")
	return acc, nil
}
