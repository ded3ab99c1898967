package msn

import (
	"strconv"
	"strings"
)

// System message types (application/x-msmsgssystemmessage).
const (
	// SystemMessageMaintenance announces the server going down for maintenance in Arg1 minutes.
	SystemMessageMaintenance = 1
)

// ParseSystemMessage reads an application/x-msmsgssystemmessage: typ from "Type:" (1 means the
// server goes down for maintenance) and minutes from "Arg1:" (0 when absent or malformed). ok is
// false for another content type or a missing or non-numeric Type.
func ParseSystemMessage(m *MIMEMessage) (typ int, minutes int, ok bool) {
	if m.ContentType() != "application/x-msmsgssystemmessage" {
		return 0, 0, false
	}
	v, _ := m.mimeField("Type")
	typ, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, 0, false
	}
	a, _ := m.mimeField("Arg1")
	if n, err := strconv.Atoi(strings.TrimSpace(a)); err == nil && n >= 0 {
		minutes = n
	}
	return typ, minutes, true
}

// mailTooLarge is the offline-message count reported for "too-large" mail data: more than the
// 25 a server lists.
const mailTooLarge = 26

// handleHotmail handles NS "MSG Hotmail Hotmail": the profile, mail data, new-mail and system
// messages, told apart by ClassifyMessage. A message that does not parse is logged and dropped.
func (c *Client) handleHotmail(cmd *Command) {
	if !strings.EqualFold(cmd.Arg(0), "Hotmail") {
		c.log.Debug().Msg("Ignoring notification-server MSG not from Hotmail")
		return
	}
	m, err := ParseMIME(cmd.Payload)
	if err != nil {
		c.log.Debug().Err(err).Msg("Ignoring malformed notification message")
		return
	}
	switch kind := ClassifyMessage(m); kind {
	case KindProfile:
		c.log.Debug().Msg("Got profile")
	case KindMailData:
		md, ok := ParseMailData(m)
		if !ok {
			c.log.Debug().Msg("Ignoring malformed mail data")
			return
		}
		ev := &MailNotification{InboxTotal: md.InboxTotal, InboxUnread: md.InboxUnread,
			OtherTotal: md.OtherTotal, OtherUnread: md.OtherUnread, OfflineMessages: md.OfflineMessages}
		if md.TooLarge {
			ev.OfflineMessages = mailTooLarge
		}
		c.emit(ev)
	case KindEmailNotification:
		// New mail names its sender and subject; mailbox changes (active mail) carry neither.
		from, _ := m.mimeField("From")
		subject, _ := m.mimeField("Subject")
		if from == "" && subject == "" {
			c.log.Trace().Msg("Ignoring mailbox change notification")
			return
		}
		c.emit(&MailNotification{InboxTotal: -1, InboxUnread: -1, OtherTotal: -1, OtherUnread: -1,
			NewMailFrom: from, NewMailSubject: subject})
	case KindSystemMessage:
		typ, minutes, ok := ParseSystemMessage(m)
		if !ok {
			c.log.Debug().Msg("Ignoring system message without a type")
			return
		}
		c.emit(&SystemMessage{Type: typ, MinutesUntilShutdown: minutes})
	default:
		c.log.Debug().Stringer("kind", kind).Str("content_type", truncate(m.ContentType(), 64)).Msg("Ignoring notification message")
	}
}
