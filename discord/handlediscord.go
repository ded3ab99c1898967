package discord

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// onMessageCreate takes the owner's messages in a contact or group channel to MSN.
func (f *Frontend) onMessageCreate(_ *discordgo.Session, m *discordgo.MessageCreate) {
	if ref, text, ok := f.ownerText(m.Message); ok {
		f.enqueue(ref, &outgoingMsg{chat: ref.chat, channelID: m.ChannelID, messageID: m.ID, text: text, carries: text})
	}
}

// onMessageUpdate carries the owner's edit of a message to MSN as a new message, the changed
// text after bridge.CorrectionPrefix. Updates that are no edit (Discord sends one when a link's
// preview arrives: no edited_timestamp) and edits that leave the text as it was carried are not
// sent.
func (f *Frontend) onMessageUpdate(_ *discordgo.Session, m *discordgo.MessageUpdate) {
	if m.Message == nil || m.EditedTimestamp == nil {
		return
	}
	ref, text, ok := f.ownerText(m.Message)
	if !ok {
		return
	}
	if was, ok := ref.p.carried.get(m.ID); ok && was == text {
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
	if _, ok := ref.p.carried.take(m.ID); !ok {
		return
	}
	f.tracked(30*time.Second, func(ctx context.Context) {
		line := "🗑️ Deleted here only: MSN cannot take back a message it has delivered, so the contact still has it."
		if _, err := ref.p.botSend(ctx, ref.chat, &discordgo.MessageSend{Content: line}); err != nil {
			ref.p.log.Warn().Err(err).Str("channel_id", m.ChannelID).Msg("Failed to say a deleted message stays on MSN")
		}
	})
}

// enqueue puts out in the portal's outbox; when that is full the owner is told at once.
func (f *Frontend) enqueue(ref channelRef, out *outgoingMsg) {
	select {
	case ref.p.outbox <- out:
	default:
		f.tracked(30*time.Second, func(ctx context.Context) {
			ref.p.reportFailure(ctx, sentRef{out.channelID, out.messageID, out.edit}, "too many messages are waiting for MSN; try again in a moment")
		})
	}
}

// discordToMSN renders a Discord message as MSN text: mentions as names, a reply as an inline
// quote, attachments as links.
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
		quoted := truncate(oneLine(r.Content), 120)
		if quoted == "" && len(r.Attachments) > 0 && r.Attachments[0] != nil {
			quoted = "[" + r.Attachments[0].Filename + "]"
		}
		fmt.Fprintf(&b, "> %s: %s\n", who, quoted)
	}
	b.WriteString(mentionsReplaced(m))
	for _, a := range m.Attachments {
		if a == nil {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "📎 %s: %s", a.Filename, a.URL)
	}
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

func (p *portal) sendToMSN(ctx context.Context, out *outgoingMsg) {
	sctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	acc := p.account()
	id, err := acc.SendText(sctx, FrontendName, out.chat, out.text, bridge.Format{})
	p.sends.put(id, sentRef{out.channelID, out.messageID, out.edit})
	if err == nil {
		p.carried.put(out.messageID, out.carries)
		return
	}
	if ctx.Err() != nil {
		return
	}
	why := failureText(err)
	p.log.Info().Str("chat", string(out.chat)).Str("reason", why).Msg("Message not delivered to MSN")
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	p.reportFailure(rctx, sentRef{out.channelID, out.messageID, out.edit}, why)
}

// failureText is a short reason for a failed action, fit for the user.
func failureText(err error) string {
	var se *bridge.SendError
	var stopped *bridge.StoppedError
	switch {
	case errors.As(err, &se):
		if se.Parts > 1 {
			return fmt.Sprintf("part %d of %d: %s", se.Part+1, se.Parts, se.Reason.Describe())
		}
		return se.Reason.Describe()
	case errors.As(err, &stopped):
		return "the MSN account is stopped (" + string(stopped.Reason) + ")"
	case errors.Is(err, bridge.ErrNotConnected):
		return "the MSN account is not connected"
	case errors.Is(err, bridge.ErrUnknownChat):
		return "this conversation is over"
	case errors.Is(err, bridge.ErrStopping):
		return "the bridge is shutting down"
	case errors.Is(err, context.DeadlineExceeded):
		return "MSN did not answer in time"
	}
	return err.Error()
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
			p.log.Debug().Err(err).Str("chat", string(ref.chat)).Msg("Failed to send typing to MSN")
		}
	})
}
