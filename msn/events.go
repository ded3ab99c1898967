package msn

import "time"

// Event is implemented by every event struct below (always as a pointer). A Handler receives
// them one at a time, in order, on the Client's event goroutine.
type Event interface {
	isEvent()
}

// Handler receives the Client's events. See the package documentation for the concurrency
// contract.
type Handler func(Event)

// LoggedIn is emitted when Login has completed: the contact list is synced and the initial
// status is acknowledged. It is the first event of a session.
type LoggedIn struct {
	Self     Self
	Protocol string // negotiated dialect, "MSNP11" or "MSNP10"
}

// ContactListSynced is emitted when the SYN burst has been received completely. Login holds it
// back, so it is delivered after LoggedIn. Contacts and Groups are snapshots taken at the
// end of the SYN: they carry no presence yet (the ILN burst that follows does), and are older
// than what Client.Contacts returns once Login has returned.
type ContactListSynced struct {
	Contacts []Contact
	Groups   []Group
}

// PresenceChanged is emitted when a contact's status, current friendly name, capabilities or
// display picture changes (ILN, NLN, FLN). Initial is true for the ILN burst that answers the
// first status change (the contact was already online). Status is StatusOffline for FLN.
type PresenceChanged struct {
	Handle       string
	Status       Status
	FriendlyName string
	Capabilities uint32
	MSNObject    string // decoded msnobj XML, "" when none
	Initial      bool
}

// PersonalMessageChanged is emitted when a contact's personal message or current media
// changes (UBX).
type PersonalMessageChanged struct {
	Handle string
	PSM    string
	Media  CurrentMedia
}

// The own-profile events below report a change of the account's own status, name or personal
// message. Requested is set when the change is this client's own call (SetStatus, the status
// of Login, SetFriendlyName, SetPersonalMessage) confirmed by the server: the event is then
// delivered after the call returned, perhaps after a newer call, so it is not news to the
// caller; unset, the change came from the server (the SYN burst, a push).

// OwnStatusChanged is emitted when the server confirms a change of the account's own status,
// including server-initiated "CHG 0" pushes.
type OwnStatusChanged struct {
	Status    Status
	Requested bool
}

// OwnNameChanged is emitted when the account's own friendly name is set or reported (PRP MFN).
type OwnNameChanged struct {
	Name      string
	Requested bool
}

// OwnPersonalMessageChanged is emitted when the server acknowledges a new own personal message.
type OwnPersonalMessageChanged struct {
	PSM       string
	Media     CurrentMedia
	Requested bool
}

// ListChanged is emitted when a contact is added to or removed from one of the lists, by this
// client (after the server's reply) or by the server (ADC 0 RL / REM 0 RL: someone added or
// removed you).
type ListChanged struct {
	Handle string
	List   List // exactly one list bit
	Added  bool
	Name   string // stored friendly name, when the server gave one
	GUID   string // contact id, when known
}

// ContactRequest is emitted when someone added you and waits for approval: an ADC 0 RL push,
// or a contact on the pending list after the initial sync. Answer with AcceptContact or
// DeclineContact.
type ContactRequest struct {
	Handle string
	Name   string
}

// GroupChanged is emitted when a group is added, renamed or removed, or a contact's group
// membership changes.
type GroupChanged struct {
	Group   Group
	Removed bool
	// Handle is set when the change is a contact entering (Added true) or leaving a group.
	Handle string
	Added  bool
}

// MessageReceived is emitted when a text message arrives on a switchboard. Chunked messages are
// delivered once reassembled. Text has LF line ends and is valid UTF-8.
type MessageReceived struct {
	SessionID    string
	From         string
	FromName     string
	Participants []string // other participants of the session at the time, From included
	Text         string
	Format       *TextFormat // nil when the sender sent no X-MMS-IM-Format
	Time         time.Time
	// Emoticons are the custom emoticons the sender defined for this text (text/x-mms-emoticon
	// just before it); each Shortcut stays as text in Text.
	Emoticons []Emoticon
}

// TypingReceived is emitted when a participant sends a typing notification. There is no
// "stopped typing": consider it over ~6 s after the last one or when a message arrives.
type TypingReceived struct {
	SessionID string
	From      string
}

// NudgeReceived is emitted when a participant sends a nudge.
type NudgeReceived struct {
	SessionID string
	From      string
}

// ParticipantJoined is emitted when a participant joins a switchboard session (JOI), or is found
// there when this client answers an invitation (IRO).
type ParticipantJoined struct {
	SessionID string
	Handle    string
	Name      string
}

// ParticipantLeft is emitted when a participant leaves a switchboard session (BYE). Name is the
// name last seen in that session.
type ParticipantLeft struct {
	SessionID string
	Handle    string
	Name      string
	TimedOut  bool // "BYE <handle> 1": dropped by the server
}

// SessionClosed is emitted when a switchboard session ends, whatever the cause. Messages sent to
// the same contact afterwards open a new session.
type SessionClosed struct {
	SessionID string
}

// SystemMessage is emitted for an application/x-msmsgssystemmessage from the server. Type 1 is
// a maintenance announcement, MinutesUntilShutdown the delay it gives.
type SystemMessage struct {
	Type                 int
	MinutesUntilShutdown int
}

// MailNotification is emitted for the initial mail data after login, for new offline messages
// and for new mail. Counts are -1 when the server did not say.
type MailNotification struct {
	InboxTotal, InboxUnread int
	OtherTotal, OtherUnread int
	OfflineMessages         int // offline IMs waiting (fetching them is not implemented)
	NewMailFrom             string
	NewMailSubject          string
}

// Disconnected is emitted exactly once, as the last event of a session that logged in, when it
// ends for whatever reason (including Close). Err is a *DisconnectError.
type Disconnected struct {
	Err error
}

func (*LoggedIn) isEvent()                  {}
func (*ContactListSynced) isEvent()         {}
func (*PresenceChanged) isEvent()           {}
func (*PersonalMessageChanged) isEvent()    {}
func (*OwnStatusChanged) isEvent()          {}
func (*OwnNameChanged) isEvent()            {}
func (*OwnPersonalMessageChanged) isEvent() {}
func (*ListChanged) isEvent()               {}
func (*ContactRequest) isEvent()            {}
func (*GroupChanged) isEvent()              {}
func (*MessageReceived) isEvent()           {}
func (*TypingReceived) isEvent()            {}
func (*NudgeReceived) isEvent()             {}
func (*ParticipantJoined) isEvent()         {}
func (*ParticipantLeft) isEvent()           {}
func (*SessionClosed) isEvent()             {}
func (*SystemMessage) isEvent()             {}
func (*MailNotification) isEvent()          {}
func (*Disconnected) isEvent()              {}

var (
	_ Event = (*LoggedIn)(nil)
	_ Event = (*ContactListSynced)(nil)
	_ Event = (*PresenceChanged)(nil)
	_ Event = (*PersonalMessageChanged)(nil)
	_ Event = (*OwnStatusChanged)(nil)
	_ Event = (*OwnNameChanged)(nil)
	_ Event = (*OwnPersonalMessageChanged)(nil)
	_ Event = (*ListChanged)(nil)
	_ Event = (*ContactRequest)(nil)
	_ Event = (*GroupChanged)(nil)
	_ Event = (*MessageReceived)(nil)
	_ Event = (*TypingReceived)(nil)
	_ Event = (*NudgeReceived)(nil)
	_ Event = (*ParticipantJoined)(nil)
	_ Event = (*ParticipantLeft)(nil)
	_ Event = (*SessionClosed)(nil)
	_ Event = (*SystemMessage)(nil)
	_ Event = (*MailNotification)(nil)
	_ Event = (*Disconnected)(nil)
)
