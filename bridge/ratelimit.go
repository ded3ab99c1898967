package bridge

import (
	"context"
	"sync"
	"time"
)

// RateLimiter is a token bucket shared by every login attempt of the core (first logins,
// Start's re-logins and reconnects), so that a restart with many stored accounts or a server
// outage never floods the MSN server. It is safe for concurrent use.
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
	// The bucket holds at most burst tokens: slots older than burst intervals are gone.
	floor := now.Add(-time.Duration(l.burst-1) * l.interval)
	if l.next.Before(floor) {
		l.next = floor
	}
	slot := l.next
	l.next = l.next.Add(l.interval)
	if slot.Before(now) {
		slot = now
	}
	return slot
}

// Wait blocks until the caller may make one attempt, or until ctx is done (then the booked slot
// is wasted and ctx.Err() is returned).
func (l *RateLimiter) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return l.clock.SleepUntil(ctx, l.Reserve())
}
