package bridge

import (
	"context"
	"errors"
	"sync"
	"time"
)

// RateLimiter is a token bucket. The core has one for the logins it makes itself (Start's
// re-logins and reconnects), so that a restart with many stored accounts or a server outage
// never floods the MSN server; one for the login attempts users ask for; and one per user of a
// frontend (see loginGate). It is safe for concurrent use.
type RateLimiter struct {
	clock    Clock
	interval time.Duration // time to earn one token
	burst    int

	mu sync.Mutex
	// next is the earliest time the bucket is full again minus burst*interval: the time of the
	// next free slot once the burst has been used. Tokens are virtual, computed from next.
	next time.Time
}

// NewRateLimiter allows perSecond attempts per second on average and up to burst at once.
// perSecond <= 0 means unlimited; burst < 1 is 1.
func NewRateLimiter(perSecond float64, burst int, clock Clock) *RateLimiter {
	if clock == nil {
		clock = SystemClock{}
	}
	if burst < 1 {
		burst = 1
	}
	var interval time.Duration
	if perSecond > 0 {
		interval = time.Duration(float64(time.Second) / perSecond)
	}
	return &RateLimiter{clock: clock, interval: interval, burst: burst}
}

// Reserve books the next slot and returns when it may be used (now or later). A reservation
// cannot be returned: callers must use it or waste it.
func (l *RateLimiter) Reserve() time.Time {
	now := l.clock.Now()
	if l.interval == 0 {
		return now
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refillLocked(now)
	slot := l.next
	l.next = l.next.Add(l.interval)
	if slot.Before(now) {
		slot = now
	}
	return slot
}

// Allow books a slot only when one is free now, reporting true. Otherwise it books nothing and
// returns how long until one is free, so that a refused caller does not push its own next
// chance further away.
func (l *RateLimiter) Allow() (bool, time.Duration) {
	now := l.clock.Now()
	if l.interval == 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refillLocked(now)
	if l.next.After(now) {
		return false, l.next.Sub(now)
	}
	l.next = l.next.Add(l.interval)
	return true, 0
}

// refillLocked forgets the slots older than burst intervals: the bucket holds at most burst
// tokens. l.mu must be held.
func (l *RateLimiter) refillLocked(now time.Time) {
	floor := now.Add(-time.Duration(l.burst-1) * l.interval)
	if l.next.Before(floor) {
		l.next = floor
	}
}

// Wait blocks until the caller may make one attempt, or until ctx is done (then the booked slot
// is wasted and ctx.Err() is returned).
func (l *RateLimiter) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return l.clock.SleepUntil(ctx, l.Reserve())
}

// Defaults and bounds of the per-user login limit.
const (
	DefaultUserLoginInterval = 10 * time.Second
	DefaultUserLoginBurst    = 3
	// maxLoginLockout caps the lockout that grows with a user's consecutive refused passwords.
	maxLoginLockout = 15 * time.Minute
	// loginMemory is how long a user's record is kept after their last attempt: their refused
	// passwords count against them for that long.
	loginMemory = time.Hour
	// maxLoginUsers bounds the users tracked at once; beyond it, the least recently seen is
	// forgotten.
	maxLoginUsers = 10000
)

// loginGate limits the login attempts of each frontend user, apart from the global limiters:
// a RateLimiter per user (interval, burst), and once a user has had more than burst passwords
// or link codes refused in a row, a lockout after each further refusal, doubling from two intervals up to
// maxLoginLockout. A successful login clears the refusals. Refused attempts book nothing. It is
// safe for concurrent use.
type loginGate struct {
	clock    Clock
	interval time.Duration
	burst    int

	mu    sync.Mutex
	users map[FrontendUser]*userLogins
}

type userLogins struct {
	limiter  *RateLimiter
	refused  int       // passwords refused in a row
	lockedTo time.Time // no attempt before this
	last     time.Time // the last attempt admitted or refused
}

func newLoginGate(interval time.Duration, burst int, clock Clock) *loginGate {
	if interval <= 0 {
		interval = DefaultUserLoginInterval
	}
	if burst < 1 {
		burst = DefaultUserLoginBurst
	}
	return &loginGate{clock: clock, interval: interval, burst: burst, users: map[FrontendUser]*userLogins{}}
}

// admit lets user make one login attempt now, or refuses it with a *TooManyAttemptsError.
func (g *loginGate) admit(user FrontendUser) error {
	now := g.clock.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.users[user]
	if u != nil && now.Sub(u.last) > loginMemory && !now.Before(u.lockedTo) {
		u = nil
	}
	if u == nil {
		g.makeRoomLocked(now)
		u = &userLogins{limiter: NewRateLimiter(float64(time.Second)/float64(g.interval), g.burst, g.clock)}
		g.users[user] = u
	}
	u.last = now
	if now.Before(u.lockedTo) {
		return &TooManyAttemptsError{RetryAfter: u.lockedTo.Sub(now)}
	}
	if ok, wait := u.limiter.Allow(); !ok {
		return &TooManyAttemptsError{RetryAfter: wait}
	}
	return nil
}

// done records the outcome of an admitted attempt: err nil clears user's refusals, a refused
// password (ErrBadCredentials) or a wrong link code (ErrInvalidLinkCode) counts one; other
// failures (server trouble) count nothing.
func (g *loginGate) done(user FrontendUser, err error) {
	now := g.clock.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.users[user]
	if u == nil {
		return
	}
	switch {
	case err == nil:
		u.refused, u.lockedTo = 0, time.Time{}
	case errors.Is(err, ErrBadCredentials), errors.Is(err, ErrInvalidLinkCode):
		u.refused++
		if over := u.refused - g.burst; over > 0 {
			lock := maxLoginLockout
			if over < 20 {
				lock = min(g.interval<<over, maxLoginLockout)
			}
			u.lockedTo = now.Add(lock)
		}
	}
}

// makeRoomLocked forgets the users not seen for loginMemory, and when that is not enough, the
// least recently seen one, so that a new user fits. g.mu must be held.
func (g *loginGate) makeRoomLocked(now time.Time) {
	if len(g.users) < maxLoginUsers {
		return
	}
	var oldest FrontendUser
	var oldestSeen time.Time
	for k, u := range g.users {
		if now.Sub(u.last) > loginMemory && !now.Before(u.lockedTo) {
			delete(g.users, k)
			continue
		}
		if oldestSeen.IsZero() || u.last.Before(oldestSeen) {
			oldest, oldestSeen = k, u.last
		}
	}
	if len(g.users) >= maxLoginUsers {
		delete(g.users, oldest)
	}
}
