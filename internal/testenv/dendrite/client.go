package dendrite

import (
	"context"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// pollInterval is how often User polls the homeserver while it waits.
const pollInterval = 100 * time.Millisecond

// BridgeConfig returns bridgev2's sections for a bridge that this homeserver reaches as the
// appservice reg (with reg.URL = hs.ASURL): ghosts named msn_<handle>, the "!msn" command
// prefix, every local user allowed to use the bridge, message status events and error notices
// on. Each call returns a new value, so a restarted bridge gets one of its own.
func (hs *Homeserver) BridgeConfig(reg *appservice.Registration) *bridgeconfig.Config {
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

// User is a Matrix user in a test, driven through the real homeserver: it waits for what a
// bridge sends it. It is not safe for concurrent use.
type User struct {
	T   testing.TB
	Cli *mautrix.Client
	// Since, when set, makes WaitMessage skip events sent before it, so an earlier message
	// with the same text does not count. The homeserver runs on this machine, on its clock.
	Since time.Time
	// Seen, when set, is given the body of every message WaitMessage reads.
	Seen func(body string)
}

// WaitMessage polls room's timeline (its last 100 events) until a message from sender (anyone
// when "") contains text, and returns it. It fails the test after timeout.
func (u *User) WaitMessage(ctx context.Context, room id.RoomID, sender id.UserID, text string, timeout time.Duration) *event.Event {
	u.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := u.Cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
		if err == nil {
			for _, evt := range resp.Chunk {
				if evt.Type != event.EventMessage || (sender != "" && evt.Sender != sender) || evt.Timestamp < u.Since.UnixMilli() {
					continue
				}
				_ = evt.Content.ParseRaw(evt.Type)
				msg := evt.Content.AsMessage()
				if u.Seen != nil {
					u.Seen(msg.Body)
				}
				if strings.Contains(msg.Body, text) {
					return evt
				}
			}
		}
		if time.Now().After(deadline) {
			u.T.Fatalf("no message containing %q from %q in %s (last error %v)", text, sender, room, err)
		}
		time.Sleep(pollInterval)
	}
}

// JoinInvite joins the first room the user is invited to that is not in skip, and returns it.
// It fails the test after timeout.
func (u *User) JoinInvite(ctx context.Context, skip map[id.RoomID]bool, timeout time.Duration) id.RoomID {
	u.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := u.Cli.SyncRequest(ctx, 0, "", "", false, "")
		if err == nil {
			for roomID := range resp.Rooms.Invite {
				if skip[roomID] {
					continue
				}
				if _, err = u.Cli.JoinRoomByID(ctx, roomID); err != nil {
					u.T.Fatalf("failed to join %s: %v", roomID, err)
				}
				return roomID
			}
		}
		if time.Now().After(deadline) {
			u.T.Fatalf("no invite arrived (last error %v)", err)
		}
		time.Sleep(pollInterval)
	}
}
