package discord

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/discord/discordtest"
)

// TestStartRefusesMissingPermissions: a bot role without Manage Webhooks and Pin Messages
// makes Start fail with both named (and nothing else), with the invite URL carrying the full
// permission integer; nothing is created in the guild and Discord sees no refused request.
func TestStartRefusesMissingPermissions(t *testing.T) {
	var startErr error
	h := newHarness(t, harnessOpts{
		startErr: &startErr,
		fake: func(o *discordtest.Options) {
			o.BotPermissions = discordtest.DefaultBotPermissions &^ (discordgo.PermissionManageWebhooks | discordtest.PermissionPinMessages)
		},
	})
	var mp *MissingPermissionsError
	if !errors.As(startErr, &mp) {
		t.Fatalf("Start: %v, want a MissingPermissionsError", startErr)
	}
	if strings.Join(mp.Missing, ", ") != "Manage Webhooks, Pin Messages" {
		t.Errorf("missing %q", mp.Missing)
	}
	if !strings.Contains(startErr.Error(), "permissions=2251802766584912") ||
		!strings.Contains(startErr.Error(), "scope=bot+applications.commands") {
		t.Errorf("error %q lacks the invite URL", startErr)
	}
	if n := len(h.dc.Channels()); n != 2 {
		t.Errorf("%d channels in the guild, want the 2 it started with", n)
	}
	if n := h.dc.InvalidRequests(); n != 0 {
		t.Errorf("%d invalid requests", n)
	}
}

// TestRequiredPermissionsMatchTheFake: the bridge asks for exactly what the fake's default bot
// role has, so every other test runs with the permissions an admin following the README gives.
func TestRequiredPermissionsMatchTheFake(t *testing.T) {
	if RequiredPermissions != discordtest.DefaultBotPermissions {
		t.Errorf("RequiredPermissions %d, fake default %d", RequiredPermissions, discordtest.DefaultBotPermissions)
	}
	if PermissionPinMessages != discordtest.PermissionPinMessages {
		t.Error("Pin Messages differs")
	}
}

// TestRosterFoundWithoutPin: the roster message could not be pinned (Discord refused the pin);
// after a restart the same message is found and edited instead of a new roster being posted.
func TestRosterFoundWithoutPin(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.dc.InjectFault("PUT /channels/{c}/pins/{m}", 1, http.StatusForbidden)
	h.login()
	rosters := func() (out []*discordtest.Message) {
		ch := h.rosterChannel(alice)
		if ch == nil {
			return nil
		}
		for _, m := range h.dc.Messages(ch.ID) {
			if m.Author != nil && m.Author.ID == h.dc.BotID() && strings.HasPrefix(m.Content, "**MSN — ") {
				out = append(out, m)
			}
		}
		return out
	}
	h.waitFor("the roster", func() bool { r := rosters(); return len(r) == 1 && len(r[0].Embeds) > 0 })
	if pins := h.dc.Pins(h.rosterChannel(alice).ID); len(pins) != 0 {
		t.Fatalf("the roster was pinned: %v", pins)
	}
	h.stopBridge()
	h.startBridge()
	h.waitFor("alice back on MSN", func() bool { return h.ms.LoggedIn(alice) })
	if err := h.ms.SetPresence(carol, "BSY", "after the restart"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the roster updated", func() bool {
		for _, m := range rosters() {
			for _, e := range m.Embeds {
				for _, f := range e.Fields {
					if strings.Contains(f.Value, "after the restart") {
						return true
					}
				}
			}
		}
		return false
	})
	if n := len(rosters()); n != 1 {
		t.Errorf("%d roster messages after a restart, want the one found again", n)
	}
}
