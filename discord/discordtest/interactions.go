package discordtest

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

// maxCommands is Discord's limit of chat-input commands per scope.
const maxCommands = 100

var commandNameRe = regexp.MustCompile(`^[-_\p{L}\p{N}]{1,32}$`)

// commandScope checks {a} and {g} of a command route; "" is the global scope.
func (s *Server) commandScope(c *call) (string, bool) {
	if c.r.PathValue("a") != s.opts.ApplicationID {
		c.fail(http.StatusForbidden, 50001, "Missing Access")
		return "", false
	}
	g := c.r.PathValue("g")
	if g != "" && g != s.guild.id {
		c.fail(http.StatusForbidden, 50001, "Missing Access")
		return "", false
	}
	return g, true
}

func (s *Server) getCommands(c *call) {
	g, ok := s.commandScope(c)
	if !ok {
		return
	}
	c.writeJSON(http.StatusOK, s.Commands(g))
}

// putCommands is the bulk overwrite: it validates every command, keeps the id of a command that
// already existed with the same name and type, and answers the new set with ids.
func (s *Server) putCommands(c *call) {
	g, ok := s.commandScope(c)
	if !ok {
		return
	}
	var cmds []*discordgo.ApplicationCommand
	if !c.decode(&cmds, false) {
		return
	}
	if len(cmds) > maxCommands {
		c.formError("_root", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
		return
	}
	seen := map[string]bool{}
	for i, cmd := range cmds {
		field := strings.Join([]string{itoa(i), "name"}, ".")
		if cmd == nil {
			c.formError(itoa(i), "BASE_TYPE_REQUIRED", "This field is required")
			return
		}
		if cmd.Type == 0 {
			cmd.Type = discordgo.ChatApplicationCommand
		}
		if cmd.Type == discordgo.ChatApplicationCommand {
			if !commandNameRe.MatchString(cmd.Name) || strings.ToLower(cmd.Name) != cmd.Name {
				c.formError(field, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
				return
			}
			if n := utf8.RuneCountInString(cmd.Description); n < 1 || n > 100 {
				c.formError(itoa(i)+".description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
				return
			}
		} else if n := utf8.RuneCountInString(cmd.Name); n < 1 || n > 32 {
			c.formError(field, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
			return
		}
		key := itoa(int(cmd.Type)) + "/" + cmd.Name
		if seen[key] {
			c.formError(field, "APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique")
			return
		}
		seen[key] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := map[string]string{}
	for _, cmd := range s.commands[g] {
		old[itoa(int(cmd.Type))+"/"+cmd.Name] = cmd.ID
	}
	out := make([]*discordgo.ApplicationCommand, 0, len(cmds))
	for _, cmd := range cmds {
		cp := *cmd
		cp.ID = old[itoa(int(cp.Type))+"/"+cp.Name]
		if cp.ID == "" {
			cp.ID = s.nextID()
		}
		cp.ApplicationID = s.opts.ApplicationID
		cp.GuildID = g
		cp.Version = s.nextID()
		out = append(out, &cp)
	}
	s.commands[g] = out
	res := make([]*discordgo.ApplicationCommand, 0, len(out))
	for _, cmd := range out {
		cp := *cmd
		res = append(res, &cp)
	}
	c.writeJSON(http.StatusOK, res)
}

func itoa(i int) string { return strconv.Itoa(i) }

// injectInteraction creates an interaction from a human and dispatches INTERACTION_CREATE. It
// returns empty strings when the user or the channel is unknown.
func (s *Server) injectInteraction(userID, channelID string, t discordgo.InteractionType, data discordgo.InteractionData, msg *discordgo.Message) (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[userID]; !ok {
		return "", ""
	}
	if _, ok := s.channels[channelID]; !ok {
		return "", ""
	}
	u := *s.users[userID]
	locale := discordgo.EnglishUS
	in := &discordgo.Interaction{
		ID:             s.nextID(),
		AppID:          s.opts.ApplicationID,
		Type:           t,
		Data:           data,
		GuildID:        s.guild.id,
		ChannelID:      channelID,
		Message:        msg,
		AppPermissions: 1071698660929,
		Member: &discordgo.Member{
			GuildID: s.guild.id, JoinedAt: s.guild.joined, User: &u, Roles: []string{},
			Permissions: 1071698660929,
		},
		Locale:       discordgo.EnglishUS,
		GuildLocale:  &locale,
		Token:        "aW50ZXJhY3Rpb246" + randomToken(24),
		Version:      1,
		Entitlements: []*discordgo.Entitlement{},
	}
	st := &interactionState{i: in, created: time.Now()}
	s.inters[in.ID] = st
	s.byToken[in.Token] = st
	s.emitRaw("INTERACTION_CREATE", 0, func(_ discordgo.Intent) any { return interactionJSON{in} })
	return in.ID, in.Token
}

// interactionJSON marshals an interaction with the components of its message and modal data.
type interactionJSON struct{ *discordgo.Interaction }

// MarshalJSON implements json.Marshaler.
func (j interactionJSON) MarshalJSON() ([]byte, error) {
	type plain discordgo.Interaction
	var msg json.RawMessage
	if j.Message != nil {
		b, err := marshalMessage(j.Message)
		if err != nil {
			return nil, err
		}
		msg = b
	}
	var data any = j.Data
	if d, ok := j.Data.(discordgo.ModalSubmitInteractionData); ok {
		// discordgo leaves modal components out of JSON; Discord sends them.
		comps := d.Components
		if comps == nil {
			comps = []discordgo.MessageComponent{}
		}
		data = struct {
			CustomID   string                       `json:"custom_id"`
			Components []discordgo.MessageComponent `json:"components"`
		}{d.CustomID, comps}
	}
	return json.Marshal(struct {
		*plain
		Data    any             `json:"data"`
		Message json.RawMessage `json:"message,omitempty"`
	}{(*plain)(j.Interaction), data, msg})
}

// InjectSlashCommand makes userID run a slash command in channelID: an INTERACTION_CREATE of
// type 2. When data.ID is empty it is filled from the registered guild command of that name, and
// data.CommandType defaults to chat input. It returns the interaction's id and token, or empty
// strings when the user or the channel is unknown.
func (s *Server) InjectSlashCommand(userID, channelID string, data discordgo.ApplicationCommandInteractionData) (interactionID, token string) {
	if data.CommandType == 0 {
		data.CommandType = discordgo.ChatApplicationCommand
	}
	if data.ID == "" {
		for _, cmd := range s.Commands(s.guild.id) {
			if cmd.Name == data.Name {
				data.ID = cmd.ID
			}
		}
	}
	return s.injectInteraction(userID, channelID, discordgo.InteractionApplicationCommand, data, nil)
}

// InjectModalSubmit makes userID submit a modal in channelID: an INTERACTION_CREATE of type 5.
// It returns the interaction's id and token, or empty strings when the user or the channel is
// unknown.
func (s *Server) InjectModalSubmit(userID, channelID string, data discordgo.ModalSubmitInteractionData) (interactionID, token string) {
	return s.injectInteraction(userID, channelID, discordgo.InteractionModalSubmit, data, nil)
}

// InjectComponent makes userID click a button or pick from a select menu on message messageID in
// channelID: an INTERACTION_CREATE of type 3 carrying the message. It returns the interaction's id
// and token, or empty strings when the user, the channel or the message is unknown.
func (s *Server) InjectComponent(userID, channelID, messageID string, data discordgo.MessageComponentInteractionData) (interactionID, token string) {
	s.mu.Lock()
	_, m, _ := s.findMessage(channelID, messageID)
	var msg *discordgo.Message
	if m != nil {
		msg = cloneMsg(m.Message)
	}
	s.mu.Unlock()
	if msg == nil {
		return "", ""
	}
	return s.injectInteraction(userID, channelID, discordgo.InteractionMessageComponent, data, msg)
}

// interactionCallback takes the initial response. It answers 404 10062 for an unknown
// interaction or one older than Options.InteractionDeadline, 400 40060 when one was already
// accepted, and 400 50035 for a response type the interaction does not allow. Every attempt is
// recorded. Type 4 and 5 create the @original message (kept out of the channel and not
// dispatched when ephemeral), 7 edits the component's message, 6 and 9 create nothing.
func (s *Server) interactionCallback(c *call) {
	p, files, ok := c.payload()
	if !ok {
		return
	}
	var resp struct {
		Type discordgo.InteractionResponseType `json:"type"`
		Data json.RawMessage                   `json:"data"`
	}
	if len(p) == 0 || json.Unmarshal(p, &resp) != nil {
		c.badJSON()
		return
	}
	data := &messagePayload{}
	if len(resp.Data) > 0 && string(resp.Data) != "null" {
		if json.Unmarshal(resp.Data, data) != nil {
			c.badJSON()
			return
		}
	}
	if !c.checkPayload(data) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.inters[c.r.PathValue("i")]
	if !ok || st.i.Token != c.r.PathValue("tok") {
		c.fail(http.StatusNotFound, 10062, "Unknown interaction")
		return
	}
	rec := InteractionResponse{Type: resp.Type, Flags: data.Flags, CustomID: data.CustomID, Title: data.Title,
		Raw: append(json.RawMessage(nil), p...), At: time.Now()}
	if data.Content != nil {
		rec.Content = *data.Content
	}
	accepted := st.acked()
	idx := len(st.responses)
	st.responses = append(st.responses, rec)
	// reject records why an attempt failed; the response itself is written next to it.
	reject := func(code int) { st.responses[idx].Code = code }
	if time.Since(st.created) > s.opts.InteractionDeadline {
		st.responses[idx].Code = 10062
		c.fail(http.StatusNotFound, 10062, "Unknown interaction")
		return
	}
	if accepted {
		st.responses[idx].Code = 40060
		c.fail(http.StatusBadRequest, 40060, "Interaction has already been acknowledged.")
		return
	}
	it := st.i.Type
	switch resp.Type {
	case discordgo.InteractionResponseChannelMessageWithSource:
		if data.empty(files) {
			reject(50006)
			c.emptyMessage()
			return
		}
		st.original = s.interactionMessageNew(st, data, files, 0)
	case discordgo.InteractionResponseDeferredChannelMessageWithSource:
		st.original = s.interactionMessageNew(st, &messagePayload{}, nil, discordgo.MessageFlagsLoading|data.Flags&discordgo.MessageFlagsEphemeral)
	case discordgo.InteractionResponseDeferredMessageUpdate, discordgo.InteractionResponseUpdateMessage:
		if it != discordgo.InteractionMessageComponent && it != discordgo.InteractionModalSubmit || st.i.Message == nil && resp.Type == discordgo.InteractionResponseUpdateMessage {
			reject(50035)
			c.formError("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Interaction response type is invalid for this interaction.")
			return
		}
		if resp.Type == discordgo.InteractionResponseUpdateMessage {
			_, m, _ := s.findMessage(st.i.ChannelID, st.i.Message.ID)
			if m == nil {
				reject(10008)
				c.unknownMessage()
				return
			}
			if !s.applyEdit(c, m, data, files) {
				reject(50006)
				return
			}
			s.emitMessage("MESSAGE_UPDATE", m.Message)
		}
	case discordgo.InteractionResponseModal:
		if it == discordgo.InteractionModalSubmit {
			reject(50035)
			c.formError("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Interaction response type is invalid for this interaction.")
			return
		}
		if data.CustomID == "" || data.Title == "" || len(data.components) == 0 {
			reject(50035)
			c.formError("data", "BASE_TYPE_REQUIRED", "custom_id, title and components are required.")
			return
		}
	case discordgo.InteractionApplicationCommandAutocompleteResult:
		if it != discordgo.InteractionApplicationCommandAutocomplete {
			reject(50035)
			c.formError("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Interaction response type is invalid for this interaction.")
			return
		}
	default:
		reject(50035)
		c.formError("type", "BASE_TYPE_CHOICES", "Value must be one of {4, 5, 6, 7, 8, 9}.")
		return
	}
	st.responses[idx].Accepted = true
	c.noContent()
}

// acked reports whether an initial response was accepted. The caller holds s.mu.
func (st *interactionState) acked() bool {
	for _, r := range st.responses {
		if r.Accepted {
			return true
		}
	}
	return false
}

// interactionMessageNew creates an interaction's response or followup message: authored by the
// bot with webhook_id and application_id set to the application. Ephemeral ones (flag 64) are
// kept out of the channel and not dispatched. The caller holds s.mu.
func (s *Server) interactionMessageNew(st *interactionState, p *messagePayload, files []File, flags discordgo.MessageFlags) *Message {
	bot := *s.users[s.opts.BotID]
	msg := s.newMessage(st.i.ChannelID, &bot, p, files)
	msg.Flags = p.Flags&(discordgo.MessageFlagsEphemeral|discordgo.MessageFlagsSuppressEmbeds) | flags
	msg.WebhookID = s.opts.ApplicationID
	if st.i.Type == discordgo.InteractionApplicationCommand {
		msg.Type = discordgo.MessageTypeChatInputCommand
	}
	var user *discordgo.User
	if st.i.Member != nil {
		user = st.i.Member.User
	}
	msg.Interaction = &discordgo.MessageInteraction{ID: st.i.ID, Type: st.i.Type, User: user}
	if st.i.Type == discordgo.InteractionApplicationCommand {
		msg.Interaction.Name = st.i.ApplicationCommandData().Name
	}
	msg.Ephemeral = msg.Flags&discordgo.MessageFlagsEphemeral != 0
	if !msg.Ephemeral {
		if cs, ok := s.channels[st.i.ChannelID]; ok {
			s.storeMessage(cs, msg)
		}
	}
	return msg
}

// tokenInteraction resolves the interaction token of /webhooks/{app}/{tok}… routes, answering
// 10015 for an unknown token and 50027 once the token expired. The caller holds s.mu.
func (s *Server) tokenInteraction(c *call) *interactionState {
	st, ok := s.byToken[c.r.PathValue("tok")]
	if !ok {
		c.unknownWebhook()
		return nil
	}
	if time.Since(st.created) > s.opts.InteractionTokenTTL {
		c.fail(http.StatusUnauthorized, 50027, "Invalid Webhook Token")
		return nil
	}
	return st
}

// followup sends a followup message: only after the interaction was acknowledged (10015 before).
func (s *Server) followup(c *call) {
	p, files, ok := c.parsePayload()
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.tokenInteraction(c)
	if st == nil {
		return
	}
	if !st.acked() {
		c.unknownWebhook()
		return
	}
	if p.empty(files) {
		c.emptyMessage()
		return
	}
	msg := s.interactionMessageNew(st, p, files, 0)
	msg.Type = discordgo.MessageTypeDefault
	st.followups = append(st.followups, msg)
	if wantWait(c.r) {
		c.writeMessage(http.StatusOK, msg.Message)
		return
	}
	c.noContent()
}

// interactionMessage serves GET, PATCH and DELETE of /webhooks/{app}/{tok}/messages/{m}, where
// {m} is @original or a followup id.
func (s *Server) interactionMessage(c *call) {
	var p *messagePayload
	var files []File
	if c.r.Method == http.MethodPatch {
		var ok bool
		if p, files, ok = c.parsePayload(); !ok {
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.tokenInteraction(c)
	if st == nil {
		return
	}
	id := c.r.PathValue("m")
	var m *Message
	idx := -1
	if id == "@original" {
		m = st.original
	} else {
		for i, f := range st.followups {
			if f.ID == id {
				m, idx = f, i
			}
		}
	}
	if m == nil {
		c.unknownMessage()
		return
	}
	switch c.r.Method {
	case http.MethodGet:
		c.writeMessage(http.StatusOK, m.Message)
	case http.MethodPatch:
		if !s.applyEdit(c, m, p, files) {
			return
		}
		if !m.Ephemeral {
			s.emitMessage("MESSAGE_UPDATE", m.Message)
		}
		c.writeMessage(http.StatusOK, m.Message)
	case http.MethodDelete:
		if !m.Ephemeral {
			if cs, live, _ := s.findMessage(m.ChannelID, m.ID); live != nil {
				s.dropMessage(cs, m.ID)
			}
		}
		if idx >= 0 {
			st.followups = append(st.followups[:idx], st.followups[idx+1:]...)
		} else {
			st.original = nil
		}
		c.noContent()
	}
}
