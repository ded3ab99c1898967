package discord

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// Custom ids of the login modal and its fields, and the prefix of request buttons.
const (
	loginModalID     = "msn-login"
	loginEmailField  = "email"
	loginPassField   = "password"
	requestButtonPfx = "msn-req:"
	commandName      = "msn"
	actionTimeout    = 30 * time.Second
	buttonTTL        = 24 * time.Hour
)

// commands returns the guild commands the frontend registers: /msn with one subcommand per
// action. The password is never a command option: /msn login opens a modal.
func commands() []*discordgo.ApplicationCommand {
	str := func(name, desc string, required bool) *discordgo.ApplicationCommandOption {
		return &discordgo.ApplicationCommandOption{Type: discordgo.ApplicationCommandOptionString, Name: name, Description: desc, Required: required}
	}
	sub := func(name, desc string, opts ...*discordgo.ApplicationCommandOption) *discordgo.ApplicationCommandOption {
		return &discordgo.ApplicationCommandOption{Type: discordgo.ApplicationCommandOptionSubCommand, Name: name, Description: desc, Options: opts}
	}
	state := str("state", "Your new status", true)
	for _, c := range []struct{ name, value string }{
		{"Online", "online"}, {"Busy", "busy"}, {"Away", "away"}, {"Be right back", "brb"},
		{"On the phone", "phone"}, {"Out to lunch", "lunch"}, {"Idle", "idle"}, {"Appear offline", "invisible"},
	} {
		state.Choices = append(state.Choices, &discordgo.ApplicationCommandOptionChoice{Name: c.name, Value: c.value})
	}
	return []*discordgo.ApplicationCommand{{
		Name:        commandName,
		Description: "Your MSN Messenger account",
		Options: []*discordgo.ApplicationCommandOption{
			sub("login", "Sign in to MSN (asks for your e-mail and password privately)"),
			sub("logout", "Sign out of MSN and stop mirroring the account here"),
			sub("status", "Set your MSN status and, optionally, personal message", state, str("psm", "Personal message", false)),
			sub("name", "Set your MSN display name", str("name", "Display name", true)),
			sub("add", "Add a contact", str("email", "The contact's MSN e-mail", true)),
			sub("remove", "Remove a contact", str("email", "The contact's MSN e-mail", true)),
			sub("block", "Block a contact", str("email", "The contact's MSN e-mail", true)),
			sub("unblock", "Unblock a contact", str("email", "The contact's MSN e-mail", true)),
			sub("requests", "List pending contact requests"),
			sub("link", "Mirror here an MSN account already signed in through Matrix", str("code", "The code from the Matrix link-code command", true)),
			sub("link-code", "Get a one-time code to mirror your MSN account in Matrix too"),
			sub("chat", "Open the channel of a contact", str("email", "The contact's MSN e-mail", true)),
			sub("nudge", "Nudge the contact of this channel"),
		},
	}}
}

// buttonAction is what a request button does.
type buttonAction struct {
	account string
	contact string
	accept  bool
	expires time.Time
}

// requestButtons returns an action row with Accept and Decline buttons for a contact request.
// Their custom ids are random tokens (a handle may exceed the 100-character limit).
func (f *Frontend) requestButtons(account, contact string) discordgo.ActionsRow {
	token := func(accept bool) string {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		t := requestButtonPfx + hex.EncodeToString(b)
		now := f.now()
		f.mu.Lock()
		for k, a := range f.buttons {
			if now.After(a.expires) {
				delete(f.buttons, k)
			}
		}
		f.buttons[t] = buttonAction{account: account, contact: contact, accept: accept, expires: now.Add(buttonTTL)}
		f.mu.Unlock()
		return t
	}
	return discordgo.ActionsRow{Components: []discordgo.MessageComponent{
		discordgo.Button{Label: "Accept " + bridge.CleanLine(contact, 60), Style: discordgo.SuccessButton, CustomID: token(true)},
		discordgo.Button{Label: "Decline", Style: discordgo.DangerButton, CustomID: token(false)},
	}}
}

// onInteraction answers slash commands, the login modal and request buttons. Every answer is
// ephemeral; anything that talks to MSN is deferred first (Discord wants an answer within 3 s).
func (f *Frontend) onInteraction(_ *discordgo.Session, ic *discordgo.InteractionCreate) {
	if ic.Interaction == nil || ic.GuildID != f.cfg.GuildID {
		return
	}
	// It answers on a goroutine of its own: gateway handlers run on discordgo's reader.
	f.goTracked(func() { f.interaction(ic) })
}

func (f *Frontend) interaction(ic *discordgo.InteractionCreate) {
	user := interactionUser(ic.Interaction)
	if user == "" {
		return
	}
	ctx := f.bgCtx
	switch ic.Type {
	case discordgo.InteractionApplicationCommand:
		data := ic.ApplicationCommandData()
		if data.Name != commandName || len(data.Options) == 0 || data.Options[0] == nil {
			return
		}
		f.command(ctx, ic.Interaction, user, data.Options[0])
	case discordgo.InteractionModalSubmit:
		if ic.ModalSubmitData().CustomID == loginModalID {
			f.loginSubmit(ctx, ic.Interaction, user)
		}
	case discordgo.InteractionMessageComponent:
		if id := ic.MessageComponentData().CustomID; strings.HasPrefix(id, requestButtonPfx) {
			f.requestButton(ctx, ic.Interaction, user, id)
		}
	}
}

func interactionUser(i *discordgo.Interaction) string {
	if i.Member != nil && i.Member.User != nil {
		return i.Member.User.ID
	}
	if i.User != nil {
		return i.User.ID
	}
	return ""
}

// reply answers an interaction at once with an ephemeral message.
func (f *Frontend) reply(ctx context.Context, i *discordgo.Interaction, text string) {
	err := f.respond(ctx, i, &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Content: text, Flags: discordgo.MessageFlagsEphemeral, AllowedMentions: noMentions()},
	})
	if err != nil {
		f.log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to answer an interaction")
	}
}

// deferReply acknowledges an interaction with an ephemeral "thinking…" (type 5), to be edited
// by finish.
func (f *Frontend) deferReply(ctx context.Context, i *discordgo.Interaction) bool {
	err := f.respond(ctx, i, &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseDeferredChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Flags: discordgo.MessageFlagsEphemeral},
	})
	if err != nil {
		f.log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to defer an interaction")
		return false
	}
	return true
}

// finish edits a deferred answer.
func (f *Frontend) finish(ctx context.Context, i *discordgo.Interaction, text string) {
	_, err := f.s.InteractionResponseEdit(i, &discordgo.WebhookEdit{Content: &text, AllowedMentions: noMentions()},
		discordgo.WithContext(ctx))
	if err != nil {
		f.log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to edit an interaction answer")
	}
}

// resolveAccount picks the account a command acts on: the one whose channel it was run in, or
// the user's only account. refusal is the answer when there is none or the user does not own it.
func (f *Frontend) resolveAccount(i *discordgo.Interaction, user string) (p *portal, acc *bridge.Account, chat bridge.ChatID, refusal string) {
	if ref, ok := f.channel(i.ChannelID); ok {
		if ref.p.owner() != user {
			return nil, nil, "", "⛔ This MSN account belongs to someone else: only its owner can use it."
		}
		return ref.p, ref.p.account(), ref.chat, ""
	}
	accs := f.core.AccountsFor(bridge.FrontendUser{Frontend: FrontendName, UserID: user})
	switch len(accs) {
	case 0:
		return nil, nil, "", "You have no MSN account here yet. Use `/msn login`, or `/msn link` with a code from Matrix."
	case 1:
		return f.portalByHandle(accs[0].Handle()), accs[0], "", ""
	}
	return nil, nil, "", "You have several MSN accounts: run the command in one of their channels."
}

// command runs one /msn subcommand.
func (f *Frontend) command(ctx context.Context, i *discordgo.Interaction, user string, sub *discordgo.ApplicationCommandInteractionDataOption) {
	opt := func(name string) string {
		for _, o := range sub.Options {
			if o != nil && o.Name == name && o.Type == discordgo.ApplicationCommandOptionString {
				v, _ := o.Value.(string) // StringValue panics on a value of another type
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	owner := bridge.FrontendUser{Frontend: FrontendName, UserID: user}
	switch sub.Name {
	case "login":
		f.openLoginModal(ctx, i)
		return
	case "link":
		if !f.deferReply(ctx, i) {
			return
		}
		actx, cancel := context.WithTimeout(ctx, actionTimeout)
		defer cancel()
		acc, err := f.core.RedeemLinkCode(actx, opt("code"), owner)
		switch {
		case errors.Is(err, bridge.ErrInvalidLinkCode):
			f.finish(ctx, i, "❌ "+bridge.Sentence(failureText(err))+" Ask Matrix for a new one with `link-code`.")
		case err != nil:
			f.finish(ctx, i, "❌ Could not link the account: "+failureText(err))
		default:
			f.finish(ctx, i, "✅ **"+shown(acc.Handle(), bridge.MaxShownName)+"** is now mirrored here too (same MSN session). Your contacts will appear in its category.")
		}
		return
	}

	p, acc, chat, refusal := f.resolveAccount(i, user)
	if refusal != "" {
		f.reply(ctx, i, refusal)
		return
	}
	if !f.deferReply(ctx, i) {
		return
	}
	actx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	result := func(err error, ok string) {
		if err != nil {
			f.finish(ctx, i, "❌ "+failureText(err))
			return
		}
		f.finish(ctx, i, ok)
	}
	handle := acc.Handle()
	email := opt("email")
	switch sub.Name {
	case "logout":
		err := f.core.Logout(actx, owner, handle)
		if lp := f.portalByHandle(handle); err == nil && lp != nil {
			// The account's channels stay, for their history, but only for a Discord owner
			// it still has.
			lp.syncPermissions(actx)
			_ = lp.notice(actx, "👋 Logged out of MSN by <@"+user+">.")
		}
		result(err, "✅ Logged out of **"+handle+"** here.")
	case "status":
		st, err := bridge.ParseStatus(opt("state"))
		if err == nil {
			err = acc.SetStatus(actx, FrontendName, st)
		}
		if err == nil && opt("psm") != "" {
			err = acc.SetPSM(actx, FrontendName, opt("psm"))
		}
		result(err, "✅ Status set to **"+statusLabel(st)+"**.")
	case "name":
		result(acc.SetName(actx, FrontendName, opt("name")), "✅ Display name set.")
	case "add":
		result(acc.AddContact(actx, email, ""), "✅ Added **"+shown(email, bridge.MaxShownName)+"**.")
	case "remove":
		result(acc.RemoveContact(actx, email), "✅ Removed **"+shown(email, bridge.MaxShownName)+"**.")
	case "block":
		result(acc.Block(actx, email), "✅ Blocked **"+shown(email, bridge.MaxShownName)+"**.")
	case "unblock":
		result(acc.Unblock(actx, email), "✅ Unblocked **"+shown(email, bridge.MaxShownName)+"**.")
	case "requests":
		f.listRequests(ctx, i, acc)
	case "link-code":
		f.linkCode(ctx, actx, i, acc, owner)
	case "chat":
		h, err := bridge.ValidateHandle(email)
		if err == nil && p == nil {
			err = errors.New("the account is not mirrored here yet; try again in a moment")
		}
		var ch *chatChannel
		if err == nil {
			ch, err = p.ensureChat(actx, bridge.DirectChat(h))
		}
		if err != nil {
			result(err, "")
			return
		}
		p.mu.Lock()
		id := ch.id
		p.mu.Unlock()
		f.finish(ctx, i, "💬 <#"+id+">")
	case "nudge":
		if chat == "" || chat.IsGroup() {
			f.finish(ctx, i, "Run `/msn nudge` in a contact's channel.")
			return
		}
		result(acc.SendNudge(actx, FrontendName, chat), "📳 Nudge sent.")
	default:
		f.finish(ctx, i, "Unknown command.")
	}
}

// openLoginModal answers /msn login with a modal asking for the e-mail and password.
func (f *Frontend) openLoginModal(ctx context.Context, i *discordgo.Interaction) {
	err := f.respond(ctx, i, &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseModal,
		Data: &discordgo.InteractionResponseData{
			CustomID: loginModalID,
			Title:    "Sign in to MSN",
			Components: []discordgo.MessageComponent{
				discordgo.ActionsRow{Components: []discordgo.MessageComponent{discordgo.TextInput{
					CustomID: loginEmailField, Label: "E-mail", Style: discordgo.TextInputShort,
					Placeholder: "you@hotmail.com", Required: true, MinLength: 3, MaxLength: 129,
				}}},
				discordgo.ActionsRow{Components: []discordgo.MessageComponent{discordgo.TextInput{
					CustomID: loginPassField, Label: "Password", Style: discordgo.TextInputShort,
					Required: true, MinLength: 1, MaxLength: 128,
				}}},
			},
		},
	})
	if err != nil {
		f.log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to open the login modal")
	}
}

// modalValues returns the text inputs of a modal submit by custom id.
func modalValues(data discordgo.ModalSubmitInteractionData) map[string]string {
	out := map[string]string{}
	var walk func(cs []discordgo.MessageComponent)
	walk = func(cs []discordgo.MessageComponent) {
		for _, c := range cs {
			switch x := c.(type) {
			case *discordgo.ActionsRow:
				walk(x.Components)
			case discordgo.ActionsRow:
				walk(x.Components)
			case *discordgo.TextInput:
				out[x.CustomID] = x.Value
			case discordgo.TextInput:
				out[x.CustomID] = x.Value
			}
		}
	}
	walk(data.Components)
	return out
}

// loginSubmit logs the account in with the modal's e-mail and password: deferred at once, then
// the answer edited with the outcome. The password is never logged or echoed.
func (f *Frontend) loginSubmit(ctx context.Context, i *discordgo.Interaction, user string) {
	vals := modalValues(i.ModalSubmitData())
	email, password := strings.TrimSpace(vals[loginEmailField]), vals[loginPassField]
	if !f.deferReply(ctx, i) {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, f.cfg.LoginTimeout)
	defer cancel()
	owner := bridge.FrontendUser{Frontend: FrontendName, UserID: user}
	acc, err := f.core.Login(lctx, owner, email, password)
	if err != nil {
		f.log.Info().Err(bridge.ScrubError(err)).Str("user_id", user).Msg("MSN login from Discord failed")
		f.finish(ctx, i, "❌ "+loginError(err))
		return
	}
	f.log.Info().Str("user_id", user).Str("account", acc.Handle()).Msg("MSN login from Discord")
	where := ""
	if p := f.portalByHandle(acc.Handle()); p != nil {
		if id, err := p.ensureRoster(lctx); err == nil {
			where = " Your contacts are in <#" + id + ">."
		}
	}
	f.finish(ctx, i, "✅ Signed in to MSN as **"+acc.Handle()+"**."+where)
}

// loginError explains a failed login to the user: bridge.UserMessage as a sentence, with this
// frontend's way to share an account and to fill the form.
func loginError(err error) string {
	if errors.Is(err, bridge.ErrInvalidArgument) && !errors.Is(err, bridge.ErrInvalidHandle) {
		return "Enter both the e-mail and the password."
	}
	msg := bridge.Sentence(failureText(err))
	if errors.Is(err, bridge.ErrAlreadyBridged) {
		msg += " If it is yours, run `link-code` in Matrix and use the code here with `/msn link`."
	}
	return msg
}

// listRequests edits a deferred answer into the pending requests with buttons (up to 5, the
// number of action rows a message may have).
func (f *Frontend) listRequests(ctx context.Context, i *discordgo.Interaction, acc *bridge.Account) {
	reqs := acc.PendingRequests()
	if len(reqs) == 0 {
		f.finish(ctx, i, "No pending contact requests.")
		return
	}
	var lines []string
	var rows []discordgo.MessageComponent
	for n, c := range reqs {
		if n == 5 {
			lines = append(lines, fmt.Sprintf("…and %d more: answer these first.", len(reqs)-5))
			break
		}
		lines = append(lines, "📨 "+contactLabel(c))
		rows = append(rows, f.requestButtons(acc.Handle(), c.Handle))
	}
	text := strings.Join(lines, "\n")
	_, err := f.s.InteractionResponseEdit(i, &discordgo.WebhookEdit{Content: &text, Components: &rows, AllowedMentions: noMentions()},
		discordgo.WithContext(ctx))
	if err != nil {
		f.log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to list contact requests")
	}
}

// requestButton accepts or declines a contact request; only the account's owner may.
func (f *Frontend) requestButton(ctx context.Context, i *discordgo.Interaction, user, id string) {
	f.mu.Lock()
	a, ok := f.buttons[id]
	f.mu.Unlock()
	if !ok || f.now().After(a.expires) {
		f.reply(ctx, i, "This button has expired. Run `/msn requests` again.")
		return
	}
	acc := f.core.Account(a.account)
	if acc == nil || !acc.IsOwner(bridge.FrontendUser{Frontend: FrontendName, UserID: user}) {
		f.reply(ctx, i, "⛔ This MSN account belongs to someone else: only its owner can answer its requests.")
		return
	}
	if !f.deferReply(ctx, i) {
		return
	}
	actx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	var err error
	if a.accept {
		err = acc.AcceptRequest(actx, a.contact, true)
	} else {
		err = acc.DeclineRequest(actx, a.contact, false)
	}
	if err != nil {
		f.finish(ctx, i, "❌ "+failureText(err))
		return
	}
	f.mu.Lock()
	for k, b := range f.buttons {
		if b.account == a.account && b.contact == a.contact {
			delete(f.buttons, k)
		}
	}
	f.mu.Unlock()
	if a.accept {
		f.finish(ctx, i, "✅ Accepted **"+shown(a.contact, bridge.MaxShownName)+"** and added them to your contacts.")
	} else {
		f.finish(ctx, i, "✅ Declined **"+shown(a.contact, bridge.MaxShownName)+"**.")
	}
}
