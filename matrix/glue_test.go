package matrix

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/matrix/matrixtest"
	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

const (
	alice    = "alice@example.com"
	alicePW  = "alice-password"
	bob      = "bob@example.com" // a bot that records what it receives
	carol    = "carol@example.com"
	dave     = "dave@example.com"
	aliceMX  = id.UserID("@alice:test")
	testWait = 15 * time.Second
)

// botInbox collects what bob receives.
type botInbox struct {
	mu   sync.Mutex
	msgs []msntest.BotMessage
	ch   chan struct{}
}

func (b *botInbox) fn(_ context.Context, _ *msntest.BotChat, msg msntest.BotMessage) {
	b.mu.Lock()
	b.msgs = append(b.msgs, msg)
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}

func (b *botInbox) waitText(t *testing.T, want string) msntest.BotMessage {
	t.Helper()
	return b.waitTextWithin(t, want, testWait)
}

func (b *botInbox) waitTextWithin(t *testing.T, want string, d time.Duration) msntest.BotMessage {
	t.Helper()
	deadline := time.After(d)
	for {
		b.mu.Lock()
		for _, m := range b.msgs {
			if m.IsText() && m.Body == want {
				b.mu.Unlock()
				return m
			}
		}
		ch := b.ch
		b.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("bot never received %q", want)
		}
	}
}

// glueEnv is a core on msntest plus the Matrix frontend on a fake Matrix connector and SQLite.
type glueEnv struct {
	t     *testing.T
	ctx   context.Context
	srv   *msntest.Server
	bob   *botInbox
	db    *dbutil.Database
	key   []byte
	core  *bridge.Core
	fm    *matrixtest.Matrix
	fe    *Frontend
	log   zerolog.Logger
	mxCfg Config
}

func newGlueEnv(t *testing.T, mutate func(*Config)) *glueEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	srv := msntest.New(msntest.Options{})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	inbox := &botInbox{ch: make(chan struct{})}
	must(t, srv.AddAccount(alice, alicePW, "Alice"))
	must(t, srv.AddBot(bob, "x", "Bobby", inbox.fn))
	must(t, srv.AddAccount(carol, "x", "Carol"))
	must(t, srv.AddAccount(dave, "x", "Dave"))
	must(t, srv.AddFriends(alice, bob))
	must(t, srv.AddFriends(alice, carol))
	must(t, srv.SetPresence(bob, "NLN", "bot things"))
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := &glueEnv{
		t: t, ctx: ctx, srv: srv, bob: inbox, key: key,
		db:  pgtest.Open(t, pgtest.SQLiteDriver, pgtest.SQLiteDSN(t)),
		log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
	}
	env.mxCfg = DefaultConfig()
	env.mxCfg.Presence.Rate = 1000
	env.mxCfg.Presence.Burst = 1000
	if mutate != nil {
		mutate(&env.mxCfg)
	}
	env.start()
	return env
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testBridgeConfig() *bridgeconfig.BridgeConfig {
	return &bridgeconfig.BridgeConfig{
		CommandPrefix:       "!msn",
		BridgeStatusNotices: "errors",
		Permissions: bridgeconfig.PermissionConfig{
			"test": &bridgeconfig.PermissionLevelUser,
		},
	}
}

// newTestCore builds a core on db for the msntest server srv.
// testMaxFileSize is the test cores' file size cap: not the default, so that the frontend is
// seen to use the configured one.
const testMaxFileSize = 20 << 20

func newTestCore(t *testing.T, ctx context.Context, srv *msntest.Server, db *dbutil.Database, key []byte, log zerolog.Logger) *bridge.Core {
	t.Helper()
	return newTestCoreWith(t, ctx, srv, db, key, log, nil)
}

// newTestCoreWith is newTestCore with its configuration changed by mutate.
func newTestCoreWith(t *testing.T, ctx context.Context, srv *msntest.Server, db *dbutil.Database, key []byte, log zerolog.Logger, mutate func(*bridge.Config)) *bridge.Core {
	t.Helper()
	cipher, err := bridge.NewCipher(key)
	must(t, err)
	store := bridge.NewStore(db, cipher, log)
	must(t, store.Upgrade(ctx))
	cfg := bridge.Config{
		MSN: msn.Config{Server: srv.NSAddr(), LoginURL: srv.LoginURL(), AllowInsecurePassport: true,
			RequestTimeout: 5 * time.Second, JoinTimeout: 3 * time.Second, AckTimeout: 3 * time.Second},
		PresenceWindow: 20 * time.Millisecond,
		Media:          bridge.MediaConfig{MaxFileSize: testMaxFileSize},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	core, err := bridge.NewCore(cfg, bridge.Options{Store: store, Log: log})
	must(t, err)
	return core
}

// start builds a core and the frontend on the same database and starts them as the bridge
// does: the stored accounts loaded, the frontend started, then the logins.
func (e *glueEnv) start() {
	t := e.t
	e.core = newTestCore(t, e.ctx, e.srv, e.db, e.key, e.log)
	e.fm = matrixtest.New()
	fe, err := newFrontend(e.core, e.mxCfg, e.fm, testBridgeConfig(), e.db, e.log)
	must(t, err)
	e.fe = fe
	must(t, e.core.Load(e.ctx))
	must(t, fe.Start(e.ctx))
	must(t, e.core.Start(e.ctx))
	t.Cleanup(e.stop)
}

func (e *glueEnv) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if e.fe != nil {
		e.fe.Stop(ctx)
	}
	if e.core != nil {
		_ = e.core.Stop(ctx)
	}
}

func (e *glueEnv) user() *bridgev2.User {
	u, err := e.fe.Bridge().GetUserByMXID(e.ctx, aliceMX)
	must(e.t, err)
	return u
}

// login runs the login flow as the Matrix user.
func (e *glueEnv) login(password string) (*bridgev2.LoginStep, error) {
	proc, err := e.fe.Connector().CreateLogin(e.ctx, e.user(), LoginFlowPassword)
	must(e.t, err)
	step, err := proc.Start(e.ctx)
	must(e.t, err)
	if step.Type != bridgev2.LoginStepTypeUserInput || len(step.UserInputParams.Fields) != 2 {
		e.t.Fatalf("unexpected first step %+v", step)
	}
	if f := step.UserInputParams.Fields[1]; f.Type != bridgev2.LoginInputFieldTypePassword {
		e.t.Fatalf("password field has type %q, want password (so bridgev2 redacts it)", f.Type)
	}
	return proc.(bridgev2.LoginProcessUserInput).SubmitUserInput(e.ctx, map[string]string{"email": "Alice@Example.com", "password": password})
}

func (e *glueEnv) mustLogin() *bridgev2.UserLogin {
	step, err := e.login(alicePW)
	if err != nil {
		e.t.Fatalf("login failed: %v", err)
	}
	if step.Type != bridgev2.LoginStepTypeComplete || step.CompleteParams.UserLoginID != "alice@example.com" {
		e.t.Fatalf("unexpected final step %+v", step)
	}
	e.waitState(t2s("CONNECTED"))
	return step.CompleteParams.UserLogin
}

func t2s(s string) string { return s }

func (e *glueEnv) waitState(want string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, testWait)
	defer cancel()
	if !e.fm.WaitFor(ctx, func() bool {
		states := e.fm.States()
		return len(states) > 0 && string(states[len(states)-1].StateEvent) == want
	}) {
		e.t.Fatalf("bridge state never became %s (states: %+v)", want, e.fm.States())
	}
}

// portal returns the stored row of the DM portal with contact once it has a room (read from the
// database: the cached Portal is bridgev2's to mutate).
func (e *glueEnv) portal(contact string) *database.Portal {
	e.t.Helper()
	var portal *database.Portal
	ctx, cancel := context.WithTimeout(e.ctx, testWait)
	defer cancel()
	for ctx.Err() == nil {
		p, err := e.fe.Bridge().DB.Portal.GetByKey(e.ctx, makePortalKey(makeUserLoginID(alice), bridge.ChatID(contact)))
		must(e.t, err)
		if p != nil && p.MXID != "" {
			portal = p
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if portal == nil {
		e.t.Fatalf("portal for %s never created", contact)
	}
	return portal
}

// waitMessage waits for a message event in room from sender whose body contains text.
func (e *glueEnv) waitMessage(room id.RoomID, sender id.UserID, text string) *matrixtest.Event {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, testWait)
	defer cancel()
	var found *matrixtest.Event
	e.fm.WaitFor(ctx, func() bool {
		for _, ev := range e.fm.Messages(room) {
			if msg, ok := ev.Content.Parsed.(*event.MessageEventContent); ok && (sender == "" || ev.Sender == sender) && strings.Contains(msg.Body, text) {
				found = ev
				return true
			}
		}
		return false
	})
	if found == nil {
		e.t.Fatalf("no message %q from %s in %s", text, sender, room)
	}
	return found
}

// sendMatrix queues a Matrix message from alice into room.
func (e *glueEnv) sendMatrix(room id.RoomID, content *event.MessageEventContent) id.EventID {
	evtID := id.EventID(fmt.Sprintf("$mx%d", e.fm.NextID()))
	e.fe.Bridge().QueueMatrixEvent(e.ctx, &event.Event{
		Type: event.EventMessage, RoomID: room, Sender: aliceMX, ID: evtID,
		Timestamp: time.Now().UnixMilli(),
		Content:   event.Content{Parsed: content},
	})
	return evtID
}

func (e *glueEnv) waitStatus(evtID id.EventID) *bridgev2.MessageStatus {
	e.t.Helper()
	return e.waitStatusWhere(evtID, "message status", func(*bridgev2.MessageStatus) bool { return true })
}

// waitStatusWhere waits for the first status of evtID that ok accepts (what names it in the
// failure) and returns it.
func (e *glueEnv) waitStatusWhere(evtID id.EventID, what string, ok func(*bridgev2.MessageStatus) bool) *bridgev2.MessageStatus {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, testWait)
	defer cancel()
	var st *bridgev2.MessageStatus
	e.fm.WaitFor(ctx, func() bool {
		for _, s := range e.fm.Statuses() {
			if s.Info != nil && s.Info.SourceEventID == evtID && ok(s.Status) {
				st = s.Status
				return true
			}
		}
		return false
	})
	if st == nil {
		e.t.Fatalf("no %s for %s", what, evtID)
	}
	return st
}

// command runs a bridge command as alice in room (the management room when "").
func (e *glueEnv) command(room id.RoomID, cmd string) string {
	e.t.Helper()
	u := e.user()
	if room == "" {
		var err error
		room, err = u.GetManagementRoom(e.ctx)
		must(e.t, err)
	}
	before := len(e.fm.Messages(room))
	e.fe.Bridge().Commands.Handle(e.ctx, room, id.EventID(fmt.Sprintf("$cmd%d", e.fm.NextID())), u, cmd, "")
	var replies []string
	for _, ev := range e.fm.Messages(room)[before:] {
		if msg, ok := ev.Content.Parsed.(*event.MessageEventContent); ok && ev.Sender == e.fm.BotIntent().GetMXID() {
			replies = append(replies, msg.Body)
		}
	}
	return strings.Join(replies, "\n")
}

func ghostMXID(handle string) id.UserID {
	return id.NewUserID("msn_"+id.EncodeUserLocalpart(handle), "test")
}

func TestLoginWrongPasswordStoresNothing(t *testing.T) {
	e := newGlueEnv(t, nil)
	_, err := e.login("wrong")
	if err == nil || !strings.Contains(err.Error(), "refused the e-mail address or password") {
		t.Fatalf("wrong password: got %v, want a clear refusal", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("error leaks the password: %v", err)
	}
	if acc := e.core.Account(alice); acc != nil {
		t.Fatalf("core kept an account after a failed login")
	}
	if _, err = e.core.Store().GetAccount(e.ctx, alice); err == nil {
		t.Fatalf("store has an account after a failed login")
	}
	if logins := e.user().GetUserLogins(); len(logins) != 0 {
		t.Fatalf("bridgev2 has logins after a failed login: %d", len(logins))
	}
}

func TestLoginServerDown(t *testing.T) {
	e := newGlueEnv(t, func(c *Config) { c.LoginTimeout = 5 * time.Second })
	e.srv.Close()
	_, err := e.login(alicePW)
	if err == nil || !(strings.Contains(err.Error(), "busy or unreachable") || strings.Contains(err.Error(), "did not answer")) {
		t.Fatalf("server down: got %v, want a reachability error", err)
	}
}

func TestMessagesBothWays(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()

	// MSN → Matrix: the first message creates the DM portal; formatting is mirrored.
	e.srv.BotSay(bob, alice, "hello from msn")
	portal := e.portal(bob)
	ev := e.waitMessage(portal.MXID, ghostMXID(bob), "hello from msn")
	if msg := ev.Content.Parsed.(*event.MessageEventContent); msg.MsgType != event.MsgText {
		t.Fatalf("msgtype %s", msg.MsgType)
	}
	name := e.fm.Name(ghostMXID(bob))
	if name != "Bobby (MSN)" {
		t.Fatalf("ghost display name %q, want %q", name, "Bobby (MSN)")
	}
	if portal.OtherUserID != makeUserID(bob) {
		t.Fatalf("portal other user %q", portal.OtherUserID)
	}

	// Matrix → MSN, with whole-message bold.
	evtID := e.sendMatrix(portal.MXID, &event.MessageEventContent{
		MsgType: event.MsgText, Body: "**hi bob**", Format: event.FormatHTML, FormattedBody: "<strong>hi bob</strong>",
	})
	got := e.bob.waitText(t, "hi bob")
	if f := got.Header["X-MMS-IM-Format"]; !strings.Contains(f, "EF=B") {
		t.Fatalf("format header %q, want bold", f)
	}
	if st := e.waitStatus(evtID); st.Status != event.MessageStatusSuccess {
		t.Fatalf("status %+v, want success", st)
	}
}

// TestEditCarried: MSN cannot change a delivered message, so an edit reaches the contact as a
// new message, "* " and the new text, and its status says whether it did.
func TestEditCarried(t *testing.T) {
	e, portal, orig := sentToBob(t)
	edit := e.sendMatrix(portal.MXID, editOf(orig, "hello bob"))
	e.bob.waitText(t, "* hello bob")
	if st := e.waitStatus(edit); st.Status != event.MessageStatusSuccess {
		t.Fatalf("edit status %+v, want success", st)
	}

	// An edit the server refuses (NAK) fails, saying why.
	e.srv.NAKAll(true)
	edit = e.sendMatrix(portal.MXID, editOf(orig, "hello, bob"))
	if st := e.waitStatus(edit); st.Status == event.MessageStatusSuccess || !strings.Contains(st.Message, "did not deliver") {
		t.Fatalf("edit refused by MSN: status %s %q, want a failure saying why", st.Status, st.Message)
	}
}

// TestSlowEditDoesNotHoldThePortal: an edit MSN takes long to answer holds the portal for
// editWait at most; the contact's messages go on, and MSN's later refusal comes as a failure
// status after bridgev2's own.
func TestSlowEditDoesNotHoldThePortal(t *testing.T) {
	defer func(w time.Duration) { editWait = w }(editWait)
	editWait = 100 * time.Millisecond
	e, portal, orig := sentToBob(t)

	// MSN answers the edit only after 3 s (later than the client waits for an ACK here).
	e.srv.NAKAll(true)
	e.srv.SetDelay("MSG", 3*time.Second)
	edit := e.sendMatrix(portal.MXID, editOf(orig, "hello bob"))
	editFailed := func() bool {
		for _, st := range e.fm.Statuses() {
			if st.Info != nil && st.Info.SourceEventID == edit && st.Status.Status == event.MessageStatusFail {
				return st.Status.Message != ""
			}
		}
		return false
	}
	e.srv.BotSay(bob, alice, "meanwhile")
	e.waitMessage(portal.MXID, ghostMXID(bob), "meanwhile")
	if editFailed() {
		t.Fatal("the contact's message waited for the edit's outcome")
	}
	ctx, cancel := context.WithTimeout(e.ctx, testWait)
	defer cancel()
	if !e.fm.WaitFor(ctx, editFailed) {
		var got []string
		for _, st := range e.fm.Statuses() {
			if st.Info != nil && st.Info.SourceEventID == edit {
				got = append(got, fmt.Sprintf("%s %q", st.Status.Status, st.Status.Message))
			}
		}
		t.Fatalf("no failure status for the refused edit; its statuses: %v", got)
	}
}

// sentToBob logs alice in, opens bob's portal and sends bob "helo bob" from Matrix; it returns
// the portal and that message's event.
func sentToBob(t *testing.T) (*glueEnv, *database.Portal, id.EventID) {
	t.Helper()
	e := newGlueEnv(t, nil)
	e.mustLogin()
	e.srv.BotSay(bob, alice, "hi")
	portal := e.portal(bob)
	e.waitMessage(portal.MXID, ghostMXID(bob), "hi")
	orig := e.sendMatrix(portal.MXID, &event.MessageEventContent{MsgType: event.MsgText, Body: "helo bob"})
	e.bob.waitText(t, "helo bob")
	if st := e.waitStatus(orig); st.Status != event.MessageStatusSuccess {
		t.Fatalf("message status %+v", st)
	}
	return e, portal, orig
}

// editOf is a Matrix edit (m.replace) of target to body.
func editOf(target id.EventID, body string) *event.MessageEventContent {
	return &event.MessageEventContent{
		MsgType: event.MsgText, Body: "* " + body,
		NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: body},
		RelatesTo:  &event.RelatesTo{Type: event.RelReplace, EventID: target},
	}
}

func TestFormattedIncoming(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	e.srv.BotSay(bob, alice, "plain first")
	portal := e.portal(bob)
	e.waitMessage(portal.MXID, ghostMXID(bob), "plain first")
	// bob answers Alice's message with a styled one.
	done := make(chan struct{})
	var once sync.Once
	must(t, e.srv.AddBot("eve@example.com", "x", "Eve", func(_ context.Context, chat *msntest.BotChat, msg msntest.BotMessage) {
		if msg.IsText() {
			_ = chat.Send([]byte("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: FN=Arial; EF=BI; CO=ff; CS=0; PF=22\r\n\r\nstyled <reply>"))
			once.Do(func() { close(done) })
		}
	}))
	must(t, e.srv.AddFriends(alice, "eve@example.com"))
	// Let the account learn eve is online, then start a chat from Matrix.
	resp, err := e.clientOf().ResolveIdentifier(e.ctx, "eve@example.com", true)
	must(t, err)
	eve, err := e.fe.Bridge().GetPortalByKey(e.ctx, resp.Chat.PortalKey)
	must(t, err)
	must(t, eve.CreateMatrixRoom(e.ctx, e.userLogin(), nil))
	e.sendMatrix(eve.MXID, &event.MessageEventContent{MsgType: event.MsgText, Body: "hi eve"})
	select {
	case <-done:
	case <-time.After(testWait):
		t.Fatal("eve never got the message")
	}
	ev := e.waitMessage(eve.MXID, ghostMXID("eve@example.com"), "styled <reply>")
	msg := ev.Content.Parsed.(*event.MessageEventContent)
	// MSN colours are BGR: ff is red.
	want := `<font color="#ff0000" data-mx-color="#ff0000"><i><b>styled &lt;reply&gt;</b></i></font>`
	if msg.Format != event.FormatHTML || msg.FormattedBody != want {
		t.Fatalf("formatted body %q, want %q", msg.FormattedBody, want)
	}
}

func (e *glueEnv) userLogin() *bridgev2.UserLogin {
	ul := e.fe.Bridge().GetCachedUserLoginByID(makeUserLoginID(alice))
	if ul == nil {
		e.t.Fatal("no user login")
	}
	return ul
}

func (e *glueEnv) clientOf() *MSNClient { return e.userLogin().Client.(*MSNClient) }

func TestSendToOfflineContactFails(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	resp, err := e.clientOf().ResolveIdentifier(e.ctx, carol, true)
	must(t, err)
	portal, err := e.fe.Bridge().GetPortalByKey(e.ctx, resp.Chat.PortalKey)
	must(t, err)
	must(t, portal.CreateMatrixRoom(e.ctx, e.userLogin(), nil))
	evtID := e.sendMatrix(portal.MXID, &event.MessageEventContent{MsgType: event.MsgText, Body: "are you there?"})
	st := e.waitStatus(evtID)
	if st.Status != event.MessageStatusFail || !strings.Contains(st.Message, "offline") || !st.SendNotice {
		t.Fatalf("status %+v, want a permanent failure saying the contact is offline", st)
	}
	// Files are refused with a clear reason too.
	evtID = e.sendMatrix(portal.MXID, &event.MessageEventContent{MsgType: event.MsgImage, Body: "cat.png", URL: "mxc://test/cat"})
	if st = e.waitStatus(evtID); st.Status == event.MessageStatusSuccess {
		t.Fatalf("image status %+v, want a failure", st)
	}
}

func TestPresenceMirrored(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	ghost := ghostMXID(bob)
	if _, ok := e.fm.GhostIntent(makeUserID(bob)).(PresenceSetter); !ok {
		t.Fatal("the fake's ghost intents are not PresenceSetters")
	}
	waitPresence := func(p event.Presence, msg string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(e.ctx, testWait)
		defer cancel()
		if !e.fm.WaitFor(ctx, func() bool {
			l := e.fm.Presence(ghost)
			return len(l) > 0 && l[len(l)-1].Presence == p && l[len(l)-1].StatusMsg == msg
		}) {
			t.Fatalf("presence of %s never became %s %q (got %+v)", ghost, p, msg, e.fm.Presence(ghost))
		}
	}
	waitPresence(event.PresenceOnline, "Online - bot things")
	must(t, e.srv.SetPresence(bob, "LUN", "eating"))
	waitPresence(event.PresenceUnavailable, "Out to lunch - eating")
	must(t, e.srv.SetPresence(bob, "FLN", ""))
	waitPresence(event.PresenceOffline, "")
	// carol is offline from the start: her ghost says offline, not nothing.
	ctx, cancel := context.WithTimeout(e.ctx, testWait)
	defer cancel()
	if !e.fm.WaitFor(ctx, func() bool {
		l := e.fm.Presence(ghostMXID(carol))
		return len(l) > 0 && l[len(l)-1].Presence == event.PresenceOffline
	}) {
		t.Fatalf("offline carol's ghost never got presence offline: %+v", e.fm.Presence(ghostMXID(carol)))
	}
}

func TestPresenceRefreshAndMapping(t *testing.T) {
	cases := []struct {
		st        bridge.Status
		psm       string
		media     string
		presence  event.Presence
		statusMsg string
	}{
		{bridge.StatusOnline, "", "", event.PresenceOnline, "Online"},
		{bridge.StatusBusy, "work", "", event.PresenceUnavailable, "Busy - work"},
		{bridge.StatusAway, "", "🎵 A - B", event.PresenceUnavailable, "Away - 🎵 A - B"},
		{bridge.StatusBRB, "x", "", event.PresenceUnavailable, "Be right back - x"},
		{bridge.StatusPhone, "", "", event.PresenceUnavailable, "On the phone"},
		{bridge.StatusIdle, "", "", event.PresenceUnavailable, "Idle"},
		{bridge.StatusOffline, "psm", "", event.PresenceOffline, ""},
		{bridge.StatusInvisible, "", "", event.PresenceOffline, ""},
	}
	for _, c := range cases {
		p, msg := matrixPresence(c.st, c.psm, c.media)
		if p != c.presence || msg != c.statusMsg {
			t.Errorf("%v: got %s %q, want %s %q", c.st, p, msg, c.presence, c.statusMsg)
		}
	}
}

func TestCommands(t *testing.T) {
	e := newGlueEnv(t, nil)
	must(t, e.srv.AddContact(dave, alice, msntest.FL)) // a pending request for alice
	e.mustLogin()
	ctx, cancel := context.WithTimeout(e.ctx, testWait)
	defer cancel()

	if r := e.command("", "status busy"); !strings.Contains(r, "busy") {
		t.Fatalf("status reply %q", r)
	}
	if ev, err := e.srv.WaitFor(ctx, alice, "CHG"); err != nil {
		t.Fatal(err)
	} else if ev.Args[0] != "BSY" && (len(ev.Args) < 2 || ev.Args[1] != "BSY") {
		// the first CHG is the login's; wait for the one with BSY
		for ev.Args[len(ev.Args)-2] != "BSY" && !containsArg(ev.Args, "BSY") {
			if ev, err = e.srv.WaitFor(ctx, alice, "CHG"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if r := e.command("", "psm hello world"); !strings.Contains(r, "set") {
		t.Fatalf("psm reply %q", r)
	}
	waitServer(t, func() bool { return e.srv.PSM(alice) == "hello world" })
	if r := e.command("", "name Alice A."); !strings.Contains(r, "set") {
		t.Fatalf("name reply %q", r)
	}
	waitServer(t, func() bool { return e.srv.FriendlyName(alice) == "Alice A." })
	if r := e.command("", "requests"); !strings.Contains(r, dave) {
		t.Fatalf("requests reply %q, want dave", r)
	}
	if r := e.command("", "accept "+dave); !strings.Contains(r, "Accepted") {
		t.Fatalf("accept reply %q", r)
	}
	waitServer(t, func() bool { return e.srv.Lists(alice, dave)&msntest.AL != 0 })
	if r := e.command("", "block "+carol); !strings.Contains(r, "Blocked") {
		t.Fatalf("block reply %q", r)
	}
	waitServer(t, func() bool { return e.srv.Lists(alice, carol)&msntest.BL != 0 })
	if r := e.command("", "unblock "+carol); !strings.Contains(r, "Unblocked") {
		t.Fatalf("unblock reply %q", r)
	}
	waitServer(t, func() bool { return e.srv.Lists(alice, carol)&msntest.BL == 0 })
	must(t, e.srv.AddAccount("frank@example.com", "x", "Frank"))
	if r := e.command("", "add frank@example.com"); !strings.Contains(r, "Added") {
		t.Fatalf("add reply %q", r)
	}
	waitServer(t, func() bool { return e.srv.Lists(alice, "frank@example.com")&msntest.FL != 0 })
	if r := e.command("", "add not-an-email"); !strings.Contains(r, "not an MSN address") {
		t.Fatalf("add invalid reply %q", r)
	}
	if r := e.command("", "contacts"); !strings.Contains(r, bob) {
		t.Fatalf("contacts reply %q", r)
	}
	if r := e.command("", "link-code"); !strings.Contains(r, "/msn link") {
		t.Fatalf("link-code reply %q", r)
	}
	if r := e.command("", "status sideways"); !strings.Contains(r, "Unknown status") {
		t.Fatalf("bad status reply %q", r)
	}
}

func containsArg(args []string, v string) bool {
	for _, a := range args {
		if a == v {
			return true
		}
	}
	return false
}

func waitServer(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition on the msn server never became true")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCapabilities: the room features announce what MSN carries, with the core's configured
// file size cap.
func TestCapabilities(t *testing.T) {
	e := newGlueEnv(t, nil)
	caps := e.fe.Connector().roomFeatures()
	const maxFile = testMaxFileSize
	if caps.Edit != event.CapLevelPartialSupport || caps.Reaction != event.CapLevelRejected || caps.Reply != event.CapLevelPartialSupport ||
		caps.Delete != event.CapLevelPartialSupport || caps.Thread != event.CapLevelRejected || caps.ReadReceipts {
		t.Fatalf("capabilities claim unsupported features: %+v", caps)
	}
	if !caps.TypingNotifications || caps.Formatting[event.FmtBold] < event.CapLevelPartialSupport {
		t.Fatalf("capabilities miss typing or bold: %+v", caps)
	}
	for _, mt := range []event.CapabilityMsgType{event.MsgImage, event.MsgFile, event.MsgVideo, event.MsgAudio} {
		f := caps.File[mt]
		if f == nil || f.MaxSize != maxFile || f.GetMimeSupport("application/x-anything") != event.CapLevelFullySupported ||
			f.Caption != event.CapLevelPartialSupport {
			t.Fatalf("%s: file features %+v, want any type up to %d bytes with captions", mt, f, maxFile)
		}
	}
}

func TestIDs(t *testing.T) {
	for _, h := range []string{"bob@example.com", "tel:+15551234", "a.b+c@x.org"} {
		fm := matrixtest.New()
		mxid := fm.FormatGhostMXID(makeUserID(h))
		back, ok := fm.ParseGhostMXID(mxid)
		if !ok || string(back) != h {
			t.Errorf("%s → %s → %s", h, mxid, back)
		}
		if _, err := parseUserID(back); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	if _, err := parseUserID("not a handle"); err == nil {
		t.Error("invalid handle accepted")
	}
}

func TestMatrixToMSNFormat(t *testing.T) {
	cases := []struct {
		html string
		text string
		want bridge.Format
	}{
		{"<b>all bold</b>", "all bold", bridge.Format{Bold: true}},
		{"<b>half</b> plain", "half plain", bridge.Format{}},
		{"<em><u>x</u></em>", "x", bridge.Format{Italic: true, Underline: true}},
		{`<font color="#00FF00"><del>g</del></font>`, "g", bridge.Format{Strikethrough: true, Color: "00ff00"}},
		{`<span data-mx-color="#112233">a</span><span data-mx-color="#445566">b</span>`, "ab", bridge.Format{}},
	}
	for _, c := range cases {
		text, f := matrixToMSN(&event.MessageEventContent{Body: "x", Format: event.FormatHTML, FormattedBody: c.html})
		if text != c.text || f != c.want {
			t.Errorf("%s: got %q %+v, want %q %+v", c.html, text, f, c.text, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	must(t, c.Validate())
	c.Presence.RefreshInterval = time.Second
	c.DisplaynameTemplate = "{{.Nope"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "presence.refresh_interval") || !strings.Contains(err.Error(), "displayname_template") {
		t.Fatalf("validate: %v", err)
	}
}

var _ = mautrix.ReqPresence{}
var _ = networkid.PortalKey{}

func TestTypingAndNudge(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	must(t, e.srv.BotSay(bob, alice, "first"))
	portal := e.portal(bob)
	e.waitMessage(portal.MXID, ghostMXID(bob), "first")

	must(t, e.srv.BotTyping(bob, alice))
	ctx, cancel := context.WithTimeout(e.ctx, testWait)
	defer cancel()
	if !e.fm.WaitFor(ctx, func() bool {
		for _, ty := range e.fm.Typing() {
			if ty.RoomID == portal.MXID && ty.UserID == ghostMXID(bob) && ty.Timeout == bridge.TypingTimeout {
				return true
			}
		}
		return false
	}) {
		t.Fatal("typing never shown")
	}
	must(t, e.srv.BotSay(bob, alice, "second"))
	e.waitMessage(portal.MXID, ghostMXID(bob), "second")
	typing := e.fm.Typing()
	last := typing[len(typing)-1]
	if last.Timeout != 0 {
		t.Fatalf("typing not cleared before the message: %+v", last)
	}

	must(t, e.srv.BotNudge(bob, alice))
	ev := e.waitMessage(portal.MXID, ghostMXID(bob), "nudged you")
	if msg := ev.Content.Parsed.(*event.MessageEventContent); msg.MsgType != event.MsgEmote {
		t.Fatalf("nudge shown as %s, want an emote", msg.MsgType)
	}
	// The nudge command in the DM portal sends one to MSN.
	if r := e.command(portal.MXID, "nudge"); strings.Contains(r, "Failed") || strings.Contains(r, "Use `nudge`") {
		t.Fatalf("nudge reply %q", r)
	}
	waitBot := time.Now().Add(testWait)
	for {
		e.bob.mu.Lock()
		got := false
		for _, m := range e.bob.msgs {
			got = got || m.IsNudge()
		}
		e.bob.mu.Unlock()
		if got {
			break
		}
		if time.Now().After(waitBot) {
			t.Fatal("bob never got the nudge")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestGroupChatMembership(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	// The login's contact snapshot names the ghosts; bridgev2 reads a ghost's name without its
	// lock when it makes a room, so the room waits until the names are set.
	if !e.fm.WaitFor(e.ctx, func() bool { return e.fm.Name(ghostMXID(bob)) != "" && e.fm.Name(ghostMXID(carol)) != "" }) {
		t.Fatal("ghosts never named")
	}
	c := e.clientOf()
	acc := e.core.Account(alice)
	chat := bridge.GroupChat("sb42")
	must(t, c.handleEvent(e.ctx, acc, bridge.ChatMembership{Chat: chat, Handle: carol, Joined: true, Members: []string{bob, carol}}))
	must(t, c.handleEvent(e.ctx, acc, bridge.Message{ID: "msn:carol@example.com:1:1", Chat: chat, Sender: carol, Text: "hi all", Time: time.Now()}))
	var room id.RoomID
	ctx, cancel := context.WithTimeout(e.ctx, testWait)
	defer cancel()
	for ctx.Err() == nil && room == "" {
		p, err := e.fe.Bridge().DB.Portal.GetByKey(e.ctx, makePortalKey(makeUserLoginID(alice), chat))
		must(t, err)
		if p != nil {
			room = p.MXID
		}
		time.Sleep(20 * time.Millisecond)
	}
	if room == "" {
		t.Fatal("group portal never created")
	}
	e.waitMessage(room, ghostMXID(carol), "hi all")
	member := func(u id.UserID) event.Membership { return e.fm.Membership(room, u) }
	if member(ghostMXID(bob)) != event.MembershipJoin || member(ghostMXID(carol)) != event.MembershipJoin {
		t.Fatalf("group members bob=%s carol=%s", member(ghostMXID(bob)), member(ghostMXID(carol)))
	}
	must(t, c.handleEvent(e.ctx, acc, bridge.ChatMembership{Chat: chat, Handle: bob, Joined: false}))
	if !e.fm.WaitFor(ctx, func() bool { return member(ghostMXID(bob)) == event.MembershipLeave }) {
		t.Fatal("bob's leave was not mirrored")
	}
	must(t, c.handleEvent(e.ctx, acc, bridge.ChatMembership{Chat: chat, Handle: alice, Joined: false}))
	e.waitMessage(room, e.fm.BotIntent().GetMXID(), "conversation has ended")
	// Sending into an ended group chat fails with a clear reason.
	evtID := e.sendMatrix(room, &event.MessageEventContent{MsgType: event.MsgText, Body: "anyone?"})
	if st := e.waitStatus(evtID); st.Status != event.MessageStatusFail || !strings.Contains(st.Message, "ended") {
		t.Fatalf("status %+v, want a failure saying the chat ended", st)
	}
}

func TestAccountStateMapping(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	must(t, e.srv.Kick(alice)) // OUT OTH: logged in elsewhere
	e.waitState("BAD_CREDENTIALS")
	states := e.fm.States()
	last := states[len(states)-1]
	if last.Error != "msn-logged-in-elsewhere" || !strings.Contains(last.Message, "another location") {
		t.Fatalf("state %+v, want logged in elsewhere", last)
	}
	// The core clears its connection loop before it reports the stop: one command is enough.
	if r := e.command("", "reconnect"); !strings.Contains(r, "Reconnecting") {
		t.Fatalf("reconnect reply %q", r)
	}
	waitServer(t, func() bool { return e.srv.LoggedIn(alice) })
	e.waitState("CONNECTED")
}

func TestLogout(t *testing.T) {
	e := newGlueEnv(t, nil)
	ul := e.mustLogin()
	ul.Logout(e.ctx)
	if e.core.Account(alice) != nil {
		t.Fatal("core still has the account after logout")
	}
	waitServer(t, func() bool { return !e.srv.LoggedIn(alice) })
	if r := e.command("", "status away"); !strings.Contains(r, "logged in") {
		t.Fatalf("command after logout replied %q", r)
	}
}

// The core holds the frontend's events until the UserLogin exists, so handling them never
// waits for the login being created.
func TestFirstLoginDoesNotWaitForItself(t *testing.T) {
	e := newGlueEnv(t, nil)
	// Give the core's first delivery every chance to run before the UserLogin is created: it
	// would wait for it (and count) if it were not held.
	mc := e.fe.Connector()
	mc.beforeNewLogin = func() {
		for i := 0; i < 50 && mc.loginWaits.Load() == 0; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	e.mustLogin()
	must(t, e.srv.BotSay(bob, alice, "right after login"))
	e.waitMessage(e.portal(bob).MXID, ghostMXID(bob), "right after login")
	if n := e.fe.Connector().loginWaits.Load(); n != 0 {
		t.Fatalf("events waited %d times for the UserLogin", n)
	}
}

// A restart shows the stored login connecting and then connected, never as logged out or
// needing a new login, and bridgev2 holds the login once (one bridge state goroutine), even
// though the core delivers the account's first events while bridgev2 is still loading logins.
func TestRestartShowsLoginConnected(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	e.stop()
	waitServer(t, func() bool { return !e.srv.LoggedIn(alice) })
	waitGoroutines(t, "BridgeStateQueue).loop", 0)

	// As start does, but bridgev2 loads the stored logins only once the core's delivery of the
	// account's first events to the frontend has loaded the login itself.
	e.core = newTestCore(t, e.ctx, e.srv, e.db, e.key, e.log)
	e.fm = matrixtest.New()
	fe, err := newFrontend(e.core, e.mxCfg, e.fm, testBridgeConfig(), e.db, e.log)
	must(t, err)
	e.fe = fe
	fe.beforeStartLogins = func() {
		for i := 0; i < 500 && fe.br.GetCachedUserLoginByID("alice@example.com") == nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	must(t, e.core.Load(e.ctx))
	must(t, fe.Start(e.ctx))
	if fe.br.GetCachedUserLoginByID("alice@example.com") == nil {
		t.Fatal("the core's first delivery never loaded the login")
	}
	must(t, e.core.Start(e.ctx))
	waitServer(t, func() bool { return e.srv.LoggedIn(alice) })
	e.waitState("CONNECTED")
	for _, st := range e.fm.States() {
		if st.UserID != "" && st.StateEvent != "CONNECTING" && st.StateEvent != "CONNECTED" {
			t.Errorf("restart showed state %s (%s: %s)", st.StateEvent, st.Error, st.Message)
		}
	}
	waitGoroutines(t, "BridgeStateQueue).loop", 1)
}

// waitGoroutines waits (bounded) until exactly want goroutines have fn on their stack.
func waitGoroutines(t *testing.T, fn string, want int) {
	t.Helper()
	var got int
	for range 100 {
		var b strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
		got = 0
		for _, g := range strings.Split(b.String(), "\n\n") {
			if strings.Contains(g, fn) {
				got++
			}
		}
		if got == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%d goroutines in %s, want %d", got, fn, want)
}
