package discordtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

// maxChannelWebhooks is Discord's limit of webhooks per channel.
const maxChannelWebhooks = 15

// checkWebhookName applies Discord's rules for webhook names and per-message usernames: 1–80
// characters once trimmed; none of "@", "#", ":", "```", "clyde" or "discord"; not "everyone"
// or "here"; nothing RefuseUsernames added. The caller holds s.mu.
func (c *call) checkWebhookName(field, name string) bool {
	trimmed := strings.TrimSpace(name)
	n := utf8.RuneCountInString(trimmed)
	lower := strings.ToLower(trimmed)
	switch {
	case n < 1 || n > 80:
		c.formError(field, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 80 in length.")
	case strings.Contains(lower, "clyde"), strings.Contains(lower, "discord"):
		c.formError(field, "USERNAME_INVALID_CONTAINS", "Username cannot contain \"clyde\" or \"discord\"")
	case strings.ContainsAny(trimmed, "@#:"), strings.Contains(trimmed, "```"):
		c.formError(field, "USERNAME_INVALID_CONTAINS", "Username cannot contain \"@\", \"#\", \":\" or \"```\"")
	case lower == "everyone" || lower == "here":
		c.formError(field, "USERNAME_INVALID", "Username is invalid")
	case c.s.refusedName(lower):
		c.formError(field, "USERNAME_INVALID", "Username is invalid")
	default:
		return true
	}
	return false
}

// RefuseUsernames makes webhook names and per-message usernames containing any of words (case
// insensitive) fail with 50035, as Discord refuses names beyond its published rules.
func (s *Server) RefuseUsernames(words ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range words {
		if w != "" {
			s.refused = append(s.refused, strings.ToLower(w))
		}
	}
}

// refusedName reports whether a lower-cased name contains a word of RefuseUsernames. The
// caller holds s.mu.
func (s *Server) refusedName(lower string) bool {
	for _, w := range s.refused {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// avatarHash turns an avatar data URI into the hash Discord would store; "" stays "".
func avatarHash(dataURI string) string {
	if dataURI == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(dataURI))
	return hex.EncodeToString(sum[:16])
}

type webhookCreate struct {
	Name   string          `json:"name"`
	Avatar json.RawMessage `json:"avatar"`
}

func (s *Server) postWebhook(c *call) {
	var req webhookCreate
	if !c.decode(&req, false) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.checkWebhookName("name", req.Name) {
		return
	}
	img, _, ok := c.checkAvatar("avatar", req.Avatar)
	if !ok {
		return
	}
	cs := s.textChannel(c, c.r.PathValue("c"))
	if cs == nil {
		return
	}
	n := 0
	for _, w := range s.webhooks {
		if w.wh.ChannelID == cs.ch.ID && !w.deleted {
			n++
		}
	}
	if n >= maxChannelWebhooks {
		c.fail(http.StatusBadRequest, 30007, "Maximum number of webhooks reached (15)")
		return
	}
	bot := *s.users[s.opts.BotID]
	wh := &discordgo.Webhook{
		ID:            s.nextID(),
		Type:          discordgo.WebhookTypeIncoming,
		GuildID:       s.guild.id,
		ChannelID:     cs.ch.ID,
		User:          &bot,
		Name:          req.Name,
		Avatar:        img.hash(),
		Token:         randomToken(32),
		ApplicationID: s.opts.ApplicationID,
	}
	s.webhooks[wh.ID] = &webhookState{wh: wh, avatar: img}
	s.emit("WEBHOOKS_UPDATE", discordgo.IntentsGuildWebhooks, map[string]string{"guild_id": s.guild.id, "channel_id": cs.ch.ID})
	cp := *wh
	c.writeJSON(http.StatusOK, &cp)
}

func (s *Server) getChannelWebhooks(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := c.r.PathValue("c")
	if _, ok := s.channels[id]; !ok {
		c.unknownChannel()
		return
	}
	c.writeJSON(http.StatusOK, s.liveWebhooks(id))
}

func (s *Server) getGuildWebhooks(c *call) {
	if c.r.PathValue("g") != s.guild.id {
		c.unknownGuild()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.writeJSON(http.StatusOK, s.liveWebhooks(""))
}

// liveWebhooks lists webhooks not deleted, of one channel or ("" ) all. The caller holds s.mu.
func (s *Server) liveWebhooks(channelID string) []*discordgo.Webhook {
	out := []*discordgo.Webhook{}
	for _, w := range s.webhooks {
		if !w.deleted && (channelID == "" || w.wh.ChannelID == channelID) {
			cp := *w.wh
			out = append(out, &cp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return idLess(out[i].ID, out[j].ID) })
	return out
}

// webhook resolves {w} (and {tok} when the route has it), answering 10015 for an unknown or
// deleted webhook and 50027 for a wrong token. The caller holds s.mu.
func (s *Server) webhook(c *call) *webhookState {
	w, ok := s.webhooks[c.r.PathValue("w")]
	if !ok || w.deleted {
		c.unknownWebhook()
		return nil
	}
	if tok := c.r.PathValue("tok"); tok != "" && tok != w.wh.Token {
		c.fail(http.StatusUnauthorized, 50027, "Invalid Webhook Token")
		return nil
	}
	return w
}

func (s *Server) getWebhook(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.webhook(c); w != nil {
		cp := *w.wh
		if c.r.PathValue("tok") != "" {
			cp.User = nil
		}
		c.writeJSON(http.StatusOK, &cp)
	}
}

type webhookPatch struct {
	Name      *string         `json:"name"`
	Avatar    json.RawMessage `json:"avatar"`
	ChannelID string          `json:"channel_id"`
}

// patchWebhook changes a webhook's name, avatar (a data URI, or null to remove it) or, with the
// bot token only, channel.
func (s *Server) patchWebhook(c *call) {
	var req webhookPatch
	if !c.decode(&req, false) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Name != nil && !c.checkWebhookName("name", *req.Name) {
		return
	}
	img, setAvatar, ok := c.checkAvatar("avatar", req.Avatar)
	if !ok {
		return
	}
	w := s.webhook(c)
	if w == nil || c.r.PathValue("tok") == "" && !s.mayManageWebhook(c, w) {
		return
	}
	next := *w.wh
	if req.Name != nil {
		next.Name = *req.Name
	}
	if setAvatar {
		next.Avatar, w.avatar = img.hash(), img
	}
	if req.ChannelID != "" && c.r.PathValue("tok") == "" && req.ChannelID != next.ChannelID {
		if cs := s.textChannel(c, req.ChannelID); cs == nil {
			return
		}
		next.ChannelID = req.ChannelID
	}
	w.wh = &next
	s.emit("WEBHOOKS_UPDATE", discordgo.IntentsGuildWebhooks, map[string]string{"guild_id": s.guild.id, "channel_id": next.ChannelID})
	cp := next
	c.writeJSON(http.StatusOK, &cp)
}

func (s *Server) deleteWebhook(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.webhook(c)
	if w == nil {
		return
	}
	w.deleted = true
	s.emit("WEBHOOKS_UPDATE", discordgo.IntentsGuildWebhooks, map[string]string{"guild_id": s.guild.id, "channel_id": w.wh.ChannelID})
	c.noContent()
}

// DeleteWebhook deletes a webhook as a guild admin would in the client: later executes get 404
// code 10015. It reports whether the webhook existed.
func (s *Server) DeleteWebhook(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.webhooks[id]
	if !ok || w.deleted {
		return false
	}
	w.deleted = true
	s.emit("WEBHOOKS_UPDATE", discordgo.IntentsGuildWebhooks, map[string]string{"guild_id": s.guild.id, "channel_id": w.wh.ChannelID})
	return true
}

// admitChannelWebhook applies the limit of webhook executes per channel, across all of its
// webhooks (Discord: about 30 per minute), answering 429 when it is exceeded. The caller holds
// s.mu.
func (s *Server) admitChannelWebhook(c *call, channelID string) bool {
	limit := s.opts.WebhookChannelLimit
	if limit.Requests < 0 {
		return true
	}
	b, ok := s.hookBuckets[channelID]
	if !ok {
		b = &bucket{limit: limit}
		s.hookBuckets[channelID] = b
	}
	if ok, _, after := b.take(time.Now()); !ok {
		setRateHeaders(c.w.Header(), limit.Requests, 0, after, bucketHash("webhooks per channel"))
		c.write429(after, false, "user")
		return false
	}
	return true
}

// wantWait reports the wait query parameter of a webhook execute.
func wantWait(r *http.Request) bool {
	v := strings.ToLower(r.URL.Query().Get("wait"))
	return v == "true" || v == "1"
}

// executeWebhook posts a message through a webhook: author {id: webhook id, username: the
// per-message username or the webhook's name, bot: true}, webhook_id and application_id set,
// MESSAGE_CREATE dispatched. With wait=true it answers the message, otherwise 204. The
// application id with an interaction token instead of a webhook is an interaction followup.
func (s *Server) executeWebhook(c *call) {
	if c.r.PathValue("w") == s.opts.ApplicationID {
		s.followup(c)
		return
	}
	p, files, ok := c.parsePayload()
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Username != "" && !c.checkWebhookName("username", p.Username) {
		return
	}
	w := s.webhook(c)
	if w == nil {
		return
	}
	cs := s.textChannel(c, w.wh.ChannelID)
	if cs == nil {
		return
	}
	if !s.admitChannelWebhook(c, cs.ch.ID) {
		return
	}
	if p.empty(files) {
		c.emptyMessage()
		return
	}
	name := w.wh.Name
	if p.Username != "" {
		name = p.Username
	}
	avatar := w.wh.Avatar
	if p.AvatarURL != "" {
		avatar = avatarHash(p.AvatarURL)
	}
	author := &discordgo.User{ID: w.wh.ID, Username: name, Discriminator: "0000", Avatar: avatar, Bot: true}
	msg := s.newMessage(cs.ch.ID, author, p, files)
	msg.WebhookID = w.wh.ID
	msg.AvatarURL = p.AvatarURL
	msg.Flags &= discordgo.MessageFlagsSuppressEmbeds
	s.storeMessage(cs, msg)
	if wantWait(c.r) {
		c.writeMessage(http.StatusOK, msg.Message)
		return
	}
	c.noContent()
}

// webhookMessage resolves {m} of a webhook-message route: a message the webhook sent.
func (s *Server) webhookMessage(c *call) (*channelState, *Message) {
	w := s.webhook(c)
	if w == nil {
		return nil, nil
	}
	chID, ok := s.msgChan[c.r.PathValue("m")]
	if !ok {
		c.unknownMessage()
		return nil, nil
	}
	cs, m, _ := s.findMessage(chID, c.r.PathValue("m"))
	if m == nil || m.WebhookID != w.wh.ID {
		c.unknownMessage()
		return nil, nil
	}
	return cs, m
}

func (s *Server) getWebhookMessage(c *call) {
	if c.r.PathValue("w") == s.opts.ApplicationID {
		s.interactionMessage(c)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, m := s.webhookMessage(c); m != nil {
		c.writeMessage(http.StatusOK, m.Message)
	}
}

func (s *Server) patchWebhookMessage(c *call) {
	if c.r.PathValue("w") == s.opts.ApplicationID {
		s.interactionMessage(c)
		return
	}
	p, files, ok := c.parsePayload()
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, m := s.webhookMessage(c)
	if m == nil || !s.applyEdit(c, m, p, files) {
		return
	}
	s.emitMessage("MESSAGE_UPDATE", m.Message)
	c.writeMessage(http.StatusOK, m.Message)
}

func (s *Server) deleteWebhookMessage(c *call) {
	if c.r.PathValue("w") == s.opts.ApplicationID {
		s.interactionMessage(c)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, m := s.webhookMessage(c)
	if m == nil {
		return
	}
	s.dropMessage(cs, m.ID)
	c.noContent()
}
