package discordtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

// Discord's message limits.
const (
	maxContent     = 2000
	maxEmbeds      = 10
	maxEmbedChars  = 6000
	maxEmbedFields = 25
	maxPins        = 250
)

// messagePayload is the JSON of a message create or edit, from a bot, a webhook or an
// interaction response.
type messagePayload struct {
	Content          *string                           `json:"content"`
	Embeds           []*discordgo.MessageEmbed         `json:"embeds"`
	Components       json.RawMessage                   `json:"components"`
	AllowedMentions  *discordgo.MessageAllowedMentions `json:"allowed_mentions"`
	MessageReference *discordgo.MessageReference       `json:"message_reference"`
	Flags            discordgo.MessageFlags            `json:"flags"`
	TTS              bool                              `json:"tts"`
	StickerIDs       []string                          `json:"sticker_ids"`
	Attachments      *[]struct {
		ID json.RawMessage `json:"id"`
	} `json:"attachments"`
	Poll json.RawMessage `json:"poll"`

	// Webhook executes.
	Username  string `json:"username"`
	AvatarURL string `json:"avatar_url"`

	// Modal responses.
	CustomID string `json:"custom_id"`
	Title    string `json:"title"`

	components []discordgo.MessageComponent
	hasEmbeds  bool
}

// parsePayload decodes a message payload (JSON or multipart) and checks its shape; on failure it
// has answered the request.
func (c *call) parsePayload() (*messagePayload, []File, bool) {
	js, files, ok := c.payload()
	if !ok {
		return nil, nil, false
	}
	p := &messagePayload{}
	if len(strings.TrimSpace(string(js))) > 0 {
		if err := json.Unmarshal(js, p); err != nil {
			c.badJSON()
			return nil, nil, false
		}
	}
	if !c.checkPayload(p) {
		return nil, nil, false
	}
	return p, files, true
}

// checkPayload enforces Discord's length limits and decodes the components.
func (c *call) checkPayload(p *messagePayload) bool {
	if p.Content != nil && utf8.RuneCountInString(*p.Content) > maxContent {
		c.formError("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
		return false
	}
	if len(p.Embeds) > maxEmbeds {
		c.formError("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
		return false
	}
	total := 0
	for i, e := range p.Embeds {
		if e == nil {
			c.formError("embeds."+strconv.Itoa(i), "BASE_TYPE_REQUIRED", "This field is required")
			return false
		}
		if len(e.Fields) > maxEmbedFields {
			c.formError("embeds."+strconv.Itoa(i)+".fields", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
			return false
		}
		total += embedChars(e)
	}
	if total > maxEmbedChars {
		c.formError("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
		return false
	}
	p.hasEmbeds = len(p.Embeds) > 0
	if len(p.Components) > 0 && string(p.Components) != "null" {
		var holder discordgo.Message
		if err := json.Unmarshal([]byte(`{"components":`+string(p.Components)+`}`), &holder); err != nil {
			c.formError("components", "BASE_TYPE_INVALID", "Invalid components.")
			return false
		}
		p.components = holder.Components
	}
	return true
}

func embedChars(e *discordgo.MessageEmbed) int {
	n := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description)
	for _, f := range e.Fields {
		if f != nil {
			n += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
		}
	}
	if e.Footer != nil {
		n += utf8.RuneCountInString(e.Footer.Text)
	}
	if e.Author != nil {
		n += utf8.RuneCountInString(e.Author.Name)
	}
	return n
}

// empty reports whether a payload would make a message with nothing in it.
func (p *messagePayload) empty(files []File) bool {
	return (p.Content == nil || *p.Content == "") && !p.hasEmbeds && len(files) == 0 &&
		len(p.components) == 0 && len(p.StickerIDs) == 0 && (len(p.Poll) == 0 || string(p.Poll) == "null")
}

func (c *call) emptyMessage() { c.fail(http.StatusBadRequest, 50006, "Cannot send an empty message") }

// newMessage builds a message in channel chID from p and stores its files. The caller holds s.mu.
func (s *Server) newMessage(chID string, author *discordgo.User, p *messagePayload, files []File) *Message {
	now := time.Now().UTC()
	m := &discordgo.Message{
		ID:           s.nextID(),
		ChannelID:    chID,
		GuildID:      s.guild.id,
		Timestamp:    now,
		Author:       author,
		TTS:          p.TTS,
		Flags:        p.Flags,
		Embeds:       p.Embeds,
		Components:   p.components,
		Attachments:  []*discordgo.MessageAttachment{},
		Mentions:     []*discordgo.User{},
		MentionRoles: []string{},
		Reactions:    nil,
	}
	if p.Content != nil {
		m.Content = *p.Content
	}
	if m.Embeds == nil {
		m.Embeds = []*discordgo.MessageEmbed{}
	}
	msg := &Message{Message: m, AllowedMentions: p.AllowedMentions}
	s.addFiles(msg, files)
	s.setMentions(m)
	return msg
}

// signedURL is the attachment URL of path as Discord's CDN hands it out: signed, with ex (when
// it expires, hex Unix seconds), is (when it was issued) and hm (the signature). The caller
// holds s.mu.
func (s *Server) signedURL(path string) string {
	now := time.Now()
	ex := strconv.FormatInt(now.Add(s.opts.AttachmentURLTTL).Unix(), 16)
	is := strconv.FormatInt(now.Unix(), 16)
	return s.base + path + "?ex=" + ex + "&is=" + is + "&hm=" + s.urlSignature(path, ex, is)
}

// urlSignature signs an attachment path with its ex and is parameters.
func (s *Server) urlSignature(path, ex, is string) string {
	mac := hmac.New(sha256.New, s.urlKey)
	mac.Write([]byte(path + "\x00" + ex + "\x00" + is))
	return hex.EncodeToString(mac.Sum(nil))
}

// addFiles stores files as attachments of msg, served under /attachments. The caller holds s.mu.
func (s *Server) addFiles(msg *Message, files []File) {
	for _, f := range files {
		id := s.nextID()
		name := f.Filename
		if name == "" {
			name = "file"
		}
		f.Filename = name
		u := s.signedURL("/attachments/" + msg.ChannelID + "/" + id + "/" + url.PathEscape(name))
		msg.Attachments = append(msg.Attachments, &discordgo.MessageAttachment{
			ID: id, URL: u, ProxyURL: u, Filename: name, ContentType: f.ContentType, Size: len(f.Data),
		})
		msg.Files = append(msg.Files, f)
		s.files[id] = f
	}
}

// setMentions fills Mentions from <@id> in the content. The caller holds s.mu.
func (s *Server) setMentions(m *discordgo.Message) {
	m.Mentions = []*discordgo.User{}
	seen := map[string]bool{}
	for _, loc := range mentionRe.FindAllStringSubmatchIndex(m.Content, -1) {
		if escapedAt(m.Content, loc[0]) {
			continue
		}
		if u, ok := s.users[m.Content[loc[2]:loc[3]]]; ok && !seen[u.ID] {
			seen[u.ID] = true
			cp := *u
			m.Mentions = append(m.Mentions, &cp)
		}
	}
	m.MentionEveryone = unescapedIn(m.Content, "@everyone") || unescapedIn(m.Content, "@here")
}

// escapedAt reports whether the character at i of s follows an odd run of backslashes, which
// makes Discord show it literally (an escaped mention mentions no one).
func escapedAt(s string, i int) bool {
	n := 0
	for i > 0 && s[i-1] == '\\' {
		n++
		i--
	}
	return n%2 == 1
}

// unescapedIn reports whether s holds sub not escaped by a backslash.
func unescapedIn(s, sub string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], sub)
		if j < 0 {
			return false
		}
		if !escapedAt(s, i+j) {
			return true
		}
		i += j + 1
	}
}

// storeMessage appends msg to its channel and dispatches MESSAGE_CREATE. The caller holds s.mu.
func (s *Server) storeMessage(cs *channelState, msg *Message) {
	cs.messages = append(cs.messages, msg)
	cs.ch.LastMessageID = msg.ID
	s.msgChan[msg.ID] = cs.ch.ID
	s.emitMessage("MESSAGE_CREATE", msg.Message)
}

// findMessage returns a live message of a channel. The caller holds s.mu.
func (s *Server) findMessage(chID, msgID string) (*channelState, *Message, int) {
	cs, ok := s.channels[chID]
	if !ok {
		return nil, nil, -1
	}
	for i, m := range cs.messages {
		if m.ID == msgID {
			return cs, m, i
		}
	}
	return cs, nil, -1
}

// textChannel returns a channel messages can be sent to, or answers 10003/50008.
func (s *Server) textChannel(c *call, id string) *channelState {
	cs, ok := s.channels[id]
	if !ok {
		c.unknownChannel()
		return nil
	}
	switch cs.ch.Type {
	case discordgo.ChannelTypeGuildText, discordgo.ChannelTypeGuildNews:
		return cs
	}
	c.fail(http.StatusBadRequest, 50008, "Cannot send messages in a non-text channel")
	return nil
}

func (s *Server) postMessage(c *call) {
	p, files, ok := c.parsePayload()
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.textChannel(c, c.r.PathValue("c"))
	if cs == nil {
		return
	}
	if p.empty(files) {
		c.emptyMessage()
		return
	}
	if len(files) > 0 && !s.mayAttach(c, cs) {
		return
	}
	var ref *Message
	if r := p.MessageReference; r != nil {
		chID := r.ChannelID
		if chID == "" {
			chID = cs.ch.ID
		}
		_, ref, _ = s.findMessage(chID, r.MessageID)
		if ref == nil && (r.FailIfNotExists == nil || *r.FailIfNotExists) {
			c.formError("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
			return
		}
	}
	bot := *s.users[s.opts.BotID]
	msg := s.newMessage(cs.ch.ID, &bot, p, files)
	if ref != nil {
		msg.Type = discordgo.MessageTypeReply
		msg.MessageReference = &discordgo.MessageReference{MessageID: ref.ID, ChannelID: ref.ChannelID, GuildID: s.guild.id}
		msg.ReferencedMessage = cloneMsg(ref.Message)
	}
	s.storeMessage(cs, msg)
	c.writeMessage(http.StatusOK, msg.Message)
}

// writeMessage answers with a message, components included.
func (c *call) writeMessage(status int, m *discordgo.Message) {
	b, err := marshalMessage(m)
	if err != nil {
		c.fail(http.StatusInternalServerError, 0, "500: Internal Server Error")
		return
	}
	c.writeRaw(status, b)
}

func (c *call) writeMessages(ms []*discordgo.Message) {
	parts := make([]json.RawMessage, 0, len(ms))
	for _, m := range ms {
		b, err := marshalMessage(m)
		if err != nil {
			continue
		}
		parts = append(parts, b)
	}
	c.writeJSON(http.StatusOK, parts)
}

func (s *Server) getMessage(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, m, _ := s.findMessage(c.r.PathValue("c"), c.r.PathValue("m"))
	switch {
	case cs == nil:
		c.unknownChannel()
	case m == nil:
		c.unknownMessage()
	default:
		c.writeMessage(http.StatusOK, s.restView(m.Message))
	}
}

// restView is a message as REST returns it: without content when the application lacks the
// MessageContent intent. The caller holds s.mu.
func (s *Server) restView(m *discordgo.Message) *discordgo.Message {
	if !s.opts.DenyMessageContent {
		return m
	}
	return s.blanked(m)
}

// getMessages answers GET /channels/{c}/messages with limit (1–100, default 50) and before, after
// or around, newest first as Discord does.
func (s *Server) getMessages(c *call) {
	q := c.r.URL.Query()
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			c.formError("limit", "NUMBER_TYPE_MAX", "Must be between 1 and 100.")
			return
		}
		limit = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.channels[c.r.PathValue("c")]
	if !ok {
		c.unknownChannel()
		return
	}
	all := cs.messages
	var sel []*Message
	switch {
	case q.Get("after") != "":
		after := q.Get("after")
		for _, m := range all {
			if idLess(after, m.ID) {
				sel = append(sel, m)
				if len(sel) == limit {
					break
				}
			}
		}
	case q.Get("around") != "":
		around := q.Get("around")
		idx := len(all)
		for i, m := range all {
			if !idLess(m.ID, around) {
				idx = i
				break
			}
		}
		lo := max(0, idx-limit/2)
		hi := min(len(all), lo+limit)
		sel = append(sel, all[lo:hi]...)
	default:
		before := q.Get("before")
		for i := len(all) - 1; i >= 0 && len(sel) < limit; i-- {
			if before == "" || idLess(all[i].ID, before) {
				sel = append([]*Message{all[i]}, sel...)
			}
		}
	}
	out := make([]*discordgo.Message, 0, len(sel))
	for i := len(sel) - 1; i >= 0; i-- {
		out = append(out, s.restView(sel[i].Message))
	}
	c.writeMessages(out)
}

func (s *Server) patchMessage(c *call) {
	p, files, ok := c.parsePayload()
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, m, _ := s.findMessage(c.r.PathValue("c"), c.r.PathValue("m"))
	switch {
	case cs == nil:
		c.unknownChannel()
		return
	case m == nil:
		c.unknownMessage()
		return
	case m.Author == nil || m.Author.ID != s.opts.BotID || m.WebhookID != "":
		c.fail(http.StatusForbidden, 50005, "Cannot edit a message authored by another user")
		return
	}
	if !s.applyEdit(c, m, p, files) {
		return
	}
	s.emitMessage("MESSAGE_UPDATE", m.Message)
	c.writeMessage(http.StatusOK, m.Message)
}

// applyEdit changes m as an edit payload asks: content, embeds, components, kept attachments and
// new files; it refuses an edit that leaves the message empty. The caller holds s.mu.
func (s *Server) applyEdit(c *call, m *Message, p *messagePayload, files []File) bool {
	next := *m
	nm := *m.Message
	next.Message = &nm
	if p.Content != nil {
		nm.Content = *p.Content
	}
	if p.Embeds != nil {
		nm.Embeds = p.Embeds
	}
	if len(p.Components) > 0 && string(p.Components) != "null" {
		nm.Components = p.components
	}
	if p.Attachments != nil {
		keep := map[string]bool{}
		for _, a := range *p.Attachments {
			keep[strings.Trim(string(a.ID), `"`)] = true
		}
		var atts []*discordgo.MessageAttachment
		var fs []File
		for i, a := range nm.Attachments {
			if keep[a.ID] {
				atts = append(atts, a)
				if i < len(m.Files) {
					fs = append(fs, m.Files[i])
				}
			}
		}
		nm.Attachments = atts
		next.Files = fs
	}
	if p.AllowedMentions != nil {
		next.AllowedMentions = p.AllowedMentions
	}
	nm.Flags = nm.Flags&^discordgo.MessageFlagsLoading | p.Flags&discordgo.MessageFlagsSuppressEmbeds
	if m.Flags&discordgo.MessageFlagsEphemeral != 0 {
		nm.Flags |= discordgo.MessageFlagsEphemeral
	}
	s.addFiles(&next, files)
	if nm.Content == "" && len(nm.Embeds) == 0 && len(nm.Attachments) == 0 && len(nm.Components) == 0 {
		c.emptyMessage()
		return false
	}
	now := time.Now().UTC()
	nm.EditedTimestamp = &now
	s.setMentions(&nm)
	*m = next
	return true
}

func (s *Server) deleteMessage(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, m, _ := s.findMessage(c.r.PathValue("c"), c.r.PathValue("m"))
	switch {
	case cs == nil:
		c.unknownChannel()
	case m == nil:
		c.unknownMessage()
	default:
		s.dropMessage(cs, m.ID)
		c.noContent()
	}
}

// dropMessage removes a message and its pin and dispatches MESSAGE_DELETE. The caller holds s.mu.
func (s *Server) dropMessage(cs *channelState, id string) {
	for i, m := range cs.messages {
		if m.ID == id {
			cs.messages = append(cs.messages[:i], cs.messages[i+1:]...)
			break
		}
	}
	for i, p := range cs.pins {
		if p == id {
			cs.pins = append(cs.pins[:i], cs.pins[i+1:]...)
			break
		}
	}
	delete(s.msgChan, id)
	s.emit("MESSAGE_DELETE", discordgo.IntentsGuildMessages, map[string]string{
		"id": id, "channel_id": cs.ch.ID, "guild_id": s.guild.id,
	})
}

func (s *Server) getPins(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.channels[c.r.PathValue("c")]
	if !ok {
		c.unknownChannel()
		return
	}
	out := make([]*discordgo.Message, 0, len(cs.pins))
	for _, id := range cs.pins {
		if _, m, _ := s.findMessage(cs.ch.ID, id); m != nil {
			out = append(out, s.restView(m.Message))
		}
	}
	c.writeMessages(out)
}

// putPin pins a message. Like Discord it also posts a "pinned a message" system message (type 6)
// from the pinner, and dispatches CHANNEL_PINS_UPDATE.
func (s *Server) putPin(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, m, _ := s.findMessage(c.r.PathValue("c"), c.r.PathValue("m"))
	switch {
	case cs == nil:
		c.unknownChannel()
		return
	case m == nil:
		c.unknownMessage()
		return
	case m.Pinned:
		c.noContent()
		return
	case len(cs.pins) >= maxPins:
		c.fail(http.StatusBadRequest, 30003, "Maximum number of pins reached (250)")
		return
	}
	m.Pinned = true
	cs.pins = append([]string{m.ID}, cs.pins...)
	now := time.Now().UTC()
	cs.ch.LastPinTimestamp = &now
	bot := *s.users[s.opts.BotID]
	sys := s.newMessage(cs.ch.ID, &bot, &messagePayload{}, nil)
	sys.Type = discordgo.MessageTypeChannelPinnedMessage
	sys.MessageReference = &discordgo.MessageReference{MessageID: m.ID, ChannelID: cs.ch.ID, GuildID: s.guild.id}
	s.storeMessage(cs, sys)
	s.emit("CHANNEL_PINS_UPDATE", discordgo.IntentsGuilds, map[string]string{
		"guild_id": s.guild.id, "channel_id": cs.ch.ID, "last_pin_timestamp": now.Format(time.RFC3339Nano),
	})
	c.noContent()
}

func (s *Server) deletePin(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, m, _ := s.findMessage(c.r.PathValue("c"), c.r.PathValue("m"))
	switch {
	case cs == nil:
		c.unknownChannel()
		return
	case m == nil:
		c.unknownMessage()
		return
	}
	if m.Pinned {
		m.Pinned = false
		for i, p := range cs.pins {
			if p == m.ID {
				cs.pins = append(cs.pins[:i], cs.pins[i+1:]...)
				break
			}
		}
		s.emit("CHANNEL_PINS_UPDATE", discordgo.IntentsGuilds, map[string]string{"guild_id": s.guild.id, "channel_id": cs.ch.ID})
	}
	c.noContent()
}

// parseEmoji splits a reaction path segment: a unicode emoji, or name:id for a custom one.
func parseEmoji(e string) (*discordgo.Emoji, bool) {
	if e == "" || utf8.RuneCountInString(e) > 100 {
		return nil, false
	}
	if name, id, ok := strings.Cut(e, ":"); ok {
		if name == "" || id == "" {
			return nil, false
		}
		if _, err := strconv.ParseUint(id, 10, 64); err != nil {
			return nil, false
		}
		return &discordgo.Emoji{ID: id, Name: name}, true
	}
	return &discordgo.Emoji{Name: e}, true
}

func (s *Server) putReaction(c *call)    { s.react(c, true) }
func (s *Server) deleteReaction(c *call) { s.react(c, false) }

// react adds or removes the bot's reaction and dispatches MESSAGE_REACTION_ADD/REMOVE.
func (s *Server) react(c *call, add bool) {
	emoji, ok := parseEmoji(c.r.PathValue("e"))
	if !ok {
		c.fail(http.StatusBadRequest, 10014, "Unknown Emoji")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, m, _ := s.findMessage(c.r.PathValue("c"), c.r.PathValue("m"))
	switch {
	case cs == nil:
		c.unknownChannel()
		return
	case m == nil:
		c.unknownMessage()
		return
	}
	if !s.setReaction(m, emoji, add) {
		c.noContent()
		return
	}
	t := "MESSAGE_REACTION_REMOVE"
	d := map[string]any{"user_id": s.opts.BotID, "channel_id": cs.ch.ID, "message_id": m.ID, "guild_id": s.guild.id, "emoji": emoji}
	if add {
		t = "MESSAGE_REACTION_ADD"
		d["member"] = s.memberObject(s.opts.BotID, true)
	}
	s.emit(t, discordgo.IntentsGuildMessageReactions, d)
	c.noContent()
}

// setReaction records the bot's reaction on m; it reports whether anything changed.
func (s *Server) setReaction(m *Message, emoji *discordgo.Emoji, add bool) bool {
	key := emoji.APIName()
	for i, r := range m.Reactions {
		if r.Emoji == nil || r.Emoji.APIName() != key {
			continue
		}
		if add == r.Me {
			return false
		}
		if add {
			r.Me = true
			r.Count++
			return true
		}
		r.Me = false
		r.Count--
		if r.Count <= 0 {
			m.Reactions = append(m.Reactions[:i], m.Reactions[i+1:]...)
		}
		return true
	}
	if !add {
		return false
	}
	m.Reactions = append(m.Reactions, &discordgo.MessageReactions{Count: 1, Me: true, Emoji: emoji})
	return true
}

func (s *Server) postTyping(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.textChannel(c, c.r.PathValue("c"))
	if cs == nil {
		return
	}
	s.emit("TYPING_START", discordgo.IntentsGuildMessageTyping, map[string]any{
		"channel_id": cs.ch.ID, "guild_id": s.guild.id, "user_id": s.opts.BotID,
		"timestamp": time.Now().Unix(), "member": s.memberObject(s.opts.BotID, true),
	})
	c.noContent()
}
