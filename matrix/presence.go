package matrix

import (
	"context"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// PresenceSetter is implemented by ghost intents that can set their own presence. The
// appservice intent (*matrix.ASIntent) is adapted to it; test intents implement it directly.
type PresenceSetter interface {
	SetPresence(ctx context.Context, req mautrix.ReqPresence) error
}

type asPresence struct{ intent *matrix.ASIntent }

func (a asPresence) SetPresence(ctx context.Context, req mautrix.ReqPresence) error {
	if err := a.intent.Matrix().EnsureRegistered(ctx); err != nil {
		return err
	}
	return a.intent.Matrix().SetPresence(ctx, req)
}

func presenceTarget(intent bridgev2.MatrixAPI) PresenceSetter {
	switch in := intent.(type) {
	case *matrix.ASIntent:
		return asPresence{in}
	case PresenceSetter:
		return in
	}
	return nil
}

// matrixPresence maps an MSN status to Matrix presence and status_msg: online; unavailable for
// busy, away, be right back, on the phone, out to lunch and idle; offline otherwise. The
// status message is the status word, the PSM and the current media, joined by " - ", each
// cleaned to one line and capped.
func matrixPresence(st bridge.Status, psm, media string) (event.Presence, string) {
	var p event.Presence
	switch {
	case st == bridge.StatusOnline:
		p = event.PresenceOnline
	case st == bridge.StatusBusy || st.IsAway():
		p = event.PresenceUnavailable
	default:
		return event.PresenceOffline, ""
	}
	parts := []string{capitalize(st.String())}
	if psm = bridge.CleanLine(psm, bridge.MaxShownPSM); psm != "" {
		parts = append(parts, psm)
	}
	if media = bridge.CleanLine(media, bridge.MaxShownPSM); media != "" {
		parts = append(parts, media)
	}
	return p, strings.Join(parts, " - ")
}

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

type ghostPresence struct {
	presence event.Presence
	msg      string
	sent     time.Time // zero: never sent, or changed since
}

// presenceManager sets ghosts' presence through their intents: immediately (rate-limited)
// when it changes, and again every RefreshInterval for ghosts that are not offline. One token
// bucket limits all ghosts together. Work runs on its own background goroutine.
type presenceManager struct {
	cfg PresenceConfig
	log zerolog.Logger

	mu      sync.Mutex
	br      *bridgev2.Bridge
	ghosts  map[networkid.UserID]*ghostPresence
	queue   []networkid.UserID
	queued  map[networkid.UserID]bool
	wake    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	limiter *bridge.RateLimiter // all ghosts' presence updates together
}

func newPresenceManager(cfg PresenceConfig, log zerolog.Logger) *presenceManager {
	return &presenceManager{
		cfg:     cfg,
		log:     log.With().Str("component", "presence").Logger(),
		ghosts:  map[networkid.UserID]*ghostPresence{},
		queued:  map[networkid.UserID]bool{},
		wake:    make(chan struct{}, 1),
		limiter: bridge.NewRateLimiter(cfg.Rate, cfg.Burst, nil),
	}
}

func (pm *presenceManager) start() {
	if !pm.cfg.Enabled {
		return
	}
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if pm.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	pm.cancel, pm.done = cancel, make(chan struct{})
	go pm.run(pm.log.WithContext(ctx))
}

func (pm *presenceManager) stop() {
	pm.mu.Lock()
	cancel, done := pm.cancel, pm.done
	pm.cancel = nil
	pm.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// update records a contact's presence and queues it when it changed. It never blocks.
func (pm *presenceManager) update(_ context.Context, br *bridgev2.Bridge, handle string, st bridge.Status, psm, media string) {
	if !pm.cfg.Enabled || handle == "" {
		return
	}
	p, msg := matrixPresence(st, psm, media)
	id := makeUserID(handle)
	pm.mu.Lock()
	defer pm.mu.Unlock()
	pm.br = br
	g := pm.ghosts[id]
	if g == nil {
		// A ghost first seen offline is told so too: a homeserver that never had its
		// presence shows none, and clients render that as unknown, not offline.
		g = &ghostPresence{}
		pm.ghosts[id] = g
	} else if g.presence == p && g.msg == msg {
		return
	}
	g.presence, g.msg, g.sent = p, msg, time.Time{}
	pm.enqueueLocked(id)
}

func (pm *presenceManager) enqueueLocked(id networkid.UserID) {
	if pm.queued[id] {
		return
	}
	pm.queued[id] = true
	pm.queue = append(pm.queue, id)
	select {
	case pm.wake <- struct{}{}:
	default:
	}
}

// get returns a ghost's wanted presence (for tests and diagnostics).
func (pm *presenceManager) get(handle string) (event.Presence, string, bool) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	g, ok := pm.ghosts[makeUserID(handle)]
	if !ok {
		return "", "", false
	}
	return g.presence, g.msg, true
}

func (pm *presenceManager) run(ctx context.Context) {
	defer close(pm.done)
	check := min(pm.cfg.RefreshInterval/5, 5*time.Second)
	tick := time.NewTicker(check)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pm.wake:
		case <-tick.C:
			pm.enqueueStale()
		}
		for {
			id, ok := pm.pop()
			if !ok {
				break
			}
			if !pm.takeToken(ctx) {
				return
			}
			pm.send(ctx, id)
		}
	}
}

// enqueueStale queues the non-offline ghosts whose presence was last set RefreshInterval ago.
func (pm *presenceManager) enqueueStale() {
	now := time.Now()
	pm.mu.Lock()
	defer pm.mu.Unlock()
	for id, g := range pm.ghosts {
		if g.presence != event.PresenceOffline && !g.sent.IsZero() && now.Sub(g.sent) >= pm.cfg.RefreshInterval {
			pm.enqueueLocked(id)
		}
	}
}

func (pm *presenceManager) pop() (networkid.UserID, bool) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if len(pm.queue) == 0 {
		return "", false
	}
	id := pm.queue[0]
	pm.queue = pm.queue[1:]
	delete(pm.queued, id)
	return id, true
}

// takeToken waits for a slot of the bucket; false when ctx ended.
func (pm *presenceManager) takeToken(ctx context.Context) bool {
	return pm.limiter.Wait(ctx) == nil
}

func (pm *presenceManager) send(ctx context.Context, id networkid.UserID) {
	pm.mu.Lock()
	g := pm.ghosts[id]
	br := pm.br
	if g == nil || br == nil {
		pm.mu.Unlock()
		return
	}
	req := mautrix.ReqPresence{Presence: g.presence, StatusMsg: g.msg}
	pm.mu.Unlock()
	log := pm.log.With().Str("ghost", string(id)).Logger()
	ghost, err := br.GetGhostByID(ctx, id)
	if err != nil {
		log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to get ghost for presence")
		return
	}
	target := presenceTarget(ghost.Intent)
	if target == nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err = target.SetPresence(sctx, req); err != nil {
		log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to set ghost presence")
		return
	}
	pm.mu.Lock()
	if cur := pm.ghosts[id]; cur == g && g.presence == req.Presence && g.msg == req.StatusMsg {
		g.sent = time.Now()
	}
	pm.mu.Unlock()
}
