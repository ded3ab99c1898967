package matrix

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/bridgev2/provisionutil"
	"maunium.net/go/mautrix/event"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// HelpSectionMSN groups the MSN commands in help.
var HelpSectionMSN = commands.HelpSection{Name: "MSN", Order: 15}

// commandTimeout bounds one command's wait for MSN.
const commandTimeout = 30 * time.Second

// maxArgShown caps a command argument quoted back in a reply.
const maxArgShown = 40

func (mc *MSNConnector) commandHandlers() []commands.CommandHandler {
	h := func(name, args, desc string, fn func(ce *commands.Event, c *MSNClient, acc *bridge.Account)) commands.CommandHandler {
		return &commands.FullHandler{
			Name:          name,
			RequiresLogin: true,
			Help:          commands.HelpMeta{Section: HelpSectionMSN, Description: desc, Args: args},
			Func: func(ce *commands.Event) {
				c, acc := mc.commandAccount(ce)
				if acc == nil {
					return
				}
				fn(ce, c, acc)
			},
		}
	}
	return []commands.CommandHandler{
		h("status", "<online|busy|away|brb|phone|lunch|invisible>", "Set your MSN status.", cmdStatus),
		h("psm", "[text]", "Set your personal message (empty clears it).", cmdPSM),
		h("name", "<friendly name>", "Set your MSN friendly name.", cmdName),
		h("add", "<email>", "Add a contact to your MSN list.", handleAction("Added %s to your contact list.",
			func(ctx context.Context, acc *bridge.Account, h string) error { return acc.AddContact(ctx, h, "") })),
		h("remove", "<email>", "Remove a contact from your MSN list.", handleAction("Removed %s from your contact list.",
			func(ctx context.Context, acc *bridge.Account, h string) error { return acc.RemoveContact(ctx, h) })),
		h("block", "<email>", "Block a contact.", handleAction("Blocked %s.",
			func(ctx context.Context, acc *bridge.Account, h string) error { return acc.Block(ctx, h) })),
		h("unblock", "<email>", "Unblock a contact.", handleAction("Unblocked %s.",
			func(ctx context.Context, acc *bridge.Account, h string) error { return acc.Unblock(ctx, h) })),
		h("accept", "<email>", "Accept a contact request and add them back.", handleAction("Accepted %s.",
			func(ctx context.Context, acc *bridge.Account, h string) error { return acc.AcceptRequest(ctx, h, true) })),
		h("decline", "<email>", "Decline a contact request.", handleAction("Declined %s.",
			func(ctx context.Context, acc *bridge.Account, h string) error {
				return acc.DeclineRequest(ctx, h, false)
			})),
		h("requests", "", "List pending contact requests.", cmdRequests),
		h("contacts", "", "List your MSN contacts, their status and how to chat with them.", cmdContacts),
		h("chat", "<name or email>", "Open a chat with a contact, found by friendly name or e-mail address.", cmdChat),
		h("nudge", "", "Send a nudge in this DM portal.", cmdNudge),
		h("link-code", "", "Get a one-time code to use this MSN account in Discord too (`/msn link`).", cmdLinkCode),
		h("reconnect", "", "Reconnect a stopped MSN session (e.g. after signing in elsewhere).", cmdReconnect),
	}
}

// commandAccount finds the account a command acts on: the login of the portal it is run in,
// else the user's default login. Only the login's own Matrix user may act on it.
func (mc *MSNConnector) commandAccount(ce *commands.Event) (*MSNClient, *bridge.Account) {
	var login *bridgev2.UserLogin
	if ce.Portal != nil && ce.Portal.Receiver != "" {
		if l := ce.Bridge.GetCachedUserLoginByID(ce.Portal.Receiver); l != nil && l.UserMXID == ce.User.MXID {
			login = l
		}
	}
	if login == nil {
		login = ce.User.GetDefaultLogin()
	}
	if login == nil || login.UserMXID != ce.User.MXID {
		ce.Reply("You are not logged in to MSN. Use `login` first.")
		return nil, nil
	}
	c, ok := login.Client.(*MSNClient)
	if !ok {
		ce.Reply("That login is not an MSN login.")
		return nil, nil
	}
	acc := c.account()
	if acc == nil {
		ce.Reply("Your MSN account is not logged in to the bridge. Use `login` again.")
		return nil, nil
	}
	return c, acc
}

func cmdCtx(ce *commands.Event) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ce.Ctx, commandTimeout)
}

// humanError is the core's sentence for err (bridge.UserMessage), escaped for a command reply:
// replies are rendered as Markdown, and the sentence may quote the server.
func humanError(err error) string {
	return escapeMarkdown(bridge.UserMessage(err), maxErrorShown)
}

func handleAction(done string, fn func(ctx context.Context, acc *bridge.Account, handle string) error) func(*commands.Event, *MSNClient, *bridge.Account) {
	return func(ce *commands.Event, c *MSNClient, acc *bridge.Account) {
		if len(ce.Args) != 1 {
			ce.Reply("Usage: `$cmdprefix %s <email>`", ce.Command)
			return
		}
		handle, err := bridge.ValidateHandle(ce.Args[0])
		if err != nil {
			ce.Reply("%s", humanError(err))
			return
		}
		ctx, cancel := cmdCtx(ce)
		defer cancel()
		if err = fn(ctx, acc, handle); err != nil {
			ce.Reply("Failed: %s", humanError(err))
			return
		}
		ce.Reply(done, escapeMarkdown(handle, 0))
	}
}

func cmdStatus(ce *commands.Event, c *MSNClient, acc *bridge.Account) {
	if len(ce.Args) != 1 {
		st, _, _ := acc.Profile()
		ce.Reply("Your status is **%s**. Usage: `$cmdprefix status <online|busy|away|brb|phone|lunch|invisible>`", st)
		return
	}
	st, err := bridge.ParseStatus(ce.Args[0])
	if err != nil || st == bridge.StatusOffline {
		ce.Reply("Unknown status %s. Use one of online, busy, away, brb, phone, lunch, invisible.",
			escapeMarkdown(strconv.Quote(bridge.CleanLine(ce.Args[0], maxArgShown)), 0))
		return
	}
	ctx, cancel := cmdCtx(ce)
	defer cancel()
	if err = acc.SetStatus(ctx, FrontendName, st); err != nil {
		ce.Reply("Failed to set status: %s", humanError(err))
		return
	}
	ce.Reply("Status set to **%s**.", st)
}

// argText returns the text after the command word, trimmed. bridgev2's RawArgs still starts
// with the command word when it was typed in another case ("PSM hi") or after a space.
func argText(ce *commands.Event) string {
	raw := strings.TrimSpace(ce.RawArgs)
	if len(strings.Fields(raw)) > len(ce.Args) {
		if i := strings.IndexFunc(raw, unicode.IsSpace); i >= 0 {
			return strings.TrimSpace(raw[i:])
		}
		return ""
	}
	return raw
}

func cmdPSM(ce *commands.Event, c *MSNClient, acc *bridge.Account) {
	psm := argText(ce)
	ctx, cancel := cmdCtx(ce)
	defer cancel()
	if err := acc.SetPSM(ctx, FrontendName, psm); err != nil {
		ce.Reply("Failed to set personal message: %s", humanError(err))
		return
	}
	if psm == "" {
		ce.Reply("Personal message cleared.")
	} else {
		ce.Reply("Personal message set.")
	}
}

func cmdName(ce *commands.Event, c *MSNClient, acc *bridge.Account) {
	name := argText(ce)
	if name == "" {
		ce.Reply("Usage: `$cmdprefix name <friendly name>`")
		return
	}
	ctx, cancel := cmdCtx(ce)
	defer cancel()
	if err := acc.SetName(ctx, FrontendName, name); err != nil {
		ce.Reply("Failed to set name: %s", humanError(err))
		return
	}
	ce.Reply("Friendly name set.")
}

// replyNotices answers a command with notices that may carry remote text.
func replyNotices(ce *commands.Event, notices ...*notice) {
	for _, n := range notices {
		if _, err := ce.Bot.SendMessage(ce.Ctx, ce.OrigRoomID, event.EventMessage, &event.Content{Parsed: n.content()}, nil); err != nil {
			ce.Log.Err(err).Msg("Failed to reply to command")
			return
		}
	}
}

func cmdRequests(ce *commands.Event, c *MSNClient, acc *bridge.Account) {
	reqs := acc.PendingRequests()
	if len(reqs) == 0 {
		ce.Reply("No pending contact requests.")
		return
	}
	items := make([]*notice, 0, len(reqs))
	for _, r := range reqs {
		it := new(notice).remote(r.Handle, bridge.MaxShownName)
		if r.Name != "" && r.Name != r.Handle {
			it.text(" (").remote(r.Name, bridge.MaxShownName).text(")")
		}
		items = append(items, it)
	}
	header := new(notice).text("Pending contact requests (answer with ").code("accept <email>").
		text(" or ").code("decline <email>").text("):")
	replyNotices(ce, listNotices(header, items)...)
}

func cmdContacts(ce *commands.Event, c *MSNClient, acc *bridge.Account) {
	var items []*notice
	for _, ct := range acc.Contacts() {
		if !ct.Forward {
			continue
		}
		it := new(notice).remote(ct.Name, bridge.MaxShownName).text(" (").remote(ct.Handle, bridge.MaxShownName).
			text("): " + ct.Status.String())
		if ct.PSM != "" {
			it.text(" - ").remote(ct.PSM, bridge.MaxShownPSM)
		}
		if ct.Blocked {
			it.text(" [blocked]")
		}
		ghost := c.main.Bridge.Matrix.FormatGhostMXID(makeUserID(ct.Handle))
		it.text(" - ").link(string(ghost), ghost.URI().MatrixToURL()).text(" - ").code("chat " + ct.Handle)
		items = append(items, it)
	}
	if len(items) == 0 {
		ce.Reply("Your contact list is empty. Add someone with `$cmdprefix add <email>`.")
		return
	}
	header := new(notice).textf("%d contacts. To talk to one, send ", len(items)).code("chat <name or email>").
		text(", or start a direct chat with their Matrix user (the link):")
	replyNotices(ce, listNotices(header, items)...)
}

// maxChatMatches caps the contacts listed when a chat query matches several.
const maxChatMatches = 10

// cmdChat opens (or finds) the DM portal with the contact a query names: an e-mail address, or
// a friendly name or part of one or of an address, matched case-insensitively against the
// contact list. Several matches are listed instead, each with its exact command.
func cmdChat(ce *commands.Event, c *MSNClient, acc *bridge.Account) {
	query := argText(ce)
	if query == "" {
		ce.Reply("Usage: `$cmdprefix chat <name or email>`; `$cmdprefix contacts` lists your contacts.")
		return
	}
	handle, matches := matchContact(acc, query)
	if handle == "" && len(matches) > 1 {
		items := make([]*notice, 0, min(len(matches), maxChatMatches))
		for _, ct := range matches[:min(len(matches), maxChatMatches)] {
			items = append(items, new(notice).remote(ct.Name, bridge.MaxShownName).text(": ").code("chat "+ct.Handle))
		}
		header := new(notice).textf("%d contacts match; send one of:", len(matches))
		replyNotices(ce, listNotices(header, items)...)
		return
	}
	if handle == "" {
		replyNotices(ce, new(notice).text("No contact matches ").remote(strconv.Quote(bridge.CleanLine(query, maxArgShown)), maxArgShown+2).
			text(". ").code("contacts").text(" lists them; ").code("chat <email>").text(" opens a chat with anyone on MSN."))
		return
	}
	if handle == c.handle {
		ce.Reply("That is your own MSN account.")
		return
	}
	ctx, cancel := cmdCtx(ce)
	defer cancel()
	resp, err := provisionutil.ResolveIdentifier(ctx, c.login, handle, true)
	if err != nil || resp == nil || resp.Portal == nil || resp.Portal.MXID == "" {
		ce.Log.Warn().Err(bridge.ScrubError(err)).Str("contact", handle).Msg("Failed to open a chat")
		ce.Reply("Failed to open a chat with %s.", escapeMarkdown(handle, 0))
		return
	}
	n := new(notice)
	if resp.JustCreated {
		n.text("Opened a chat with ")
	} else {
		n.text("You already have a chat with ")
	}
	n.remote(c.nameOf(handle), bridge.MaxShownName).text(" (").remote(handle, bridge.MaxShownName).text("): ").
		link(string(resp.Portal.MXID), resp.Portal.MXID.URI().MatrixToURL())
	replyNotices(ce, n)
}

// matchContact finds the contact query names: handle is set when one contact (or a valid handle
// that is no contact) matches; otherwise matches holds the contacts that match partly (several,
// or none).
func matchContact(acc *bridge.Account, query string) (handle string, matches []bridge.Contact) {
	q := strings.ToLower(bridge.CleanLine(query, 0))
	var exact []bridge.Contact
	for _, ct := range acc.Contacts() {
		if !ct.Forward {
			continue
		}
		name := strings.ToLower(bridge.CleanLine(ct.Name, 0))
		switch {
		case ct.Handle == q:
			return ct.Handle, nil
		case name == q:
			exact = append(exact, ct)
		case strings.Contains(ct.Handle, q) || strings.Contains(name, q):
			matches = append(matches, ct)
		}
	}
	if len(exact) == 1 {
		return exact[0].Handle, nil
	}
	if len(exact) > 1 {
		return "", exact
	}
	if h, err := bridge.ValidateHandle(query); err == nil {
		return h, nil
	}
	if len(matches) == 1 {
		return matches[0].Handle, nil
	}
	return "", matches
}

func cmdNudge(ce *commands.Event, c *MSNClient, acc *bridge.Account) {
	if ce.Portal == nil || chatOf(ce.Portal).IsGroup() || ce.Portal.Receiver != c.login.ID {
		ce.Reply("Use `nudge` in a DM portal with an MSN contact.")
		return
	}
	ctx, cancel := cmdCtx(ce)
	defer cancel()
	if err := acc.SendNudge(ctx, FrontendName, chatOf(ce.Portal)); err != nil {
		ce.Reply("Failed to send nudge: %s", humanError(err))
		return
	}
	ce.React("✅")
}

func cmdLinkCode(ce *commands.Event, c *MSNClient, acc *bridge.Account) {
	ctx, cancel := cmdCtx(ce)
	defer cancel()
	code, expires, err := c.main.Core.IssueLinkCode(ctx, acc.Handle(), c.owner)
	if err != nil {
		ce.Reply("Failed to create a link code: %s", humanError(err))
		return
	}
	ce.Reply("Link code for %s: `%s`\n\nUse `/msn link %s` in Discord before %s UTC. It works once.",
		escapeMarkdown(acc.Handle(), 0), code, code, expires.UTC().Format(time.TimeOnly))
}

func cmdReconnect(ce *commands.Event, c *MSNClient, acc *bridge.Account) {
	ctx, cancel := cmdCtx(ce)
	defer cancel()
	if err := acc.Reconnect(ctx); err != nil {
		ce.Reply("Failed to reconnect: %s", humanError(err))
		return
	}
	ce.Reply("Reconnecting to MSN…")
}
