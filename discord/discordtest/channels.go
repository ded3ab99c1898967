package discordtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

// Discord's channel limits.
const (
	maxGuildChannels    = 500
	maxCategoryChildren = 50
	maxTopicLength      = 1024
	maxChannelName      = 100
)

// guildObject is the guild as GUILD_CREATE and GET /guilds/{g} carry it. The caller holds s.mu.
func (s *Server) guildObject(withState bool) map[string]any {
	g := map[string]any{
		"id":       s.guild.id,
		"name":     s.guild.name,
		"owner_id": s.guild.ownerID,
		"roles": []map[string]any{{
			"id": s.guild.id, "name": "@everyone", "permissions": "1071698660929", "position": 0,
			"color": 0, "hoist": false, "managed": false, "mentionable": false,
		}, s.botRoleObject()},
		"emojis":   []any{},
		"stickers": []any{},
		"features": []string{},
	}
	if !withState {
		return g
	}
	members := make([]map[string]any, 0, len(s.users))
	for _, id := range s.memberIDs() {
		members = append(members, s.memberObject(id, true))
	}
	g["channels"] = s.sortedChannels()
	g["members"] = members
	g["member_count"] = len(members)
	g["joined_at"] = s.guild.joined.Format(time.RFC3339Nano)
	g["large"] = false
	g["unavailable"] = false
	g["presences"] = []any{}
	g["voice_states"] = []any{}
	g["threads"] = []any{}
	return g
}

// memberIDs lists the guild's members: owner, bot, then the extra users. The caller holds s.mu.
func (s *Server) memberIDs() []string {
	ids := []string{s.opts.OwnerID, s.opts.BotID}
	for _, u := range s.opts.Users {
		ids = append(ids, u.ID)
	}
	return ids
}

// memberObject is a guild member; gateway message events carry it without the user. The caller
// holds s.mu.
func (s *Server) memberObject(userID string, withUser bool) map[string]any {
	roles := []string{}
	if userID == s.opts.BotID {
		roles = append(roles, s.botRole)
	}
	m := map[string]any{
		"roles":     roles,
		"joined_at": s.guild.joined.Format(time.RFC3339Nano),
		"deaf":      false,
		"mute":      false,
		"flags":     0,
		"pending":   false,
	}
	if withUser {
		if u, ok := s.users[userID]; ok {
			cp := *u
			m["user"] = &cp
		}
	}
	return m
}

func (s *Server) getGuildChannels(c *call) {
	if c.r.PathValue("g") != s.guild.id {
		c.unknownGuild()
		return
	}
	s.mu.Lock()
	chs := s.sortedChannels()
	s.mu.Unlock()
	c.writeJSON(http.StatusOK, chs)
}

// channelCreate is the body of POST /guilds/{g}/channels.
type channelCreate struct {
	Name             string                           `json:"name"`
	Type             discordgo.ChannelType            `json:"type"`
	Topic            string                           `json:"topic"`
	ParentID         string                           `json:"parent_id"`
	Position         *int                             `json:"position"`
	NSFW             bool                             `json:"nsfw"`
	RateLimitPerUser int                              `json:"rate_limit_per_user"`
	Overwrites       []*discordgo.PermissionOverwrite `json:"permission_overwrites"`
}

// normalizeChannelName does what Discord does to text channel names: lower case, whitespace
// runs become one dash.
func normalizeChannelName(name string, t discordgo.ChannelType) string {
	if t != discordgo.ChannelTypeGuildText && t != discordgo.ChannelTypeGuildNews && t != discordgo.ChannelTypeGuildForum {
		return name
	}
	var b strings.Builder
	dash := false
	for _, r := range strings.TrimSpace(name) {
		if unicode.IsSpace(r) {
			if !dash {
				b.WriteByte('-')
				dash = true
			}
			continue
		}
		dash = false
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

func (s *Server) postGuildChannel(c *call) {
	if c.r.PathValue("g") != s.guild.id {
		c.unknownGuild()
		return
	}
	var req channelCreate
	if !c.decode(&req, false) {
		return
	}
	n := utf8.RuneCountInString(strings.TrimSpace(req.Name))
	switch {
	case n < 1 || n > maxChannelName:
		c.formError("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
		return
	case !validChannelType(req.Type):
		c.formError("type", "BASE_TYPE_CHOICES", "Value must be one of {0, 2, 4, 5, 13, 15}.")
		return
	case utf8.RuneCountInString(req.Topic) > maxTopicLength:
		c.formError("topic", "BASE_TYPE_MAX_LENGTH", "Must be 1024 or fewer in length.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.overwritesAllowed(c, req.Overwrites, false) {
		return
	}
	if len(s.channels) >= maxGuildChannels {
		c.fail(http.StatusBadRequest, 30013, "Maximum number of guild channels reached (500)")
		return
	}
	if req.ParentID != "" {
		if req.Type == discordgo.ChannelTypeGuildCategory {
			c.formError("parent_id", "CHANNEL_PARENT_INVALID_TYPE", "Categories cannot have subcategories.")
			return
		}
		if !s.isCategory(req.ParentID) {
			c.formError("parent_id", "CHANNEL_PARENT_INVALID", "Category does not exist.")
			return
		}
		if s.children(req.ParentID) >= maxCategoryChildren {
			c.formError("parent_id", "CHANNEL_PARENT_MAX_CHANNELS", "Maximum number of channels in category reached (50)")
			return
		}
	}
	// Like Discord, a channel created in a category without overwrites of its own starts with a
	// copy of the category's (it is "synced"); later changes of the category do not reach it.
	if req.Overwrites == nil && req.ParentID != "" {
		for _, o := range s.channels[req.ParentID].ch.PermissionOverwrites {
			cp := *o
			req.Overwrites = append(req.Overwrites, &cp)
		}
	}
	ch := &discordgo.Channel{
		Name:                 normalizeChannelName(req.Name, req.Type),
		Type:                 req.Type,
		Topic:                req.Topic,
		ParentID:             req.ParentID,
		NSFW:                 req.NSFW,
		RateLimitPerUser:     req.RateLimitPerUser,
		PermissionOverwrites: req.Overwrites,
	}
	if req.Position != nil {
		ch.Position = *req.Position
	} else {
		for _, cs := range s.channels {
			if cs.ch.ParentID == req.ParentID && cs.ch.Position >= ch.Position {
				ch.Position = cs.ch.Position + 1
			}
		}
	}
	s.addChannel(ch)
	cp := *ch
	s.emit("CHANNEL_CREATE", discordgo.IntentsGuilds, &cp)
	c.writeJSON(http.StatusCreated, &cp)
}

// everyonePermissions are the guild's @everyone role permissions (see guildObject).
const everyonePermissions int64 = 1071698660929

// CanView reports whether a member can see a channel, computed as Discord does: the guild
// owner sees everything; otherwise the @everyone role's permissions, then the channel's
// @everyone overwrite, then the member's own overwrite (denies before allows). It reports false
// for an unknown channel or user.
func (s *Server) CanView(userID, channelID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.channels[channelID]
	if _, known := s.users[userID]; !ok || !known {
		return false
	}
	if userID == s.guild.ownerID {
		return true
	}
	perms := everyonePermissions
	if perms&discordgo.PermissionAdministrator != 0 {
		return true
	}
	apply := func(id string, t discordgo.PermissionOverwriteType) {
		for _, o := range cs.ch.PermissionOverwrites {
			if o.ID == id && o.Type == t {
				perms = perms&^o.Deny | o.Allow
			}
		}
	}
	apply(s.guild.id, discordgo.PermissionOverwriteTypeRole)
	apply(userID, discordgo.PermissionOverwriteTypeMember)
	return perms&discordgo.PermissionViewChannel != 0
}

func validChannelType(t discordgo.ChannelType) bool {
	switch t {
	case discordgo.ChannelTypeGuildText, discordgo.ChannelTypeGuildVoice, discordgo.ChannelTypeGuildCategory,
		discordgo.ChannelTypeGuildNews, discordgo.ChannelTypeGuildStageVoice, discordgo.ChannelTypeGuildForum:
		return true
	}
	return false
}

// isCategory and children read s.channels; the caller holds s.mu.
func (s *Server) isCategory(id string) bool {
	cs, ok := s.channels[id]
	return ok && cs.ch.Type == discordgo.ChannelTypeGuildCategory
}

func (s *Server) children(parentID string) int {
	n := 0
	for _, cs := range s.channels {
		if cs.ch.ParentID == parentID {
			n++
		}
	}
	return n
}

func (s *Server) getChannel(c *call) {
	ch := s.Channel(c.r.PathValue("c"))
	if ch == nil {
		c.unknownChannel()
		return
	}
	c.writeJSON(http.StatusOK, ch)
}

// patchChannel applies PATCH /channels/{c}. A body with "name" or "topic" counts against the
// channel's name/topic budget (Options.EditLimit per EditWindow) whether or not the value
// changes; the over-budget request gets 429 with retry_after until the oldest counted edit
// leaves the window (and X-RateLimit-Reset-After to match, which locks discordgo's bucket for
// that long) and changes nothing. Other fields are free.
func (s *Server) patchChannel(c *call) {
	var fields map[string]json.RawMessage
	if !c.decode(&fields, false) {
		return
	}
	id := c.r.PathValue("c")
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.channels[id]
	if !ok {
		c.unknownChannel()
		return
	}
	next := *cs.ch
	_, hasName := fields["name"]
	_, hasTopic := fields["topic"]
	for k, raw := range fields {
		var err error
		switch k {
		case "name":
			err = json.Unmarshal(raw, &next.Name)
			n := utf8.RuneCountInString(strings.TrimSpace(next.Name))
			if err == nil && (n < 1 || n > maxChannelName) {
				c.formError("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
				return
			}
			next.Name = normalizeChannelName(next.Name, next.Type)
		case "topic":
			var t *string
			err = json.Unmarshal(raw, &t)
			next.Topic = ""
			if t != nil {
				next.Topic = *t
			}
			if utf8.RuneCountInString(next.Topic) > maxTopicLength {
				c.formError("topic", "BASE_TYPE_MAX_LENGTH", "Must be 1024 or fewer in length.")
				return
			}
		case "parent_id":
			var p *string
			err = json.Unmarshal(raw, &p)
			next.ParentID = ""
			if p != nil {
				next.ParentID = *p
			}
			if next.ParentID != "" && (!s.isCategory(next.ParentID) || next.Type == discordgo.ChannelTypeGuildCategory) {
				c.formError("parent_id", "CHANNEL_PARENT_INVALID", "Category does not exist.")
				return
			}
			if next.ParentID != "" && next.ParentID != cs.ch.ParentID && s.children(next.ParentID) >= maxCategoryChildren {
				c.formError("parent_id", "CHANNEL_PARENT_MAX_CHANNELS", "Maximum number of channels in category reached (50)")
				return
			}
		case "position":
			err = json.Unmarshal(raw, &next.Position)
		case "nsfw":
			err = json.Unmarshal(raw, &next.NSFW)
		case "rate_limit_per_user":
			err = json.Unmarshal(raw, &next.RateLimitPerUser)
			if err == nil && (next.RateLimitPerUser < 0 || next.RateLimitPerUser > 21600) {
				c.formError("rate_limit_per_user", "NUMBER_TYPE_MAX", "Must be between 0 and 21600.")
				return
			}
		case "permission_overwrites":
			next.PermissionOverwrites = nil // never decode into the stored channel's array
			err = json.Unmarshal(raw, &next.PermissionOverwrites)
			if err == nil && !s.overwritesAllowed(c, next.PermissionOverwrites, true) {
				return
			}
		}
		if err != nil {
			c.formError(k, "BASE_TYPE_INVALID", "Invalid value.")
			return
		}
	}
	if hasName || hasTopic {
		now := time.Now()
		edits := recentEdits(cs.topicEdits, now, s.opts.EditWindow)
		if len(edits) >= s.opts.EditLimit {
			after := edits[0].Add(s.opts.EditWindow).Sub(now)
			setRateHeaders(c.w.Header(), s.opts.EditLimit, 0, after, bucketHash(c.route+"#name-topic"))
			c.write429(after, false, "shared")
			return
		}
		// Like Discord, a successful edit shows only the route's ordinary bucket: the name/topic
		// limit is hidden until it is hit.
		cs.topicEdits = append(cs.topicEdits, now)
	}
	if next.PermissionOverwrites == nil {
		next.PermissionOverwrites = []*discordgo.PermissionOverwrite{}
	}
	cs.ch = &next
	cp := next
	s.emit("CHANNEL_UPDATE", discordgo.IntentsGuilds, &cp)
	c.writeJSON(http.StatusOK, &cp)
}

// recentEdits returns the edits inside the window ending at now.
func recentEdits(all []time.Time, now time.Time, window time.Duration) []time.Time {
	var out []time.Time
	for _, t := range all {
		if now.Sub(t) < window {
			out = append(out, t)
		}
	}
	return out
}

func (s *Server) deleteChannel(c *call) {
	ch, ok := s.removeChannel(c.r.PathValue("c"))
	if !ok {
		c.unknownChannel()
		return
	}
	c.writeJSON(http.StatusOK, ch)
}

// removeChannel deletes a channel with its messages and webhooks and dispatches CHANNEL_DELETE;
// children of a deleted category lose their parent (CHANNEL_UPDATE each).
func (s *Server) removeChannel(id string) (*discordgo.Channel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.channels[id]
	if !ok {
		return nil, false
	}
	delete(s.channels, id)
	for i, oid := range s.order {
		if oid == id {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	for _, m := range cs.messages {
		delete(s.msgChan, m.ID)
	}
	hooks := false
	for _, w := range s.webhooks {
		if w.wh.ChannelID == id && !w.deleted {
			w.deleted = true
			hooks = true
		}
	}
	if cs.ch.Type == discordgo.ChannelTypeGuildCategory {
		for _, oid := range s.order {
			child := s.channels[oid]
			if child.ch.ParentID == id {
				next := *child.ch
				next.ParentID = ""
				child.ch = &next
				cp := next
				s.emit("CHANNEL_UPDATE", discordgo.IntentsGuilds, &cp)
			}
		}
	}
	cp := *cs.ch
	s.emit("CHANNEL_DELETE", discordgo.IntentsGuilds, &cp)
	if hooks {
		s.emit("WEBHOOKS_UPDATE", discordgo.IntentsGuildWebhooks, map[string]string{"guild_id": s.guild.id, "channel_id": id})
	}
	return &cp, true
}
