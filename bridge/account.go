package bridge

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/msn-bridge/msn-bridge/internal/packed"
	"github.com/msn-bridge/msn-bridge/msn"
)

// Account is one MSN login mirrored by the core: its live MSN session (reconnected as the
// reconnect policy says), its contact list with each contact's presence, its open chats and
// the frontends attached to it. All methods are safe for concurrent use. Actions (SendText,
// SetStatus, AddContact, …) block until MSN answers or ctx ends; they never block on frontends.
type Account struct {
	core   *Core
	handle string
	log    zerolog.Logger

	mu       sync.Mutex
	state    AccountState
	owners   []FrontendUser
	profile  ownProfile
	gen      uint64 // generation of the current session; events of older ones are ignored
	live     *liveSession
	contacts contactSet
	chats    map[string]*chatState // by MSN session id
	queues   map[string]*frontendQueue
	presence presenceCoalescer
	armed    bool // a presence flush is scheduled
	seq      uint64
	// ownCalls counts the core's own profile changes (SetStatus, SetPSM, SetName) waiting for
	// the server: while one is, a change the server reports is older than it (see
	// overtakenLocked).
	ownCalls int
	// carriedStatus and carriedPSM are the contacts whose presence, and PSM, were carried over
	// from the previous session and not yet confirmed by the current one (see resyncLocked).
	carriedStatus map[string]bool
	carriedPSM    map[string]bool
	// listFullLogged is set once the account has logged that its contacts reached maxContacts.
	listFullLogged bool
	// requests are the contacts announced as contact requests (see isRequest), so that each is
	// announced once, not again at every login; a handle leaves it when it is no request anymore.
	requests map[string]bool
	// stalePending are the contacts whose stale pending flag is to be cleared on the server
	// (true: blocked), one at a time by clearStalePending while clearing is set.
	stalePending map[string]bool
	clearing     bool

	loop *runLoop // the connection loop, nil when not running

	send *sendGate // paces what the owner sends to MSN; made by the first send (see gate)

	avatars avatarQueue // contacts' display pictures to fetch
	// inOrder are the chat events (messages, nudges) waiting behind a message whose emoticons
	// are being resolved, in order; ordering is set while a goroutine emits them.
	inOrder  []orderedEvent
	ordering bool
	// emoticonPenalty holds, by contact, until when (Unix ns) only cached emoticons of theirs
	// are used (see emoticonPenalty); winking counts the winks being fetched.
	emoticonPenalty map[string]int64
	winking         int
}

type ownProfile struct {
	Status Status
	PSM    string
	Name   string
}

type liveSession struct {
	sess    session
	gen     uint64
	started time.Time
	// ended is set, with cause, when the session reports Disconnected; onEnd, set while the
	// connection loop is parked on this session, is then called once. Guarded by Account.mu.
	ended bool
	cause error
	onEnd func(cause error)
	// restoringName is set while the account's chosen name is being restored after login:
	// until the server reports that name, the names it reports (the one it had stored) are not
	// adopted, so frontends never see the name flap. Guarded by Account.mu.
	restoringName bool
	// online is set once the session's login has been taken into the model (by connect or by
	// the LoggedIn event, whichever comes first). Guarded by Account.mu.
	online bool
}

type runLoop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

type chatState struct {
	id      ChatID
	group   bool
	members map[string]bool   // other participants present
	names   map[string]string // friendly names the switchboard gave them, by handle
}

func newAccount(core *Core, rec *AccountRecord) *Account {
	a := &Account{
		core:    core,
		handle:  rec.Handle,
		log:     core.log.With().Str("account", rec.Handle).Logger(),
		profile: ownProfile{Status: rec.DesiredStatus, PSM: rec.PSM, Name: rec.FriendlyName},
		chats:   map[string]*chatState{},
		queues:  map[string]*frontendQueue{},
		state:   AccountState{State: StateLoggedOut},

		carriedStatus: map[string]bool{},
		carriedPSM:    map[string]bool{},

		requests:     map[string]bool{},
		stalePending: map[string]bool{},
	}
	if a.profile.Status == StatusOffline {
		a.profile.Status = StatusOnline
	}
	core.metrics.accountState("", StateLoggedOut)
	return a
}

// Handle returns the account's lower-cased MSN handle.
func (a *Account) Handle() string { return a.handle }

// State returns the current session state.
func (a *Account) State() AccountState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// Owners returns the frontend users linked to the account.
func (a *Account) Owners() []FrontendUser {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.owners)
}

// IsOwner reports whether user is linked to the account.
func (a *Account) IsOwner(user FrontendUser) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Contains(a.owners, user)
}

func (a *Account) addOwner(user FrontendUser) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !slices.Contains(a.owners, user) {
		a.owners = append(a.owners, user)
	}
}

func (a *Account) removeOwner(user FrontendUser) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.owners = slices.DeleteFunc(a.owners, func(u FrontendUser) bool { return u == user })
}

// Profile returns the account's own status, PSM and friendly name (as last set or reported).
func (a *Account) Profile() (status Status, psm, name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.profile.Status, a.profile.PSM, a.profile.Name
}

// Contacts returns a snapshot of the contact list, sorted by handle.
func (a *Account) Contacts() []Contact {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.contactsLocked()
}

func (a *Account) contactsLocked() []Contact {
	out := make([]Contact, a.contacts.len())
	for i := range out {
		out[i] = neutralContact(a.contacts.at(i))
	}
	return out
}

// Contact returns one contact.
func (a *Account) Contact(handle string) (Contact, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.contacts.get(NormalizeHandle(handle))
	if !c.ok() {
		return Contact{}, false
	}
	return neutralContact(c), true
}

// PendingRequests returns the contacts that added the account and await a decision.
func (a *Account) PendingRequests() []Contact {
	var out []Contact
	for _, c := range a.Contacts() {
		if c.Pending {
			out = append(out, c)
		}
	}
	return out
}

// neutralContact returns c in the neutral model; its strings share one copy of c's record.
func neutralContact(c contactRef) Contact {
	f := c.copyFields()
	v := c.viewOf(f)
	return Contact{
		Handle:    v.Handle,
		Name:      v.Name,
		Status:    v.Status,
		MSNStatus: v.MSNStatus,
		PSM:       v.PSM,
		Media:     v.Media,
		Forward:   c.lists&msn.ListForward != 0,
		Allowed:   c.lists&msn.ListAllow != 0,
		Blocked:   c.lists&msn.ListBlock != 0,
		Reverse:   c.lists&msn.ListReverse != 0,
		Pending:   isRequest(c.lists),
		Groups:    packed.Items(f[fieldGroups]),
		Avatar:    f[fieldAvatar],
	}
}

// Attach starts delivering the account's events to fe, replacing an attached frontend of the
// same name. The first events fe receives are the current AccountState and a ContactSnapshot,
// taken atomically with the start of delivery, so fe sees every later change exactly once.
// Attach never blocks on fe.
func (a *Account) Attach(fe Frontend) { a.attach(fe, false, false) }

// attach attaches fe as Attach does; with held, its events are queued but not delivered until
// ResumeDelivery. With ifNew, an already attached fe (this very instance) is left alone. It
// reports whether fe was attached. Callers may hold Core.mu (the lock order is Core.mu, then
// Account.mu).
func (a *Account) attach(fe Frontend, held, ifNew bool) bool {
	a.mu.Lock()
	old := a.queues[fe.Name()]
	if ifNew && old != nil && sameFrontend(old.fe, fe) {
		a.mu.Unlock()
		return false
	}
	q := newFrontendQueue(fe, a, a.core.cfg.FrontendQueueSize, held, a.core.metrics)
	a.queues[fe.Name()] = q
	q.push(a.state)
	q.push(ContactSnapshot{Contacts: a.contactsLocked()})
	// The requests announced before fe was attached (at the first login, the session is online
	// before its frontend attaches) are fe's to show too.
	for _, h := range slices.Sorted(maps.Keys(a.requests)) {
		if c := a.contacts.get(h); c.ok() {
			f := c.copyFields()
			q.push(ContactRequest{Handle: f[fieldHandle], Name: f.displayName()})
		}
	}
	a.mu.Unlock()
	if old != nil {
		go old.close(context.Background())
	}
	return true
}

// sameFrontend reports whether x and y are the same frontend instance. Frontends of a type
// that cannot be compared are the same when their names are.
func sameFrontend(x, y Frontend) bool {
	tx := reflect.TypeOf(x)
	if tx != reflect.TypeOf(y) {
		return false
	}
	if !tx.Comparable() {
		return x.Name() == y.Name()
	}
	return x == y
}

// ResumeDelivery starts delivering the events held for the frontend named name since it was
// attached with delivery held (LoginOptions.HoldDelivery), in order, beginning with the
// AccountState and ContactSnapshot of the attach. It reports whether delivery was held; it is a
// no-op when that frontend is not attached or not held. It never blocks on the frontend.
func (a *Account) ResumeDelivery(name string) bool {
	a.mu.Lock()
	q := a.queues[name]
	a.mu.Unlock()
	return q != nil && q.resume()
}

// Detach stops delivering events to the frontend named name. It waits until the events already
// queued for it are delivered, or until ctx is done (delivery is then abandoned and the
// frontend's HandleEvent ctx cancelled). Detaching a frontend that is not attached is a no-op.
func (a *Account) Detach(ctx context.Context, name string) {
	a.mu.Lock()
	q := a.queues[name]
	delete(a.queues, name)
	a.mu.Unlock()
	if q != nil {
		q.close(ctx)
	}
}

// Attached returns the names of the attached frontends.
func (a *Account) Attached() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	names := make([]string, 0, len(a.queues))
	for n := range a.queues {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (a *Account) detachAll(ctx context.Context) {
	a.mu.Lock()
	queues := a.queues
	a.queues = map[string]*frontendQueue{}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, q := range queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.close(ctx)
		}()
	}
	wg.Wait()
}

// emitLocked queues evt for every attached frontend except the one named origin (echo
// suppression: a frontend is not told about its own action). Never blocks. a.mu must be held.
func (a *Account) emitLocked(evt Event, origin string) {
	for name, q := range a.queues {
		if origin != "" && name == origin {
			continue
		}
		q.push(evt)
	}
}

// setStateLocked records and emits a state change. a.mu must be held.
func (a *Account) setStateLocked(st AccountState) {
	a.core.metrics.accountState(a.state.State, st.State)
	a.state = st
	a.emitLocked(st, "")
}

func (a *Account) setState(st AccountState) {
	a.mu.Lock()
	a.setStateLocked(st)
	a.mu.Unlock()
}

// persistState records the state in the store, on the core's background context.
func (a *Account) persistState(loggedIn bool, st AccountState) {
	lastErr := ""
	if st.Err != nil {
		lastErr = st.Err.Error()
	}
	if st.Reason != "" && lastErr == "" {
		lastErr = string(st.Reason)
	}
	ctx, cancel := context.WithTimeout(a.core.bgCtx, 10*time.Second)
	defer cancel()
	if err := a.core.store.SetAccountState(ctx, a.handle, loggedIn, string(st.State), lastErr); err != nil && !errors.Is(err, context.Canceled) {
		a.log.Warn().Err(err).Msg("Failed to save account state")
	}
}

// isRunning reports whether the connection loop runs.
func (a *Account) isRunning() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.loop != nil
}

// connected returns the live session or ErrNotConnected.
func (a *Account) connected() (session, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.live == nil || a.state.State != StateOnline {
		return nil, ErrNotConnected
	}
	return a.live.sess, nil
}

// connect makes a session and logs it in. It does not wait for the rate limiter: callers do.
func (a *Account) connect(ctx context.Context, password string) (*liveSession, error) {
	a.mu.Lock()
	a.gen++
	prof := a.profile
	live := &liveSession{gen: a.gen, restoringName: prof.Name != ""}
	a.mu.Unlock()

	// The display picture goes with the login, so that the first CHG announces it.
	picture, err := a.core.store.OwnAvatar(ctx, a.handle)
	if err != nil {
		a.log.Warn().Err(err).Msg("Failed to load own display picture, logging in without it")
	}
	sess, err := a.core.dial(sessionConfig{
		Handle: a.handle, Password: password, Status: prof.Status, PSM: prof.PSM, DisplayPicture: picture,
		Handler: func(ev msn.Event) { a.handleMSN(live, ev) },
	})
	if err != nil {
		a.core.metrics.loginAttempt("error")
		return nil, err
	}
	live.sess = sess
	if err = sess.Login(ctx); err != nil {
		_ = sess.Close()
		a.core.metrics.loginAttempt(loginResult(err))
		return nil, err
	}
	a.core.metrics.loginAttempt("success")
	live.started = a.core.clock.Now()
	a.mu.Lock()
	if a.gen != live.gen {
		a.mu.Unlock()
		_ = sess.Close()
		return nil, ErrStopping
	}
	a.live = live
	// Online as soon as Login returns, so that actions right after Core.Login or a reconnect
	// reach MSN instead of finding the account still connecting.
	a.sessionOnlineLocked(live)
	a.kickAvatarsLocked() // the pictures announced while logging in
	a.mu.Unlock()
	// Restore a chosen friendly name the server does not have (status and PSM go with Login).
	// If that fails, the chosen name stays the desired one and is tried again at the next login.
	if prof.Name != "" {
		ms, ok := sess.(interface{ Self() msn.Self })
		if ok && ms.Self().FriendlyName != prof.Name {
			if err := sess.SetName(ctx, prof.Name); err != nil {
				a.log.Warn().Err(err).Msg("Failed to restore friendly name")
			}
		} else if !ok {
			a.mu.Lock()
			live.restoringName = false
			a.mu.Unlock()
		}
	}
	return live, nil
}

func loginResult(err error) string {
	switch {
	case errors.Is(err, msn.ErrBadCredentials):
		return "bad_credentials"
	case msn.Retryable(err):
		return "retryable"
	}
	return "refused"
}

// startLoop runs the connection loop on the core's background context. first, when set, is a
// session that already logged in.
func (a *Account) startLoop(password string, first *liveSession) {
	ctx, cancel := context.WithCancel(a.core.bgCtx)
	loop := &runLoop{cancel: cancel, done: make(chan struct{})}
	a.mu.Lock()
	if a.loop != nil {
		a.mu.Unlock()
		cancel()
		if first != nil {
			_ = first.sess.Close()
		}
		return
	}
	a.loop = loop
	a.mu.Unlock()
	go a.run(ctx, loop, password, first, 0)
}

// stopLoop cancels the connection loop and waits until its session is closed (msn logs out
// with OUT) or ctx is done.
func (a *Account) stopLoop(ctx context.Context) {
	a.mu.Lock()
	loop := a.loop
	a.mu.Unlock()
	if loop == nil {
		return
	}
	loop.cancel()
	select {
	case <-loop.done:
	case <-ctx.Done():
	}
}

// run is the connection loop: it logs in (waiting for the login rate limiter, with backoff
// after failures) until a session is online, then parks on it (see park) and returns. attempt
// counts the failed attempts so far. The loop ends, clearing a.loop and closing loop.done, when
// ctx ends or the reconnect policy stops the account.
func (a *Account) run(ctx context.Context, loop *runLoop, password string, live *liveSession, attempt int) {
	for live == nil {
		if attempt == 0 {
			a.mu.Lock()
			// Load already shows a stored account connecting.
			if a.state.State != StateConnecting {
				a.setStateLocked(AccountState{State: StateConnecting})
			}
			a.mu.Unlock()
		}
		if err := a.core.limiter.Wait(ctx); err != nil {
			a.endLoop(loop)
			return
		}
		var err error
		live, err = a.connect(ctx, password)
		if err != nil {
			if ctx.Err() != nil {
				a.endLoop(loop)
				return
			}
			attempt++
			a.log.Warn().Err(ScrubError(err)).Int("attempt", attempt).Msg("Failed to log in to MSN")
			if !a.backoff(ctx, loop, err, attempt) {
				a.endLoop(loop)
				return
			}
		}
	}
	a.persistState(true, AccountState{State: StateOnline})
	a.park(ctx, loop, password, live, attempt)
}

// park leaves the online session live to itself: no goroutine waits while it lasts. Whichever
// comes first, its Disconnected or the end of ctx, resumes the loop once on a new goroutine
// (see resume).
func (a *Account) park(ctx context.Context, loop *runLoop, password string, live *liveSession, attempt int) {
	var once sync.Once
	var stopCtx func() bool
	wake := func(cause error, stopping bool) {
		once.Do(func() {
			if !stopping && stopCtx != nil {
				stopCtx()
			}
			go a.resume(ctx, loop, password, live, attempt, cause, stopping)
		})
	}
	a.mu.Lock()
	// Only a wake from the session's end reads stopCtx, and that runs after this lock is released.
	stopCtx = context.AfterFunc(ctx, func() { wake(nil, true) })
	ended, cause := live.ended, live.cause
	if !ended {
		live.onEnd = func(cause error) { wake(cause, false) }
	}
	a.mu.Unlock()
	if ended {
		wake(cause, false)
	}
}

// resume continues the loop after its parked session ended: it closes the session, then either
// ends the loop (ctx ended) or applies the reconnect policy and logs in again.
func (a *Account) resume(ctx context.Context, loop *runLoop, password string, live *liveSession, attempt int, cause error, stopping bool) {
	a.endSession(live)
	if stopping {
		a.endLoop(loop)
		return
	}
	// A session that dropped soon after it started counts as a failed attempt, so a server
	// that accepts logins and then kicks us cannot cause a fast loop.
	if a.core.clock.Now().Sub(live.started) >= a.core.cfg.StableAfter {
		attempt = 0
	}
	attempt++
	a.log.Info().Err(ScrubError(cause)).Int("attempt", attempt).Msg("MSN session ended")
	if !a.backoff(ctx, loop, cause, attempt) {
		a.endLoop(loop)
		return
	}
	a.run(ctx, loop, password, nil, attempt)
}

// endLoop marks the connection loop ended. The loop is cleared before a stop is emitted (see
// backoff) and again here for the other ways out, so that a Reconnect made as soon as anyone
// sees StateStopped starts a new loop.
func (a *Account) endLoop(loop *runLoop) {
	a.mu.Lock()
	if a.loop == loop {
		a.loop = nil
	}
	a.mu.Unlock()
	close(loop.done)
}

// endSession closes a session and forgets it (its later events are ignored).
func (a *Account) endSession(live *liveSession) {
	a.mu.Lock()
	if a.live == live {
		a.live = nil
	}
	a.gen++
	clear(a.chats)
	a.mu.Unlock()
	_ = live.sess.Close()
}

// backoff applies the reconnect policy to err: it either stops the account (returning false)
// or waits for the next attempt (returning true unless ctx ended). A stop is stored first, then
// loop is cleared and StateStopped emitted in one step: whoever sees the stop can Reconnect at
// once, and the stored state cannot overwrite that of the new loop.
func (a *Account) backoff(ctx context.Context, loop *runLoop, err error, attempt int) bool {
	d := a.core.policy.Decide(err, attempt)
	if d.Stop {
		if d.Reason == StopShutdown {
			return false
		}
		st := AccountState{State: StateStopped, Reason: d.Reason, Err: publicError(err)}
		a.log.Warn().Err(ScrubError(err)).Str("reason", string(d.Reason)).Msg("Account stopped, not reconnecting")
		a.persistState(false, st)
		a.mu.Lock()
		if a.loop == loop {
			a.loop = nil
		}
		a.setStateLocked(st)
		a.mu.Unlock()
		return false
	}
	next := a.core.clock.Now().Add(d.Delay)
	a.core.metrics.reconnect(reconnectLabel(err))
	a.setState(AccountState{State: StateReconnecting, Err: publicError(err), NextAttempt: next, Attempt: attempt})
	return a.core.clock.SleepUntil(ctx, next) == nil
}

// publicError maps a login or disconnect error to what may be shown to a user, with no URL
// path or query in its text.
func publicError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, msn.ErrBadCredentials) {
		return ErrBadCredentials
	}
	if errors.Is(err, msn.ErrUnverifiedCertificate) {
		return &CertificateError{Reason: certificateReason(err), Err: err}
	}
	return ScrubError(err)
}

func reconnectLabel(err error) string {
	var de *msn.DisconnectError
	if errors.As(err, &de) {
		return string(de.Reason)
	}
	if err == nil {
		return "none"
	}
	return "login_failed"
}

// Reconnect starts the connection loop of a stopped or logged-out account again with the stored
// password (after a password change elsewhere was fixed, or after OUT OTH). It is a no-op when
// the loop runs.
func (a *Account) Reconnect(ctx context.Context) error {
	if err := a.core.beginAction(); err != nil {
		return err
	}
	defer a.core.endAction()
	if a.isRunning() {
		return nil
	}
	password, err := a.core.store.Credentials(ctx, a.handle)
	if err != nil {
		return err
	}
	a.persistState(true, AccountState{State: StateConnecting})
	a.startLoop(password, nil)
	return nil
}
