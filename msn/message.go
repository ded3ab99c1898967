package msn

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Switchboard payload limits (docs/protocol.md §4.8).
const (
	// MaxMSGPayload is the hard limit on a switchboard MSG payload, headers and body together.
	// Servers close the switchboard on anything larger.
	MaxMSGPayload = 1664
	// MaxTextBody is the recommended maximum number of UTF-8 body bytes (after \n → \r\n
	// expansion) in one text message; it leaves room for the headers NewTextMessage writes.
	MaxTextBody = 1400
)

// mimeTextHeader returns the header block NewTextMessage writes for f, blank line included.
func mimeTextHeader(f *TextFormat) string {
	return "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: " +
		f.String() + "\r\n\r\n"
}

// NewTextMessage builds a text/plain payload: MIME-Version, "Content-Type: text/plain;
// charset=UTF-8", X-MMS-IM-Format (f.String(); the default "FN=Segoe%20UI; EF=; CO=0; CS=1;
// PF=0" when f is nil), a blank line and the body with every line break (\n, \r\n or a lone \r)
// written as \r\n. Invalid UTF-8 in text is replaced by U+FFFD. It does not enforce any size
// limit: split long text with SplitText(text, TextBodyLimit(f)) first.
func NewTextMessage(text string, f *TextFormat) []byte {
	h := mimeTextHeader(f)
	text = mimeNormalizeText(text)
	b := make([]byte, 0, len(h)+len(text)+strings.Count(text, "\n"))
	b = append(b, h...)
	for i := 0; i < len(text); i++ {
		if text[i] == '\n' {
			b = append(b, '\r')
		}
		b = append(b, text[i])
	}
	return b
}

// TextBodyLimit returns the largest body, in wire bytes, that NewTextMessage can carry with f
// without the payload exceeding MaxMSGPayload, capped at MaxTextBody. Pass it to SplitText.
func TextBodyLimit(f *TextFormat) int {
	return min(MaxTextBody, MaxMSGPayload-len(mimeTextHeader(f)))
}

// mimeNormalizeText makes s valid UTF-8 and turns CRLF and lone CR into LF.
func mimeNormalizeText(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	return s
}

// NewTypingMessage builds the typing notification for handle (text/x-msmsgscontrol with
// TypingUser, body "\r\n"), to be sent with ack mode U. CR/LF in handle are replaced by spaces.
func NewTypingMessage(handle string) []byte {
	m := MIMEMessage{
		Headers: []Header{
			{"MIME-Version", "1.0"},
			{"Content-Type", "text/x-msmsgscontrol"},
			{"TypingUser", handle},
		},
		Body: []byte("\r\n"),
	}
	return m.Marshal()
}

// NewNudgeMessage builds a nudge (text/x-msnmsgr-datacast, body "ID: 1\r\n\r\n"), to be sent
// with ack mode N.
func NewNudgeMessage() []byte {
	return []byte("MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n")
}

// NewInviteCancel builds the reply that declines a legacy text/x-msmsgsinvite invitation
// (Invitation-Command: CANCEL, the invitation's cookie, Cancel-Code: REJECT_NOT_INSTALLED), to be
// sent with ack mode U. CR/LF in cookie are replaced by spaces.
func NewInviteCancel(cookie string) []byte {
	m := MIMEMessage{
		Headers: []Header{
			{"MIME-Version", "1.0"},
			{"Content-Type", "text/x-msmsgsinvite; charset=UTF-8"},
		},
	}
	b := m.Marshal()
	b = append(b, "Invitation-Command: CANCEL\r\nInvitation-Cookie: "...)
	b = mimeAppendClean(b, cookie)
	return append(b, "\r\nCancel-Code: REJECT_NOT_INSTALLED\r\n"...)
}

// InviteInfo holds the fields of a legacy text/x-msmsgsinvite message (docs/protocol.md §4.7).
type InviteInfo struct {
	Command string // Invitation-Command: INVITE, ACCEPT or CANCEL
	Cookie  string // Invitation-Cookie, echo it in NewInviteCancel
	AppName string // Application-Name
	AppGUID string // Application-GUID
}

// ParseInvite reads the invitation fields from m's body (or headers). ok is false when m is not
// a text/x-msmsgsinvite message.
func ParseInvite(m *MIMEMessage) (info InviteInfo, ok bool) {
	if m.ContentType() != "text/x-msmsgsinvite" {
		return InviteInfo{}, false
	}
	info.Command, _ = m.mimeField("Invitation-Command")
	info.Cookie, _ = m.mimeField("Invitation-Cookie")
	info.AppName, _ = m.mimeField("Application-Name")
	info.AppGUID, _ = m.mimeField("Application-GUID")
	return info, true
}

// Datacast ids (docs/protocol.md §4.7).
const (
	DatacastNudge     = 1
	DatacastWink      = 2
	DatacastVoiceClip = 3
	DatacastAction    = 4
)

// ParseDatacastID returns the ID field of a text/x-msnmsgr-datacast message: DatacastNudge,
// DatacastWink, DatacastVoiceClip or DatacastAction; 0 for any other value, a missing ID, or a
// message of another content type.
func ParseDatacastID(m *MIMEMessage) int {
	if m.ContentType() != "text/x-msnmsgr-datacast" {
		return 0
	}
	v, _ := m.mimeField("ID")
	id, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || id < DatacastNudge || id > DatacastAction {
		return 0
	}
	return id
}
