package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/internal/testenv/dendrite"
	"github.com/msn-bridge/msn-bridge/matrix"
)

// TestDoublePuppetDendrite mirrors one MSN account into Discord and into Matrix on a real
// Dendrite with double puppeting configured as in any mautrix bridge (a second appservice
// registration whose as_token is in double_puppet.secrets). What the owner writes in the
// contact's Discord channel reaches MSN once and appears in the Matrix portal as the owner's
// own Matrix user, once; the homeserver's echo of it is not sent to MSN again; and the owner's
// own MSN handle never gets a ghost on Matrix, not even when they change their name and status;
// and a forged MSN message claiming the owner's handle is never sent as the owner's Matrix user.
// Without double puppeting configured, the owner's Discord messages are sent by the ghost of
// their own MSN handle (named and joined like a contact's), still once each way.
func TestDoublePuppetDendrite(t *testing.T) {
	t.Run("configured", func(t *testing.T) { testDoublePuppet(t, true) })
	t.Run("not configured", func(t *testing.T) { testDoublePuppet(t, false) })
}

func testDoublePuppet(t *testing.T, configured bool) {
	hs := dendrite.New(t, dendrite.Options{})
	reg := dendrite.NewRegistration(dendrite.RegistrationOptions{URL: hs.ASURL})
	dp := dendrite.NewRegistration(dendrite.RegistrationOptions{
		ID: "doublepuppet", SenderLocalpart: "doublepuppet", NonExclusiveUsers: []string{`^@.*:localhost$`},
	})
	hs.Start(t, dendrite.RegistrationYAML(t, reg), dendrite.RegistrationYAML(t, dp))

	m := newMirrorWith(t, func(core *bridge.Core, db *dbutil.Database, log zerolog.Logger) (*matrix.Frontend, error) {
		bcfg := hs.BridgeConfig(reg)
		if configured {
			bcfg.DoublePuppet.Secrets = map[string]string{hs.ServerName: "as_token:" + dp.AppToken}
		}
		cfg := matrix.DefaultConfig()
		cfg.IgnoreUnsupportedServer = true
		return matrix.New(core, bcfg, cfg, db, log)
	})
	ctx := m.ctx
	cli, err := hs.RegisterUser(ctx, "alice", "alice-matrix-password")
	must(t, err)
	user := &dendrite.User{T: t, Cli: cli}
	aliceMXID := cli.UserID
	aliceGhost := id.NewUserID("msn_"+id.EncodeUserLocalpart(alice), hs.ServerName)
	wantSender := aliceGhost
	if configured {
		wantSender = aliceMXID
	}

	// Signed in on Discord, then linked into Matrix with a code.
	if ans := m.loginModal(alice, alicePW); !strings.Contains(ans, "Signed in") {
		t.Fatalf("Discord login answered %q", ans)
	}
	waitFor(t, "alice online on MSN", func() bool { return m.ms.Online(alice) })
	code := linkCodeRE.FindString(m.slash("link-code", nil))
	if code == "" {
		t.Fatal("no link code")
	}
	mxUser, err := m.mx.Bridge().GetUserByMXID(ctx, aliceMXID)
	must(t, err)
	proc, err := m.mx.Connector().CreateLogin(ctx, mxUser, matrix.LoginFlowLinkCode)
	must(t, err)
	_, err = proc.Start(ctx)
	must(t, err)
	step, err := proc.(bridgev2.LoginProcessUserInput).SubmitUserInput(ctx, map[string]string{"code": code})
	must(t, err)
	if step.Type != bridgev2.LoginStepTypeComplete {
		t.Fatalf("link-code login ended with %+v", step)
	}
	acc := m.core.Account(alice)
	waitFor(t, "both frontends attached", func() bool { return len(acc.Attached()) == 2 })

	// bob writes first: the DM portal opens with alice in it.
	bobGhost := id.NewUserID("msn_"+id.EncodeUserLocalpart(bob), hs.ServerName)
	must(t, m.ms.BotSay(bob, alice, "hello double puppet"))
	room := portalRoom(ctx, t, user, bobGhost)
	user.WaitMessage(ctx, room, bobGhost, "hello double puppet", waitTimeout)
	var bobCh string
	waitFor(t, "bob's Discord channel", func() bool {
		if c := m.dc.ChannelByName("bob-at-example-com"); c != nil {
			bobCh = c.ID
		}
		return bobCh != ""
	})
	m.discordMessage(bobCh, "bob's message", "hello double puppet")

	// The owner writes on Discord: bob gets it, and Matrix shows it as alice herself (or, without
	// double puppeting, as the ghost of her MSN handle).
	m.dc.InjectUserMessage(bobCh, m.dc.OwnerID(), "from discord")
	waitFor(t, "bob receiving the Discord message", func() bool { return m.bob.count("from discord") > 0 })
	evt := user.WaitMessage(ctx, room, "", "from discord", waitTimeout)
	if evt.Sender != wantSender {
		t.Errorf("the Discord message in Matrix was sent by %s, want %s", evt.Sender, wantSender)
	}
	if src := evt.Content.Raw[appservice.DoublePuppetKey]; configured && src != matrix.DoublePuppetValue {
		t.Errorf("the double-puppeted event's %s is %v, want %q", appservice.DoublePuppetKey, src, matrix.DoublePuppetValue)
	}

	// The owner changes name and status on Discord: MSN has them, no ghost is needed.
	if ans := m.slash("name", map[string]string{"name": "Alice on Discord"}); !strings.Contains(ans, "Display name set") {
		t.Fatalf("/msn name answered %q", ans)
	}
	if ans := m.slash("status", map[string]string{"state": "away", "psm": "out"}); ans == "" {
		t.Fatal("/msn status gave no answer")
	}
	waitFor(t, "alice's name and PSM on MSN", func() bool { return m.ms.FriendlyName(alice) == "Alice on Discord" && m.ms.PSM(alice) == "out" })

	// A message from Matrix afterwards: the homeserver delivers the echo of the Discord message
	// to the bridge before it, so a re-sent echo would have reached bob by then.
	_, err = cli.SendText(ctx, room, "from matrix")
	must(t, err)
	waitFor(t, "bob receiving the Matrix message", func() bool { return m.bob.count("from matrix") > 0 })
	m.discordMessage(bobCh, "the Matrix message", "from matrix")
	if n := m.bob.count("from discord"); n != 1 {
		t.Errorf("bob received the Discord message %d times, want once", n)
	}
	if n := countMessages(ctx, t, cli, room, "from discord"); n != 1 {
		t.Errorf("the Matrix portal shows the Discord message %d times, want once", n)
	}

	members, err := cli.JoinedMembers(ctx, room)
	must(t, err)
	if _, ok := members.Joined[aliceMXID]; !ok {
		t.Errorf("the owner is not in the portal: %v", members.Joined)
	}
	_, ghostJoined := members.Joined[aliceGhost]
	ghost, err := m.mx.Bridge().DB.Ghost.GetByID(ctx, networkid.UserID(alice))
	must(t, err)
	ghostNamed := ghost != nil && (ghost.Name != "" || ghost.NameSet)
	if !configured {
		if !ghostJoined || !ghostNamed {
			t.Errorf("without double puppeting, the ghost of the owner's handle: joined %v, row %+v", ghostJoined, ghost)
		}
		return
	}
	// No ghost of the owner's own handle: bridgev2 keeps a row for the sender of the owner's
	// messages, but never named (nor with it registered) a ghost for it, and none is in the room.
	if ghostNamed {
		t.Errorf("the owner's handle has a named ghost: %+v", ghost)
	}
	if ghostJoined {
		t.Errorf("the ghost of the owner's handle is in the portal: %v", members.Joined)
	}

	// A forged MSN message that claims the account's own handle (only a hostile server can send
	// one: MSNP11 has one session per account) is not shown as the owner's Matrix user.
	payload := "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nforged as alice"
	if n := m.ms.InjectSwitchboard(alice, []byte(fmt.Sprintf("MSG %s Alice %d\r\n%s", alice, len(payload), payload))); n == 0 {
		t.Fatal("alice has no switchboard to forge a message on")
	}
	if evt := user.WaitMessage(ctx, room, "", "forged as alice", waitTimeout); evt.Sender == aliceMXID {
		t.Errorf("a forged MSN message from the account's own handle was sent as the owner's Matrix user")
	}
}

// portalRoom returns the Matrix room alice shares with ghost (her DM portal with that contact),
// joining the rooms she is only invited to on the way.
func portalRoom(ctx context.Context, t *testing.T, user *dendrite.User, ghost id.UserID) id.RoomID {
	t.Helper()
	for deadline := time.Now().Add(waitTimeout); ; time.Sleep(100 * time.Millisecond) {
		resp, err := user.Cli.SyncRequest(ctx, 0, "", "", false, "")
		if err == nil {
			for room := range resp.Rooms.Invite {
				_, _ = user.Cli.JoinRoomByID(ctx, room)
			}
			for room := range resp.Rooms.Join {
				if members, err := user.Cli.JoinedMembers(ctx, room); err == nil {
					if _, ok := members.Joined[ghost]; ok {
						return room
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no room with %s (last error %v)", ghost, err)
		}
	}
}

// countMessages counts the messages in room's last 100 events whose body is text.
func countMessages(ctx context.Context, t *testing.T, cli *mautrix.Client, room id.RoomID, text string) int {
	t.Helper()
	resp, err := cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
	must(t, err)
	n := 0
	for _, evt := range resp.Chunk {
		if evt.Type != event.EventMessage {
			continue
		}
		_ = evt.Content.ParseRaw(evt.Type)
		if evt.Content.AsMessage().Body == text {
			n++
		}
	}
	return n
}
