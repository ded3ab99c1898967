package matrix

import (
	"context"
	"errors"
	"fmt"
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

// fakeMatrix is an in-memory bridgev2.MatrixConnector: rooms live in maps, every event sent by
// any intent is recorded, and ghosts' presence is recorded through PresenceSetter.
type fakeMatrix struct {
	br     *bridgev2.Bridge
	server string
	seq    atomic.Int64

	mu        sync.Mutex
	rooms     map[id.RoomID]*fakeRoom
	events    []*sentEvent
	statuses  []sentStatus
	states    []status.BridgeState
	presence  map[id.UserID][]mautrix.ReqPresence
	names     map[id.UserID]string
	typing    []sentTyping
	changedCh chan struct{}
}

type fakeRoom struct {
	members map[id.UserID]event.Membership
	creator id.UserID
}

type sentEvent struct {
	RoomID  id.RoomID
	Sender  id.UserID
	Type    event.Type
	ID      id.EventID
	Content *event.Content
	TS      time.Time
}

type sentStatus struct {
	Status *bridgev2.MessageStatus
	Info   *bridgev2.MessageStatusEventInfo
}

type sentTyping struct {
	RoomID  id.RoomID
	UserID  id.UserID
	Timeout time.Duration
}

func newFakeMatrix() *fakeMatrix {
	return &fakeMatrix{
		server:    "test",
		rooms:     map[id.RoomID]*fakeRoom{},
		presence:  map[id.UserID][]mautrix.ReqPresence{},
		names:     map[id.UserID]string{},
		changedCh: make(chan struct{}),
	}
}

var _ bridgev2.MatrixConnector = (*fakeMatrix)(nil)

func (fm *fakeMatrix) changed() {
	close(fm.changedCh)
	fm.changedCh = make(chan struct{})
}

// waitFor polls cond (under fm.mu) until it is true or the deadline passes.
func (fm *fakeMatrix) waitFor(ctx context.Context, cond func() bool) bool {
	for {
		fm.mu.Lock()
		ok := cond()
		ch := fm.changedCh
		fm.mu.Unlock()
		if ok {
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

func (fm *fakeMatrix) Init(br *bridgev2.Bridge)        { fm.br = br }
func (fm *fakeMatrix) Start(ctx context.Context) error { return nil }
func (fm *fakeMatrix) PreStop()                        {}
func (fm *fakeMatrix) Stop()                           {}
func (fm *fakeMatrix) GetCapabilities() *bridgev2.MatrixCapabilities {
	return &bridgev2.MatrixCapabilities{}
}

func (fm *fakeMatrix) ParseGhostMXID(userID id.UserID) (networkid.UserID, bool) {
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

func (fm *fakeMatrix) FormatGhostMXID(userID networkid.UserID) id.UserID {
	return id.NewUserID("msn_"+id.EncodeUserLocalpart(string(userID)), fm.server)
}

func (fm *fakeMatrix) GhostIntent(userID networkid.UserID) bridgev2.MatrixAPI {
	return &fakeIntent{fm: fm, mxid: fm.FormatGhostMXID(userID)}
}

func (fm *fakeMatrix) NewUserIntent(ctx context.Context, userID id.UserID, accessToken string) (bridgev2.MatrixAPI, string, error) {
	return nil, accessToken, errors.New("double puppeting is not supported by the fake")
}

func (fm *fakeMatrix) BotIntent() bridgev2.MatrixAPI {
	return &fakeIntent{fm: fm, mxid: id.NewUserID("msnbot", fm.server)}
}

func (fm *fakeMatrix) SendBridgeStatus(ctx context.Context, state *status.BridgeState) error {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	fm.states = append(fm.states, *state)
	fm.changed()
	return nil
}

func (fm *fakeMatrix) SendMessageStatus(ctx context.Context, st *bridgev2.MessageStatus, info *bridgev2.MessageStatusEventInfo) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	fm.statuses = append(fm.statuses, sentStatus{Status: st, Info: info})
	fm.changed()
}

func (fm *fakeMatrix) GenerateContentURI(ctx context.Context, mediaID networkid.MediaID) (id.ContentURIString, error) {
	return "", errors.New("no media")
}

func (fm *fakeMatrix) ParseContentURI(ctx context.Context, uri id.ContentURIString) (networkid.MediaID, error) {
	return nil, errors.New("no media")
}

func (fm *fakeMatrix) GetPowerLevels(ctx context.Context, roomID id.RoomID) (*event.PowerLevelsEventContent, error) {
	return &event.PowerLevelsEventContent{}, nil
}

func (fm *fakeMatrix) GetMembers(ctx context.Context, roomID id.RoomID) (map[id.UserID]*event.MemberEventContent, error) {
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

func (fm *fakeMatrix) GetMemberInfo(ctx context.Context, roomID id.RoomID, userID id.UserID) (*event.MemberEventContent, error) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	if r := fm.rooms[roomID]; r != nil {
		if m, ok := r.members[userID]; ok {
			return &event.MemberEventContent{Membership: m}, nil
		}
	}
	return &event.MemberEventContent{Membership: event.MembershipLeave}, nil
}

func (fm *fakeMatrix) BatchSend(ctx context.Context, roomID id.RoomID, req *mautrix.ReqBeeperBatchSend, extras []*bridgev2.MatrixSendExtra) (*mautrix.RespBeeperBatchSend, error) {
	return nil, errors.New("batch send is not supported")
}

func (fm *fakeMatrix) GenerateDeterministicRoomID(key networkid.PortalKey) id.RoomID { return "" }
func (fm *fakeMatrix) GenerateDeterministicEventID(id.RoomID, networkid.PortalKey, networkid.MessageID, networkid.PartID) id.EventID {
	return ""
}
func (fm *fakeMatrix) GenerateReactionEventID(id.RoomID, *database.Message, networkid.UserID, networkid.EmojiID) id.EventID {
	return ""
}
func (fm *fakeMatrix) ServerName() string { return fm.server }

// helpers for tests

func (fm *fakeMatrix) eventsIn(roomID id.RoomID) []*sentEvent {
	var out []*sentEvent
	for _, e := range fm.events {
		if roomID == "" || e.RoomID == roomID {
			out = append(out, e)
		}
	}
	return out
}

func (fm *fakeMatrix) messagesIn(roomID id.RoomID) []*sentEvent {
	var out []*sentEvent
	for _, e := range fm.eventsIn(roomID) {
		if e.Type == event.EventMessage {
			out = append(out, e)
		}
	}
	return out
}

// fakeIntent is one user's MatrixAPI on the fake.
type fakeIntent struct {
	fm   *fakeMatrix
	mxid id.UserID
}

var (
	_ bridgev2.MatrixAPI = (*fakeIntent)(nil)
	_ PresenceSetter     = (*fakeIntent)(nil)
)

func (fi *fakeIntent) GetMXID() id.UserID   { return fi.mxid }
func (fi *fakeIntent) IsDoublePuppet() bool { return false }

func (fi *fakeIntent) record(roomID id.RoomID, t event.Type, content *event.Content, ts time.Time) id.EventID {
	fm := fi.fm
	evtID := id.EventID(fmt.Sprintf("$ev%d", fm.seq.Add(1)))
	if ts.IsZero() {
		ts = time.Now()
	}
	fm.mu.Lock()
	defer fm.mu.Unlock()
	fm.events = append(fm.events, &sentEvent{RoomID: roomID, Sender: fi.mxid, Type: t, ID: evtID, Content: content, TS: ts})
	fm.changed()
	return evtID
}

func (fi *fakeIntent) SendMessage(ctx context.Context, roomID id.RoomID, eventType event.Type, content *event.Content, extra *bridgev2.MatrixSendExtra) (*mautrix.RespSendEvent, error) {
	var ts time.Time
	if extra != nil {
		ts = extra.Timestamp
	}
	if content.Parsed == nil && content.Raw != nil {
		_ = content.ParseRaw(eventType)
	}
	return &mautrix.RespSendEvent{EventID: fi.record(roomID, eventType, content, ts)}, nil
}

func (fi *fakeIntent) SendState(ctx context.Context, roomID id.RoomID, eventType event.Type, stateKey string, content *event.Content, ts time.Time) (*mautrix.RespSendEvent, error) {
	if eventType == event.StateMember {
		if m, ok := content.Parsed.(*event.MemberEventContent); ok {
			fi.fm.setMember(roomID, id.UserID(stateKey), m.Membership)
		}
	}
	return &mautrix.RespSendEvent{EventID: fi.record(roomID, eventType, content, ts)}, nil
}

func (fm *fakeMatrix) setMember(roomID id.RoomID, user id.UserID, m event.Membership) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	r := fm.rooms[roomID]
	if r == nil {
		r = &fakeRoom{members: map[id.UserID]event.Membership{}}
		fm.rooms[roomID] = r
	}
	r.members[user] = m
	fm.changed()
}

func (fi *fakeIntent) MarkRead(ctx context.Context, roomID id.RoomID, eventID id.EventID, ts time.Time) error {
	return nil
}
func (fi *fakeIntent) MarkUnread(ctx context.Context, roomID id.RoomID, unread bool) error {
	return nil
}
func (fi *fakeIntent) MarkTyping(ctx context.Context, roomID id.RoomID, typingType bridgev2.TypingType, timeout time.Duration) error {
	fi.fm.mu.Lock()
	defer fi.fm.mu.Unlock()
	fi.fm.typing = append(fi.fm.typing, sentTyping{RoomID: roomID, UserID: fi.mxid, Timeout: timeout})
	fi.fm.changed()
	return nil
}
func (fi *fakeIntent) DownloadMedia(ctx context.Context, uri id.ContentURIString, file *event.EncryptedFileInfo) ([]byte, error) {
	return nil, errors.New("no media")
}
func (fi *fakeIntent) DownloadMediaToFile(ctx context.Context, uri id.ContentURIString, file *event.EncryptedFileInfo, writable bool, callback func(*os.File) error) error {
	return errors.New("no media")
}
func (fi *fakeIntent) UploadMedia(ctx context.Context, roomID id.RoomID, data []byte, fileName, mimeType string) (id.ContentURIString, *event.EncryptedFileInfo, error) {
	return "", nil, errors.New("no media")
}
func (fi *fakeIntent) UploadMediaStream(ctx context.Context, roomID id.RoomID, size int64, requireFile bool, cb bridgev2.FileStreamCallback) (id.ContentURIString, *event.EncryptedFileInfo, error) {
	return "", nil, errors.New("no media")
}
func (fi *fakeIntent) SetDisplayName(ctx context.Context, name string) error {
	fi.fm.mu.Lock()
	defer fi.fm.mu.Unlock()
	fi.fm.names[fi.mxid] = name
	fi.fm.changed()
	return nil
}
func (fi *fakeIntent) SetAvatarURL(ctx context.Context, avatarURL id.ContentURIString) error {
	return nil
}
func (fi *fakeIntent) SetExtraProfileMeta(ctx context.Context, data any) error { return nil }
func (fi *fakeIntent) SetProfile(ctx context.Context, data any) error          { return nil }

func (fi *fakeIntent) CreateRoom(ctx context.Context, req *mautrix.ReqCreateRoom) (id.RoomID, error) {
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
func (fi *fakeIntent) DeleteRoom(ctx context.Context, roomID id.RoomID, puppetsOnly bool) error {
	return nil
}
func (fi *fakeIntent) EnsureJoined(ctx context.Context, roomID id.RoomID, params ...bridgev2.EnsureJoinedParams) error {
	fi.fm.setMember(roomID, fi.mxid, event.MembershipJoin)
	return nil
}
func (fi *fakeIntent) EnsureInvited(ctx context.Context, roomID id.RoomID, userID id.UserID) error {
	fi.fm.setMember(roomID, userID, event.MembershipInvite)
	return nil
}
func (fi *fakeIntent) TagRoom(ctx context.Context, roomID id.RoomID, tag event.RoomTag, isTagged bool) error {
	return nil
}
func (fi *fakeIntent) MuteRoom(ctx context.Context, roomID id.RoomID, until time.Time) error {
	return nil
}
func (fi *fakeIntent) GetEvent(ctx context.Context, roomID id.RoomID, eventID id.EventID) (*event.Event, error) {
	return nil, errors.New("not found")
}

// SetPresence records the ghost's presence.
func (fi *fakeIntent) SetPresence(ctx context.Context, req mautrix.ReqPresence) error {
	fi.fm.mu.Lock()
	defer fi.fm.mu.Unlock()
	fi.fm.presence[fi.mxid] = append(fi.fm.presence[fi.mxid], req)
	fi.fm.changed()
	return nil
}
