package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// ErrRateLimited means a send did not go to MSN because the account's send queue was full or
// the caller's ctx ended while it waited its turn.
var ErrRateLimited = errors.New("too many messages waiting to be sent")

// SendLimitConfig is the rate at which one account sends to MSN, whatever frontends the
// owner writes from. Zero fields take the defaults noted.
type SendLimitConfig struct {
	// Rate is the message parts per second an account sends on average (default 5); Burst how
	// many may go at once (default 10). A long text split into several MSN messages counts each.
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
	// QueueSize is how many sends may wait for their turn per account (default 100). A send
	// beyond it fails at once with FailureRateLimited.
	QueueSize int `yaml:"queue_size"`
	// NudgeCost is how many message parts one nudge counts as (default 10).
	NudgeCost int `yaml:"nudge_cost"`
}

// Send limit defaults.
const (
	DefaultSendRate      = 5
	DefaultSendBurst     = 10
	DefaultSendQueueSize = 100
	DefaultNudgeCost     = 10
)

func (c SendLimitConfig) withDefaults() SendLimitConfig {
	if c.Rate <= 0 {
		c.Rate = DefaultSendRate
	}
	if c.Burst <= 0 {
		c.Burst = DefaultSendBurst
	}
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultSendQueueSize
	}
	if c.NudgeCost <= 0 {
		c.NudgeCost = DefaultNudgeCost
	}
	return c
}

// sendGate paces one account's sends: a token bucket (RateLimiter) hands out slots in the order
// sends arrive, and each send waits for its slot. At most queueSize sends wait at once. A booked
// slot cannot be given back: a send whose ctx ends while it waits leaves its slot unused.
type sendGate struct {
	limiter   *RateLimiter
	clock     Clock
	queueSize int

	mu      sync.Mutex
	waiting int // sends booked for a slot still to come
}

func newSendGate(cfg SendLimitConfig, clock Clock) *sendGate {
	cfg = cfg.withDefaults()
	return &sendGate{limiter: NewRateLimiter(cfg.Rate, cfg.Burst, clock), clock: clock, queueSize: cfg.QueueSize}
}

// wait books cost slots and blocks until the last of them. It fails without booking anything
// when queueSize sends already wait, and with ctx's error when ctx ends first; both errors
// wrap ErrRateLimited.
func (g *sendGate) wait(ctx context.Context, cost int) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrRateLimited, err)
	}
	g.mu.Lock()
	if g.waiting >= g.queueSize {
		g.mu.Unlock()
		return fmt.Errorf("%w: %d sends are already waiting", ErrRateLimited, g.queueSize)
	}
	slot := g.book(cost)
	if !slot.After(g.clock.Now()) {
		g.mu.Unlock()
		return nil
	}
	g.waiting++
	g.mu.Unlock()
	return g.sleep(ctx, slot)
}

// waitTyping is wait for a typing notification, which is dropped (false) instead of queued
// when any send waits: one that waits already says the owner is active, and typing must
// never hold up messages by more than one slot.
func (g *sendGate) waitTyping(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	g.mu.Lock()
	if g.waiting > 0 {
		g.mu.Unlock()
		return false, nil
	}
	slot := g.book(1)
	if !slot.After(g.clock.Now()) {
		g.mu.Unlock()
		return true, nil
	}
	g.waiting++
	g.mu.Unlock()
	if err := g.sleep(ctx, slot); err != nil {
		return false, err
	}
	return true, nil
}

// book reserves cost slots in a row and returns the last. g.mu must be held, so that no other
// send's slot falls between them.
func (g *sendGate) book(cost int) time.Time {
	slot := g.limiter.Reserve()
	for i := 1; i < cost; i++ {
		slot = g.limiter.Reserve()
	}
	return slot
}

func (g *sendGate) sleep(ctx context.Context, slot time.Time) error {
	err := g.clock.SleepUntil(ctx, slot)
	g.mu.Lock()
	g.waiting--
	g.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRateLimited, err)
	}
	return nil
}

// gate returns the account's send gate, made on first use: most accounts of a large bridge
// never send.
func (a *Account) gate() *sendGate {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.send == nil {
		a.send = newSendGate(a.core.cfg.SendLimit, a.core.clock)
	}
	return a.send
}

// textCost is the number of MSN messages text is sent as (at least 1), estimated from its
// length without splitting it.
func textCost(text string, f *msn.TextFormat) int {
	limit := msn.TextBodyLimit(f)
	if limit <= 0 {
		return 1
	}
	return max(1, (len(text)+limit-1)/limit)
}
