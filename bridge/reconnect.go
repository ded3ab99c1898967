package bridge

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// ReconnectConfig tunes the reconnect backoff. Zero fields take the defaults.
type ReconnectConfig struct {
	// Initial is the backoff ceiling of the first retry (default 2 s).
	Initial time.Duration `yaml:"initial"`
	// Max caps the backoff ceiling (default 5 min).
	Max time.Duration `yaml:"max"`
	// MaxAttempts stops the account with StopServerGone after that many consecutive failed
	// attempts; 0 retries forever (at most every Max).
	MaxAttempts int `yaml:"max_attempts"`
}

func (c ReconnectConfig) withDefaults() ReconnectConfig {
	if c.Initial <= 0 {
		c.Initial = 2 * time.Second
	}
	if c.Max <= 0 {
		c.Max = 5 * time.Minute
	}
	if c.Max < c.Initial {
		c.Max = c.Initial
	}
	return c
}

// ReconnectDecision is what to do after a session ended or a login attempt failed.
type ReconnectDecision struct {
	// Stop is true when the account must not reconnect on its own; Reason says why.
	Stop   bool
	Reason StopReason
	// Delay is how long to wait before the next attempt (when !Stop). The global login rate
	// limiter may add more.
	Delay time.Duration
}

// ReconnectPolicy decides, from the error that ended a session or failed a login and the
// number of consecutive failures, whether and when to try again: exponential backoff with full
// jitter, floored by the delay a server asked for (OUT RCT). It is a pure function of its
// inputs and Rand, so it can be tested deterministically.
type ReconnectPolicy struct {
	Config ReconnectConfig
	// Rand returns a uniform float in [0, 1); math/rand/v2's Float64 when nil.
	Rand func() float64
}

// Decide classifies err. attempt is the number of consecutive failures so far, this one
// included (1 for the first). Rules:
//   - bad credentials → stop (StopBadCredentials), never retried: the password is wrong;
//   - OUT OTH → stop (StopOtherLocation): another client took the session, and retrying would
//     kick it, which would kick us, forever;
//   - ctx cancellation or a local Close → stop (StopShutdown);
//   - network loss, timeouts, OUT SSD/RCT/MIG/plain OUT, busy/unavailable server → retry after
//     rand·min(Max, Initial·2^(attempt-1)), at least the server's RCT delay;
//   - anything else (terms of use, restricted account, no common version, refused request) →
//     stop (StopServerGone);
//   - after MaxAttempts consecutive retryable failures → stop (StopServerGone).
func (p ReconnectPolicy) Decide(err error, attempt int) ReconnectDecision {
	cfg := p.Config.withDefaults()
	switch {
	case err == nil:
		// A session that ended without an error is treated like a plain OUT.
	case errors.Is(err, msn.ErrBadCredentials) || errors.Is(err, ErrBadCredentials):
		return ReconnectDecision{Stop: true, Reason: StopBadCredentials}
	case errors.Is(err, ErrWrongKey):
		return ReconnectDecision{Stop: true, Reason: StopKeyError}
	case errors.Is(err, context.Canceled) || errors.Is(err, ErrStopping):
		return ReconnectDecision{Stop: true, Reason: StopShutdown}
	}
	var retryAfter time.Duration
	var de *msn.DisconnectError
	if errors.As(err, &de) {
		switch de.Reason {
		case msn.ReasonOtherLogin:
			return ReconnectDecision{Stop: true, Reason: StopOtherLocation}
		case msn.ReasonClosed:
			return ReconnectDecision{Stop: true, Reason: StopShutdown}
		case msn.ReasonTerms:
			return ReconnectDecision{Stop: true, Reason: StopServerGone}
		}
		retryAfter = de.RetryAfter
	} else if err != nil && !msn.Retryable(err) {
		return ReconnectDecision{Stop: true, Reason: StopServerGone}
	}
	if cfg.MaxAttempts > 0 && attempt > cfg.MaxAttempts {
		return ReconnectDecision{Stop: true, Reason: StopServerGone}
	}
	return ReconnectDecision{Delay: p.backoff(cfg, attempt, retryAfter)}
}

func (p ReconnectPolicy) backoff(cfg ReconnectConfig, attempt int, floor time.Duration) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	ceiling := cfg.Initial
	for i := 1; i < attempt && ceiling < cfg.Max; i++ {
		ceiling *= 2
	}
	if ceiling > cfg.Max {
		ceiling = cfg.Max
	}
	r := rand.Float64
	if p.Rand != nil {
		r = p.Rand
	}
	f := r()
	if f < 0 || f >= 1 {
		f = 0
	}
	delay := time.Duration(f * float64(ceiling))
	if floor > 0 && delay < floor {
		// Spread the accounts a server sent away over one extra ceiling, rather than have them
		// all return at the same instant.
		delay = floor + time.Duration(f*float64(min(ceiling, floor)))
	}
	return delay
}
