package matrix

import (
	"context"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/internal/testenv/dendrite"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

const (
	e2eWait = 30 * time.Second
	// dendriteBackoffWait covers Dendrite's appservice back-off cap (64 s) after a restart.
	dendriteBackoffWait = 90 * time.Second
)

// e2eBridge is one core + Matrix frontend generation on a shared database.
type e2eBridge struct {
	core *bridge.Core
	fe   *Frontend
}

func (b *e2eBridge) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.fe.Stop(ctx)
	_ = b.core.Stop(ctx)
}

// e2eUser is a Matrix user driven through the real homeserver.
type e2eUser struct {
	t   *testing.T
	cli *mautrix.Client
	// direct records, for each room joined by joinInvite, whether its invite was marked
	// is_direct.
	direct map[id.RoomID]bool
}

// waitMessage polls the room's timeline until a message from sender (any when "") contains
// text, and returns it.
func (u *e2eUser) waitMessage(ctx context.Context, room id.RoomID, sender id.UserID, text string) *event.Event {
	u.t.Helper()
	deadline := time.Now().Add(e2eWait)
	for {
		resp, err := u.cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
		if err == nil {
			for _, evt := range resp.Chunk {
				if evt.Type != event.EventMessage || (sender != "" && evt.Sender != sender) {
					continue
				}
				_ = evt.Content.ParseRaw(evt.Type)
				if msg := evt.Content.AsMessage(); strings.Contains(msg.Body, text) {
					return evt
				}
			}
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("no message containing %q from %q in %s (last error %v)", text, sender, room, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitInvite joins the first room the user is invited to that satisfies match.
func (u *e2eUser) joinInvite(ctx context.Context, skip map[id.RoomID]bool) id.RoomID {
	u.t.Helper()
	deadline := time.Now().Add(e2eWait)
	for {
		resp, err := u.cli.SyncRequest(ctx, 0, "", "", false, "")
		if err == nil {
			for roomID := range resp.Rooms.Invite {
				if skip[roomID] {
					continue
				}
				if u.direct == nil {
					u.direct = map[id.RoomID]bool{}
				}
				for _, evt := range resp.Rooms.Invite[roomID].State.Events {
					if evt.Type == event.StateMember && evt.GetStateKey() == u.cli.UserID.String() {
						_ = evt.Content.ParseRaw(evt.Type)
						u.direct[roomID] = evt.Content.AsMember().IsDirect
					}
				}
				if _, err = u.cli.JoinRoomByID(ctx, roomID); err != nil {
					u.t.Fatalf("failed to join %s: %v", roomID, err)
				}
				return roomID
			}
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("no invite arrived (last error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// joinStatus returns the status the bridge sent for the user's own join of room ("" for none).
func (u *e2eUser) joinStatus(ctx context.Context, room id.RoomID) event.MessageStatus {
	u.t.Helper()
	resp, err := u.cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		u.t.Fatalf("failed to read %s: %v", room, err)
	}
	var join id.EventID
	for _, evt := range resp.Chunk {
		if evt.Type == event.StateMember && evt.Sender == u.cli.UserID && evt.GetStateKey() == u.cli.UserID.String() {
			_ = evt.Content.ParseRaw(evt.Type)
			if evt.Content.AsMember().Membership == event.MembershipJoin {
				join = evt.ID
			}
		}
	}
	if join == "" {
		u.t.Fatalf("no join of %s in its timeline", room)
	}
	var st event.MessageStatus
	for _, evt := range resp.Chunk {
		if evt.Type != event.BeeperMessageStatus {
			continue
		}
		_ = evt.Content.ParseRaw(evt.Type)
		if c, ok := evt.Content.Parsed.(*event.BeeperMessageStatusEventContent); ok && c.RelatesTo.EventID == join {
			st = c.Status
		}
	}
	return st
}

func TestEndToEndDendrite(t *testing.T) {
	hs := dendrite.New(t, dendrite.Options{})
	reg := dendrite.NewRegistration(dendrite.RegistrationOptions{URL: hs.ASURL})
	hs.Start(t, dendrite.RegistrationYAML(t, reg))

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)

	srv := msntest.New(msntest.Options{})
	must(t, srv.Start())
	t.Cleanup(srv.Close)
	inbox := &botInbox{ch: make(chan struct{})}
	must(t, srv.AddAccount(alice, alicePW, "Alice"))
	must(t, srv.AddBot(bob, "x", "Bobby", inbox.fn))
	must(t, srv.AddAccount(carol, "x", "Carol"))
	must(t, srv.AddFriends(alice, bob))
	must(t, srv.AddFriends(alice, carol))
	must(t, srv.SetPresence(bob, "AWY", "bot things"))

	db := pgtest.Open(t, pgtest.SQLiteDriver, pgtest.SQLiteDSN(t))
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := DefaultConfig()
	cfg.IgnoreUnsupportedServer = true
	bcfg := func() *bridgeconfig.Config {
		return &bridgeconfig.Config{
			Homeserver: bridgeconfig.HomeserverConfig{Address: hs.URL, Domain: hs.ServerName, Software: bridgeconfig.SoftwareStandard},
			AppService: bridgeconfig.AppserviceConfig{
				Address: hs.ASURL, Hostname: "127.0.0.1", Port: uint16(hs.ASPort), ID: reg.ID,
				Bot:     bridgeconfig.BotUserConfig{Username: reg.SenderLocalpart, Displayname: "MSN bridge"},
				ASToken: reg.AppToken, HSToken: reg.ServerToken, EphemeralEvents: true,
				UsernameTemplate: "msn_{{.}}",
			},
			Bridge: bridgeconfig.BridgeConfig{
				CommandPrefix: "!msn", BridgeStatusNotices: "errors",
				Permissions: bridgeconfig.PermissionConfig{hs.ServerName: &bridgeconfig.PermissionLevelUser},
			},
			Matrix: bridgeconfig.MatrixConfig{MessageStatusEvents: true, MessageErrorNotices: true},
		}
	}
	startBridge := func() *e2eBridge {
		t.Helper()
		core := newTestCore(t, ctx, srv, db, key, log)
		fe, err := New(core, bcfg(), cfg, db, log)
		must(t, err)
		must(t, fe.Start(ctx))
		must(t, core.Start(ctx))
		return &e2eBridge{core: core, fe: fe}
	}

	// The bridge listens on the appservice URL before anything produces events for it.
	b := startBridge()
	defer func() { b.stop() }()

	cli, err := hs.RegisterUser(ctx, "alice", "alice-matrix-password")
	must(t, err)
	user := &e2eUser{t: t, cli: cli}
	botMXID := id.NewUserID(reg.SenderLocalpart, hs.ServerName)

	// DM the bridge bot: the room becomes the management room. Log in there.
	created, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{botMXID}, IsDirect: true, Preset: "trusted_private_chat"})
	must(t, err)
	mgmt := created.RoomID
	user.waitMessage(ctx, mgmt, botMXID, "") // the bot's welcome or join notice is optional; wait for its join instead
	_, err = cli.SendText(ctx, mgmt, "login password")
	must(t, err)
	user.waitMessage(ctx, mgmt, botMXID, "E-mail address")
	_, err = cli.SendText(ctx, mgmt, alice)
	must(t, err)
	user.waitMessage(ctx, mgmt, botMXID, "Password")
	pwEvt, err := cli.SendText(ctx, mgmt, alicePW)
	must(t, err)
	user.waitMessage(ctx, mgmt, botMXID, "Logged in to MSN as "+alice)
	// The password message was redacted by the bridge.
	redacted := false
	for deadline := time.Now().Add(e2eWait); !redacted && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		evt, err := cli.GetEvent(ctx, mgmt, pwEvt.EventID)
		redacted = err == nil && evt.Unsigned.RedactedBecause != nil
		if err == nil && len(evt.Content.Raw) == 0 {
			redacted = true
		}
	}
	if !redacted {
		t.Error("the password message was not redacted")
	}

	// An MSN message creates a DM portal from the contact's ghost.
	bobGhost := id.NewUserID("msn_"+id.EncodeUserLocalpart(bob), hs.ServerName)
	must(t, srv.BotSay(bob, alice, "hello from msn"))
	portal := user.joinInvite(ctx, map[id.RoomID]bool{mgmt: true})
	user.waitMessage(ctx, portal, bobGhost, "hello from msn")
	if dn, err := cli.GetDisplayName(ctx, bobGhost); err != nil || dn.DisplayName != "Bobby (MSN)" {
		t.Errorf("ghost display name %+v %v, want Bobby (MSN)", dn, err)
	}

	// Presence and PSM show on the ghost.
	waitPresence := func(p event.Presence, msg string) {
		t.Helper()
		var last *mautrix.RespPresence
		for deadline := time.Now().Add(e2eWait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			last, err = cli.GetPresence(ctx, bobGhost)
			if err == nil && last.Presence == p && last.StatusMsg == msg {
				return
			}
		}
		t.Fatalf("ghost presence %+v (%v), want %s %q", last, err, p, msg)
	}
	waitPresence(event.PresenceUnavailable, "Away - bot things")
	must(t, srv.SetPresence(bob, "NLN", "back again"))
	waitPresence(event.PresenceOnline, "Online - back again")

	// The user's reply reaches the contact.
	_, err = cli.SendText(ctx, portal, "hello from matrix")
	must(t, err)
	inbox.waitText(t, "hello from matrix")

	// The DM's invite was marked direct, and the user's join of it got no failure status
	// (the message after it was handled after it).
	if !user.direct[portal] {
		t.Error("the invite to the DM portal was not marked is_direct")
	}
	if st := user.joinStatus(ctx, portal); st != "" && st != event.MessageStatusSuccess {
		t.Errorf("the user's join of the DM portal got status %s", st)
	}

	// A message to an offline contact fails visibly.
	_, err = cli.SendText(ctx, mgmt, "start-chat "+carol)
	must(t, err)
	carolRoom := user.joinInvite(ctx, map[id.RoomID]bool{mgmt: true, portal: true})
	_, err = cli.SendText(ctx, carolRoom, "are you there?")
	must(t, err)
	user.waitMessage(ctx, carolRoom, botMXID, "offline")

	// The PSM command reaches MSN (the server broadcasts it to the contacts with UBX).
	_, err = cli.SendText(ctx, mgmt, "psm on matrix now")
	must(t, err)
	uuxCtx, uuxCancel := context.WithTimeout(ctx, e2eWait)
	defer uuxCancel()
	for srv.PSM(alice) != "on matrix now" {
		if _, err = srv.WaitFor(uuxCtx, alice, "UUX"); err != nil {
			t.Fatalf("psm never reached msn: %v (psm %q)", err, srv.PSM(alice))
		}
	}

	user.waitMessage(ctx, mgmt, botMXID, "Personal message set")

	// Restart core and frontend on the same database: the session comes back and messages
	// flow in the same portal. While the appservice is down, a transaction Dendrite tries to
	// deliver puts it into back-off (up to 64 s), so Matrix → bridge waits allow for that.
	b.stop()
	b = startBridge()
	waitServer(t, func() bool { return srv.LoggedIn(alice) })
	must(t, srv.BotSay(bob, alice, "still there?"))
	user.waitMessage(ctx, portal, bobGhost, "still there?")
	_, err = cli.SendText(ctx, portal, "yes, after a restart")
	must(t, err)
	inbox.waitTextWithin(t, "yes, after a restart", dendriteBackoffWait)

	// A contact's name and messages are text. The ghost's display name is cleaned and capped.
	must(t, srv.SetFriendlyName(bob, hostileName))
	wantName := cleanedName + " (MSN)"
	for deadline := time.Now().Add(e2eWait); ; time.Sleep(100 * time.Millisecond) {
		dn, err := cli.GetDisplayName(ctx, bobGhost)
		if err == nil && dn.DisplayName == wantName {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ghost display name %+v (%v), want %q", dn, err, wantName)
		}
	}
	// A message that pings the room and carries HTML and pills mentions no one, and the
	// homeserver highlights nothing for it. (Homeservers without intentional mentions still
	// highlight a message that contains the user's own name, as they would for anyone.)
	ping := "@room look <b>here</b> https://matrix.to/#/" + string(botMXID) + " " + hostileMarkup
	must(t, srv.BotSay(bob, alice, ping))
	evt := user.waitMessage(ctx, portal, bobGhost, "look <b>here</b>")
	if msg := evt.Content.AsMessage(); msg.Body != ping || msg.FormattedBody != "" ||
		msg.Mentions == nil || len(msg.Mentions.UserIDs) > 0 || msg.Mentions.Room {
		t.Errorf("hostile message arrived as %+v", msg)
	}
	if highlighted(ctx, t, cli, evt.ID) {
		t.Errorf("the homeserver highlighted %s for the user", evt.ID)
	}
}

// highlighted reports whether the user's notification for evtID asks for a highlight. It
// waits for the homeserver to list the notification (a message in a DM notifies).
func highlighted(ctx context.Context, t *testing.T, cli *mautrix.Client, evtID id.EventID) bool {
	t.Helper()
	var resp struct {
		Notifications []struct {
			Actions []any `json:"actions"`
			Event   struct {
				ID id.EventID `json:"event_id"`
			} `json:"event"`
		} `json:"notifications"`
	}
	for deadline := time.Now().Add(e2eWait); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_, err := cli.MakeRequest(ctx, http.MethodGet, cli.BuildClientURL("v3", "notifications"), nil, &resp)
		if err != nil {
			t.Fatalf("failed to get notifications: %v", err)
		}
		for _, n := range resp.Notifications {
			if n.Event.ID != evtID {
				continue
			}
			for _, a := range n.Actions {
				if m, ok := a.(map[string]any); ok && m["set_tweak"] == "highlight" && m["value"] != false {
					return true
				}
			}
			return false
		}
	}
	t.Fatalf("no notification for %s", evtID)
	return false
}
