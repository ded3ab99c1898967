package matrix

import (
	"context"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
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

// inviteIsDirect reports whether the invite of the client's user to room, read from the room's
// timeline, was marked is_direct.
func inviteIsDirect(ctx context.Context, t *testing.T, cli *mautrix.Client, room id.RoomID) bool {
	t.Helper()
	resp, err := cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatalf("failed to read %s: %v", room, err)
	}
	for _, evt := range resp.Chunk {
		if evt.Type == event.StateMember && evt.GetStateKey() == cli.UserID.String() {
			_ = evt.Content.ParseRaw(evt.Type)
			if m := evt.Content.AsMember(); m.Membership == event.MembershipInvite {
				return m.IsDirect
			}
		}
	}
	t.Fatalf("no invite of %s in the timeline of %s", cli.UserID, room)
	return false
}

// joinStatus returns the status the bridge sent for the client's user's own join of room (""
// for none).
func joinStatus(ctx context.Context, t *testing.T, cli *mautrix.Client, room id.RoomID) event.MessageStatus {
	t.Helper()
	resp, err := cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatalf("failed to read %s: %v", room, err)
	}
	var join id.EventID
	for _, evt := range resp.Chunk {
		if evt.Type == event.StateMember && evt.Sender == cli.UserID && evt.GetStateKey() == cli.UserID.String() {
			_ = evt.Content.ParseRaw(evt.Type)
			if evt.Content.AsMember().Membership == event.MembershipJoin {
				join = evt.ID
			}
		}
	}
	if join == "" {
		t.Fatalf("no join of %s in its timeline", room)
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
	startBridge := func() *e2eBridge {
		t.Helper()
		core := newTestCore(t, ctx, srv, db, key, log)
		fe, err := New(core, hs.BridgeConfig(reg), cfg, db, log)
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
	user := &dendrite.User{T: t, Cli: cli}
	botMXID := id.NewUserID(reg.SenderLocalpart, hs.ServerName)

	// DM the bridge bot: the room becomes the management room. Log in there.
	created, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{botMXID}, IsDirect: true, Preset: "trusted_private_chat"})
	must(t, err)
	mgmt := created.RoomID
	user.WaitMessage(ctx, mgmt, botMXID, "", e2eWait) // the bot's welcome or join notice is optional; wait for its join instead
	_, err = cli.SendText(ctx, mgmt, "login password")
	must(t, err)
	user.WaitMessage(ctx, mgmt, botMXID, "E-mail address", e2eWait)
	_, err = cli.SendText(ctx, mgmt, alice)
	must(t, err)
	user.WaitMessage(ctx, mgmt, botMXID, "Password", e2eWait)
	pwEvt, err := cli.SendText(ctx, mgmt, alicePW)
	must(t, err)
	user.WaitMessage(ctx, mgmt, botMXID, "Logged in to MSN as "+alice, e2eWait)
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
	portal := user.JoinInvite(ctx, map[id.RoomID]bool{mgmt: true}, e2eWait)
	user.WaitMessage(ctx, portal, bobGhost, "hello from msn", e2eWait)
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
	if !inviteIsDirect(ctx, t, cli, portal) {
		t.Error("the invite to the DM portal was not marked is_direct")
	}
	if st := joinStatus(ctx, t, cli, portal); st != "" && st != event.MessageStatusSuccess {
		t.Errorf("the user's join of the DM portal got status %s", st)
	}

	// A message to an offline contact fails visibly.
	_, err = cli.SendText(ctx, mgmt, "start-chat "+carol)
	must(t, err)
	carolRoom := user.JoinInvite(ctx, map[id.RoomID]bool{mgmt: true, portal: true}, e2eWait)
	_, err = cli.SendText(ctx, carolRoom, "are you there?")
	must(t, err)
	user.WaitMessage(ctx, carolRoom, botMXID, "offline", e2eWait)

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

	user.WaitMessage(ctx, mgmt, botMXID, "Personal message set", e2eWait)

	// Restart core and frontend on the same database: the session comes back and messages
	// flow in the same portal. While the appservice is down, a transaction Dendrite tries to
	// deliver puts it into back-off (up to 64 s), so Matrix → bridge waits allow for that.
	b.stop()
	b = startBridge()
	waitServer(t, func() bool { return srv.LoggedIn(alice) })
	must(t, srv.BotSay(bob, alice, "still there?"))
	user.WaitMessage(ctx, portal, bobGhost, "still there?", e2eWait)
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
	evt := user.WaitMessage(ctx, portal, bobGhost, "look <b>here</b>", e2eWait)
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
