package discord

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// Catch-up after a gateway gap.
//
// Discord replays what a session missed only on RESUME. A session ends when the client closes
// with 1000 or 1001 (discordgo does so when heartbeat acknowledgements stop), when it is
// invalidated (op 9) and when it expires; the next connection IDENTIFYs afresh and the messages
// posted in between never come through the gateway. So the frontend remembers, per mirrored
// channel, the newest message it has handled, and once a new gateway session starts (a READY
// that is no resumption of the one before) it fetches each such channel's messages after that
// one, oldest first, and handles them as if they had just arrived: the owner's go to MSN in
// order. Live messages and edits of a channel being caught up wait for it, and a message id
// handled once is never handled again, so nothing is carried twice.
//
// Discord lists a message as it is now: one edited before the catch-up fetched it is carried
// with its edited text (its first text is gone), and its live edit, when one came, is not
// carried again. Edits the owner made during the gap to messages carried before it come
// through no event either: the catch-up also fetches the page of messages up to the cursor and
// carries, as edits, the owner's messages whose text differs from what was carried for them.
//
// The cursors are kept in the bridge's database (cursorStore), written shortly after they move
// and at Stop, so a restart catches up too: a channel bound again with a stored cursor behind
// the newest message Discord lists for it is fetched like a channel after a gap. A crash may
// lose the last second of cursor moves, and the owner's messages of that second may then be
// carried again. Deletions made during a gap are not caught up, nor edits of messages older
// than the page before the cursor or carried before a restart.

const (
	// catchUpPage is how many messages one catch-up request asks for (Discord's maximum).
	catchUpPage = 100
	// catchUpMaxPages bounds a channel's catch-up; what lies beyond is not carried and the
	// owner is told so in the channel.
	catchUpMaxPages = 5
	// handledMemory is how many message ids are remembered to drop a second delivery.
	handledMemory = 4096
	// catchUpTimeout bounds the catch-up of one channel.
	catchUpTimeout = 2 * time.Minute
)

// catchUp orders the delivery of new messages around gateway gaps: it passes live messages
// through, holds those of a channel being caught up, and fetches what a gap lost. All its
// methods are safe for concurrent use.
type catchUp struct {
	f *Frontend
	// deliver serialises deliveries, so that a channel's caught-up messages are enqueued before
	// the live ones that waited for them. It is taken before mu, and never under a portal's lock.
	deliver sync.Mutex

	mu      sync.Mutex
	session string                 // the gateway session the cursors follow
	last    map[string]string      // mirrored channel id → newest message id handled
	pending map[string]bool        // channels to fetch
	held    map[string][]heldEvent // channels being caught up → live events waiting
	running bool                   // a worker is fetching
	handled *recentIndex[struct{}] // message ids delivered
	saved   map[string]string      // stored cursors of channels not followed yet
	dirty   map[string]string      // cursors to store ("": delete)

	store *cursorStore // nil: cursors in memory only
	kick  chan struct{}
}

// heldEvent is a live MESSAGE_CREATE, or with update a MESSAGE_UPDATE that is an edit, waiting
// for its channel's catch-up.
type heldEvent struct {
	m      *discordgo.Message
	update bool
}

func newCatchUp(f *Frontend, store *cursorStore) *catchUp {
	return &catchUp{
		f:       f,
		last:    map[string]string{},
		pending: map[string]bool{},
		held:    map[string][]heldEvent{},
		handled: newRecentIndex[struct{}](handledMemory),
		saved:   map[string]string{},
		dirty:   map[string]string{},
		store:   store,
		kick:    make(chan struct{}, 1),
	}
}

// cursorFlushInterval is the shortest time between two writes of the cursors.
const cursorFlushInterval = time.Second

// load upgrades the cursor table and reads the stored cursors. It fails when the database does.
func (c *catchUp) load(ctx context.Context) error {
	if c.store == nil {
		return nil
	}
	if err := c.store.upgrade(ctx); err != nil {
		return err
	}
	saved, err := c.store.load(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.saved = saved
	c.mu.Unlock()
	return nil
}

// flushLoop stores the cursors that moved, at most every cursorFlushInterval, until the
// frontend stops; then it stores them a last time.
func (c *catchUp) flushLoop() {
	if c.store == nil {
		return
	}
	ctx := c.f.bgCtx
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c.flush(fctx)
			cancel()
			return
		case <-c.kick:
		}
		c.flush(ctx)
		t := time.NewTimer(cursorFlushInterval)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// flush stores the cursors that moved; on failure they stay to be stored next time.
func (c *catchUp) flush(ctx context.Context) {
	c.mu.Lock()
	if len(c.dirty) == 0 {
		c.mu.Unlock()
		return
	}
	batch := c.dirty
	c.dirty = map[string]string{}
	c.mu.Unlock()
	if err := c.store.save(ctx, batch); err != nil {
		c.f.log.Warn().Err(err).Int("channels", len(batch)).Msg("Failed to store catch-up cursors")
		c.mu.Lock()
		for ch, id := range batch {
			if _, newer := c.dirty[ch]; !newer {
				c.dirty[ch] = id
			}
		}
		c.mu.Unlock()
	}
}

// moveLocked sets a channel's cursor and marks it to be stored. c.mu is held.
func (c *catchUp) moveLocked(channelID, id string) {
	c.last[channelID] = id
	c.dirty[channelID] = id
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// currentSession is the id of the gateway session discordgo last received a READY for. The
// READY is recorded before any later dispatch is handed to a handler, so a message handler
// that sees a new session knows a gap may lie behind it.
func (c *catchUp) currentSession() string {
	s := c.f.s
	if s == nil || s.State == nil {
		return ""
	}
	s.State.RLock()
	defer s.State.RUnlock()
	return s.State.SessionID
}

// sessionStarted notes the current gateway session; when it is a new one after an earlier, it
// starts catching up every mirrored channel.
func (c *catchUp) sessionStarted() {
	sid := c.currentSession()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkSessionLocked(sid)
}

// checkSessionLocked starts a catch-up of every channel with a cursor when sid is a new session
// after an earlier one. c.mu is held.
func (c *catchUp) checkSessionLocked(sid string) {
	if sid == "" || sid == c.session {
		return
	}
	first := c.session == ""
	c.session = sid
	if first || len(c.last) == 0 {
		return
	}
	c.f.log.Info().Int("channels", len(c.last)).Msg("New Discord gateway session, catching up with the messages of the gap")
	for id := range c.last {
		c.scheduleLocked(id)
	}
}

// track starts following a mirrored channel. A channel with a stored cursor (from before a
// restart) starts from it, and is caught up at once when Discord listed a newer message for it
// in the session's GUILD_CREATE. Otherwise it is followed from now: the cursor is the latest of
// the channel's own id (below every message of it), the newest message listed for it, and the
// id Discord would give a message made a moment ago, since what was written before the channel
// was bound was never the bridge's to carry. A followed channel keeps its cursor.
func (c *catchUp) track(channelID string) {
	c.mu.Lock()
	_, ok := c.last[channelID]
	c.mu.Unlock()
	if ok {
		return
	}
	var listed string
	if s := c.f.s; s != nil && s.State != nil {
		if ch, err := s.State.Channel(channelID); err == nil {
			// The State updates its channels in place, under its lock.
			s.State.RLock()
			listed = ch.LastMessageID
			s.State.RUnlock()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.last[channelID]; ok {
		return
	}
	if saved, ok := c.saved[channelID]; ok {
		delete(c.saved, channelID)
		c.last[channelID] = saved
		if snowflakeLess(saved, listed) {
			c.f.log.Info().Str("channel_id", channelID).Msg("Catching up with messages written while the bridge was away")
			c.scheduleLocked(channelID)
		}
		return
	}
	cursor := channelID
	if snowflakeLess(cursor, listed) {
		cursor = listed
	}
	if at := snowflakeAt(c.f.now().Add(-cursorMargin)); snowflakeLess(cursor, at) {
		cursor = at
	}
	c.moveLocked(channelID, cursor)
}

// scheduleLocked holds a channel's live messages and has a worker catch it up. c.mu is held.
func (c *catchUp) scheduleLocked(channelID string) {
	c.pending[channelID] = true
	if _, ok := c.held[channelID]; !ok {
		c.held[channelID] = nil
	}
	if !c.running && c.f.goTracked(c.work) {
		c.running = true
	}
}

// forget stops following a channel.
func (c *catchUp) forget(channelID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.last[channelID]; !ok {
		return
	}
	delete(c.last, channelID)
	delete(c.pending, channelID)
	delete(c.held, channelID)
	c.dirty[channelID] = ""
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// live takes a MESSAGE_CREATE: handled at once, unless its channel is being caught up (then it
// waits for the catch-up) or it was handled already. Messages of channels not followed (the
// roster, channels the bridge does not mirror) pass without being remembered.
func (c *catchUp) live(m *discordgo.Message) {
	sid := c.currentSession()
	c.deliver.Lock()
	defer c.deliver.Unlock()
	c.mu.Lock()
	c.checkSessionLocked(sid)
	if held, ok := c.held[m.ChannelID]; ok {
		c.held[m.ChannelID] = append(held, heldEvent{m: m})
		c.mu.Unlock()
		return
	}
	_, tracked := c.last[m.ChannelID]
	fresh := !tracked || c.admitLocked(m)
	c.mu.Unlock()
	if fresh {
		c.f.handleCreate(m)
	}
}

// liveUpdate takes a MESSAGE_UPDATE that is an edit: handled at once, unless its channel is
// being caught up (then it waits, after the messages the catch-up carries).
func (c *catchUp) liveUpdate(m *discordgo.Message) {
	sid := c.currentSession()
	c.deliver.Lock()
	defer c.deliver.Unlock()
	c.mu.Lock()
	c.checkSessionLocked(sid)
	if held, ok := c.held[m.ChannelID]; ok {
		c.held[m.ChannelID] = append(held, heldEvent{m: m, update: true})
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.f.handleUpdate(m, false)
}

// admitLocked reports whether m is handled for the first time, and remembers it. c.mu is held.
func (c *catchUp) admitLocked(m *discordgo.Message) bool {
	if _, dup := c.handled.get(m.ID); dup {
		return false
	}
	c.handled.put(m.ID, struct{}{})
	if last, ok := c.last[m.ChannelID]; ok && snowflakeLess(last, m.ID) {
		c.moveLocked(m.ChannelID, m.ID)
	}
	return true
}

// work catches up the pending channels one at a time until none is left or the frontend stops.
func (c *catchUp) work() {
	for {
		c.mu.Lock()
		ids := make([]string, 0, len(c.pending))
		for id := range c.pending {
			ids = append(ids, id)
		}
		if len(ids) == 0 || c.f.bgCtx.Err() != nil {
			c.running = false
			c.mu.Unlock()
			return
		}
		sort.Slice(ids, func(i, j int) bool { return snowflakeLess(ids[i], ids[j]) })
		id := ids[0]
		delete(c.pending, id)
		after := c.last[id]
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(c.f.bgCtx, catchUpTimeout)
		c.channel(ctx, id, after)
		cancel()
	}
}

// channel fetches channel id's messages after the cursor, and the page up to it for edits
// made during the gap, then delivers them with the live events that waited: the gap's edits
// and new messages in the order they were made, each message once, then the live edits. A
// channel marked pending again meanwhile (another gap) is fetched again before it is released.
func (c *catchUp) channel(ctx context.Context, id, after string) {
	msgs, complete, err := c.fetch(ctx, id, after)
	if isUnknown(err, discordgo.ErrCodeUnknownChannel) {
		c.forget(id)
		return
	}
	edited, eerr := c.fetchEdited(ctx, id, after)
	if err == nil {
		err = eerr
	}
	c.deliver.Lock()
	defer c.deliver.Unlock()
	c.mu.Lock()
	if c.pending[id] {
		c.mu.Unlock()
		return
	}
	held, ok := c.held[id]
	if !ok {
		c.mu.Unlock()
		return // forgotten meanwhile
	}
	delete(c.held, id)
	creates := msgs
	var updates []*discordgo.Message
	for _, h := range held {
		if h.update {
			updates = append(updates, h.m)
		} else {
			creates = append(creates, h.m)
		}
	}
	sort.SliceStable(creates, func(i, j int) bool { return snowflakeLess(creates[i].ID, creates[j].ID) })
	// The gap's events in the order they were made: a new message at its id's time, an edit
	// of an older one at its edit's.
	var events []gapEvent
	for _, m := range edited {
		if m.ChannelID == "" {
			m.ChannelID = id
		}
		events = append(events, gapEvent{m: m, edit: true, at: *m.EditedTimestamp})
	}
	for _, m := range creates {
		if m.ChannelID == "" {
			m.ChannelID = id
		}
		if c.admitLocked(m) {
			events = append(events, gapEvent{m: m, at: snowflakeTime(m.ID)})
		}
	}
	c.mu.Unlock()
	sort.SliceStable(events, func(i, j int) bool { return events[i].at.Before(events[j].at) })
	caught := 0
	for _, e := range events {
		if e.edit {
			c.f.handleUpdate(e.m, true)
			continue
		}
		if !slices.ContainsFunc(held, func(h heldEvent) bool { return h.m == e.m }) {
			caught++
		}
		c.f.handleCreate(e.m)
	}
	for _, m := range updates {
		c.f.handleUpdate(m, false)
	}
	if caught > 0 {
		c.f.log.Info().Str("channel_id", id).Int("messages", caught).Msg("Caught up with messages of a gateway gap")
	}
	if err != nil || !complete {
		c.gapNotice(ctx, id, err)
	}
}

// gapEvent is a message the catch-up found: new, or an older one edited during the gap.
type gapEvent struct {
	m    *discordgo.Message
	edit bool
	at   time.Time
}

// fetchEdited returns the messages of the page up to the cursor (the newest catchUpPage of
// them) that carry an edit, for handleUpdate to tell the edits made during the gap.
func (c *catchUp) fetchEdited(ctx context.Context, id, cursor string) ([]*discordgo.Message, error) {
	got, err := retryTransient(ctx, func() ([]*discordgo.Message, error) {
		return c.f.s.ChannelMessages(id, catchUpPage, snowflakeNext(cursor), "", "", discordgo.WithContext(ctx))
	})
	if err != nil {
		return nil, fmt.Errorf("failed to fetch the messages before a gap: %w", err)
	}
	var edited []*discordgo.Message
	for _, m := range nonNil(got) {
		if m.EditedTimestamp != nil && !snowflakeLess(cursor, m.ID) {
			edited = append(edited, m)
		}
	}
	return edited, nil
}

// fetch returns channel id's messages after the cursor, oldest first, at most catchUpMaxPages
// pages; complete is false when there were more. A failure returns what was fetched before it.
func (c *catchUp) fetch(ctx context.Context, id, after string) (msgs []*discordgo.Message, complete bool, err error) {
	for page := 0; page < catchUpMaxPages; page++ {
		got, err := retryTransient(ctx, func() ([]*discordgo.Message, error) {
			return c.f.s.ChannelMessages(id, catchUpPage, "", after, "", discordgo.WithContext(ctx))
		})
		if err != nil {
			return msgs, false, fmt.Errorf("failed to fetch the messages of a gap: %w", err)
		}
		got = nonNil(got)
		sort.Slice(got, func(i, j int) bool { return snowflakeLess(got[i].ID, got[j].ID) })
		got = slices.DeleteFunc(got, func(m *discordgo.Message) bool { return !snowflakeLess(after, m.ID) })
		msgs = append(msgs, got...)
		if len(got) < catchUpPage {
			return msgs, true, nil
		}
		after = got[len(got)-1].ID
	}
	return msgs, false, nil
}

// gapNotice tells the owner, in the channel, that messages written there during a gateway gap
// may not have reached MSN, and moves the cursor to the channel's newest message so that they
// are not sent much later by surprise.
func (c *catchUp) gapNotice(ctx context.Context, id string, cause error) {
	if ctx.Err() != nil {
		return
	}
	c.f.log.Warn().Err(bridge.ScrubError(cause)).Str("channel_id", id).Msg("Could not catch up with a gateway gap")
	if newest, err := c.f.s.ChannelMessages(id, 1, "", "", "", discordgo.WithContext(ctx)); err == nil && len(nonNil(newest)) > 0 {
		c.mu.Lock()
		if last, ok := c.last[id]; ok && snowflakeLess(last, newest[0].ID) {
			c.moveLocked(id, newest[0].ID)
		}
		c.mu.Unlock()
	}
	line := "⚠️ The bridge lost its connection to Discord for a while, and could not fetch all of what was written here meanwhile: " +
		"some of your messages may not have reached MSN. Send again what matters."
	if _, err := c.f.s.ChannelMessageSendComplex(id, &discordgo.MessageSend{Content: line, AllowedMentions: noMentions()},
		discordgo.WithContext(ctx)); err != nil {
		c.f.log.Warn().Err(bridge.ScrubError(err)).Str("channel_id", id).Msg("Failed to tell the owner about a gateway gap")
	}
}

// cursorMargin is how far before "now" a newly followed channel's cursor may lie, for clocks
// that differ a little from Discord's.
const cursorMargin = 10 * time.Second

// snowflakeTime is when Discord made snowflake id (the zero time for an invalid one).
func snowflakeTime(id string) time.Time {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(int64(n>>22) + 1420070400000)
}

// snowflakeNext is the snowflake right after id: with before=, a page that includes id.
func snowflakeNext(id string) string {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil || n == ^uint64(0) {
		return id
	}
	return strconv.FormatUint(n+1, 10)
}

// snowflakeAt is the smallest snowflake Discord could make at t.
func snowflakeAt(t time.Time) string {
	ms := t.UnixMilli() - 1420070400000
	if ms < 0 {
		ms = 0
	}
	return strconv.FormatUint(uint64(ms)<<22, 10)
}
