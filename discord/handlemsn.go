package discord

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// showMessage posts an MSN message through the chat's webhook under the sender's friendly name.
// Messages the owner sent from another frontend are shown too, marked with where they came from.
func (p *portal) showMessage(ctx context.Context, m bridge.Message) error {
	body := renderMSN(bridge.CleanText(m.Text), m.Format)
	if strings.TrimSpace(body) == "" {
		return nil
	}
	username := p.senderUsername(m.Sender, m.SenderName, m.FromMe, m.Origin)
	if m.Chat.IsGroup() {
		p.noteMember(m.Chat, m.Sender)
	}
	parts := splitMessageN(body, p.f.cfg.MaxPartsPerMessage)
	emoticons := emoticonFiles(m.Text, m.Emoticons)
	for i, part := range parts {
		params := &discordgo.WebhookParams{Content: part, Username: username, AllowedMentions: noMentions()}
		if i == len(parts)-1 {
			params.Files = emoticons // beside the last words, as one post
		}
		if _, err := p.executeAs(ctx, m.Chat, params, m.FromMe); err != nil {
			err = fmt.Errorf("failed to show an msn message: %w", err)
			if ctx.Err() == nil && !forbidden(err) { // a refusal is tried again later
				p.reportUnshown(ctx, m, parts[i:], err)
			}
			return err
		}
	}
	return nil
}

// reportUnshown tells the owner, in the chat's channel (or the roster channel when that fails
// too), that an MSN message could not be posted, with as much of its text as a bot message
// holds.
func (p *portal) reportUnshown(ctx context.Context, m bridge.Message, parts []string, cause error) {
	from := "you"
	if !m.FromMe {
		c, _ := p.account().Contact(m.Sender)
		if c.Handle == "" {
			c = bridge.Contact{Handle: m.Sender, Name: m.SenderName}
		}
		from = contactLabel(c)
	}
	head := "⚠️ A message from " + from + " could not be shown here (" + shown(cause.Error(), maxShownError) + "). It said:\n"
	body := parts[0]
	if len(parts) > 1 {
		body += fmt.Sprintf("\n*… and %d more parts.*", len(parts)-1)
	}
	line := head + body
	if utf8.RuneCountInString(line) > maxMessageLen {
		end, _ := runeOffset(body, maxMessageLen-utf8.RuneCountInString(head)-1)
		line = head + body[:cutPoint(body[:end])] + "…"
	}
	if _, err := p.botSend(ctx, m.Chat, &discordgo.MessageSend{Content: line}); err != nil {
		if err = p.notice(ctx, line); err != nil {
			p.log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to report an MSN message that could not be shown")
		}
	}
}

// reportLost tells the owner, in the roster channel, about an event that could not be shown
// after its retries (a message says so itself, see reportUnshown); when even that fails the
// loss is logged as an error.
func (p *portal) reportLost(ctx context.Context, evt bridge.Event, cause error) {
	var what string
	switch e := evt.(type) {
	case bridge.Nudge:
		what = "A nudge"
		if !e.FromMe {
			what += " from " + p.label(e.Sender)
		}
	case bridge.ChatMembership:
		what = "A change of who is in a group conversation"
	case bridge.DeliveryFailure:
		what = "A message that MSN did not deliver (" + shown(e.Reason.Describe(), maxShownError) + ")"
	case bridge.ContactRequest:
		what = "A contact request from " + contactLabel(bridge.Contact{Handle: e.Handle, Name: e.Name}) +
			" (see `/msn requests`)"
	case bridge.ListChange:
		what = "A change of your contact list (" + contactLabel(e.Contact) + ")"
	case bridge.AccountState:
		what = "A change of the MSN connection"
	case bridge.File:
		what = "A file, " + fileLabel(e.Name, e.Size) + ", from " + p.senderLabel(e.Sender, e.SenderName, e.FromMe, e.Origin)
	case bridge.FileFailed:
		what = "A file that did not arrive, " + fileLabel(e.Name, e.Size) + ", from " + p.label(e.Sender)
	case bridge.Wink:
		what = "A wink from " + p.label(e.Sender)
	default:
		return
	}
	line := "⚠️ " + what + " could not be shown here: " + shown(bridge.ScrubError(cause).Error(), maxShownError)
	if err := p.notice(ctx, line); err != nil {
		p.log.Error().Err(bridge.ScrubError(err)).Str("event_type", evt.EventType()).
			AnErr("cause", bridge.ScrubError(cause)).Msg("Failed to show an MSN event, and to tell the owner")
	}
}

// label names a contact of the account in a notice (see contactLabel).
func (p *portal) label(handle string) string {
	c, ok := p.account().Contact(handle)
	if !ok {
		c = bridge.Contact{Handle: handle}
	}
	return contactLabel(c)
}

// showNudge posts a nudge as an italic system line.
func (p *portal) showNudge(ctx context.Context, n bridge.Nudge) error {
	who := n.Sender
	if c, ok := p.account().Contact(n.Sender); ok && c.Name != "" {
		who = c.Name
	}
	line := "*📳 " + shown(who, bridge.MaxShownName) + " sent you a nudge!*"
	if n.FromMe {
		line = "*📳 You sent a nudge"
		if n.Origin != "" {
			line += " (via " + n.Origin + ")"
		}
		line += ".*"
	}
	if _, err := p.botSend(ctx, n.Chat, &discordgo.MessageSend{Content: line}); err != nil {
		return fmt.Errorf("failed to show a nudge: %w", err)
	}
	return nil
}

// showTyping shows a contact typing, at most once per TypingInterval per channel, and only in a
// channel that exists (typing alone does not create one).
func (p *portal) showTyping(ctx context.Context, t bridge.Typing) error {
	now := p.f.now()
	p.mu.Lock()
	ch := p.chats[t.Chat]
	if ch == nil || ch.id == "" || now.Sub(ch.lastTyping) < p.f.cfg.TypingInterval {
		p.mu.Unlock()
		return nil
	}
	ch.lastTyping = now
	id := ch.id
	p.mu.Unlock()
	if err := p.f.s.ChannelTyping(id, discordgo.WithContext(ctx)); err != nil {
		if isUnknown(err, discordgo.ErrCodeUnknownChannel) {
			p.forgetChannel(id)
			return nil
		}
		return fmt.Errorf("failed to show typing: %w", err)
	}
	return nil
}

// noteMember records a participant of a group chat.
func (p *portal) noteMember(chat bridge.ChatID, handle string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := p.chats[chat]
	if ch == nil {
		ch = &chatChannel{chat: chat}
		p.chats[chat] = ch
	}
	if ch.members == nil {
		ch.members = map[string]bool{}
	}
	ch.members[handle] = true
}

// showMembership mirrors a multi-party chat: its channel is created when the chat becomes a
// group, and joins and leaves are shown as lines; when the last participant leaves the chat is
// over and the channel says so.
func (p *portal) showMembership(ctx context.Context, e bridge.ChatMembership) error {
	if !e.Chat.IsGroup() {
		return nil
	}
	acc := p.account() // before p.mu: name is called with it held
	name := func(h string) string {
		if c, ok := acc.Contact(h); ok {
			return contactLabel(c)
		}
		return shown(h, bridge.MaxShownName)
	}
	p.mu.Lock()
	ch := p.chats[e.Chat]
	if ch == nil {
		ch = &chatChannel{chat: e.Chat}
		p.chats[e.Chat] = ch
	}
	if ch.members == nil {
		ch.members = map[string]bool{}
	}
	fresh := len(ch.members) == 0 && ch.id == ""
	if e.Members != nil {
		// The core's list is the whole current membership.
		clear(ch.members)
		for _, h := range e.Members {
			if h != p.handle {
				ch.members[h] = true
			}
		}
	}
	self := e.Handle == p.handle
	if e.Joined && !self {
		ch.members[e.Handle] = true
	} else if !e.Joined {
		delete(ch.members, e.Handle)
	}
	members := make([]string, 0, len(ch.members))
	for h := range ch.members {
		members = append(members, name(h))
	}
	// The account leaving (its switchboard closed) or the last participant leaving ends it.
	ended := !e.Joined && (self || len(ch.members) == 0)
	ch.ended = ended
	p.mu.Unlock()
	sort.Strings(members)

	var line string
	switch {
	case fresh && len(e.Members) > 0:
		line = "*👥 Group conversation with " + strings.Join(members, ", ") + ".*"
	case e.Joined:
		line = "*➡️ " + name(e.Handle) + " joined the conversation.*"
	case self:
		line = "*The conversation was closed.*"
	default:
		line = "*⬅️ " + name(e.Handle) + " left the conversation.*"
	}
	if ended {
		line += "\n*The group conversation is over; this channel stays for its history.*"
	}
	if _, err := p.botSend(ctx, e.Chat, &discordgo.MessageSend{Content: line}); err != nil {
		return fmt.Errorf("failed to show a membership change: %w", err)
	}
	if ended {
		// The channel stays bound: what is written there now is answered as undeliverable.
		p.mu.Lock()
		delete(p.chats, e.Chat)
		p.mu.Unlock()
	}
	return nil
}

// showDeliveryFailure flags a message that MSN did not take after its send returned: on the
// Discord message it was written as (a ❌ reaction and a reply) or, for messages written
// elsewhere, as a line in the chat's channel.
func (p *portal) showDeliveryFailure(ctx context.Context, e bridge.DeliveryFailure) error {
	if ref, ok := p.sends.get(e.MessageID); ok {
		if !ref.edit {
			// Not delivered after all: deleting it needs no notice. (When an edit fails so,
			// the contact still has the message it corrected.)
			p.carried.take(ref.messageID)
		}
		p.reportFailure(ctx, ref, shown(e.Reason.Describe(), maxShownError))
		return nil
	}
	why := shown(e.Reason.Describe(), maxShownError)
	line := "⚠️ A message was not delivered: " + why
	if e.Origin != "" && e.Origin != FrontendName {
		line = "⚠️ A message sent via " + e.Origin + " was not delivered: " + why
	}
	if _, err := p.botSend(ctx, e.Chat, &discordgo.MessageSend{Content: line}); err != nil {
		return fmt.Errorf("failed to show a delivery failure: %w", err)
	}
	return nil
}

// reportFailure puts a ❌ on the user's message and replies why it (or its edit) was not
// delivered.
func (p *portal) reportFailure(ctx context.Context, ref sentRef, why string) {
	s := p.f.s
	channelID, messageID := ref.channelID, ref.messageID
	what, whatGone := "Not delivered", "A message was not delivered"
	if ref.edit {
		what, whatGone = "Edit not delivered", "An edit was not delivered"
	}
	// Each request is retried on a transient failure (a 5xx, the network), as the posts it
	// reports on are: the owner must not miss a failure because Discord hiccuped.
	if _, err := retryTransient(ctx, func() (struct{}, error) {
		return struct{}{}, s.MessageReactionAdd(channelID, messageID, "❌", discordgo.WithContext(ctx))
	}); err != nil {
		p.log.Warn().Err(bridge.ScrubError(err)).Str("channel_id", channelID).Msg("Failed to react to an undelivered message")
	}
	_, err := retryTransient(ctx, func() (*discordgo.Message, error) {
		return s.ChannelMessageSendComplex(channelID, &discordgo.MessageSend{
			Content:         "❌ " + what + ": " + why + ".",
			Reference:       &discordgo.MessageReference{MessageID: messageID, ChannelID: channelID, GuildID: p.f.cfg.GuildID},
			AllowedMentions: noMentions(),
		}, discordgo.WithContext(ctx))
	})
	if err != nil && ctx.Err() == nil {
		// The message may be gone (a reply to it fails); say it without the reference.
		_, err = retryTransient(ctx, func() (*discordgo.Message, error) {
			return s.ChannelMessageSendComplex(channelID, &discordgo.MessageSend{
				Content: "❌ " + whatGone + ": " + why + ".", AllowedMentions: noMentions(),
			}, discordgo.WithContext(ctx))
		})
	}
	if err != nil {
		p.log.Warn().Err(bridge.ScrubError(err)).Str("channel_id", channelID).Msg("Failed to report an undelivered message")
	}
}

// postRequest shows a contact request in the roster channel with Accept and Decline buttons,
// pinging the owner.
func (p *portal) postRequest(ctx context.Context, e bridge.ContactRequest) error {
	chID, err := p.ensureRoster(ctx)
	if err != nil {
		return err
	}
	c := bridge.Contact{Handle: e.Handle, Name: e.Name}
	text := "📨 " + contactLabel(c) + " added you to their contact list."
	owner := p.owner()
	mentions := noMentions()
	if owner != "" {
		text = "<@" + owner + "> " + text
		mentions.Users = []string{owner}
	}
	_, err = retryTransient(ctx, func() (*discordgo.Message, error) {
		return p.f.s.ChannelMessageSendComplex(chID, &discordgo.MessageSend{
			Content:         text,
			Components:      []discordgo.MessageComponent{p.f.requestButtons(p.handle, e.Handle)},
			AllowedMentions: mentions,
		}, discordgo.WithContext(ctx))
	})
	if err != nil {
		return fmt.Errorf("failed to post a contact request: %w", err)
	}
	return nil
}

// recentIndex keeps the last n values put, by key: which Discord message a core message id came
// from (for late delivery failures), and what each of the owner's Discord messages carried to
// MSN (for their edits and deletes).
type recentIndex[V any] struct {
	mu    sync.Mutex
	n     int
	order []string
	vals  map[string]V
}

type sentRef struct {
	channelID, messageID string
	edit                 bool // the message's edit was sent, not the message
}

func newRecentIndex[V any](n int) *recentIndex[V] {
	return &recentIndex[V]{n: n, vals: map[string]V{}}
}

func (x *recentIndex[V]) put(key string, v V) {
	if key == "" {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.vals[key]; !ok {
		x.order = append(x.order, key)
	}
	x.vals[key] = v
	for len(x.order) > x.n {
		delete(x.vals, x.order[0])
		x.order = x.order[1:]
	}
}

func (x *recentIndex[V]) get(key string) (V, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	v, ok := x.vals[key]
	return v, ok
}

// take removes key's value and returns it.
func (x *recentIndex[V]) take(key string) (V, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	v, ok := x.vals[key]
	if ok {
		delete(x.vals, key)
		x.order = slices.DeleteFunc(x.order, func(k string) bool { return k == key })
	}
	return v, ok
}
