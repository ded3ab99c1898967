package discord

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// Presence mirror.
//
// Each account has one presence loop. Events only update the portal's state and wake it; the
// loop then does what is due:
//   - the roster message(s), edited at most once per RosterDebounce, rendering the latest state;
//   - each contact channel's topic (status and PSM), at most TopicEditsPerWindow edits per
//     TopicWindow and one per TopicMinInterval, after TopicDebounce lets a burst settle; the
//     latest state wins and a deferred update is scheduled for when the budget frees. Topic
//     PATCHes go under their own rate-limit bucket without retry, so a 429 never blocks
//     anything else in discordgo (DISCORD.md §2);
//   - with OnlineOfflineCategories, each contact channel's category, coalesced the same way.

// failureBackoff is how long the loop waits after a failed roster or topic request.
const failureBackoff = 10 * time.Second

// Status groups of the roster.
type group int

const (
	groupOnline group = iota
	groupAway
	groupBusy
	groupOffline
	groupCount
)

var groupTitles = [groupCount]string{"🟢 Online", "🟡 Away", "🔴 Busy", "⚫ Offline"}
var groupColors = [groupCount]int{0x43b581, 0xfaa61a, 0xf04747, 0x747f8d}

func groupOf(s bridge.Status) group {
	switch s {
	case bridge.StatusOnline:
		return groupOnline
	case bridge.StatusBusy, bridge.StatusPhone:
		return groupBusy
	case bridge.StatusOffline, bridge.StatusInvisible:
		return groupOffline
	}
	if s.IsAway() {
		return groupAway
	}
	return groupOnline
}

// statusEmoji is the status's circle.
func statusEmoji(s bridge.Status) string {
	return strings.Fields(groupTitles[groupOf(s)])[0]
}

// statusLabel is the status as shown ("Be right back").
func statusLabel(s bridge.Status) string {
	str := s.String()
	if str == "" {
		return ""
	}
	r, n := utf8.DecodeRuneInString(str)
	return strings.ToUpper(string(r)) + str[n:]
}

// topicFor renders a contact channel's topic: the contact's exact handle (in a code span, which
// is also how discovery recognises the channel), status and personal message.
func topicFor(c bridge.Contact) string {
	t := topicMarker(c.Handle) + " · " + statusEmoji(c.Status) + " " + statusLabel(c.Status)
	if psm := bridge.CleanLine(c.PSM, bridge.MaxShownPSM); c.Status != bridge.StatusOffline && psm != "" {
		t += " · " + escapeMarkdown(psm)
	}
	return t
}

// topicForLocked returns the topic a new channel of chat gets and whether the contact is
// offline. p.mu is held.
func (p *portal) topicForLocked(chat bridge.ChatID) (topic string, offline bool) {
	if chat.IsGroup() {
		return "Group conversation on MSN (ends when everyone has left)", false
	}
	c, ok := p.contacts[chat.Contact()]
	if !ok {
		c = bridge.Contact{Handle: chat.Contact()}
	}
	return topicFor(c), c.Status == bridge.StatusOffline
}

// refreshChannelsLocked recomputes every channel's wanted topic and category. p.mu is held.
func (p *portal) refreshChannelsLocked() {
	if p.discovered {
		for h := range p.contacts {
			p.adoptLocked(bridge.DirectChat(h), true)
		}
	}
	for chat := range p.chats {
		p.refreshChannelLocked(chat)
	}
}

// refreshChannelLocked recomputes one channel's wanted topic and category. p.mu is held.
func (p *portal) refreshChannelLocked(chat bridge.ChatID) {
	ch, ok := p.chats[chat]
	if !ok || ch.id == "" || chat.IsGroup() {
		return
	}
	topic, offline := p.topicForLocked(chat)
	now := p.f.now()
	ch.wantTopic = topic
	switch {
	case ch.wantTopic == ch.topic:
		ch.topicPending = time.Time{}
	case ch.topicPending.IsZero():
		ch.topicPending = now
	}
	if !p.f.cfg.OnlineOfflineCategories {
		return
	}
	want := "online"
	if offline {
		want = "offline"
	}
	ch.wantParent = want
	cur := "online"
	if off, _ := p.categoryOfLocked(ch.parent); off {
		cur = "offline"
	}
	switch {
	case want == cur:
		ch.parentPending = time.Time{}
	case ch.parentPending.IsZero():
		ch.parentPending = now
	}
}

// presenceLoop runs the account's presence mirror until ctx ends.
func (p *portal) presenceLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := p.presenceWork(ctx)
		if ctx.Err() != nil {
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		var tc <-chan time.Time
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), time.Millisecond))
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-tc:
		}
	}
}

type topicJob struct {
	ch     *chatChannel
	id     string
	topic  string
	parent string // "online"/"offline" for a move job
}

// presenceWork does the roster, topic and category updates that are due and returns when the
// next one will be (zero: nothing pending).
func (p *portal) presenceWork(ctx context.Context) time.Time {
	if until := p.openUntil(); !until.IsZero() {
		return until // Discord refuses the account's requests: nothing is sent until then
	}
	cfg := p.f.cfg
	now := p.f.now()
	var next time.Time
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}

	p.mu.Lock()
	rosterDue := false
	if p.rosterDirty {
		due := later(p.rosterSince, p.rosterLast).Add(cfg.RosterDebounce)
		due = later(due, p.rosterRetry)
		if !now.Before(due) {
			rosterDue = true
		} else {
			soonest(due)
		}
	}
	var jobs []topicJob
	var avatarJob *chatChannel // one per pass: the edits are paced per account
	for _, ch := range p.chats {
		if ch.id == "" {
			continue
		}
		if _, pending := p.avatarPendingLocked(ch); pending {
			due := p.avatarDueLocked(ch)
			if avatarJob == nil && !now.Before(due) {
				avatarJob = ch
			} else {
				soonest(due)
			}
		}
		if !ch.topicPending.IsZero() {
			due := p.topicDueLocked(ch, now)
			if !now.Before(due) {
				jobs = append(jobs, topicJob{ch: ch, id: ch.id, topic: ch.wantTopic})
			} else {
				soonest(due)
			}
		}
		if !ch.parentPending.IsZero() {
			due := later(ch.parentPending.Add(cfg.TopicDebounce), ch.parentRetry)
			if !now.Before(due) {
				jobs = append(jobs, topicJob{ch: ch, id: ch.id, parent: ch.wantParent})
			} else {
				soonest(due)
			}
		}
	}
	p.mu.Unlock()

	if rosterDue {
		if err := p.flushRoster(ctx); err != nil {
			if ctx.Err() != nil {
				return time.Time{}
			}
			if p.trip(ctx, err) {
				return p.openUntil()
			}
			p.log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to update the roster message")
			p.mu.Lock()
			p.rosterRetry = p.f.now().Add(failureBackoff)
			p.mu.Unlock()
		}
		soonest(p.f.now()) // look again: more may have changed meanwhile
	}
	for _, j := range jobs {
		if ctx.Err() != nil {
			return time.Time{}
		}
		if j.parent != "" {
			p.applyParent(ctx, j)
		} else {
			p.applyTopic(ctx, j)
		}
		if until := p.openUntil(); !until.IsZero() {
			return until
		}
		soonest(p.f.now())
	}
	if avatarJob != nil && ctx.Err() == nil {
		err := p.applyAvatar(ctx, avatarJob)
		switch {
		case ctx.Err() != nil:
			return time.Time{}
		case p.trip(ctx, err):
			return p.openUntil()
		case err != nil:
			p.log.Warn().Err(bridge.ScrubError(err)).Str("chat", string(avatarJob.chat)).Msg("Failed to set a contact's picture on the webhook")
		}
		soonest(p.f.now())
	}
	return next
}

// topicDueLocked returns when ch's pending topic may be sent: after the burst settled, the
// minimum interval, the per-window budget and any retry delay. p.mu is held.
func (p *portal) topicDueLocked(ch *chatChannel, now time.Time) time.Time {
	cfg := p.f.cfg
	due := ch.topicPending.Add(cfg.TopicDebounce)
	margin := cfg.TopicWindow/50 + 100*time.Millisecond
	// Forget edits that left the window.
	kept := ch.topicEdits[:0]
	for _, t := range ch.topicEdits {
		if now.Sub(t) < cfg.TopicWindow+margin {
			kept = append(kept, t)
		}
	}
	ch.topicEdits = kept
	if n := len(kept); n > 0 {
		due = later(due, kept[n-1].Add(cfg.TopicMinInterval))
		if n >= cfg.TopicEditsPerWindow {
			due = later(due, kept[n-cfg.TopicEditsPerWindow].Add(cfg.TopicWindow+margin))
		}
	}
	return later(due, ch.topicRetry)
}

// applyTopic sends one topic edit under the channel's own "#topic" bucket, without retrying
// on 429 (the loop reschedules it).
func (p *portal) applyTopic(ctx context.Context, j topicJob) {
	s := p.f.s
	body := map[string]string{"topic": j.topic} // a raw PATCH, so "" clears the topic
	_, err := s.RequestWithBucketID("PATCH", discordgo.EndpointChannel(j.id), body,
		discordgo.EndpointChannel(j.id)+"#topic", discordgo.WithRetryOnRatelimit(false), discordgo.WithContext(ctx))
	done := p.f.now() // the budget counts from the answer, so Discord's window never sees more
	var rl *discordgo.RateLimitError
	switch {
	case err == nil:
		p.mu.Lock()
		j.ch.topicEdits = append(j.ch.topicEdits, done)
		if j.ch.id == j.id {
			j.ch.topic = j.topic
			if j.ch.wantTopic == j.topic {
				j.ch.topicPending = time.Time{}
			} else {
				j.ch.topicPending = done
			}
		}
		p.mu.Unlock()
	case errors.As(err, &rl):
		wait := rl.RetryAfter
		p.log.Warn().Str("channel_id", j.id).Dur("retry_after", wait).Msg("Topic edit rate limited, deferring it")
		p.mu.Lock()
		j.ch.topicRetry = done.Add(wait + p.f.cfg.TopicWindow/50 + 100*time.Millisecond)
		p.mu.Unlock()
	case isUnknown(err, discordgo.ErrCodeUnknownChannel):
		p.forgetChannel(j.id)
	case ctx.Err() != nil:
	case p.trip(ctx, err):
	default:
		p.log.Warn().Err(bridge.ScrubError(err)).Str("channel_id", j.id).Msg("Failed to update a channel topic")
		p.mu.Lock()
		j.ch.topicRetry = done.Add(failureBackoff)
		p.mu.Unlock()
	}
}

// applyParent moves a contact channel between the online and offline categories, under its own
// bucket without retry.
func (p *portal) applyParent(ctx context.Context, j topicJob) {
	p.setup.Lock()
	cat, err := p.ensureCategory(ctx, j.parent == "offline")
	p.setup.Unlock()
	if err == nil {
		body := map[string]string{"parent_id": cat}
		_, err = p.f.s.RequestWithBucketID("PATCH", discordgo.EndpointChannel(j.id), body,
			discordgo.EndpointChannel(j.id)+"#parent", discordgo.WithRetryOnRatelimit(false), discordgo.WithContext(ctx))
	}
	if ctx.Err() == nil && p.trip(ctx, err) {
		return
	}
	now := p.f.now()
	var rl *discordgo.RateLimitError
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err == nil:
		if k := p.known[j.id]; k != nil {
			k.parent = cat
		}
		if j.ch.id == j.id {
			j.ch.parent = cat
			if j.ch.wantParent == j.parent {
				j.ch.parentPending = time.Time{}
			} else {
				j.ch.parentPending = now
			}
		}
	case errors.As(err, &rl):
		j.ch.parentRetry = now.Add(rl.RetryAfter + 100*time.Millisecond)
	case isParentFull(err):
		if p.fullCats == nil {
			p.fullCats = map[string]bool{}
		}
		p.fullCats[cat] = true // the next attempt goes to another category
	case isUnknown(err, discordgo.ErrCodeUnknownChannel):
		if j.ch.id == j.id {
			j.ch.id, j.ch.webhook, j.ch.ownHook = "", nil, nil
		}
	case ctx.Err() != nil:
	default:
		p.log.Warn().Err(bridge.ScrubError(err)).Str("channel_id", j.id).Msg("Failed to move a contact channel")
		j.ch.parentRetry = now.Add(failureBackoff)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Roster.

// rosterPage is one roster message.
type rosterPage struct {
	Content string                    `json:"content"`
	Embeds  []*discordgo.MessageEmbed `json:"embeds"`
}

func (pg rosterPage) hash() string {
	b, _ := json.Marshal(pg)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// Discord's caps (https://discord.com/developers/docs/resources/message#embed-object-embed-limits)
// with a little room.
const (
	maxEmbedFields   = 25
	maxEmbedsPerMsg  = 10
	maxCharsPerMsg   = 5800 // Discord: 6000 across all embeds of a message
	maxRosterPages   = 10
	maxFieldNameLen  = 100 // escaped, at most twice as long: Discord allows 256
	maxFieldPSMLen   = 200
	maxFieldMediaLen = 120
	footerRoom       = 60 // for the "… and N more" footer
)

// renderRoster builds the roster pages from the portal's state. p.mu is held.
func (p *portal) renderRosterLocked() []rosterPage {
	var groups [groupCount][]bridge.Contact
	online, total := 0, 0
	for _, c := range p.contacts {
		if !c.Forward {
			continue
		}
		total++
		g := groupOf(c.Status)
		if g != groupOffline {
			online++
		}
		groups[g] = append(groups[g], c)
	}
	for g := range groups {
		sort.Slice(groups[g], func(i, j int) bool {
			a, b := strings.ToLower(groups[g][i].Name), strings.ToLower(groups[g][j].Name)
			if a != b {
				return a < b
			}
			return groups[g][i].Handle < groups[g][j].Handle
		})
	}

	header := "**MSN — " + escapeMarkdown(p.handle) + "**"
	if p.haveOwn {
		header += " · " + statusEmoji(p.own.Status) + " " + statusLabel(p.own.Status)
		if psm := shown(p.own.PSM, 200); psm != "" {
			header += " · _" + psm + "_"
		}
	}
	switch p.lastState {
	case bridge.StateConnecting:
		header += "\n⏳ Connecting to MSN…"
	case bridge.StateReconnecting:
		header += "\n🔄 Reconnecting to MSN… (presence below may be out of date)"
	case bridge.StateStopped:
		header += "\n⚠️ Not connected to MSN. Use `/msn login`."
	case bridge.StateLoggedOut:
		header += "\n👋 Logged out."
	}
	header += fmt.Sprintf("\n%d of %d contacts online", online, total)

	var pages []rosterPage
	cur := rosterPage{Content: header}
	chars := 0
	var embed *discordgo.MessageEmbed
	omitted := 0
	// newEmbed starts an embed for group g on the current page, or on a new page when need more
	// characters would not fit; it reports false when the page limit is reached.
	newEmbed := func(g group, cont bool, need int) bool {
		title := fmt.Sprintf("%s (%d)", groupTitles[g], len(groups[g]))
		if cont {
			title += " (continued)"
		}
		if len(cur.Embeds) == maxEmbedsPerMsg || chars+utf8.RuneCountInString(title)+need > maxCharsPerMsg-footerRoom {
			pages = append(pages, cur)
			cur = rosterPage{Content: "**MSN — " + escapeMarkdown(p.handle) + "** (continued)"}
			chars = 0
			if len(pages) == maxRosterPages {
				return false
			}
		}
		embed = &discordgo.MessageEmbed{Title: title, Color: groupColors[g]}
		cur.Embeds = append(cur.Embeds, embed)
		chars += utf8.RuneCountInString(title)
		return true
	}
	full := false
	for g := group(0); g < groupCount; g++ {
		if len(groups[g]) == 0 {
			continue
		}
		if full || !newEmbed(g, false, 0) {
			full = true
			omitted += len(groups[g])
			continue
		}
		for i, c := range groups[g] {
			f := contactField(c)
			n := utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
			if len(embed.Fields) == maxEmbedFields || chars+n > maxCharsPerMsg-footerRoom {
				if !newEmbed(g, true, n) {
					full = true
					omitted += len(groups[g]) - i
					break
				}
			}
			embed.Fields = append(embed.Fields, f)
			chars += n
		}
	}
	if len(pages) < maxRosterPages {
		pages = append(pages, cur)
	}
	if omitted > 0 {
		last := &pages[len(pages)-1]
		if n := len(last.Embeds); n > 0 {
			last.Embeds[n-1].Footer = &discordgo.MessageEmbedFooter{Text: fmt.Sprintf("… and %d more contacts not shown", omitted)}
		}
	}
	if total == 0 {
		pages[0].Content += "\n_No contacts yet. Add one with `/msn add`._"
	}
	return pages
}

// contactField is one contact's roster entry.
func contactField(c bridge.Contact) *discordgo.MessageEmbedField {
	name := bridge.CleanLine(c.Name, maxFieldNameLen)
	if name == "" {
		name = bridge.CleanLine(c.Handle, maxFieldNameLen)
	}
	title := statusEmoji(c.Status) + " " + escapeMarkdown(name)
	if c.Status != bridge.StatusOnline && c.Status != bridge.StatusOffline {
		title += " — " + c.Status.String()
	}
	if c.Blocked {
		title += " 🚫"
	}
	value := topicMarker(c.Handle)
	if c.Status != bridge.StatusOffline {
		if psm := shown(c.PSM, maxFieldPSMLen); psm != "" {
			value += "\n💬 " + psm
		}
		if media := shown(c.Media, maxFieldMediaLen); media != "" {
			value += "\n" + media
		}
	}
	return &discordgo.MessageEmbedField{Name: title, Value: value, Inline: true}
}

// flushRoster edits the roster messages to the latest state: only pages whose content changed
// are edited; missing ones are posted and pinned, extra ones deleted.
func (p *portal) flushRoster(ctx context.Context) error {
	chID, err := p.ensureRoster(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	pages := p.renderRosterLocked()
	p.rosterDirty = false
	p.rosterLast = p.f.now()
	msgs := append([]string(nil), p.rosterMsgs...)
	hashes := append([]string(nil), p.rosterHashes...)
	p.mu.Unlock()

	fail := func(err error) error {
		p.mu.Lock()
		p.markRosterLocked()
		p.rosterMsgs, p.rosterHashes = msgs, hashes
		p.mu.Unlock()
		if isUnknown(err, discordgo.ErrCodeUnknownChannel) {
			p.forgetChannel(chID)
		}
		return err
	}
	s := p.f.s
	for i, pg := range pages {
		h := pg.hash()
		if i < len(msgs) && hashes[i] == h {
			continue
		}
		content, embeds := pg.Content, pg.Embeds
		if i < len(msgs) {
			_, err = retryTransient(ctx, func() (*discordgo.Message, error) {
				return s.ChannelMessageEditComplex(&discordgo.MessageEdit{
					ID: msgs[i], Channel: chID, Content: &content, Embeds: &embeds, AllowedMentions: noMentions(),
				}, discordgo.WithContext(ctx))
			})
			if err == nil {
				hashes[i] = h
				continue
			}
			if !isUnknown(err, discordgo.ErrCodeUnknownMessage) {
				return fail(fmt.Errorf("failed to edit the roster message: %w", err))
			}
		}
		m, err := retryTransient(ctx, func() (*discordgo.Message, error) {
			return s.ChannelMessageSendComplex(chID, &discordgo.MessageSend{
				Content: content, Embeds: embeds, AllowedMentions: noMentions(),
			}, discordgo.WithContext(ctx))
		})
		if err != nil {
			return fail(fmt.Errorf("failed to post the roster message: %w", err))
		}
		if _, err = retryTransient(ctx, func() (struct{}, error) {
			return struct{}{}, s.ChannelMessagePin(chID, m.ID, discordgo.WithContext(ctx))
		}); err != nil {
			p.log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to pin the roster message")
		}
		if i < len(msgs) {
			msgs[i], hashes[i] = m.ID, h
		} else {
			msgs, hashes = append(msgs, m.ID), append(hashes, h)
		}
	}
	for len(msgs) > len(pages) {
		last := len(msgs) - 1
		if err := s.ChannelMessageDelete(chID, msgs[last], discordgo.WithContext(ctx)); err != nil &&
			!isUnknown(err, discordgo.ErrCodeUnknownMessage) {
			return fail(fmt.Errorf("failed to delete an extra roster message: %w", err))
		}
		msgs, hashes = msgs[:last], hashes[:last]
	}
	p.mu.Lock()
	if p.rosterID == chID {
		p.rosterMsgs, p.rosterHashes = msgs, hashes
	}
	p.mu.Unlock()
	return nil
}
