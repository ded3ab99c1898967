package discord

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/bwmarrin/discordgo"
)

// PermissionPinMessages is Discord's PIN_MESSAGES permission, which pinning needs since
// 2026-02-23 (discordgo v0.29.0 predates it).
const PermissionPinMessages int64 = 1 << 51

// requiredPermissions are the guild permissions the bot needs, in the order they are listed to
// an admin. A bot may grant in an overwrite only permissions it holds itself, and the
// overwrites of every account channel grant the bot and the owner the first ones.
var requiredPermissions = []struct {
	bit  int64
	name string
}{
	{discordgo.PermissionViewChannel, "View Channels"},
	{discordgo.PermissionSendMessages, "Send Messages"},
	{discordgo.PermissionReadMessageHistory, "Read Message History"},
	{discordgo.PermissionManageChannels, "Manage Channels"},
	{discordgo.PermissionManageRoles, "Manage Permissions (Manage Roles)"},
	{discordgo.PermissionManageWebhooks, "Manage Webhooks"},
	{discordgo.PermissionManageMessages, "Manage Messages"},
	{discordgo.PermissionAddReactions, "Add Reactions"},
	{discordgo.PermissionAttachFiles, "Attach Files"},
	{discordgo.PermissionUseSlashCommands, "Use Application Commands"},
	{PermissionPinMessages, "Pin Messages"},
}

// RequiredPermissions is the permission integer of everything the bot needs in the guild
// (2251802766584912), as the invite URL carries it.
var RequiredPermissions = func() int64 {
	var p int64
	for _, r := range requiredPermissions {
		p |= r.bit
	}
	return p
}()

// InviteURL is the URL that adds the bot of application appID to a guild with the scopes and
// permissions the bridge needs.
func InviteURL(appID string) string {
	return "https://discord.com/oauth2/authorize?client_id=" + appID +
		"&scope=bot+applications.commands&permissions=" + strconv.FormatInt(RequiredPermissions, 10)
}

// MissingPermissionsError is returned by Start when the bot's role in the guild lacks
// permissions the bridge needs. Missing names them.
type MissingPermissionsError struct {
	GuildID string
	Missing []string
	Invite  string
}

func (e *MissingPermissionsError) Error() string {
	return fmt.Sprintf("the bot lacks these permissions in guild %s: %s (give them to its role, or invite it again with %s)",
		e.GuildID, strings.Join(e.Missing, ", "), e.Invite)
}

// guildPermissions computes the bot's permissions in the guild from its roles: @everyone's and
// those of every role it has; everything for the guild owner or an administrator.
func (f *Frontend) guildPermissions(ctx context.Context) (int64, error) {
	g, err := f.s.Guild(f.cfg.GuildID, discordgo.WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("failed to get the guild: %w", err)
	}
	f.uploadMax.Store(uploadLimitFor(g.PremiumTier))
	if g.OwnerID == f.botID {
		return discordgo.PermissionAll | PermissionPinMessages, nil
	}
	m, err := f.s.GuildMember(f.cfg.GuildID, f.botID, discordgo.WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("failed to get the bot's guild member: %w", err)
	}
	var perms int64
	for _, r := range g.Roles {
		if r != nil && (r.ID == g.ID || r.ID == f.cfg.GuildID || slices.Contains(m.Roles, r.ID)) {
			perms |= r.Permissions
		}
	}
	if perms&discordgo.PermissionAdministrator != 0 {
		return discordgo.PermissionAll | PermissionPinMessages, nil
	}
	return perms, nil
}

// checkPermissions fails with a *MissingPermissionsError when the bot's guild permissions
// lack any that the bridge needs.
func (f *Frontend) checkPermissions(ctx context.Context) error {
	have, err := f.guildPermissions(ctx)
	if err != nil {
		return err
	}
	var missing []string
	for _, r := range requiredPermissions {
		if have&r.bit == 0 {
			missing = append(missing, r.name)
		}
	}
	if len(missing) > 0 {
		return &MissingPermissionsError{GuildID: f.cfg.GuildID, Missing: missing, Invite: InviteURL(f.appID)}
	}
	return nil
}
