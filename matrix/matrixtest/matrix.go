// Package matrixtest provides an in-memory bridgev2.MatrixConnector for running the Matrix
// frontend headless in tests (matrix's own and other packages'). It must not import matrix, so
// that matrix's in-package tests can use it.
package matrixtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/status"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Matrix is an in-memory bridgev2.MatrixConnector: rooms live in maps, every event sent by
// any intent is recorded, and ghosts' presence is recorded through PresenceSetter.
type Matrix struct {
	br     *bridgev2.Bridge
	server string
	seq    atomic.Int64

	mu        sync.Mutex
	rooms     map[id.RoomID]*room
	events    []*Event
	statuses  []Status
	states    []status.BridgeState
	presence  map[id.UserID][]mautrix.ReqPresence
	names     map[id.UserID]string
	typing    []Typing
	media     map[id.ContentURIString]Media
	avatars   map[id.UserID]id.ContentURIString
	profiles  map[id.UserID]*mautrix.RespUserProfile
	uploadMax int64
	changedCh chan struct{}
	up        chan struct{} // closed while the fake answers requests (see SetDown)
}

type room struct {
	members map[id.UserID]event.Membership
	creator id.UserID
}

// Event is one event sent by any intent.
type Event struct {
	RoomID id.RoomID
	Sender id.UserID
	Type   event.Type
	ID     id.EventID
	// StateKey is the state key of a state event ("" for other events).
	StateKey string
	Content  *event.Content
	TS       time.Time // the event's timestamp as the bridge gave it (now when it gave none)
	// Recorded is when the fake received the event (the moment the bridge's request reached
	// the homeserver).
	Recorded time.Time
}

// Status is one message status sent by the bridge.
type Status struct {
	Status *bridgev2.MessageStatus
	Info   *bridgev2.MessageStatusEventInfo
}

// Typing is one typing notification sent by an intent.
type Typing struct {
	RoomID  id.RoomID
	UserID  id.UserID
	Timeout time.Duration
}

// New returns an empty fake homeserver named "test".
func New() *Matrix {
	up := make(chan struct{})
	close(up)
	return &Matrix{
		server:    "test",
		rooms:     map[id.RoomID]*room{},
		presence:  map[id.UserID][]mautrix.ReqPresence{},
		names:     map[id.UserID]string{},
		media:     map[id.ContentURIString]Media{},
		avatars:   map[id.UserID]id.ContentURIString{},
		profiles:  map[id.UserID]*mautrix.RespUserProfile{},
		changedCh: make(chan struct{}),
		up:        up,
	}
}

// ErrDown is returned by a request whose ctx ended while the fake was down.
var ErrDown = errors.New("matrixtest: homeserver down")

// SetDown takes the fake homeserver down (true) or brings it back (false). While it is down,
// every request of an intent (sending events and state, rooms, membership, profile, presence,
// typing) and every message or bridge status waits until it is back up, as mautrix's HTTP
// client retries a homeserver that does not answer; a request whose ctx ends first fails with
// ErrDown and records nothing. Nothing is lost or recorded twice across an outage.
func (fm *Matrix) SetDown(down bool) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	select {
	case <-fm.up:
		if down {
			fm.up = make(chan struct{})
		}
	default:
		if !down {
			close(fm.up)
		}
	}
}

// wait blocks while the fake is down (see SetDown).
func (fm *Matrix) wait(ctx context.Context) error {
	fm.mu.Lock()
	up := fm.up
	fm.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrDown, ctx.Err())
	}
}

var _ bridgev2.MatrixConnector = (*Matrix)(nil)

func (fm *Matrix) changed() {
	close(fm.changedCh)
	fm.changedCh = make(chan struct{})
}

// WaitFor calls cond (which may use the accessors below) whenever something is recorded,
// until it returns true (then WaitFor does) or ctx ends (then it returns false).
func (fm *Matrix) WaitFor(ctx context.Context, cond func() bool) bool {
	for {
		fm.mu.Lock()
		ch := fm.changedCh
		fm.mu.Unlock()
		if cond() {
			return true
		}
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return false
		}
	}
}

func (fm *Matrix) Init(br *bridgev2.Bridge)        { fm.br = br }
func (fm *Matrix) Start(ctx context.Context) error { return nil }
func (fm *Matrix) PreStop()                        {}
func (fm *Matrix) Stop()                           {}
func (fm *Matrix) GetCapabilities() *bridgev2.MatrixCapabilities {
	return &bridgev2.MatrixCapabilities{}
}

func (fm *Matrix) ParseGhostMXID(userID id.UserID) (networkid.UserID, bool) {
	local, server, err := userID.Parse()
	if err != nil || server != fm.server || !strings.HasPrefix(local, "msn_") {
		return "", false
	}
	dec, err := id.DecodeUserLocalpart(strings.TrimPrefix(local, "msn_"))
	if err != nil {
		return "", false
	}
	return networkid.UserID(dec), true
}

func (fm *Matrix) FormatGhostMXID(userID networkid.UserID) id.UserID {
	return id.NewUserID("msn_"+id.EncodeUserLocalpart(string(userID)), fm.server)
}

func (fm *Matrix) GhostIntent(userID networkid.UserID) bridgev2.MatrixAPI {
	return &intent{fm: fm, mxid: fm.FormatGhostMXID(userID)}
}

// NewUserIntent answers as bridgev2's Matrix connector does on a homeserver without double
// puppeting configured: no intent and no error.
func (fm *Matrix) NewUserIntent(ctx context.Context, userID id.UserID, accessToken string) (bridgev2.MatrixAPI, string, error) {
	return nil, accessToken, nil
}

func (fm *Matrix) BotIntent() bridgev2.MatrixAPI {
	return &intent{fm: fm, mxid: id.NewUserID("msnbot", fm.server)}
}

func (fm *Matrix) SendBridgeStatus(ctx context.Context, state *status.BridgeState) error {
	if err := fm.wait(ctx); err != nil {
		return err
	}
	fm.mu.Lock()
	defer fm.mu.Unlock()
	fm.states = append(fm.states, *state)
	fm.changed()
	return nil
}

func (fm *Matrix) SendMessageStatus(ctx context.Context, st *bridgev2.MessageStatus, info *bridgev2.MessageStatusEventInfo) {
	if fm.wait(ctx) != nil {
		return
	}
	fm.mu.Lock()
	defer fm.mu.Unlock()
	fm.statuses = append(fm.statuses, Status{Status: st, Info: info})
	fm.changed()
}

func (fm *Matrix) GenerateContentURI(ctx context.Context, mediaID networkid.MediaID) (id.ContentURIString, error) {
	return "", errors.New("no media")
}

func (fm *Matrix) ParseContentURI(ctx context.Context, uri id.ContentURIString) (networkid.MediaID, error) {
	return nil, errors.New("no media")
}

func (fm *Matrix) GetPowerLevels(ctx context.Context, roomID id.RoomID) (*event.PowerLevelsEventContent, error) {
	return &event.PowerLevelsEventContent{}, nil
}

func (fm *Matrix) GetMembers(ctx context.Context, roomID id.RoomID) (map[id.UserID]*event.MemberEventContent, error) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	out := map[id.UserID]*event.MemberEventContent{}
	if r := fm.rooms[roomID]; r != nil {
		for u, m := range r.members {
			out[u] = &event.MemberEventContent{Membership: m}
		}
	}
	return out, nil
}

func (fm *Matrix) GetMemberInfo(ctx context.Context, roomID id.RoomID, userID id.UserID) (*event.MemberEventContent, error) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	if r := fm.rooms[roomID]; r != nil {
		if m, ok := r.members[userID]; ok {
			return &event.MemberEventContent{Membership: m}, nil
		}
	}
	return &event.MemberEventContent{Membership: event.MembershipLeave}, nil
}

func (fm *Matrix) BatchSend(ctx context.Context, roomID id.RoomID, req *mautrix.ReqBeeperBatchSend, extras []*bridgev2.MatrixSendExtra) (*mautrix.RespBeeperBatchSend, error) {
	return nil, errors.New("batch send is not supported")
}

func (fm *Matrix) GenerateDeterministicRoomID(key networkid.PortalKey) id.RoomID { return "" }
func (fm *Matrix) GenerateDeterministicEventID(id.RoomID, networkid.PortalKey, networkid.MessageID, networkid.PartID) id.EventID {
	return ""
}
func (fm *Matrix) GenerateReactionEventID(id.RoomID, *database.Message, networkid.UserID, networkid.EmojiID) id.EventID {
	return ""
}
func (fm *Matrix) ServerName() string { return fm.server }

// Events returns the events sent into roomID ("" for every room), oldest first.
func (fm *Matrix) Events(roomID id.RoomID) []*Event {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return fm.eventsIn(roomID)
}

// Messages returns the m.room.message events sent into roomID ("" for every room).
func (fm *Matrix) Messages(roomID id.RoomID) []*Event {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return fm.messagesIn(roomID)
}

// States returns the bridge states sent, oldest first.
func (fm *Matrix) States() []status.BridgeState {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return append([]status.BridgeState(nil), fm.states...)
}

// Statuses returns the message statuses sent, oldest first.
func (fm *Matrix) Statuses() []Status {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return append([]Status(nil), fm.statuses...)
}

// Presence returns the presence set for user, oldest first.
func (fm *Matrix) Presence(user id.UserID) []mautrix.ReqPresence {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return append([]mautrix.ReqPresence(nil), fm.presence[user]...)
}

// Name returns the display name set for user.
func (fm *Matrix) Name(user id.UserID) string {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return fm.names[user]
}

// Typing returns the typing notifications sent, oldest first.
func (fm *Matrix) Typing() []Typing {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return append([]Typing(nil), fm.typing...)
}

// Membership returns user's membership in roomID as the fake last recorded it ("" when it
// recorded none).
func (fm *Matrix) Membership(roomID id.RoomID, user id.UserID) event.Membership {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	if r := fm.rooms[roomID]; r != nil {
		return r.members[user]
	}
	return ""
}

// Media is one uploaded file.
type Media struct {
	Data     []byte
	FileName string
	MimeType string
	Uploader id.UserID
}

// AddMedia stores m as if uploaded and returns its mxc URI.
func (fm *Matrix) AddMedia(m Media) id.ContentURIString {
	uri := id.ContentURIString(fmt.Sprintf("mxc://%s/media%d", fm.server, fm.seq.Add(1)))
	fm.mu.Lock()
	defer fm.mu.Unlock()
	fm.media[uri] = m
	fm.changed()
	return uri
}

// Media returns the media uploaded as uri.
func (fm *Matrix) Media(uri id.ContentURIString) (Media, bool) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	m, ok := fm.media[uri]
	return m, ok
}

// Uploads counts the media uploaded (and added with AddMedia).
func (fm *Matrix) Uploads() int {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return len(fm.media)
}

// SetUploadLimit makes uploads over n bytes fail with M_TOO_LARGE (0: no limit), as a
// homeserver's m.upload.size does.
func (fm *Matrix) SetUploadLimit(n int64) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	fm.uploadMax = n
}

// Avatar returns the avatar URL user set ("" when none).
func (fm *Matrix) Avatar(user id.UserID) id.ContentURIString {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return fm.avatars[user]
}

// SetProfileOf sets the profile GetProfile returns for user (a Matrix user of the test).
func (fm *Matrix) SetProfileOf(user id.UserID, displayName string, avatar id.ContentURIString) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	fm.profiles[user] = &mautrix.RespUserProfile{DisplayName: displayName, AvatarURL: avatar.ParseOrIgnore()}
}

// NextID returns a fresh number, for ids of injected events.
func (fm *Matrix) NextID() int64 { return fm.seq.Add(1) }

func (fm *Matrix) eventsIn(roomID id.RoomID) []*Event {
	var out []*Event
	for _, e := range fm.events {
		if roomID == "" || e.RoomID == roomID {
			out = append(out, e)
		}
	}
	return out
}

func (fm *Matrix) messagesIn(roomID id.RoomID) []*Event {
	var out []*Event
	for _, e := range fm.eventsIn(roomID) {
		if e.Type == event.EventMessage {
			out = append(out, e)
		}
	}
	return out
}

// intent is one user's MatrixAPI on the fake. SetPresence makes it a matrix.PresenceSetter.
type intent struct {
	fm   *Matrix
	mxid id.UserID
}

var (
	_ bridgev2.MatrixAPI = (*intent)(nil)
)

func (fi *intent) GetMXID() id.UserID   { return fi.mxid }
func (fi *intent) IsDoublePuppet() bool { return false }

func (fi *intent) record(roomID id.RoomID, t event.Type, content *event.Content, ts time.Time) id.EventID {
	return fi.recordState(roomID, t, "", content, ts)
}

func (fi *intent) recordState(roomID id.RoomID, t event.Type, stateKey string, content *event.Content, ts time.Time) id.EventID {
	fm := fi.fm
	evtID := id.EventID(fmt.Sprintf("$ev%d", fm.seq.Add(1)))
	now := time.Now()
	if ts.IsZero() {
		ts = now
	}
	fm.mu.Lock()
	defer fm.mu.Unlock()
	fm.events = append(fm.events, &Event{RoomID: roomID, Sender: fi.mxid, Type: t, ID: evtID, StateKey: stateKey, Content: content, TS: ts, Recorded: now})
	fm.changed()
	return evtID
}

func (fi *intent) SendMessage(ctx context.Context, roomID id.RoomID, eventType event.Type, content *event.Content, extra *bridgev2.MatrixSendExtra) (*mautrix.RespSendEvent, error) {
	if err := fi.fm.wait(ctx); err != nil {
		return nil, err
	}
	var ts time.Time
	if extra != nil {
		ts = extra.Timestamp
	}
	if content.Parsed == nil && content.Raw != nil {
		_ = content.ParseRaw(eventType)
	}
	if err := checkSize(content); err != nil {
		return nil, err
	}
	return &mautrix.RespSendEvent{EventID: fi.record(roomID, eventType, content, ts)}, nil
}

// MaxContentSize is the largest event content the fake accepts, in bytes of JSON. Homeservers
// refuse events over 64 KiB; the content alone being over it is enough to be refused.
const MaxContentSize = 64 << 10

// checkSize refuses content whose JSON is over MaxContentSize, as a homeserver does, with
// M_TOO_LARGE. The size is measured as canonical JSON has it, without the HTML escaping
// (\u003c for <) of encoding/json.
func checkSize(content *event.Content) error {
	data, err := json.Marshal(content)
	if err != nil {
		return fmt.Errorf("failed to encode content: %w", err)
	}
	var generic any
	if err = json.Unmarshal(data, &generic); err != nil {
		return fmt.Errorf("failed to decode content: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err = enc.Encode(generic); err != nil {
		return fmt.Errorf("failed to encode content: %w", err)
	}
	if n := buf.Len() - 1; n > MaxContentSize {
		return mautrix.MTooLarge.WithMessage("event content of %d bytes is over %d", n, MaxContentSize)
	}
	return nil
}

func (fi *intent) SendState(ctx context.Context, roomID id.RoomID, eventType event.Type, stateKey string, content *event.Content, ts time.Time) (*mautrix.RespSendEvent, error) {
	if err := fi.fm.wait(ctx); err != nil {
		return nil, err
	}
	if eventType == event.StateMember {
		if m, ok := content.Parsed.(*event.MemberEventContent); ok {
			fi.fm.setMember(roomID, id.UserID(stateKey), m.Membership)
		}
	}
	return &mautrix.RespSendEvent{EventID: fi.recordState(roomID, eventType, stateKey, content, ts)}, nil
}

func (fm *Matrix) setMember(roomID id.RoomID, user id.UserID, m event.Membership) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	r := fm.rooms[roomID]
	if r == nil {
		r = &room{members: map[id.UserID]event.Membership{}}
		fm.rooms[roomID] = r
	}
	r.members[user] = m
	fm.changed()
}

func (fi *intent) MarkRead(ctx context.Context, roomID id.RoomID, eventID id.EventID, ts time.Time) error {
	return nil
}
func (fi *intent) MarkUnread(ctx context.Context, roomID id.RoomID, unread bool) error {
	return nil
}
func (fi *intent) MarkTyping(ctx context.Context, roomID id.RoomID, typingType bridgev2.TypingType, timeout time.Duration) error {
	if err := fi.fm.wait(ctx); err != nil {
		return err
	}
	fi.fm.mu.Lock()
	defer fi.fm.mu.Unlock()
	fi.fm.typing = append(fi.fm.typing, Typing{RoomID: roomID, UserID: fi.mxid, Timeout: timeout})
	fi.fm.changed()
	return nil
}
func (fi *intent) DownloadMedia(ctx context.Context, uri id.ContentURIString, file *event.EncryptedFileInfo) ([]byte, error) {
	if err := fi.fm.wait(ctx); err != nil {
		return nil, err
	}
	m, ok := fi.fm.Media(uri)
	if !ok {
		return nil, mautrix.MNotFound.WithMessage("no media %s", uri)
	}
	return m.Data, nil
}

// DownloadMediaToFile writes the media to a temporary file, as bridgev2's connector does, and
// removes it once callback returned.
func (fi *intent) DownloadMediaToFile(ctx context.Context, uri id.ContentURIString, file *event.EncryptedFileInfo, writable bool, callback func(*os.File) error) error {
	data, err := fi.DownloadMedia(ctx, uri, file)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "matrixtest-download-*")
	if err != nil {
		return err
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if _, err = f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return callback(f)
}

func (fi *intent) UploadMedia(ctx context.Context, roomID id.RoomID, data []byte, fileName, mimeType string) (id.ContentURIString, *event.EncryptedFileInfo, error) {
	if err := fi.fm.wait(ctx); err != nil {
		return "", nil, err
	}
	fm := fi.fm
	fm.mu.Lock()
	max := fm.uploadMax
	fm.mu.Unlock()
	if max > 0 && int64(len(data)) > max {
		return "", nil, mautrix.MTooLarge.WithMessage("upload of %d bytes is over %d", len(data), max)
	}
	return fm.AddMedia(Media{Data: bytes.Clone(data), FileName: fileName, MimeType: mimeType, Uploader: fi.mxid}), nil, nil
}

// UploadMediaStream hands cb a buffer and uploads what it wrote, refusing a size over the
// upload limit before calling cb, as bridgev2's connector does.
func (fi *intent) UploadMediaStream(ctx context.Context, roomID id.RoomID, size int64, requireFile bool, cb bridgev2.FileStreamCallback) (id.ContentURIString, *event.EncryptedFileInfo, error) {
	fi.fm.mu.Lock()
	max := fi.fm.uploadMax
	fi.fm.mu.Unlock()
	if max > 0 && size > max {
		return "", nil, mautrix.MTooLarge.WithMessage("upload of %d bytes is over %d", size, max)
	}
	var buf bytes.Buffer
	res, err := cb(&buf)
	if err != nil {
		return "", nil, bridgev2.CallbackError{Type: "write", Wrapped: err}
	}
	return fi.UploadMedia(ctx, roomID, buf.Bytes(), res.FileName, res.MimeType)
}

func (fi *intent) SetDisplayName(ctx context.Context, name string) error {
	if err := fi.fm.wait(ctx); err != nil {
		return err
	}
	fi.fm.mu.Lock()
	defer fi.fm.mu.Unlock()
	fi.fm.names[fi.mxid] = name
	fi.fm.changed()
	return nil
}
func (fi *intent) SetAvatarURL(ctx context.Context, avatarURL id.ContentURIString) error {
	if err := fi.fm.wait(ctx); err != nil {
		return err
	}
	fi.fm.mu.Lock()
	defer fi.fm.mu.Unlock()
	fi.fm.avatars[fi.mxid] = avatarURL
	fi.fm.changed()
	return nil
}

// GetProfile returns the profile SetProfileOf gave userID (M_NOT_FOUND when none).
func (fi *intent) GetProfile(ctx context.Context, userID id.UserID) (*mautrix.RespUserProfile, error) {
	if err := fi.fm.wait(ctx); err != nil {
		return nil, err
	}
	fi.fm.mu.Lock()
	defer fi.fm.mu.Unlock()
	p := fi.fm.profiles[userID]
	if p == nil {
		return nil, mautrix.MNotFound.WithMessage("no profile")
	}
	cp := *p
	return &cp, nil
}
func (fi *intent) SetExtraProfileMeta(ctx context.Context, data any) error { return nil }
func (fi *intent) SetProfile(ctx context.Context, data any) error          { return nil }

func (fi *intent) CreateRoom(ctx context.Context, req *mautrix.ReqCreateRoom) (id.RoomID, error) {
	if err := fi.fm.wait(ctx); err != nil {
		return "", err
	}
	roomID := id.RoomID(fmt.Sprintf("!room%d:%s", fi.fm.seq.Add(1), fi.fm.server))
	fi.fm.setMember(roomID, fi.mxid, event.MembershipJoin)
	for _, u := range req.Invite {
		fi.fm.setMember(roomID, u, event.MembershipInvite)
	}
	fi.fm.mu.Lock()
	fi.fm.rooms[roomID].creator = fi.mxid
	fi.fm.mu.Unlock()
	return roomID, nil
}
func (fi *intent) DeleteRoom(ctx context.Context, roomID id.RoomID, puppetsOnly bool) error {
	return nil
}
func (fi *intent) EnsureJoined(ctx context.Context, roomID id.RoomID, params ...bridgev2.EnsureJoinedParams) error {
	if err := fi.fm.wait(ctx); err != nil {
		return err
	}
	fi.fm.setMember(roomID, fi.mxid, event.MembershipJoin)
	return nil
}
func (fi *intent) EnsureInvited(ctx context.Context, roomID id.RoomID, userID id.UserID) error {
	if err := fi.fm.wait(ctx); err != nil {
		return err
	}
	fi.fm.setMember(roomID, userID, event.MembershipInvite)
	return nil
}
func (fi *intent) TagRoom(ctx context.Context, roomID id.RoomID, tag event.RoomTag, isTagged bool) error {
	return nil
}
func (fi *intent) MuteRoom(ctx context.Context, roomID id.RoomID, until time.Time) error {
	return nil
}

// GetEvent returns an event the fake recorded in roomID.
func (fi *intent) GetEvent(ctx context.Context, roomID id.RoomID, eventID id.EventID) (*event.Event, error) {
	for _, ev := range fi.fm.Events(roomID) {
		if ev.ID == eventID {
			return &event.Event{Type: ev.Type, RoomID: roomID, ID: ev.ID, Sender: ev.Sender, Content: *ev.Content}, nil
		}
	}
	return nil, errors.New("not found")
}

// SetPresence records the ghost's presence.
func (fi *intent) SetPresence(ctx context.Context, req mautrix.ReqPresence) error {
	if err := fi.fm.wait(ctx); err != nil {
		return err
	}
	fi.fm.mu.Lock()
	defer fi.fm.mu.Unlock()
	fi.fm.presence[fi.mxid] = append(fi.fm.presence[fi.mxid], req)
	fi.fm.changed()
	return nil
}
