package msn

import (
	"strconv"
	"strings"
)

// MailData is the mailbox and offline-message summary of a Mail-Data field (PROTOCOL.md §3.17).
// TooLarge is set when the server sent "too-large" instead of XML (more than 25 offline
// messages waiting): the counts are then unknown and zero.
type MailData struct {
	InboxTotal, InboxUnread, OtherTotal, OtherUnread int
	OfflineMessages                                  int // number of <M> entries
	TooLarge                                         bool
}

// ParseMailData reads the Mail-Data field of an initial mail-data or OIM notification, from
// the headers or (as Escargot sends it) the body. ok is false when there is no Mail-Data field
// or its XML is malformed, too large (over 256 KiB) or nested too deeply. Missing counts stay 0.
func ParseMailData(m *MIMEMessage) (MailData, bool) {
	v, found := m.mimeField("Mail-Data")
	if !found {
		return MailData{}, false
	}
	v = strings.TrimSpace(v)
	if strings.EqualFold(v, "too-large") {
		return MailData{TooLarge: true}, true
	}
	var md MailData
	var path []string
	err := psmWalkXML([]byte(v), 256<<10, func(tok psmToken) {
		switch tok.kind {
		case psmStart:
			path = append(path, tok.name)
			if len(path) == 2 && tok.name == "M" {
				md.OfflineMessages++
			}
		case psmEnd:
			if len(path) > 0 {
				path = path[:len(path)-1]
			}
		case psmText:
			if len(path) != 3 || path[1] != "E" {
				return
			}
			n, err := strconv.Atoi(strings.TrimSpace(tok.text))
			if err != nil || n < 0 {
				return
			}
			switch path[2] {
			case "I":
				md.InboxTotal = n
			case "IU":
				md.InboxUnread = n
			case "O":
				md.OtherTotal = n
			case "OU":
				md.OtherUnread = n
			}
		}
	})
	if err != nil {
		return MailData{}, false
	}
	return md, true
}

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

// handleHotmail handles NS "MSG Hotmail Hotmail": profile, mail data, system messages.
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
	fields := func(name string) string {
		if v := m.Get(name); v != "" {
			return v
		}
		for _, h := range m.BodyHeaders() {
			if strings.EqualFold(h.Name, name) {
				return h.Value
			}
		}
		return ""
	}
	switch ct := m.ContentType(); ct {
	case "text/x-msmsgsprofile":
		c.log.Debug().Msg("Got profile")
	case "text/x-msmsgsinitialmdatanotification", "text/x-msmsgsoimnotification", "text/x-msmsgsinitialemailnotification":
		c.emit(parseMailData(fields("Mail-Data"), fields("Inbox-Unread")))
	case "text/x-msmsgsemailnotification":
		c.emit(&MailNotification{InboxTotal: -1, InboxUnread: -1, OtherTotal: -1, OtherUnread: -1,
			NewMailFrom: fields("From"), NewMailSubject: fields("Subject")})
	case "application/x-msmsgssystemmessage":
		t, _ := strconv.Atoi(fields("Type"))
		mins, _ := strconv.Atoi(fields("Arg1"))
		c.emit(&SystemMessage{Type: t, MinutesUntilShutdown: mins})
	default:
		c.log.Debug().Str("content_type", truncate(ct, 64)).Msg("Ignoring notification message")
	}
}

// parseMailData reads the counts of a Mail-Data value ("<MD><E><I>…</I><IU>…</IU>…</E>…<M>…</M></MD>"
// or "too-large"). Missing counts are -1.
func parseMailData(md, inboxUnread string) *MailNotification {
	ev := &MailNotification{InboxTotal: -1, InboxUnread: -1, OtherTotal: -1, OtherUnread: -1}
	num := func(tag string) int {
		open, closeTag := "<"+tag+">", "</"+tag+">"
		i := strings.Index(md, open)
		if i < 0 {
			return -1
		}
		rest := md[i+len(open):]
		j := strings.Index(rest, closeTag)
		if j < 0 {
			return -1
		}
		n, err := strconv.Atoi(strings.TrimSpace(rest[:j]))
		if err != nil {
			return -1
		}
		return n
	}
	ev.InboxTotal, ev.InboxUnread = num("I"), num("IU")
	ev.OtherTotal, ev.OtherUnread = num("O"), num("OU")
	if ev.InboxUnread < 0 {
		if n, err := strconv.Atoi(strings.TrimSpace(inboxUnread)); err == nil {
			ev.InboxUnread = n
		}
	}
	ev.OfflineMessages = strings.Count(md, "<M>")
	if strings.TrimSpace(md) == "too-large" {
		ev.OfflineMessages = 26
	}
	return ev
}
