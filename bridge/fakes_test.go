package bridge

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
)

// fakeClock is a virtual clock: SleepUntil returns at once and moves time forward to the
// target; AfterFunc timers fire only when the test calls fire.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Time
	timers []func()
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2005, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, t)
	if t.After(c.now) {
		c.now = t
	}
	c.mu.Unlock()
	return ctx.Err()
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timers = append(c.timers, f)
	return func() bool { return false }
}

// fire runs the pending timers.
func (c *fakeClock) fire() {
	c.mu.Lock()
	timers := c.timers
	c.timers = nil
	c.mu.Unlock()
	for _, f := range timers {
		f()
	}
}

func (c *fakeClock) sleepCount() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.sleeps))
}

func (c *fakeClock) sleepTargets() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sleeps)
}

// fakeServer stands in for MSN: it knows passwords, can be down, and records what sessions do.
type fakeServer struct {
	mu        sync.Mutex
	passwords map[string]string
	contacts  map[string][]msn.Contact
	down      bool
	logins    int
	// verifications counts the password checks made without a session.
	verifications int
	active        map[string]*fakeSession
	sent          []string
	sendErr       error
	onLogin       func(handle string) // called for every login attempt
	// loginEvents are delivered after LoggedIn and handled before Login returns, as events of
	// the real client can be (its event goroutine races the return of Login).
	loginEvents []msn.Event
	media       fakeMedia
}

func newFakeServer() *fakeServer {
	return &fakeServer{passwords: map[string]string{}, contacts: map[string][]msn.Contact{}, active: map[string]*fakeSession{}}
}

func (s *fakeServer) dial(cfg sessionConfig) (session, error) {
	fs := &fakeSession{srv: s, cfg: cfg, events: make(chan msn.Event, 1024), done: make(chan struct{})}
	return fs, nil
}

// verify checks a password as Passport does, without a session.
func (s *fakeServer) verify(_ context.Context, handle, password string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.verifications++
	switch {
	case s.down:
		return fmt.Errorf("failed to connect: %w", msn.ErrTimeout)
	case s.passwords[handle] != password:
		return &msn.CredentialsError{}
	}
	return nil
}

func (s *fakeServer) verificationCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.verifications
}

func (s *fakeServer) loginCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

func (s *fakeServer) session(handle string) *fakeSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[handle]
}

// kick ends the active session of handle with the given reason.
func (s *fakeServer) kick(handle string, reason msn.DisconnectReason) {
	s.mu.Lock()
	fs := s.active[handle]
	delete(s.active, handle)
	s.mu.Unlock()
	if fs != nil {
		fs.end(&msn.DisconnectError{Reason: reason})
	}
}

type fakeSession struct {
	srv *fakeServer
	// handled is closed by deliver once lastLoginEvent (the fake server's loginEvents) was
	// handled; both are set by Login before it sends that event.
	handled        chan struct{}
	lastLoginEvent msn.Event
	cfg            sessionConfig
	events         chan msn.Event
	done           chan struct{}
	endOnce        sync.Once
	started        bool
	// self is the session's own profile, as msn.Client keeps it: changed by the Set calls and
	// by reportOwn before their events are delivered. Guarded by srv.mu.
	self msn.Self
	// setHook, when set, is called by the Set calls before they change self.
	setHook func()
}

// Self returns the session's own profile (msn.Client.Self).
func (f *fakeSession) Self() msn.Self {
	f.srv.mu.Lock()
	defer f.srv.mu.Unlock()
	return f.self
}

// setSelf changes self as a Set call does, after setHook.
func (f *fakeSession) setSelf(edit func(*msn.Self)) {
	f.srv.mu.Lock()
	hook := f.setHook
	f.srv.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.srv.mu.Lock()
	edit(&f.self)
	f.srv.mu.Unlock()
}

// reportOwn is a change of the own profile made elsewhere, as the server reports it: the
// session's state first, then the event (not Requested).
func (f *fakeSession) reportOwn(edit func(*msn.Self), ev msn.Event) {
	f.srv.mu.Lock()
	edit(&f.self)
	f.srv.mu.Unlock()
	f.emit(ev)
}

func (f *fakeSession) Login(ctx context.Context) error {
	s := f.srv
	s.mu.Lock()
	s.logins++
	hook := s.onLogin
	var err error
	switch {
	case s.down:
		err = fmt.Errorf("failed to connect: %w", msn.ErrTimeout)
	case s.passwords[f.cfg.Handle] != f.cfg.Password:
		err = &msn.CredentialsError{}
	}
	if err == nil {
		if old := s.active[f.cfg.Handle]; old != nil {
			go old.end(&msn.DisconnectError{Reason: msn.ReasonOtherLogin})
		}
		s.active[f.cfg.Handle] = f
	}
	contacts := slices.Clone(s.contacts[f.cfg.Handle])
	s.mu.Unlock()
	if hook != nil {
		hook(f.cfg.Handle)
	}
	if err != nil {
		return err
	}
	f.started = true
	self := msn.Self{Handle: f.cfg.Handle, Status: toMSNStatus(f.cfg.Status)}
	s.mu.Lock()
	f.self = self
	s.mu.Unlock()
	s.mu.Lock()
	extra := slices.Clone(s.loginEvents)
	s.mu.Unlock()
	if len(extra) > 0 {
		f.handled, f.lastLoginEvent = make(chan struct{}), extra[len(extra)-1]
	}
	go f.deliver()
	f.events <- &msn.LoggedIn{Self: self, Protocol: "MSNP11"}
	f.events <- &msn.ContactListSynced{Contacts: contacts}
	for _, ev := range extra {
		f.events <- ev
	}
	if len(extra) > 0 {
		<-f.handled
	}
	return nil
}

func (f *fakeSession) deliver() {
	for ev := range f.events {
		f.cfg.Handler(ev)
		if f.handled != nil && ev == f.lastLoginEvent {
			close(f.handled)
		}
		if _, ok := ev.(*msn.Disconnected); ok {
			close(f.done)
			return
		}
	}
}

func (f *fakeSession) emit(ev msn.Event) { f.events <- ev }

func (f *fakeSession) end(err error) {
	f.endOnce.Do(func() {
		if f.started {
			f.events <- &msn.Disconnected{Err: err}
		}
	})
}

func (f *fakeSession) Close() error {
	f.srv.mu.Lock()
	if f.srv.active[f.cfg.Handle] == f {
		delete(f.srv.active, f.cfg.Handle)
	}
	f.srv.mu.Unlock()
	f.end(&msn.DisconnectError{Reason: msn.ReasonClosed})
	if f.started {
		<-f.done
	}
	return nil
}

func (f *fakeSession) Contacts() []msn.Contact {
	f.srv.mu.Lock()
	defer f.srv.mu.Unlock()
	return slices.Clone(f.srv.contacts[f.cfg.Handle])
}

func (f *fakeSession) SendText(ctx context.Context, contact, sessionID, text string, _ *msn.TextFormat) error {
	f.srv.mu.Lock()
	defer f.srv.mu.Unlock()
	if f.srv.sendErr != nil {
		return f.srv.sendErr
	}
	f.srv.sent = append(f.srv.sent, contact+sessionID+": "+text)
	return nil
}
func (f *fakeSession) SendTyping(_ context.Context, contact, sessionID string) error {
	f.srv.mu.Lock()
	defer f.srv.mu.Unlock()
	f.srv.sent = append(f.srv.sent, contact+sessionID+": (typing)")
	return nil
}

func (f *fakeSession) SendNudge(_ context.Context, contact, sessionID string) error {
	f.srv.mu.Lock()
	defer f.srv.mu.Unlock()
	f.srv.sent = append(f.srv.sent, contact+sessionID+": (nudge)")
	return nil
}

func (f *fakeSession) SetStatus(_ context.Context, st msn.Status) error {
	f.setSelf(func(s *msn.Self) { s.Status = st })
	return nil
}

func (f *fakeSession) SetPSM(_ context.Context, psm string) error {
	f.setSelf(func(s *msn.Self) { s.PSM = psm })
	return nil
}

func (f *fakeSession) SetName(_ context.Context, name string) error {
	f.setSelf(func(s *msn.Self) { s.FriendlyName = name })
	return nil
}

func (f *fakeSession) AddContact(context.Context, string, string) error   { return nil }
func (f *fakeSession) RemoveContact(context.Context, string) error        { return nil }
func (f *fakeSession) BlockContact(context.Context, string) error         { return nil }
func (f *fakeSession) UnblockContact(context.Context, string) error       { return nil }
func (f *fakeSession) AcceptContact(context.Context, string, bool) error  { return nil }
func (f *fakeSession) DeclineContact(context.Context, string, bool) error { return nil }

// recorder is a Frontend that records what it receives.
type recorder struct {
	name   string
	mu     sync.Mutex
	evts   []Event
	block  chan struct{} // when non-nil, HandleEvent waits on it
	panics bool
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) HandleEvent(ctx context.Context, _ *Account, evt Event) error {
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	r.evts = append(r.evts, evt)
	r.mu.Unlock()
	if r.panics {
		panic("frontend bug")
	}
	return nil
}

func (r *recorder) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evts)
}

// waitFor polls until pred holds for the recorded events; it fails the test after 10 s.
func (r *recorder) waitFor(t *testing.T, what string, pred func([]Event) bool) []Event {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if evts := r.events(); pred(evts) {
			return evts
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: timed out waiting for %s; got %#v", r.name, what, r.events())
	return nil
}

func hasState(kind AccountStateKind) func([]Event) bool {
	return func(evts []Event) bool {
		for _, e := range evts {
			if s, ok := e.(AccountState); ok && s.State == kind {
				return true
			}
		}
		return false
	}
}

func countType[T Event](evts []Event) int {
	n := 0
	for _, e := range evts {
		if _, ok := e.(T); ok {
			n++
		}
	}
	return n
}

// testStore opens a fresh SQLite store.
func testStore(t testing.TB) *Store {
	t.Helper()
	db := pgtest.Open(t, pgtest.SQLiteDriver, pgtest.SQLiteDSN(t))
	return openStore(t, db, testKey(1))
}

func openStore(t testing.TB, db *dbutil.Database, key []byte) *Store {
	t.Helper()
	c, err := NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(db, c, zerolog.Nop())
	if err = s.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func testKey(b byte) []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = b
	}
	return k
}

type testCore struct {
	*Core
	srv   *fakeServer
	clock *fakeClock
}

func newTestCore(t *testing.T, store *Store, srv *fakeServer, cfg Config) *testCore {
	t.Helper()
	clock := newFakeClock()
	core, err := NewCore(cfg, Options{Store: store, Log: zerolog.Nop(), Clock: clock, dial: srv.dial, verify: srv.verify, Rand: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = core.Stop(ctx)
	})
	return &testCore{Core: core, srv: srv, clock: clock}
}
