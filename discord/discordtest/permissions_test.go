package discordtest

import (
	"errors"
	"net/http"
	"strconv"
	"testing"

	"github.com/bwmarrin/discordgo"
)

// restStatus returns the HTTP status and Discord code of a failed request (0, 0 for nil).
func restStatus(err error) (int, int) {
	var re *discordgo.RESTError
	if !errors.As(err, &re) || re.Response == nil {
		return 0, 0
	}
	code := 0
	if re.Message != nil {
		code = re.Message.Code
	}
	return re.Response.StatusCode, code
}

// TestBotPermissionsEnforced: a bot role without Manage Webhooks gets 403 50013 for granting
// Manage Webhooks in an overwrite and for creating a webhook; without Pin Messages, for
// pinning; without Manage Roles, for rewriting overwrites; a channel that denies the bot View
// Channel answers 50001; the role is listed by the guild and the bot's member carries it; and
// giving the permissions back lifts every refusal.
func TestBotPermissionsEnforced(t *testing.T) {
	t.Parallel()
	perms := DefaultBotPermissions &^ (discordgo.PermissionManageWebhooks | PermissionPinMessages | discordgo.PermissionManageRoles)
	srv := newServer(t, Options{BotPermissions: perms})
	sess := newSession(t, srv, "")
	g := srv.GuildID()
	forbidden := func(what string, err error, want int) {
		t.Helper()
		if status, code := restStatus(err); status != http.StatusForbidden || code != want {
			t.Errorf("%s: %v, want 403 %d", what, err, want)
		}
	}

	_, err := sess.GuildChannelCreateComplex(g, discordgo.GuildChannelCreateData{
		Name: "x", Type: discordgo.ChannelTypeGuildText,
		PermissionOverwrites: []*discordgo.PermissionOverwrite{{ID: srv.BotID(), Type: discordgo.PermissionOverwriteTypeMember,
			Allow: discordgo.PermissionManageWebhooks}},
	})
	forbidden("create with an overwrite granting Manage Webhooks", err, discordgo.ErrCodeMissingPermissions)
	ch, err := sess.GuildChannelCreateComplex(g, discordgo.GuildChannelCreateData{
		Name: "y", Type: discordgo.ChannelTypeGuildText,
		PermissionOverwrites: []*discordgo.PermissionOverwrite{{ID: srv.BotID(), Type: discordgo.PermissionOverwriteTypeMember,
			Allow: discordgo.PermissionViewChannel | discordgo.PermissionSendMessages}},
	})
	if err != nil {
		t.Fatalf("create with permitted overwrites: %v", err)
	}
	_, err = sess.WebhookCreate(ch.ID, "hook", "")
	forbidden("webhook create", err, discordgo.ErrCodeMissingPermissions)
	m, err := sess.ChannelMessageSend(ch.ID, "hello")
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	forbidden("pin", sess.ChannelMessagePin(ch.ID, m.ID), discordgo.ErrCodeMissingPermissions)
	_, err = sess.ChannelEditComplex(ch.ID, &discordgo.ChannelEdit{PermissionOverwrites: []*discordgo.PermissionOverwrite{
		{ID: g, Type: discordgo.PermissionOverwriteTypeRole, Deny: discordgo.PermissionViewChannel}}})
	forbidden("overwrites without Manage Roles", err, discordgo.ErrCodeMissingPermissions)

	hidden, err := sess.GuildChannelCreateComplex(g, discordgo.GuildChannelCreateData{
		Name: "hidden", Type: discordgo.ChannelTypeGuildText,
		PermissionOverwrites: []*discordgo.PermissionOverwrite{{ID: g, Type: discordgo.PermissionOverwriteTypeRole,
			Deny: discordgo.PermissionViewChannel}},
	})
	if err != nil {
		t.Fatalf("create hidden: %v", err)
	}
	_, err = sess.ChannelMessageSend(hidden.ID, "hello")
	forbidden("send in a channel the bot cannot see", err, discordgo.ErrCodeMissingAccess)

	roles, err := sess.GuildRoles(g)
	if err != nil {
		t.Fatal(err)
	}
	member, err := sess.GuildMember(g, srv.BotID())
	if err != nil {
		t.Fatal(err)
	}
	var rolePerms int64 = -1
	for _, r := range roles {
		if r.ID == srv.BotRoleID() {
			rolePerms = r.Permissions
		}
	}
	if rolePerms != perms || len(member.Roles) != 1 || member.Roles[0] != srv.BotRoleID() {
		t.Errorf("bot role permissions %s (want %s), member roles %v", strconv.FormatInt(rolePerms, 10),
			strconv.FormatInt(perms, 10), member.Roles)
	}
	if n := srv.InvalidRequests(); n != 5 {
		t.Errorf("%d invalid requests counted, want 5", n)
	}

	srv.SetBotPermissions(DefaultBotPermissions)
	if _, err = sess.WebhookCreate(ch.ID, "hook", ""); err != nil {
		t.Errorf("webhook create once permitted: %v", err)
	}
	if err = sess.ChannelMessagePin(ch.ID, m.ID); err != nil {
		t.Errorf("pin once permitted: %v", err)
	}
}
