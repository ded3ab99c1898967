package msn

import "strconv"

// MessageKind classifies an MSG payload by what a client should do with it.
type MessageKind int

// Message kinds. Switchboard kinds first, then the NS "MSG Hotmail Hotmail" ones.
const (
	KindUnknown           MessageKind = iota // no or unknown Content-Type: ignore (maybe log)
	KindText                                 // text/plain
	KindTyping                               // text/x-msmsgscontrol (TypingUser or RecordingUser)
	KindNudge                                // datacast ID 1
	KindDatacastOther                        // other datacasts: wink, voice clip, action
	KindInvite                               // text/x-msmsgsinvite: decline with NewInviteCancel
	KindP2P                                  // application/x-msnmsgrp2p: ignore, never answer
	KindEmoticon                             // text/x-mms-emoticon, text/x-mms-animemoticon
	KindInk                                  // image/gif, application/x-ms-ink (handwriting)
	KindClientCaps                           // text/x-clientcaps
	KindIgnored                              // text/x-keepalive, text/x-ping: ignore silently
	KindChunk                                // continuation part of a chunked message (Chunk:, no Content-Type)
	KindProfile                              // text/x-msmsgsprofile (NS)
	KindMailData                             // initial mail data, OIM or older initial e-mail notification (NS)
	KindEmailNotification                    // new/active mail notifications (NS)
	KindSystemMessage                        // application/x-msmsgssystemmessage (NS)
)

var kindNames = [...]string{
	"unknown", "text", "typing", "nudge", "datacast", "invite", "p2p", "emoticon", "ink",
	"clientcaps", "ignored", "chunk", "profile", "maildata", "emailnotification", "systemmessage",
}

// String returns a short lower-case name for logs ("text", "nudge", …).
func (k MessageKind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ClassifyMessage tells what m is from its Content-Type (case-insensitive, parameters ignored),
// and for datacasts its ID. Feed chunked parts to a ChunkAssembler first: a bare continuation
// part classifies as KindChunk. A nil message is KindUnknown.
func ClassifyMessage(m *MIMEMessage) MessageKind {
	if m == nil {
		return KindUnknown
	}
	switch ct := m.ContentType(); ct {
	case "text/plain":
		return KindText
	case "text/x-msmsgscontrol":
		return KindTyping
	case "text/x-msnmsgr-datacast":
		if ParseDatacastID(m) == DatacastNudge {
			return KindNudge
		}
		return KindDatacastOther
	case "text/x-msmsgsinvite":
		return KindInvite
	case "application/x-msnmsgrp2p":
		return KindP2P
	case "text/x-mms-emoticon", "text/x-mms-animemoticon":
		return KindEmoticon
	case "image/gif", "application/x-ms-ink":
		return KindInk
	case "text/x-clientcaps":
		return KindClientCaps
	case "text/x-keepalive", "text/x-ping":
		return KindIgnored
	case "text/x-msmsgsprofile":
		return KindProfile
	case "text/x-msmsgsinitialmdatanotification", "text/x-msmsgsoimnotification",
		"text/x-msmsgsinitialemailnotification":
		return KindMailData
	case "text/x-msmsgsemailnotification", "text/x-msmsgsactivemailnotification":
		return KindEmailNotification
	case "application/x-msmsgssystemmessage":
		return KindSystemMessage
	case "":
		if m.Has("Chunk") && m.Get("Message-ID") != "" {
			return KindChunk
		}
	}
	return KindUnknown
}
