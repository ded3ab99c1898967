package discord

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/rs/zerolog"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// Discord bans an IP for a while once it answers more than 10,000 requests in 10 minutes with
// 401, 403 or 429 (except 429s of the shared scope). Two defences keep the bridge far from it:
//
//   - a refusal (401 or 403: Missing Permissions, Missing Access, a revoked token) is never
//     retried at once. It opens the account's breaker: the account's events wait in the core's
//     queue (which holds them in order and coalesces presence), its presence loop pauses, and
//     after ForbiddenBackoff (doubling on each new refusal, up to six times) the event that was
//     refused is tried again. The owner is told once per episode;
//   - every request goes through invalidBudget, which counts the invalid answers of the last
//     10 minutes and, at InvalidRequestBudget, holds further requests until the oldest leaves
//     the window.

// invalidWindow is the window of Discord's invalid-request ban.
const invalidWindow = 10 * time.Minute

// forbidden reports whether err is Discord refusing the bot (401 or 403): a request that will
// fail the same way until an admin changes something, so it must not be retried soon.
func forbidden(err error) bool {
	if errors.Is(err, discordgo.ErrUnauthorized) {
		return true
	}
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode == http.StatusUnauthorized || re.Response.StatusCode == http.StatusForbidden
	}
	return false
}

// invalidBudget counts Discord's invalid answers (401, 403 and 429 but those of the shared
// scope) over the last invalidWindow and holds new requests while limit of them are in it.
// Interaction callbacks and the gateway lookup are never held: a user waits on them. It is
// safe for concurrent use.
type invalidBudget struct {
	limit  int
	window time.Duration
	log    zerolog.Logger

	mu      sync.Mutex
	times   []time.Time // oldest first
	holding bool        // a hold was logged and has not ended
}

func newInvalidBudget(limit int, log zerolog.Logger) *invalidBudget {
	return &invalidBudget{limit: limit, window: invalidWindow, log: log}
}

// count returns the invalid answers within the window at now. The caller holds b.mu.
func (b *invalidBudget) countLocked(now time.Time) int {
	i := 0
	for i < len(b.times) && now.Sub(b.times[i]) >= b.window {
		i++
	}
	b.times = b.times[i:]
	return len(b.times)
}

// Count is the number of invalid answers within the last 10 minutes.
func (b *invalidBudget) Count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.countLocked(time.Now())
}

// wait blocks while the budget is spent, until a slot frees or ctx ends.
func (b *invalidBudget) wait(ctx context.Context) error {
	for {
		b.mu.Lock()
		now := time.Now()
		if b.countLocked(now) < b.limit {
			if b.holding {
				b.holding = false
				b.log.Info().Msg("Invalid Discord requests back under the budget, requests flow again")
			}
			b.mu.Unlock()
			return nil
		}
		d := b.times[0].Add(b.window).Sub(now)
		if !b.holding {
			b.holding = true
			b.log.Error().Int("invalid_requests", len(b.times)).Dur("window", b.window).Dur("hold", d).
				Msg("Too many refused or rate-limited Discord requests: holding requests to stay clear of Discord's ban")
		}
		b.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// report logs, every window until ctx ends, how many invalid answers the window held when
// there were any: the figure Discord's ban is about.
func (b *invalidBudget) report(ctx context.Context) {
	t := time.NewTicker(b.window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n := b.Count(); n > 0 {
			b.log.Info().Int("invalid_requests", n).Int("budget", b.limit).Dur("window", b.window).
				Msg("Refused or rate-limited Discord requests in the last window")
		}
	}
}

// note records the answer of one request.
func (b *invalidBudget) note(resp *http.Response) {
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
	case http.StatusTooManyRequests:
		if strings.EqualFold(resp.Header.Get("X-RateLimit-Scope"), "shared") {
			return
		}
	default:
		return
	}
	b.mu.Lock()
	b.times = append(b.times, time.Now())
	b.mu.Unlock()
}

// budgetTransport sends requests through base under an invalidBudget. timeout bounds each
// request from the moment the budget lets it go until its body is read: a request held by the
// budget waits as long as its context allows, not as long as an HTTP timeout that would end it
// in the queue.
type budgetTransport struct {
	base    http.RoundTripper
	budget  *invalidBudget
	timeout time.Duration
}

// RoundTrip implements http.RoundTripper.
func (t budgetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !exemptFromBudget(req) {
		if err := t.budget.wait(req.Context()); err != nil {
			if req.Body != nil {
				_ = req.Body.Close()
			}
			return nil, err
		}
	}
	cancel := context.CancelFunc(func() {})
	if t.timeout > 0 {
		var ctx context.Context
		ctx, cancel = context.WithTimeout(req.Context(), t.timeout)
		req = req.WithContext(ctx)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		cancel()
		return nil, err
	}
	t.budget.note(resp)
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// cancelOnClose ends a request's context once its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// exemptFromBudget: interaction callbacks must be answered within 3 s, and the gateway lookup
// starts every reconnect.
func exemptFromBudget(req *http.Request) bool {
	p := req.URL.Path
	return strings.Contains(p, "/interactions/") || strings.HasSuffix(p, "/gateway") || strings.HasSuffix(p, "/gateway/bot")
}

// withBudget returns a copy of client (nil: discordgo's default) whose requests go through
// budget.
func withBudget(client *http.Client, budget *invalidBudget) *http.Client {
	c := &http.Client{Timeout: 20 * time.Second}
	if client != nil {
		cp := *client
		c = &cp
	}
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	// The client's timeout would also count the wait for the budget; the transport applies it
	// to the request alone.
	c.Transport = budgetTransport{base: base, budget: budget, timeout: c.Timeout}
	c.Timeout = 0
	return c
}

// InvalidRequests is the number of Discord's invalid answers (401, 403, and 429 but those of
// the shared scope) to this frontend within the last 10 minutes; Discord bans an IP above
// 10,000.
func (f *Frontend) InvalidRequests() int {
	if f.budget == nil {
		return 0
	}
	return f.budget.Count()
}

// breaker is an account's circuit breaker for Discord's refusals. Its fields are guarded by
// the portal's mu.
type breaker struct {
	until   time.Time     // open until; zero when closed
	backoff time.Duration // the wait of the current episode
	told    bool          // the owner was told of this episode
}

// openUntil returns when the account's breaker closes again; zero when it is closed.
func (p *portal) openUntil() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.brk.until.IsZero() || !p.f.now().Before(p.brk.until) {
		return time.Time{}
	}
	return p.brk.until
}

// trip opens the account's breaker after Discord refused err: for ForbiddenBackoff on the first
// refusal of an episode, then twice as long on each further one, up to six times as long. It
// reports whether err was a refusal; the first of an episode is logged as an error and the
// owner told, once.
func (p *portal) trip(ctx context.Context, err error) bool {
	if !forbidden(err) {
		return false
	}
	base := p.f.cfg.ForbiddenBackoff
	p.mu.Lock()
	switch {
	case p.brk.backoff == 0:
		p.brk.backoff = base
	default:
		p.brk.backoff = min(2*p.brk.backoff, 6*base)
	}
	p.brk.until = p.f.now().Add(p.brk.backoff)
	wait, tell := p.brk.backoff, !p.brk.told
	p.brk.told = true
	p.mu.Unlock()
	p.kick()
	if !tell {
		p.log.Warn().Err(bridge.ScrubError(err)).Dur("retry_in", wait).Msg("Discord still refuses the account's requests")
		return true
	}
	p.log.Error().Err(bridge.ScrubError(err)).Dur("retry_in", wait).
		Msg("Discord refuses the account's requests: check the bot's role and the channels' permissions; pausing the account's mirror")
	line := "⚠️ Discord refuses the bridge's requests for this account (" + shown(refusalText(err), maxShownError) +
		"). MSN messages wait in the bridge, in order, and are shown here once a server admin gives the bot its permissions back; " +
		"the bridge tries again in " + wait.Round(time.Second).String() + "."
	if nerr := p.notice(ctx, line); nerr != nil {
		p.log.Warn().Err(bridge.ScrubError(nerr)).Msg("Failed to tell the owner that Discord refuses the account's requests")
	}
	return true
}

// postsToDiscord reports whether showing evt sends requests to Discord (state-like events only
// update the portal), so that its success says Discord accepts them again.
func postsToDiscord(evt bridge.Event) bool {
	switch evt.(type) {
	case bridge.ContactSnapshot, bridge.ContactPresence, bridge.ContactProfile, bridge.OwnProfile, bridge.Typing,
		bridge.ContactAvatar:
		return false
	}
	return true
}

// reset closes the breaker after the event it held back went through; the owner is told when
// it was open.
func (p *portal) reset(ctx context.Context) {
	p.mu.Lock()
	if p.brk == (breaker{}) {
		p.mu.Unlock()
		return
	}
	was := p.brk.told
	p.brk = breaker{}
	p.mu.Unlock()
	if was {
		p.log.Info().Msg("Discord accepts the account's requests again")
		if err := p.notice(ctx, "✅ Discord accepts the bridge's requests again; the messages that waited follow."); err != nil {
			p.log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to tell the owner that Discord accepts requests again")
		}
	}
}

// refusalText names a refusal for the owner.
func refusalText(err error) string {
	switch {
	case isUnknown(err, discordgo.ErrCodeMissingPermissions):
		return "the bot is missing permissions"
	case isUnknown(err, discordgo.ErrCodeMissingAccess):
		return "the bot cannot see a channel"
	case errors.Is(err, discordgo.ErrUnauthorized):
		return "the bot's token was refused"
	}
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode == http.StatusUnauthorized {
		return "the bot's token was refused"
	}
	return "forbidden"
}

// waitBreaker blocks while the account's breaker is open, until it may try again or ctx ends.
func (p *portal) waitBreaker(ctx context.Context) error {
	for {
		until := p.openUntil()
		if until.IsZero() {
			return nil
		}
		t := time.NewTimer(max(time.Until(until), time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
