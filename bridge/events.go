package bridge

import (
	"fmt"
	"strings"
	"time"
)

// Status is a neutral presence status. The zero value is StatusOffline.
type Status int

// Statuses. Each but StatusInvisible maps to one MSN code (see MSNCode); StatusInvisible (MSN
// HDN) shows the account offline to others and prevents it from starting conversations.
const (
	StatusOffline Status = iota
	StatusOnline
	StatusBusy
	StatusAway
	StatusBRB
	StatusPhone
	StatusLunch
	StatusIdle
	StatusInvisible
)

var statusCodes = [...]string{
	StatusOffline:   "FLN",
	StatusOnline:    "NLN",
	StatusBusy:      "BSY",
	StatusAway:      "AWY",
	StatusBRB:       "BRB",
	StatusPhone:     "PHN",
	StatusLunch:     "LUN",
	StatusIdle:      "IDL",
	StatusInvisible: "HDN",
}

var statusNames = [...]string{
	StatusOffline:   "offline",
	StatusOnline:    "online",
	StatusBusy:      "busy",
	StatusAway:      "away",
	StatusBRB:       "be right back",
	StatusPhone:     "on the phone",
	StatusLunch:     "out to lunch",
	StatusIdle:      "idle",
	StatusInvisible: "appear offline",
}

// MSNCode returns the MSN status code ("NLN", "AWY", …).
func (s Status) MSNCode() string {
	if s < 0 || int(s) >= len(statusCodes) {
		return "FLN"
	}
	return statusCodes[s]
}

// String returns a human description ("out to lunch"), usable as status text.
func (s Status) String() string {
	if s < 0 || int(s) >= len(statusNames) {
		return "unknown"
	}
	return statusNames[s]
}

// IsAway reports whether the status means "present but not at the keyboard" (away, brb, phone,
// lunch, idle): frontends with fewer states map these to their "away"/"idle".
func (s Status) IsAway() bool {
	switch s {
	case StatusAway, StatusBRB, StatusPhone, StatusLunch, StatusIdle:
		return true
	}
	return false
}

// StatusFromMSN maps an MSN status code to a Status; unknown codes are StatusOnline when they
// look like a presence (the contact is there) and StatusOffline when empty.
func StatusFromMSN(code string) Status {
	code = strings.ToUpper(strings.TrimSpace(code))
	for i, c := range statusCodes {
		if c == code {
			return Status(i)
		}
	}
	if code == "" {
		return StatusOffline
	}
	return StatusOnline
}

// ParseStatus accepts a status name ("online", "away", "brb", "busy", "dnd", "phone", "lunch",
// "idle", "invisible", "hidden") or an MSN code, for frontend commands.
func ParseStatus(s string) (Status, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "online", "available", "nln":
		return StatusOnline, nil
	case "busy", "dnd", "bsy":
		return StatusBusy, nil
	case "away", "awy":
		return StatusAway, nil
	case "brb", "be right back":
		return StatusBRB, nil
	case "phone", "on the phone", "phn":
		return StatusPhone, nil
	case "lunch", "out to lunch", "lun":
		return StatusLunch, nil
	case "idle", "idl":
		return StatusIdle, nil
	case "invisible", "hidden", "appear offline", "hdn":
		return StatusInvisible, nil
	}
	return 0, fmt.Errorf("%w: unknown status %q", ErrInvalidArgument, s)
}

// ChatID names a conversation of an account. A one-to-one chat is the contact's handle; a
// multi-party chat is "group:" followed by an id that lives only as long as its switchboard.
type ChatID string

const groupChatPrefix = "group:"

// DirectChat returns the one-to-one chat with contact.
func DirectChat(contact string) ChatID { return ChatID(NormalizeHandle(contact)) }

// GroupChat returns the multi-party chat with the given ephemeral id.
func GroupChat(id string) ChatID { return ChatID(groupChatPrefix + id) }

// IsGroup reports whether the chat is a multi-party chat.
func (c ChatID) IsGroup() bool { return strings.HasPrefix(string(c), groupChatPrefix) }

// Contact returns the contact handle of a one-to-one chat, or "" for a group chat.
func (c ChatID) Contact() string {
	if c.IsGroup() {
		return ""
	}
	return string(c)
}

// GroupID returns the id of a group chat, or "" for a one-to-one chat.
func (c ChatID) GroupID() string {
	if !c.IsGroup() {
		return ""
	}
	return strings.TrimPrefix(string(c), groupChatPrefix)
}

// Event is one of the neutral event types below. Frontends switch on the concrete type and
// ignore types they do not know (new ones may be added).
type Event interface {
	// EventType returns a stable snake_case name, for logs and metrics.
	EventType() string
}

// OriginMSN is the Origin of events that came from the MSN server rather than a frontend.
const OriginMSN = ""

// Format is the optional font styling of a message (MSN X-MMS-IM-Format). The zero value means
// plain text.
type Format struct {
	Font          string
	Bold          bool
	Italic        bool
	Underline     bool
	Strikethrough bool
	Color         string // "rrggbb" (already converted from MSN's BGR), "" for default
}

// IsZero reports whether the format carries no styling.
func (f Format) IsZero() bool { return f == Format{} }

// Contact is a snapshot of one contact of the account's list.
type Contact struct {
	Handle    string
	Name      string // display name: current friendly name, else stored name, else handle
	Status    Status
	MSNStatus string // raw MSN status code ("LUN"); "FLN" when offline
	PSM       string
	Media     string // rendered current media ("🎵 Artist - Title"), "" when none or hidden
	Forward   bool   // on the forward list (a buddy)
	Allowed   bool   // on the allow list
	Blocked   bool   // on the block list
	Reverse   bool   // has the account on their list
	Pending   bool   // added the account and awaits a decision
	Groups    []string
	Avatar    string // SHA1D of the contact's display picture, "" when none
}

// AccountStateKind is the lifecycle state of an account's MSN session.
type AccountStateKind string

// Account states.
const (
	StateConnecting   AccountStateKind = "connecting"
	StateOnline       AccountStateKind = "online"
	StateReconnecting AccountStateKind = "reconnecting"
	StateStopped      AccountStateKind = "stopped"
	StateLoggedOut    AccountStateKind = "logged_out"
)

// StopReason says why an account stopped without reconnecting.
type StopReason string

// Stop reasons.
const (
	StopBadCredentials StopReason = "bad_credentials"     // password refused; log in again
	StopOtherLocation  StopReason = "logged_in_elsewhere" // OUT OTH: another client took the session
	StopServerGone     StopReason = "server_gone"         // refused for good (terms, restricted, version)
	StopKeyError       StopReason = "credentials_unreadable"
	StopShutdown       StopReason = "shutdown" // the bridge is stopping
)

// AccountState is emitted whenever the account's session changes state. It is also the first
// event every newly attached frontend receives.
type AccountState struct {
	State AccountStateKind
	// Reason is set for StateStopped.
	Reason StopReason
	// Err describes the last failure (for StateReconnecting and StateStopped), or nil. It never
	// contains a password or ticket.
	Err error
	// NextAttempt is when the next login attempt is planned (StateReconnecting).
	NextAttempt time.Time
	// Attempt counts consecutive failed attempts (StateReconnecting).
	Attempt int
}

func (AccountState) EventType() string { return "account_state" }

// ContactSnapshot carries the whole contact list. It is sent to a frontend right after its
// AccountState on Attach and again after each successful (re)login, so a frontend can reconcile
// without calling Contacts.
type ContactSnapshot struct {
	Contacts []Contact
}

func (ContactSnapshot) EventType() string { return "contact_snapshot" }

// ContactPresence is emitted when a contact's status, PSM or media changed. Bursts are
// coalesced (see PresenceWindow): at most one per contact per window, latest state wins, none
// when nothing visible changed. Name is included for convenience; name changes alone are
// ContactProfile events.
type ContactPresence struct {
	Handle    string
	Status    Status
	MSNStatus string
	Name      string
	PSM       string
	Media     string
}

func (ContactPresence) EventType() string { return "contact_presence" }

// ContactProfile is emitted when a contact's display name changed (coalesced like presence).
type ContactProfile struct {
	Handle string
	Name   string
}

func (ContactProfile) EventType() string { return "contact_profile" }

// ListChangeKind says what happened to a contact's list membership.
type ListChangeKind string

// List changes.
const (
	ListAdded      ListChangeKind = "added"       // now on the forward list
	ListRemoved    ListChangeKind = "removed"     // no longer on the forward list
	ListBlocked    ListChangeKind = "blocked"     // moved to the block list
	ListUnblocked  ListChangeKind = "unblocked"   // moved to the allow list
	ListAddedYou   ListChangeKind = "added_you"   // put the account on their list (see also ContactRequest)
	ListRemovedYou ListChangeKind = "removed_you" // took the account off their list
)

// ListChange is emitted when a contact's forward, block or reverse list membership changed,
// whether the account's own action (from any frontend) or the other side caused it. It is
// delivered to every frontend, the acting one included. Contact is the state after the change.
type ListChange struct {
	Kind    ListChangeKind
	Contact Contact
}

func (ListChange) EventType() string { return "list_change" }

// ContactRequest is emitted when someone added the account to their list and awaits a decision
// (AcceptRequest / DeclineRequest).
type ContactRequest struct {
	Handle string
	Name   string
}

func (ContactRequest) EventType() string { return "contact_request" }

// Message is a text message in a chat. Messages from contacts have Origin OriginMSN; messages the
// account sent through a frontend have FromMe and Origin set to that frontend's name and are not
// delivered back to it (so each frontend shows what was written elsewhere, without echo).
type Message struct {
	// ID is deterministic from (sender, time, sequence): re-delivery of the same event has the
	// same ID, so frontends can de-duplicate.
	ID         string
	Chat       ChatID
	Sender     string
	SenderName string
	Text       string
	Format     Format
	Time       time.Time
	FromMe     bool
	Origin     string
	// Emoticons are the contact's custom emoticons used in Text, resolved to images (those
	// that could not be fetched in time stay as their shortcut text).
	Emoticons []Emoticon
}

func (Message) EventType() string { return "message" }

// Typing is emitted when a contact types in a chat. MSN repeats it every few seconds while the
// contact types; frontends should expire it after TypingTimeout without a repeat, or when a
// Message from the same sender arrives.
type Typing struct {
	Chat   ChatID
	Sender string
}

func (Typing) EventType() string { return "typing" }

// TypingTimeout is how long a Typing event stays valid without a repeat.
const TypingTimeout = 6 * time.Second

// Nudge is a "buzz" in a chat, from a contact or (FromMe, Origin) from the account.
type Nudge struct {
	Chat   ChatID
	Sender string
	Time   time.Time
	FromMe bool
	Origin string
}

func (Nudge) EventType() string { return "nudge" }

// ChatMembership is emitted when a participant joins or leaves a multi-party chat, and when a
// one-to-one chat becomes a multi-party one (Chat is then the new group chat and Members lists
// everyone).
type ChatMembership struct {
	Chat    ChatID
	Handle  string
	Joined  bool
	Members []string
	// Names are the friendly names the switchboard gave the members, by handle (remote text,
	// possibly missing for some). They name participants who are not contacts of the account.
	Names map[string]string
}

func (ChatMembership) EventType() string { return "chat_membership" }

// ServerNoticeKind says what a ServerNotice announces.
type ServerNoticeKind string

// Server notice kinds.
const (
	// NoticeMaintenance: the server announced maintenance; it will close in Minutes minutes.
	NoticeMaintenance ServerNoticeKind = "maintenance"
	// NoticeShutdown: the server closed the session because it is shutting down (OUT SSD); the
	// core reconnects with backoff.
	NoticeShutdown ServerNoticeKind = "shutdown"
	// NoticeRetryLater: the server closed the session for a while (OUT RCT); the core
	// reconnects after Minutes minutes.
	NoticeRetryLater ServerNoticeKind = "retry_later"
)

// ServerNotice is emitted when the MSN server tells the account something its owner should
// know: a maintenance announcement, or a session closed for a shutdown or for a while. The
// connection state that follows is reported by AccountState as usual.
type ServerNotice struct {
	Kind    ServerNoticeKind
	Minutes int // for NoticeMaintenance and NoticeRetryLater; 0 when the server gave none
}

func (ServerNotice) EventType() string { return "server_notice" }

// DeliveryFailure reports a send that failed after its action had returned (for example a queued
// part of a split message), so the frontend can flag it where it was written.
type DeliveryFailure struct {
	Chat      ChatID
	MessageID string
	Reason    SendFailure
	Err       error
	Origin    string
}

func (DeliveryFailure) EventType() string { return "delivery_failure" }

// OwnProfile is emitted when the account's own status, PSM or name changed, so every frontend
// shows the same. Origin is the frontend that changed it.
type OwnProfile struct {
	Status Status
	PSM    string
	Name   string
	Origin string
}

func (OwnProfile) EventType() string { return "own_profile" }

// EventsDropped tells a frontend that it fell so far behind (its queue was full) that Count
// events for it were discarded, including Messages in Chats. It is the only way the core ever
// loses an event, and it never does so silently.
type EventsDropped struct {
	Count int
	Chats []ChatID
}

func (EventsDropped) EventType() string { return "events_dropped" }

// Compile-time assertions that every event type implements Event.
var (
	_ Event = AccountState{}
	_ Event = ContactSnapshot{}
	_ Event = ContactPresence{}
	_ Event = ContactProfile{}
	_ Event = ListChange{}
	_ Event = ContactRequest{}
	_ Event = Message{}
	_ Event = Typing{}
	_ Event = Nudge{}
	_ Event = ChatMembership{}
	_ Event = ServerNotice{}
	_ Event = DeliveryFailure{}
	_ Event = OwnProfile{}
	_ Event = EventsDropped{}
)

// NormalizeHandle lower-cases and trims a handle.
func NormalizeHandle(h string) string { return strings.ToLower(strings.TrimSpace(h)) }

// ValidateHandle normalises h and checks it looks like an MSN handle: an e-mail address of
// ASCII letters, digits and . _ - + ' (what MSN and its revival servers accept), or a tel:
// number. Keeping handles to that set also keeps every frontend's id for a contact short and
// valid (a Matrix user id may not exceed 255 bytes).
func ValidateHandle(h string) (string, error) {
	h = NormalizeHandle(h)
	if h == "" || len(h) > 129 {
		return "", ErrInvalidHandle
	}
	if strings.HasPrefix(h, "tel:") {
		if len(h) == 4 || strings.Trim(h[4:], "0123456789+") != "" {
			return "", ErrInvalidHandle
		}
		return h, nil
	}
	for i := 0; i < len(h); i++ {
		if !handleByte(h[i]) {
			return "", ErrInvalidHandle
		}
	}
	at := strings.IndexByte(h, '@')
	if at <= 0 || at == len(h)-1 || strings.Count(h, "@") != 1 {
		return "", ErrInvalidHandle
	}
	return h, nil
}

func handleByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' ||
		c == '+' || c == '\'' || c == '@'
}

// messageID builds the deterministic id of a message.
func messageID(sender string, t time.Time, seq uint64) string {
	return fmt.Sprintf("msn:%s:%d:%d", NormalizeHandle(sender), t.UnixMilli(), seq)
}
