package msn

import (
	"strconv"
	"strings"
)

// MailData is the mailbox and offline-message summary of an initial mail-data or OIM notification
// (docs/protocol.md §3.17). A count the server did not give is -1. TooLarge is set when the server
// sent "too-large" instead of XML (more than 25 offline messages waiting): the counts are then
// unknown.
type MailData struct {
	InboxTotal, InboxUnread, OtherTotal, OtherUnread int
	OfflineMessages                                  int // number of <M> entries
	TooLarge                                         bool
}

// ParseMailData reads the Mail-Data field of an initial mail-data or OIM notification, from
// the headers or (as Escargot sends it) the body: the counts inside <MD><E>, one offline message
// per <M> directly under <MD>. An Inbox-Unread field, which the older initial e-mail
// notification carries instead, gives the inbox's unread count when Mail-Data does not. ok is
// false when there is neither field, or the XML is malformed, too large (over 256 KiB) or
// nested too deeply.
func ParseMailData(m *MIMEMessage) (MailData, bool) {
	md := MailData{InboxTotal: -1, InboxUnread: -1, OtherTotal: -1, OtherUnread: -1}
	iu, hasIU := m.mimeField("Inbox-Unread")
	if n, err := strconv.Atoi(strings.TrimSpace(iu)); hasIU && err == nil && n >= 0 {
		md.InboxUnread = n
	}
	v, found := m.mimeField("Mail-Data")
	if !found {
		if !hasIU {
			return MailData{}, false
		}
		return md, true
	}
	v = strings.TrimSpace(v)
	if strings.EqualFold(v, "too-large") {
		md.TooLarge = true
		return md, true
	}
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
