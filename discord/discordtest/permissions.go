package discordtest

import (
	"net/http"
	"strconv"

	"github.com/bwmarrin/discordgo"
)

// PermissionPinMessages is Discord's PIN_MESSAGES permission (1 << 51), which pinning needs
// since 2026-02-23 in place of Manage Messages.
const PermissionPinMessages int64 = 1 << 51

// DefaultBotPermissions are the permissions of the bot's role when Options.BotPermissions is
// zero: what a bridge mirroring chats into private channels needs (view, send, read history,
// manage channels, roles, webhooks and messages, add reactions, attach files, use application
// commands, pin messages).
const DefaultBotPermissions = discordgo.PermissionViewChannel | discordgo.PermissionSendMessages |
	discordgo.PermissionReadMessageHistory | discordgo.PermissionManageChannels | discordgo.PermissionManageRoles |
	discordgo.PermissionManageWebhooks | discordgo.PermissionManageMessages | discordgo.PermissionAddReactions |
	discordgo.PermissionAttachFiles | discordgo.PermissionUseSlashCommands | PermissionPinMessages

// NoPermissions, as Options.BotPermissions, gives the bot's role no permission at all (the
// @everyone role's still apply).
const NoPermissions int64 = -1

// routePerms are the permissions a bot request needs in the channel of its route, as Discord
// checks them. Guild routes are checked against the guild permissions.
var routePerms = map[string]int64{
	"GET /channels/{c}/messages":                          discordgo.PermissionReadMessageHistory,
	"GET /channels/{c}/messages/{m}":                      discordgo.PermissionReadMessageHistory,
	"POST /channels/{c}/messages":                         discordgo.PermissionSendMessages,
	"PUT /channels/{c}/messages/{m}/reactions/{e}/@me":    discordgo.PermissionAddReactions | discordgo.PermissionReadMessageHistory,
	"DELETE /channels/{c}/messages/{m}/reactions/{e}/@me": 0,
	"GET /channels/{c}/pins":                              discordgo.PermissionReadMessageHistory,
	"PUT /channels/{c}/pins/{m}":                          PermissionPinMessages,
	"DELETE /channels/{c}/pins/{m}":                       PermissionPinMessages,
	"POST /channels/{c}/typing":                           discordgo.PermissionSendMessages,
	"GET /channels/{c}/webhooks":                          discordgo.PermissionManageWebhooks,
	"POST /channels/{c}/webhooks":                         discordgo.PermissionManageWebhooks,
	"PATCH /channels/{c}/messages/{m}":                    0,
	"DELETE /channels/{c}/messages/{m}":                   0,
	"GET /channels/{c}":                                   0,
	"PATCH /channels/{c}":                                 discordgo.PermissionManageChannels,
	"DELETE /channels/{c}":                                discordgo.PermissionManageChannels,
	"POST /guilds/{g}/channels":                           discordgo.PermissionManageChannels,
	"GET /guilds/{g}/webhooks":                            discordgo.PermissionManageWebhooks,
}

// allPermissions is what an administrator (or the guild owner) has.
const allPermissions int64 = 1<<53 - 1

// SetBotPermissions replaces the permissions of the bot's role (NoPermissions for none), as an
// admin editing the role in the client does, and dispatches GUILD_ROLE_UPDATE.
func (s *Server) SetBotPermissions(perms int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.botPerms = perms
	if perms == NoPermissions {
		s.botPerms = 0
	}
	s.emit("GUILD_ROLE_UPDATE", discordgo.IntentsGuilds, map[string]any{"guild_id": s.guild.id, "role": s.botRoleObject()})
}

// BotRoleID is the id of the bot's own (managed) role.
func (s *Server) BotRoleID() string { return s.botRole }

// botRoleObject is the bot's role as the guild lists it. The caller holds s.mu.
func (s *Server) botRoleObject() map[string]any {
	return map[string]any{
		"id": s.botRole, "name": s.opts.BotName, "permissions": strconv.FormatInt(s.botPerms, 10), "position": 1,
		"color": 0, "hoist": false, "managed": true, "mentionable": false,
	}
}

// guildPerms are the bot's permissions in the guild: @everyone's and its role's, everything
// for an administrator. The caller holds s.mu.
func (s *Server) guildPerms() int64 {
	p := everyonePermissions | s.botPerms
	if p&discordgo.PermissionAdministrator != 0 {
		return allPermissions
	}
	return p
}

// channelPerms are the bot's permissions in a channel, computed as Discord does: the guild
// permissions, then the channel's @everyone overwrite, then its overwrite for the bot's role,
// then its overwrite for the bot itself (each deny before its allow); without View Channel the
// bot has nothing there. The caller holds s.mu.
func (s *Server) channelPerms(cs *channelState) int64 {
	p := s.guildPerms()
	if p == allPermissions {
		return p
	}
	apply := func(id string, t discordgo.PermissionOverwriteType) {
		for _, o := range cs.ch.PermissionOverwrites {
			if o != nil && o.ID == id && o.Type == t {
				p = p&^o.Deny | o.Allow
			}
		}
	}
	apply(s.guild.id, discordgo.PermissionOverwriteTypeRole)
	apply(s.botRole, discordgo.PermissionOverwriteTypeRole)
	apply(s.opts.BotID, discordgo.PermissionOverwriteTypeMember)
	if p&discordgo.PermissionViewChannel == 0 {
		return 0
	}
	return p
}

// permitted answers a bot request that lacks a permission its route needs: 403 with 50001
// (Missing Access) when the bot cannot see the channel, 50013 (Missing Permissions) otherwise.
// Unknown channels are left to the handler (10003). It reports whether the request may proceed.
func (s *Server) permitted(c *call) bool {
	need, ok := routePerms[c.route]
	if !ok {
		return true
	}
	s.mu.Lock()
	var have int64
	if id := c.r.PathValue("c"); id != "" {
		cs, known := s.channels[id]
		if !known {
			s.mu.Unlock()
			return true
		}
		have = s.channelPerms(cs)
		if have&discordgo.PermissionViewChannel == 0 {
			s.mu.Unlock()
			c.fail(http.StatusForbidden, discordgo.ErrCodeMissingAccess, "Missing Access")
			return false
		}
	} else {
		have = s.guildPerms()
	}
	s.mu.Unlock()
	if have&need != need {
		c.fail(http.StatusForbidden, discordgo.ErrCodeMissingPermissions, "Missing Permissions")
		return false
	}
	return true
}

// overwritesAllowed applies Discord's rule for permission overwrites a bot writes: it may allow
// or deny only permissions it has itself in the guild (everything as an administrator), and
// changing a channel's overwrites (patch) needs Manage Roles besides. Otherwise the request gets
// 403 with 50013. It reports whether the overwrites may be written. The caller holds s.mu.
func (s *Server) overwritesAllowed(c *call, ows []*discordgo.PermissionOverwrite, patch bool) bool {
	have := s.guildPerms()
	if have == allPermissions {
		return true
	}
	if patch && have&discordgo.PermissionManageRoles == 0 {
		c.fail(http.StatusForbidden, discordgo.ErrCodeMissingPermissions, "Missing Permissions")
		return false
	}
	for _, o := range ows {
		if o != nil && (o.Allow|o.Deny)&^have != 0 {
			c.fail(http.StatusForbidden, discordgo.ErrCodeMissingPermissions, "Missing Permissions")
			return false
		}
	}
	return true
}

// getGuildMember answers GET /guilds/{g}/members/{u}.
func (s *Server) getGuildMember(c *call) {
	if c.r.PathValue("g") != s.guild.id {
		c.unknownGuild()
		return
	}
	s.mu.Lock()
	_, ok := s.users[c.r.PathValue("u")]
	var m map[string]any
	if ok {
		m = s.memberObject(c.r.PathValue("u"), true)
	}
	s.mu.Unlock()
	if !ok {
		c.fail(http.StatusNotFound, 10007, "Unknown Member")
		return
	}
	c.writeJSON(http.StatusOK, m)
}

// getGuildRoles answers GET /guilds/{g}/roles.
func (s *Server) getGuildRoles(c *call) {
	if c.r.PathValue("g") != s.guild.id {
		c.unknownGuild()
		return
	}
	s.mu.Lock()
	roles := s.guildObject(false)["roles"]
	s.mu.Unlock()
	c.writeJSON(http.StatusOK, roles)
}

// SetChannelOverwrites replaces a channel's permission overwrites as an admin editing the
// channel in the client does (no permission check) and dispatches CHANNEL_UPDATE. It reports
// whether the channel exists.
func (s *Server) SetChannelOverwrites(channelID string, ows []*discordgo.PermissionOverwrite) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.channels[channelID]
	if !ok {
		return false
	}
	next := *cs.ch
	next.PermissionOverwrites = make([]*discordgo.PermissionOverwrite, 0, len(ows))
	for _, o := range ows {
		if o != nil {
			cp := *o
			next.PermissionOverwrites = append(next.PermissionOverwrites, &cp)
		}
	}
	cs.ch = &next
	cp := next
	s.emit("CHANNEL_UPDATE", discordgo.IntentsGuilds, &cp)
	return true
}
