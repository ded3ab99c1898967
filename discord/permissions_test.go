package discord

import (
	"errors"
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
