package discord

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// sendTimeout bounds one message's way to MSN (switchboard, ACK).
const sendTimeout = 60 * time.Second

// typingToMSNInterval is the minimum interval between two typing notifications sent to MSN per
// chat (MSN clients repeat theirs every few seconds).
const typingToMSNInterval = 4 * time.Second

// outgoingMsg is an owner's Discord message on its way to MSN.
type outgoingMsg struct {
	chat      bridge.ChatID
	channelID string
	messageID string
	text      string // as MSN receives it
	carries   string // the Discord message's own text, remembered once it reached MSN
	edit      bool   // a correction of a message already carried
	// files are the message's attachments, sent as MSN file transfers after its text.
	files []*discordgo.MessageAttachment
}

// ownerMessage resolves a message event to the chat of its channel when it is the owner's own
// message in a contact or group channel. The bot's own messages, every webhook's (ours
// included), other bots' and other users' are not.
func (f *Frontend) ownerMessage(m *discordgo.Message) (channelRef, bool) {
	if m == nil || m.Author == nil || m.GuildID != "" && m.GuildID != f.cfg.GuildID {
		return channelRef{}, false
	}
	if m.Author.ID == f.botID || m.WebhookID != "" || m.Author.Bot || m.Author.System {
		return channelRef{}, false
	}
	if m.Type != discordgo.MessageTypeDefault && m.Type != discordgo.MessageTypeReply {
		return channelRef{}, false
	}
	ref, ok := f.channel(m.ChannelID)
	if !ok || ref.chat == "" {
		return channelRef{}, false
	}
	if owner := ref.p.owner(); owner == "" || owner != m.Author.ID {
		f.log.Debug().Str("channel_id", m.ChannelID).Str("user_id", m.Author.ID).
			Msg("Ignoring a message from someone who does not own the account")
		return channelRef{}, false
	}
	return ref, true
}

// ownerText is ownerMessage with the message rendered as MSN text; false also when nothing is
// left to send.
func (f *Frontend) ownerText(m *discordgo.Message) (channelRef, string, bool) {
	ref, ok := f.ownerMessage(m)
	if !ok {
		return channelRef{}, "", false
	}
	text := discordToMSN(m)
	return ref, text, strings.TrimSpace(text) != ""
}

// onMessageCreate takes the owner's messages in a contact or group channel to MSN, in order
// with what a gateway gap lost (see catchUp).
func (f *Frontend) onMessageCreate(_ *discordgo.Session, m *discordgo.MessageCreate) {
	if m.Message != nil {
		f.catchUp.live(m.Message)
	}
}

// handleCreate takes a new message, live or caught up, to MSN when it is the owner's: its text
// and its attachments.
func (f *Frontend) handleCreate(m *discordgo.Message) {
	ref, ok := f.ownerMessage(m)
	if !ok {
		return
	}
	text := discordToMSN(m)
	files := nonNil(m.Attachments)
	if strings.TrimSpace(text) == "" && len(files) == 0 {
		return
	}
	f.enqueue(ref, &outgoingMsg{chat: ref.chat, channelID: m.ChannelID, messageID: m.ID, text: text, carries: text, files: files})
}

// onMessageUpdate carries the owner's edit of a message to MSN, in order with what a gateway
// gap lost (see catchUp). Updates that are no edit (Discord sends one when a link's preview
// arrives: no edited_timestamp) are not.
func (f *Frontend) onMessageUpdate(_ *discordgo.Session, m *discordgo.MessageUpdate) {
	if m.Message == nil || m.EditedTimestamp == nil {
		return
	}
	f.catchUp.liveUpdate(m.Message)
}

// handleUpdate carries the owner's edit of a message to MSN as a new message, the changed text
// after bridge.CorrectionPrefix. An edit that leaves the text as it was queued or carried is
// not sent; with knownOnly (an edit the catch-up found on an older message), neither is the
// edit of a message the frontend does not remember carrying.
func (f *Frontend) handleUpdate(m *discordgo.Message, knownOnly bool) {
	ref, text, ok := f.ownerText(m)
	if !ok {
		return
	}
	was, known := ref.p.queued.get(m.ID)
	if !known {
		was, known = ref.p.carried.get(m.ID)
	}
	if known && was == text || !known && knownOnly {
		return
	}
	f.enqueue(ref, &outgoingMsg{chat: ref.chat, channelID: m.ChannelID, messageID: m.ID,
		text: bridge.CorrectionPrefix + text, carries: text, edit: true})
}

// onMessageDelete tells the owner, in the channel, that a message they deleted on Discord after
// it reached MSN stays with the contact: MSN cannot take a delivered message back. Deletes of
// other messages (the bot's, the contacts', failed ones) say nothing.
func (f *Frontend) onMessageDelete(_ *discordgo.Session, m *discordgo.MessageDelete) {
	if m.Message == nil || m.GuildID != "" && m.GuildID != f.cfg.GuildID {
		return
	}
	ref, ok := f.channel(m.ChannelID)
	if !ok || ref.chat == "" {
		return
	}
	if ref.p.pending.withdraw(m.ID) {
		return // what is not sent yet will not be; the outbox says so once the last send ends
	}
	if _, ok := ref.p.carried.take(m.ID); !ok {
		return
	}
	f.tracked(30*time.Second, func(ctx context.Context) { ref.p.deletedNotice(ctx, ref.chat, true) })
}

// deletedNotice tells the owner, in the chat's channel, what became of a message they deleted:
// still delivered (MSN cannot take it back), or withdrawn before it was sent.
func (p *portal) deletedNotice(ctx context.Context, chat bridge.ChatID, delivered bool) {
	line := "🗑️ Deleted here only: MSN cannot take back a message it has delivered, so the contact still has it."
	if !delivered {
		line = "🗑️ Deleted before it was sent: the contact will not get it."
	}
	if _, err := p.botSend(ctx, chat, &discordgo.MessageSend{Content: line}); err != nil {
		p.log.Warn().Err(bridge.ScrubError(err)).Str("chat", string(chat)).Msg("Failed to say what became of a deleted message")
	}
}

// pendingSends are the owner's messages between their enqueue and the end of their send (the
// message and its edits, each an item), so that deleting one on Discord withdraws the items
// not sent yet. It holds at most what the outbox holds, and one being sent.
type pendingSends struct {
	mu        sync.Mutex
	count     map[string]int  // Discord message id → its items queued or being sent
	withdrawn map[string]bool // deleted on Discord while it had some
}

func (s *pendingSends) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.count == nil {
		s.count, s.withdrawn = map[string]int{}, map[string]bool{}
	}
	s.count[id]++
}

// withdraw marks id deleted when it has items pending, and reports whether it had.
func (s *pendingSends) withdraw(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.count[id] == 0 {
		return false
	}
	s.withdrawn[id] = true
	return true
}

func (s *pendingSends) isWithdrawn(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.withdrawn[id]
}

// done ends an item of id, and reports whether it was the last of a withdrawn message.
func (s *pendingSends) done(id string) (lastWithdrawn bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.count[id]--; s.count[id] > 0 {
		return false
	}
	lastWithdrawn = s.withdrawn[id]
	delete(s.count, id)
	delete(s.withdrawn, id)
	return lastWithdrawn
}

// enqueue puts out in the portal's outbox; when that is full the owner is told at once.
func (f *Frontend) enqueue(ref channelRef, out *outgoingMsg) {
	ref.p.pending.add(out.messageID)
	select {
	case ref.p.outbox <- out:
		ref.p.queued.put(out.messageID, out.carries)
	default:
		ref.p.pending.done(out.messageID)
		f.tracked(failureReportTimeout, func(ctx context.Context) {
			ref.p.reportFailure(ctx, sentRef{out.channelID, out.messageID, out.edit}, "too many messages are waiting for MSN; try again in a moment")
		})
	}
}

// discordToMSN renders a Discord message as MSN text: mentions as names, a reply as an inline
// quote. Attachments are not in it: they go as files (see attachments.go).
func discordToMSN(m *discordgo.Message) string {
	var b strings.Builder
	if r := m.ReferencedMessage; r != nil && m.Type == discordgo.MessageTypeReply {
		who := "someone"
		if r.Author != nil {
			who = r.Author.Username
			if r.Author.GlobalName != "" {
				who = r.Author.GlobalName
			}
		}
		quoted := r.Content
		if strings.TrimSpace(quoted) == "" && len(r.Attachments) > 0 && r.Attachments[0] != nil {
			quoted = "[" + r.Attachments[0].Filename + "]"
		}
		b.WriteString(bridge.ReplyQuote(who, quoted))
	}
	b.WriteString(mentionsReplaced(m))
	for _, s := range m.StickerItems {
		if s == nil {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "[sticker: %s]", s.Name)
	}
	return b.String()
}

// mentionsReplaced is m's content with each user mention (<@id>, <@!id>) as @username, in one
// pass: discordgo's ContentWithMentionsReplaced panics on a null entry in mentions and
// rescans the content once per user.
func mentionsReplaced(m *discordgo.Message) string {
	var pairs []string
	for _, u := range m.Mentions {
		if u != nil && u.ID != "" {
			pairs = append(pairs, "<@"+u.ID+">", "@"+u.Username, "<@!"+u.ID+">", "@"+u.Username)
		}
	}
	if len(pairs) == 0 {
		return m.Content
	}
	return strings.NewReplacer(pairs...).Replace(m.Content)
}

// outboxLoop sends the owner's messages to MSN one at a time, in order, until ctx ends. A
// failed send is reported on the message: a ❌ reaction and a reply saying why.
func (p *portal) outboxLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case out := <-p.outbox:
			p.sendToMSN(ctx, out)
		}
	}
}

// sendToMSN sends one item of the outbox, unless its message was deleted on Discord meanwhile;
// the last item of a deleted message ends with a notice of what became of it.
func (p *portal) sendToMSN(ctx context.Context, out *outgoingMsg) {
	if p.pending.isWithdrawn(out.messageID) {
		if p.pending.done(out.messageID) {
			p.withdrawnNotice(ctx, out)
		}
		return
	}
	var err error
	if strings.TrimSpace(out.text) != "" {
		sctx, cancel := context.WithTimeout(ctx, sendTimeout)
		defer cancel()
		var id string
		id, err = p.account().SendText(sctx, FrontendName, out.chat, out.text, bridge.Format{})
		p.sends.put(id, sentRef{out.channelID, out.messageID, out.edit})
	}
	if err == nil {
		p.carried.put(out.messageID, out.carries)
		p.sendAttachments(out) // when the text did not arrive, they would not either
	}
	if p.pending.done(out.messageID) {
		p.withdrawnNotice(ctx, out)
		return // deleted: a failure of what it carried no longer matters to the owner
	}
	if err == nil || ctx.Err() != nil {
		return
	}
	why := failureText(err)
	p.log.Info().Str("chat", string(out.chat)).Str("reason", why).Msg("Message not delivered to MSN")
	ref := sentRef{out.channelID, out.messageID, out.edit}
	p.f.tracked(failureReportTimeout, func(ctx context.Context) { p.reportFailure(ctx, ref, why) })
}

// failureReportTimeout bounds telling the owner that a message did not reach MSN. It outlasts
// the longest hold of the invalid-request budget (until the oldest invalid answer leaves its
// 10-minute window): a report must not be lost to the bridge's own pause. Reports run off the
// outbox, so the account's next messages do not wait for them.
const failureReportTimeout = invalidWindow + time.Minute

// withdrawnNotice is deletedNotice for a message deleted while some of it was pending: still
// delivered when an earlier item of it reached MSN.
func (p *portal) withdrawnNotice(ctx context.Context, out *outgoingMsg) {
	if ctx.Err() != nil {
		return
	}
	_, delivered := p.carried.take(out.messageID)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p.deletedNotice(rctx, out.chat, delivered)
}

// failureText is bridge.UserMessage for err, fit for the user: the sentence may carry a
// server's words, so it is cleaned, capped and escaped as remote text is.
func failureText(err error) string {
	return shown(bridge.UserMessage(err), maxShownError)
}

// onTypingStart tells MSN the owner is typing in a contact channel, throttled per chat.
func (f *Frontend) onTypingStart(_ *discordgo.Session, t *discordgo.TypingStart) {
	if t.UserID == f.botID {
		return
	}
	ref, ok := f.channel(t.ChannelID)
	if !ok || ref.chat == "" || ref.p.owner() != t.UserID {
		return
	}
	p := ref.p
	now := f.now()
	p.mu.Lock()
	if now.Sub(p.typingOut[ref.chat]) < typingToMSNInterval {
		p.mu.Unlock()
		return
	}
	p.typingOut[ref.chat] = now
	p.mu.Unlock()
	f.tracked(10*time.Second, func(ctx context.Context) {
		if err := p.account().SendTyping(ctx, ref.chat); err != nil {
			p.log.Debug().Err(bridge.ScrubError(err)).Str("chat", string(ref.chat)).Msg("Failed to send typing to MSN")
		}
	})
}
