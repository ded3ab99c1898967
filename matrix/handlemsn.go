package matrix

import (
	"context"
	"fmt"
	"html"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/simplevent"
	"maunium.net/go/mautrix/bridgev2/status"
	"maunium.net/go/mautrix/event"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// handleEvent shows one core event of the account on Matrix. It runs on the core's delivery
// goroutine for this account; remote events are queued to bridgev2 portals and never block
// on Matrix for long.
func (c *MSNClient) handleEvent(ctx context.Context, acc *bridge.Account, evt bridge.Event) error {
	ctx = c.log.WithContext(ctx)
	switch e := evt.(type) {
	case bridge.AccountState:
		c.sendBridgeState(e)
	case bridge.ContactSnapshot:
		for _, ct := range e.Contacts {
			c.updateGhost(ctx, ct.Handle, ct.Name, ct.Status != bridge.StatusOffline)
			c.main.presence.update(ctx, c.main.Bridge, ct.Handle, ct.Status, ct.PSM, ct.Media)
			if ct.Avatar != "" {
				c.knownAvatar(ctx, acc, ct.Handle, ct.Avatar)
			}
		}
	case bridge.ContactPresence:
		c.updateGhost(ctx, e.Handle, e.Name, e.Status != bridge.StatusOffline)
		c.main.presence.update(ctx, c.main.Bridge, e.Handle, e.Status, e.PSM, e.Media)
		c.knownAvatar(ctx, acc, e.Handle, "")
	case bridge.ContactAvatar:
		c.updateGhostAvatar(ctx, e.Handle, e.Avatar, e.Data)
	case bridge.File:
		c.showFile(ctx, e)
	case bridge.FileFailed:
		c.queueFileFailed(e)
	case bridge.Wink:
		c.queueWink(e)
	case bridge.ContactProfile:
		c.updateGhost(ctx, e.Handle, e.Name, true)
	case bridge.Message:
		c.queueMessage(e)
	case bridge.Typing:
		c.queueTyping(e)
	case bridge.Nudge:
		c.queueNudge(e)
	case bridge.ChatMembership:
		c.handleMembership(e)
	case bridge.DeliveryFailure:
		c.handleDeliveryFailure(ctx, e)
	case bridge.ContactRequest:
		n := new(notice).remote(e.Handle, bridge.MaxShownName)
		if e.Name != "" && e.Name != e.Handle {
			n.text(" (").remote(e.Name, bridge.MaxShownName).text(")")
		}
		n.text(" added you to their MSN contact list. Reply ").code("accept " + e.Handle).
			text(" to allow them (and add them back) or ").code("decline " + e.Handle).text(".")
		c.notice(ctx, n)
	case bridge.ListChange:
		switch e.Kind {
		case bridge.ListAdded:
			c.updateGhost(ctx, e.Contact.Handle, e.Contact.Name, false)
		case bridge.ListRemovedYou:
			c.log.Debug().Str("contact", e.Contact.Handle).Msg("Contact removed the account from their list")
		}
	case bridge.ServerNotice:
		c.notice(ctx, serverNotice(e))
	case bridge.EventsDropped:
		c.notice(ctx, new(notice).textf("The bridge fell behind and %d MSN events (possibly messages) could not be shown here.", e.Count))
	case bridge.OwnProfile:
		// Shown by MSN clients only; nothing to mirror on Matrix.
	}
	return nil
}

// serverNotice words what the MSN server announced for the owner.
func serverNotice(e bridge.ServerNotice) *notice {
	switch e.Kind {
	case bridge.NoticeMaintenance:
		if e.Minutes > 0 {
			return new(notice).textf("The MSN server announced maintenance: it will go down in %d minutes. The bridge reconnects once it is back.", e.Minutes)
		}
		return new(notice).text("The MSN server announced maintenance: it will go down soon. The bridge reconnects once it is back.")
	case bridge.NoticeShutdown:
		return new(notice).text("The MSN server is shutting down and closed your session. The bridge keeps trying to reconnect.")
	case bridge.NoticeRetryLater:
		return new(notice).textf("The MSN server closed your session for now and asked to come back in %d minutes. The bridge reconnects then.", max(e.Minutes, 1))
	}
	return new(notice).text("The MSN server sent a notice.")
}

// sendBridgeState maps the account's session state to a bridgev2 BridgeState. bridgev2 posts
// errors (and the recovery after one) to the management room.
func (c *MSNClient) sendBridgeState(st bridge.AccountState) {
	c.mu.Lock()
	c.lastState = st.State
	c.mu.Unlock()
	bs := status.BridgeState{}
	switch st.State {
	case bridge.StateConnecting:
		bs.StateEvent = status.StateConnecting
	case bridge.StateOnline:
		bs.StateEvent = status.StateConnected
	case bridge.StateReconnecting:
		bs.StateEvent = status.StateTransientDisconnect
		bs.Error = "msn-reconnecting"
		bs.Message = "Connection to MSN lost, reconnecting"
		if !st.NextAttempt.IsZero() {
			bs.Message += " at " + st.NextAttempt.UTC().Format(time.TimeOnly) + " UTC"
		}
		if st.Err != nil {
			bs.Info = map[string]any{"go_error": st.Err.Error()}
		}
	case bridge.StateStopped:
		switch st.Reason {
		case bridge.StopShutdown:
			return
		case bridge.StopBadCredentials:
			bs.StateEvent = status.StateBadCredentials
			bs.Error = "msn-bad-credentials"
			bs.Message = badCredentialsMessage
		case bridge.StopOtherLocation:
			bs.StateEvent = status.StateBadCredentials
			bs.Error = "msn-logged-in-elsewhere"
			bs.Message = loggedInElsewhereMessage
		case bridge.StopKeyError:
			bs.StateEvent = status.StateBadCredentials
			bs.Error = "msn-credentials-unreadable"
			bs.Message = credentialsUnreadableMessage
		case bridge.StopServerGone:
			bs.StateEvent = status.StateUnknownError
			bs.Error = "msn-server-refused"
			bs.Message = strings.TrimSuffix(bridge.Sentence(st.Reason.Describe()), ".")
		default:
			bs.StateEvent = status.StateUnknownError
			bs.Error = "msn-stopped"
			bs.Message = strings.TrimSuffix(bridge.Sentence(st.Reason.Describe()), ".")
		}
		if st.Err != nil && st.Reason != bridge.StopBadCredentials {
			bs.Info = map[string]any{"go_error": st.Err.Error()}
			if st.Reason == bridge.StopServerGone || st.Reason == "" {
				// bridgev2 renders the message as Markdown; the error may quote the server.
				bs.Message += ": " + escapeMarkdown(st.Err.Error(), maxErrorShown)
			}
		}
	case bridge.StateLoggedOut:
		bs.StateEvent = status.StateLoggedOut
	default:
		return
	}
	c.login.BridgeState.Send(bs)
}

// updateGhost sets a ghost's display name. A name seen while the contact is offline (the
// stored list name, which MSN falls back to) only fills a ghost without a name, so names never
// flap between the stored and the friendly name across reconnects.
func (c *MSNClient) updateGhost(ctx context.Context, handle, name string, authoritative bool) {
	if handle == "" || handle == c.handle {
		return
	}
	ghost, err := c.main.Bridge.GetGhostByID(ctx, makeUserID(handle))
	if err != nil {
		c.log.Warn().Err(err).Str("contact", handle).Msg("Failed to get ghost")
		return
	}
	// A ghost is shared by every account that has the contact, and their events are delivered
	// concurrently: the name is read and updated under the ghost's lock.
	unlock := c.main.lockGhost(handle)
	defer unlock()
	if ghost.Name != "" && (!authoritative || name == "" || name == handle) {
		return
	}
	ghost.UpdateInfo(ctx, c.main.userInfo(handle, name))
}

func (c *MSNClient) senderOf(handle string, fromMe bool) bridgev2.EventSender {
	if fromMe || handle == c.handle {
		return c.ownSender(fromMe)
	}
	return bridgev2.EventSender{Sender: makeUserID(handle)}
}

func (c *MSNClient) queueMessage(m bridge.Message) {
	text := bridge.CleanText(m.Text)
	if m.Chat == "" || strings.TrimSpace(text) == "" {
		return
	}
	text = truncateBody(text, c.main.Config.MaxMessageSize)
	c.stopTypingFrom(m.Chat, m.Sender)
	evt := &simplevent.Message[bridge.Message]{
		EventMeta: simplevent.EventMeta{
			Type:         bridgev2.RemoteEventMessage,
			PortalKey:    makePortalKey(c.login.ID, m.Chat),
			Sender:       c.senderOf(m.Sender, m.FromMe),
			CreatePortal: true,
			Timestamp:    m.Time,
			LogContext: func(lc zerolog.Context) zerolog.Context {
				return lc.Str("message_id", m.ID).Str("chat", string(m.Chat))
			},
		},
		ID:   makeMessageID(m.ID),
		Data: m,
		ConvertMessageFunc: func(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, m bridge.Message) (*bridgev2.ConvertedMessage, error) {
			var body string
			if len(m.Emoticons) > 0 {
				if uris := c.emoticonURIs(ctx, portal, intent, m.Emoticons); len(uris) > 0 {
					body = emoticonHTML(text, uris)
				}
			}
			return &bridgev2.ConvertedMessage{Parts: []*bridgev2.ConvertedMessagePart{{
				Type:    event.EventMessage,
				Content: formatHTMLToMatrix(text, body, m.Format),
			}}}, nil
		},
	}
	c.login.QueueRemoteEvent(evt)
}

// formatToMatrix renders an MSN message with its whole-message style as Matrix content. The
// text is escaped in the formatted body and mentions no one. The style is dropped when the
// formatted body would not fit in the event beside the plain one.
func formatToMatrix(text string, f bridge.Format) *event.MessageEventContent {
	return formatHTMLToMatrix(text, "", f)
}

// formatHTMLToMatrix is formatToMatrix with body, when not "", as the formatted text (text
// rendered as escaped HTML with inline custom emoticons, see emoticonHTML); the plain body keeps
// the shortcuts. Without room for the formatted body, the plain one is shown alone.
func formatHTMLToMatrix(text, body string, f bridge.Format) *event.MessageEventContent {
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: text, Mentions: &event.Mentions{}}
	colored := isHexColor(f.Color) && !strings.EqualFold(f.Color, "000000")
	if f.Bold || f.Italic || f.Underline || f.Strikethrough || colored || body != "" {
		if body == "" {
			body = strings.ReplaceAll(html.EscapeString(text), "\n", "<br>")
		}
		if f.Bold {
			body = "<b>" + body + "</b>"
		}
		if f.Italic {
			body = "<i>" + body + "</i>"
		}
		if f.Underline {
			body = "<u>" + body + "</u>"
		}
		if f.Strikethrough {
			body = "<del>" + body + "</del>"
		}
		if colored {
			color := "#" + strings.ToLower(f.Color)
			body = `<font color="` + color + `" data-mx-color="` + color + `">` + body + `</font>`
		}
		if encodedLen(text)+encodedLen(body) > maxEventText {
			return content
		}
		content.Format = event.FormatHTML
		content.FormattedBody = body
	}
	return content
}

func isHexColor(s string) bool {
	if len(s) != 6 {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

func (c *MSNClient) queueTyping(t bridge.Typing) {
	if t.Sender == c.handle {
		return
	}
	c.mu.Lock()
	c.typingIn[typingKey{t.Chat, t.Sender}] = true
	c.mu.Unlock()
	c.login.QueueRemoteEvent(&simplevent.Typing{
		EventMeta: simplevent.EventMeta{
			Type:      bridgev2.RemoteEventTyping,
			PortalKey: makePortalKey(c.login.ID, t.Chat),
			Sender:    c.senderOf(t.Sender, false),
		},
		Timeout: bridge.TypingTimeout,
		Type:    bridgev2.TypingTypeText,
	})
}

// stopTypingFrom clears a contact's typing indicator before their message is shown.
func (c *MSNClient) stopTypingFrom(chat bridge.ChatID, sender string) {
	key := typingKey{chat, sender}
	c.mu.Lock()
	was := c.typingIn[key]
	delete(c.typingIn, key)
	c.mu.Unlock()
	if !was {
		return
	}
	c.login.QueueRemoteEvent(&simplevent.Typing{
		EventMeta: simplevent.EventMeta{
			Type:      bridgev2.RemoteEventTyping,
			PortalKey: makePortalKey(c.login.ID, chat),
			Sender:    c.senderOf(sender, false),
		},
		Timeout: 0,
	})
}

func (c *MSNClient) queueNudge(n bridge.Nudge) {
	if n.Chat == "" {
		return
	}
	ts := n.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	sender := n.Sender
	if n.FromMe {
		sender = c.handle
	}
	id := fmt.Sprintf("nudge:%s:%d", sender, ts.UnixNano())
	text := c.main.Config.NudgeText
	if n.FromMe {
		text = "sent a nudge"
	}
	c.login.QueueRemoteEvent(&simplevent.Message[string]{
		EventMeta: simplevent.EventMeta{
			Type:         bridgev2.RemoteEventMessage,
			PortalKey:    makePortalKey(c.login.ID, n.Chat),
			Sender:       c.senderOf(sender, n.FromMe),
			CreatePortal: true,
			Timestamp:    ts,
		},
		ID:   networkid.MessageID(id),
		Data: text,
		ConvertMessageFunc: func(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, text string) (*bridgev2.ConvertedMessage, error) {
			return &bridgev2.ConvertedMessage{Parts: []*bridgev2.ConvertedMessagePart{{
				Type:    event.EventMessage,
				Content: &event.MessageEventContent{MsgType: event.MsgEmote, Body: text},
			}}}, nil
		},
	})
}

// handleDeliveryFailure marks the Matrix message a late failure belongs to as failed.
func (c *MSNClient) handleDeliveryFailure(ctx context.Context, f bridge.DeliveryFailure) {
	reason := f.Reason.Describe()
	msgStatus := bridgev2.MessageStatus{
		Status:        event.MessageStatusFail,
		ErrorReason:   event.MessageStatusNetworkError,
		InternalError: fmt.Errorf("delivery failed: %s", f.Reason),
		Message:       reason,
		IsCertain:     true,
		SendNotice:    true,
	}
	if f.MessageID != "" {
		msg, err := c.main.Bridge.DB.Message.GetFirstPartByID(ctx, c.login.ID, makeMessageID(f.MessageID))
		var portal *bridgev2.Portal
		if err == nil && msg != nil {
			portal, err = c.main.Bridge.GetExistingPortalByKey(ctx, msg.Room)
		}
		if err == nil && msg != nil && msg.MXID != "" && portal != nil && portal.MXID != "" {
			c.main.Bridge.Matrix.SendMessageStatus(ctx, &msgStatus, &bridgev2.MessageStatusEventInfo{
				RoomID:        portal.MXID,
				SourceEventID: msg.MXID,
				EventType:     event.EventMessage,
				Sender:        c.login.UserMXID,
			})
			return
		}
	}
	portal, err := c.main.Bridge.GetExistingPortalByKey(ctx, makePortalKey(c.login.ID, f.Chat))
	if err == nil && portal != nil && portal.MXID != "" {
		c.sendRoomNotice(ctx, portal, "A message could not be delivered: "+reason)
		return
	}
	c.notice(ctx, new(notice).text("A message to ").remote(string(f.Chat), bridge.MaxShownName).
		text(" could not be delivered: ").text(reason))
}

// notice posts a notice from the bridge bot in the user's management room.
func (c *MSNClient) notice(ctx context.Context, n *notice) {
	room, err := c.login.User.GetManagementRoom(ctx)
	if err != nil {
		c.log.Warn().Err(err).Msg("Failed to get management room")
		return
	}
	if _, err = c.main.Bridge.Bot.SendMessage(ctx, room, event.EventMessage, &event.Content{Parsed: n.content()}, nil); err != nil {
		c.log.Warn().Err(err).Msg("Failed to send notice to management room")
	}
}

// sendRoomNotice posts a plain notice of the bridge's own wording from the bridge bot in a
// portal.
func (c *MSNClient) sendRoomNotice(ctx context.Context, portal *bridgev2.Portal, text string) {
	content := &event.MessageEventContent{MsgType: event.MsgNotice, Body: text, Mentions: &event.Mentions{}}
	if _, err := c.main.Bridge.Bot.SendMessage(ctx, portal.MXID, event.EventMessage, &event.Content{Parsed: content}, nil); err != nil {
		c.log.Warn().Err(err).Stringer("room_id", portal.MXID).Msg("Failed to send notice to portal")
	}
}
