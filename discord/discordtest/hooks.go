package discordtest

import (
	"net/http"

	"github.com/bwmarrin/discordgo"
)

// InjectUserMessage makes a human post content, with optional attachments, in a channel: the
// message is stored and dispatched as MESSAGE_CREATE with member, as Discord does for guild
// messages. It returns a copy of the message, or nil when the channel is not a text channel or
// the user is unknown.
func (s *Server) InjectUserMessage(channelID, userID, content string, attachments ...Attachment) *discordgo.Message {
	return s.injectUserMessage(channelID, userID, content, nil, attachments)
}

// InjectUserReply is InjectUserMessage for a reply to messageID in the same channel (type 19
// with message_reference and referenced_message). It returns nil when the replied-to message is
// unknown.
func (s *Server) InjectUserReply(channelID, userID, messageID, content string) *discordgo.Message {
	return s.injectUserMessage(channelID, userID, content, &messageID, nil)
}

func (s *Server) injectUserMessage(channelID, userID, content string, replyTo *string, attachments []Attachment) *discordgo.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[userID]
	if !ok {
		return nil
	}
	cs, ok := s.channels[channelID]
	if !ok || cs.ch.Type != discordgo.ChannelTypeGuildText && cs.ch.Type != discordgo.ChannelTypeGuildNews {
		return nil
	}
	var ref *Message
	if replyTo != nil {
		if _, ref, _ = s.findMessage(channelID, *replyTo); ref == nil {
			return nil
		}
	}
	files := make([]File, 0, len(attachments))
	for _, a := range attachments {
		ct := a.ContentType
		if ct == "" {
			ct = http.DetectContentType(a.Data)
		}
		files = append(files, File{Filename: a.Filename, ContentType: ct, Data: append([]byte(nil), a.Data...)})
	}
	author := *u
	msg := s.newMessage(channelID, &author, &messagePayload{Content: &content}, files)
	if ref != nil {
		msg.Type = discordgo.MessageTypeReply
		msg.MessageReference = &discordgo.MessageReference{MessageID: ref.ID, ChannelID: channelID, GuildID: s.guild.id}
		msg.ReferencedMessage = cloneMsg(ref.Message)
	}
	s.storeMessage(cs, msg)
	return cloneMsg(msg.Message)
}

// InjectUserEdit makes the author of a message edit it to content and dispatches MESSAGE_UPDATE.
// It reports whether the message exists.
func (s *Server) InjectUserEdit(channelID, messageID, content string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, m, _ := s.findMessage(channelID, messageID)
	if m == nil {
		return false
	}
	nm := *m.Message
	nm.Content = content
	now := nowUTC()
	nm.EditedTimestamp = &now
	s.setMentions(&nm)
	m.Message = &nm
	s.emitMessage("MESSAGE_UPDATE", m.Message)
	return true
}

// InjectUserDelete deletes a message as a human would and dispatches MESSAGE_DELETE. It reports
// whether the message existed.
func (s *Server) InjectUserDelete(channelID, messageID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, m, _ := s.findMessage(channelID, messageID)
	if m == nil {
		return false
	}
	s.dropMessage(cs, messageID)
	return true
}

// InjectReaction makes a human react to a message with a unicode emoji (or name:id) and
// dispatches MESSAGE_REACTION_ADD. It reports whether the user and message exist.
func (s *Server) InjectReaction(channelID, messageID, userID, emoji string) bool {
	e, ok := parseEmoji(emoji)
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[userID]; !ok {
		return false
	}
	_, m, _ := s.findMessage(channelID, messageID)
	if m == nil {
		return false
	}
	found := false
	for _, r := range m.Reactions {
		if r.Emoji != nil && r.Emoji.APIName() == e.APIName() {
			r.Count++
			found = true
		}
	}
	if !found {
		m.Reactions = append(m.Reactions, &discordgo.MessageReactions{Count: 1, Emoji: e})
	}
	s.emit("MESSAGE_REACTION_ADD", discordgo.IntentsGuildMessageReactions, map[string]any{
		"user_id": userID, "channel_id": channelID, "message_id": messageID, "guild_id": s.guild.id,
		"emoji": e, "member": s.memberObject(userID, true),
	})
	return true
}

// DeleteChannel deletes a channel as a human would in the client: its messages and webhooks go
// with it, CHANNEL_DELETE is dispatched. It reports whether the channel existed.
func (s *Server) DeleteChannel(id string) bool {
	_, ok := s.removeChannel(id)
	return ok
}

// AddUser adds a human member and returns its id; GUILD_MEMBER_ADD is dispatched to sessions
// with the GuildMembers intent.
func (s *Server) AddUser(username string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := &discordgo.User{ID: s.nextID(), Username: username, Discriminator: "0", GlobalName: username}
	s.users[u.ID] = u
	s.opts.Users = append(s.opts.Users, u)
	m := s.memberObject(u.ID, true)
	m["guild_id"] = s.guild.id
	s.emit("GUILD_MEMBER_ADD", discordgo.IntentsGuildMembers, m)
	return u.ID
}
