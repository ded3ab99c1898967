package matrix

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// TestLoginUnverifiableCertificate: a Passport server whose certificate the bridge cannot verify
// is named as such, with the option that fixes it, not taken for a refused password.
func TestLoginUnverifiableCertificate(t *testing.T) {
	e := newGlueEnv(t, nil)
	core, err := bridge.NewCore(bridge.Config{
		MSN: msn.Config{Server: e.srv.NSAddr(), LoginURL: e.srv.HTTPSLoginURL(), RequestTimeout: 5 * time.Second},
	}, bridge.Options{Store: e.core.Store(), Log: e.log})
	must(t, err)
	ctx, cancel := context.WithTimeout(e.ctx, testWait)
	defer cancel()
	_, err = core.Login(ctx, bridge.FrontendUser{Frontend: FrontendName, UserID: string(aliceMX)}, alice, alicePW)
	if err == nil {
		t.Fatal("login through an unverifiable certificate succeeded")
	}
	msg := loginErrorMessage(err).Error()
	if !strings.Contains(msg, "cannot verify the MSN login server's certificate") || !strings.Contains(msg, "msn.ca_file") {
		t.Fatalf("login error %q, want it to say the certificate cannot be verified and name msn.ca_file", msg)
	}
	t.Logf("login error: %s", msg)
	if strings.Contains(msg, "password") {
		t.Fatalf("login error %q blames the password", msg)
	}
}

// requestNotices returns the bot's notices in the management room that announce a request
// from handle.
func (e *glueEnv) requestNotices(handle string) []string {
	e.t.Helper()
	room, err := e.user().GetManagementRoom(e.ctx)
	must(e.t, err)
	var out []string
	for _, n := range e.botNotices(room, 0) {
		if strings.Contains(n.Body, handle) && strings.Contains(n.Body, "added you") {
			out = append(out, n.Body)
		}
	}
	return out
}

// TestContactRequestsTrue: a request is a contact on the reverse list that is on neither the
// allow nor the block list. It is shown once, at the first login too; a pending flag the
// server kept for a contact already allowed is no request; accepting or declining clears the
// flag on the server, so neither comes back after a restart.
func TestContactRequestsTrue(t *testing.T) {
	e := newGlueEnv(t, nil)
	const frank, erin = "frank@example.com", "erin@example.com"
	must(t, e.srv.AddAccount(frank, "x", "Frank"))
	must(t, e.srv.AddAccount(erin, "x", "Erin"))
	must(t, e.srv.AddContact(dave, alice, msntest.FL))  // a request
	must(t, e.srv.AddContact(frank, alice, msntest.FL)) // a request
	must(t, e.srv.AddContact(erin, alice, msntest.FL))
	must(t, e.srv.AddContact(alice, erin, msntest.AL)) // allowed elsewhere, still flagged pending
	if e.srv.Lists(alice, erin)&msntest.PL == 0 {
		t.Fatal("setup: erin is not flagged pending")
	}

	e.mustLogin()
	waitServer(t, func() bool { return len(e.requestNotices(dave)) > 0 && len(e.requestNotices(frank)) > 0 })
	if n := e.requestNotices(erin); len(n) > 0 {
		t.Fatalf("erin, already allowed, shown as a request: %q", n)
	}
	if reply := e.command("", "requests"); strings.Contains(reply, erin) || !strings.Contains(reply, dave) {
		t.Fatalf("requests lists %q, want dave and not erin", reply)
	}
	waitServer(t, func() bool { return e.srv.Lists(alice, erin)&msntest.PL == 0 })

	if reply := e.command("", "accept "+dave); !strings.Contains(reply, "Accepted") {
		t.Fatalf("accept: %q", reply)
	}
	if reply := e.command("", "decline "+frank); !strings.Contains(reply, "Declined") {
		t.Fatalf("decline: %q", reply)
	}
	if l := e.srv.Lists(alice, dave); l&msntest.PL != 0 || l&msntest.AL == 0 {
		t.Fatalf("dave after accept: lists %b, want AL and no PL", l)
	}
	if l := e.srv.Lists(alice, frank); l&msntest.PL != 0 {
		t.Fatalf("frank after decline: lists %b, want no PL", l)
	}
	for _, h := range []string{dave, frank} {
		if n := e.requestNotices(h); len(n) != 1 {
			t.Fatalf("%s shown %d times before the restart: %q", h, len(n), n)
		}
	}

	// A restart shows neither again (a reconnect: TestIntegrationContactRequestsOnce).
	e.stop()
	waitServer(t, func() bool { return !e.srv.LoggedIn(alice) })
	e.start()
	e.waitState("CONNECTED")
	if reply := e.command("", "requests"); !strings.Contains(reply, "No pending contact requests") {
		t.Fatalf("requests after the restart: %q", reply)
	}
	for _, h := range []string{dave, frank, erin} {
		if n := e.requestNotices(h); len(n) > 0 {
			t.Fatalf("%s shown again after the restart: %q", h, n)
		}
	}
}

// TestGroupChatUsesSwitchboardNames: a participant of a group chat who is no contact of the
// account is named by the friendly name the switchboard gave, in the room name and on the
// ghost, not by the handle.
func TestGroupChatUsesSwitchboardNames(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	if !e.fm.WaitFor(e.ctx, func() bool { return e.fm.Name(ghostMXID(bob)) != "" }) {
		t.Fatal("bob's ghost never named")
	}
	const frank = "frank@example.com"
	c := e.clientOf()
	acc := e.core.Account(alice)
	chat := bridge.GroupChat("sb7")
	must(t, c.handleEvent(e.ctx, acc, bridge.ChatMembership{Chat: chat, Handle: frank, Joined: true,
		Members: []string{bob, frank}, Names: map[string]string{bob: "Bobby", frank: "Frankie"}}))
	must(t, c.handleEvent(e.ctx, acc, bridge.Message{ID: "msn:frank@example.com:1:1", Chat: chat, Sender: frank, Text: "hi all", Time: time.Now()}))
	var portal *database.Portal
	waitServer(t, func() bool {
		p, err := e.fe.Bridge().DB.Portal.GetByKey(e.ctx, makePortalKey(makeUserLoginID(alice), chat))
		must(t, err)
		portal = p
		return p != nil && p.MXID != ""
	})
	e.waitMessage(portal.MXID, ghostMXID(frank), "hi all")
	if strings.Contains(portal.Name, frank) || !strings.Contains(portal.Name, "Frankie") || !strings.Contains(portal.Name, "Bobby") {
		t.Fatalf("room name %q, want the switchboard's names", portal.Name)
	}
	if name := e.fm.Name(ghostMXID(frank)); name != "Frankie (MSN)" {
		t.Fatalf("frank's ghost is named %q, want %q", name, "Frankie (MSN)")
	}
}

// TestReplyCarriesQuote: MSN has no replies, so a Matrix reply reaches the contact with the
// line it answers quoted first, as a Discord reply does (bridge.ReplyQuote).
func TestReplyCarriesQuote(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	must(t, e.srv.BotSay(bob, alice, "lunch at noon?\nor later"))
	portal := e.portal(bob)
	orig := e.waitMessage(portal.MXID, ghostMXID(bob), "lunch at noon?")
	reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "noon is fine",
		RelatesTo: (&event.RelatesTo{}).SetReplyTo(orig.ID)}
	evtID := e.sendMatrix(portal.MXID, reply)
	want := bridge.ReplyQuote("Bobby", "lunch at noon?\nor later") + "noon is fine"
	if want != "> Bobby: lunch at noon? or later\nnoon is fine" {
		t.Fatalf("ReplyQuote renders %q", want)
	}
	e.bob.waitText(t, strings.ReplaceAll(want, "\n", "\r\n")) // MSN's line breaks
	if st := e.waitStatus(evtID); st.Status != event.MessageStatusSuccess {
		t.Fatalf("reply status %+v, want success", st)
	}
}

// TestServerNoticeShown: a maintenance announcement of the MSN server reaches the owner in the
// management room, not only the log.
func TestServerNoticeShown(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	room, err := e.user().GetManagementRoom(e.ctx)
	must(t, err)
	payload := "MIME-Version: 1.0\r\nContent-Type: application/x-msmsgssystemmessage\r\n\r\nType: 1\r\nArg1: 5\r\n"
	must(t, e.srv.InjectLine(alice, []byte(fmt.Sprintf("MSG Hotmail Hotmail %d\r\n%s", len(payload), payload))))
	e.waitMessage(room, e.fm.BotIntent().GetMXID(), "announced maintenance: it will go down in 5 minutes")
}

// TestFirstChatObvious: after login the user is told how to talk to a contact; contacts links
// each contact's ghost with the exact command; chat opens the DM portal of a contact found by
// friendly name, case-insensitively, and says where it is.
func TestFirstChatObvious(t *testing.T) {
	e := newGlueEnv(t, nil)
	step, err := e.login(alicePW)
	must(t, err)
	e.waitState("CONNECTED")
	bobGhost := string(ghostMXID(bob))
	for _, want := range []string{"`chat <name or e-mail>`", "`chat " + bob + "`", bobGhost, "`contacts`"} {
		if !strings.Contains(step.Instructions, want) {
			t.Errorf("login success message %q does not say %q", step.Instructions, want)
		}
	}

	reply := e.command("", "contacts")
	for _, want := range []string{"https://matrix.to/#/" + bobGhost, "`chat " + bob + "`", "`chat <name or email>`"} {
		if !strings.Contains(reply, want) {
			t.Errorf("contacts reply %q does not contain %q", reply, want)
		}
	}

	reply = e.command("", "chat bobby")
	if !strings.Contains(reply, "Opened a chat with Bobby ("+bob+")") {
		t.Fatalf("chat bobby: %q", reply)
	}
	portal := e.portal(bob)
	if !strings.Contains(reply, portal.MXID.URI().MatrixToURL()) {
		t.Errorf("chat reply %q does not link the room %s", reply, portal.MXID)
	}
	if m := e.fm.Membership(portal.MXID, aliceMX); m != event.MembershipInvite && m != event.MembershipJoin {
		t.Errorf("alice's membership in the new DM is %q, want an invite", m)
	}
	if reply = e.command("", "chat BOB@example.com"); !strings.Contains(reply, "You already have a chat with Bobby") {
		t.Errorf("chat again: %q", reply)
	}
	if reply = e.command("", "chat nobody here"); !strings.Contains(reply, "No contact matches") {
		t.Errorf("chat with no match: %q", reply)
	}
}

// TestDMInviteAndOwnJoin: the owner's invite to a new DM portal is marked is_direct, and the
// owner's join of it is accepted, with no failure status.
func TestDMInviteAndOwnJoin(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	must(t, e.srv.BotSay(bob, alice, "hello"))
	portal := e.portal(bob)
	var invite *event.Content
	for _, ev := range e.fm.Events(portal.MXID) {
		if ev.Type == event.StateMember && ev.StateKey == string(aliceMX) {
			if m, ok := ev.Content.Parsed.(*event.MemberEventContent); ok && m.Membership == event.MembershipInvite {
				invite = ev.Content
			}
		}
	}
	if invite == nil {
		t.Fatal("alice was never invited to the DM")
	}
	data, err := json.Marshal(invite)
	must(t, err)
	var fields map[string]any
	must(t, json.Unmarshal(data, &fields))
	if fields["is_direct"] != true {
		t.Fatalf("alice's invite to the DM is %s, want is_direct true", data)
	}

	joinID := id.EventID(fmt.Sprintf("$join%d", e.fm.NextID()))
	stateKey := string(aliceMX)
	e.fe.Bridge().QueueMatrixEvent(e.ctx, &event.Event{
		Type: event.StateMember, RoomID: portal.MXID, Sender: aliceMX, ID: joinID, StateKey: &stateKey,
		Timestamp: time.Now().UnixMilli(),
		Content:   event.Content{Parsed: &event.MemberEventContent{Membership: event.MembershipJoin}},
	})
	// A message after the join is handled after it (one portal, in order): once its status is
	// in, the join's would be too.
	msgID := e.sendMatrix(portal.MXID, &event.MessageEventContent{MsgType: event.MsgText, Body: "joined"})
	e.waitStatus(msgID)
	for _, s := range e.fm.Statuses() {
		if s.Info != nil && s.Info.SourceEventID == joinID && s.Status.Status != event.MessageStatusSuccess {
			t.Fatalf("the owner's join got status %s (%v)", s.Status.Status, s.Status.InternalError)
		}
	}
}

// TestREADMEGhostIDs: the README names contacts' ghosts as the bridge makes them, the handle
// escaped as Matrix user IDs require (@ becomes =40).
func TestREADMEGhostIDs(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "README.md"))
	must(t, err)
	e := newGlueEnv(t, nil)
	ghost := e.fm.FormatGhostMXID(makeUserID("bob@example.com"))
	example := strings.TrimSuffix(string(ghost), ":test") + ":your.server"
	if !strings.Contains(string(data), "`"+example+"`") {
		t.Fatalf("README does not name bob@example.com's ghost as the bridge does, %s", example)
	}
}
