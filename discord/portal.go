package discord

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/rs/zerolog"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// portal is one MSN account's mirror: its category, roster channel and message, contact and
// group channels, and the presence state it renders.
type portal struct {
	f      *Frontend
	handle string
	log    zerolog.Logger

	wake   chan struct{}         // capacity 1: presence state changed
	outbox chan *outgoingMsg     // Discord → MSN, in order
	setup  sync.Mutex            // serialises channel and webhook creation
	sends  *recentIndex[sentRef] // core message id → the Discord message it was sent from
	// carried: the owner's Discord message id → the text it last carried to MSN (its edits
	// carry only a change; deleting one says it stays delivered).
	carried *recentIndex[string]
	// queued: the owner's Discord message id → the text last queued for MSN (the message's, or
	// its latest edit's), so that an edit seen twice (live, and in a message the catch-up
	// fetched with its edit) is queued once, and an edit made during a gateway gap is told from
	// one already carried.
	queued  *recentIndex[string]
	pending pendingSends // the owner's messages not yet sent, for deletes to withdraw
	// fileSlots holds a token per attachment transfer under way (see sendAttachments).
	fileSlots chan struct{}

	mu         sync.Mutex
	acc        *bridge.Account
	discovered bool
	// cats are the account's online (0) and offline (1) categories by number: 1 for the first,
	// 2… for those a full one overflowed into (see categories.go); fullCats those Discord
	// refused a channel in for its cap.
	cats         [2]map[int]string
	fullCats     map[string]bool
	rosterID     string
	rosterParent string   // the roster channel's category
	rosterMsgs   []string // roster message ids, in order
	rosterHashes []string
	rosterDirty  bool
	rosterSince  time.Time // when the roster became dirty
	rosterLast   time.Time // last roster edit
	rosterRetry  time.Time // not before (after a failure)
	contacts     map[string]bridge.Contact
	own          bridge.OwnProfile
	haveOwn      bool
	known        map[string]*knownChannel // the category's contact and group channels, by id
	chats        map[bridge.ChatID]*chatChannel
	// permsFor is the Discord owner the channels' overwrites were last written for; permsOK
	// says they were (all of them), so an owner change is seen by comparing.
	permsFor     string
	permsOK      bool
	brk          breaker // Discord's refusals (see trip)
	lastState    bridge.AccountStateKind
	lastStopNote string
	typingOut    map[bridge.ChatID]time.Time // last typing sent to MSN

	avatarMu   sync.Mutex // serialises webhook picture edits (see avatar.go)
	avatarLast time.Time  // the account's last webhook picture edit or lookup, under mu
}

// chatChannel is the Discord channel of one chat.
type chatChannel struct {
	chat    bridge.ChatID
	id      string
	name    string
	webhook *discordgo.Webhook // the contact's (everyone's in a group chat)
	ownHook *discordgo.Webhook // one-to-one chats: the owner's posts from other frontends

	// Topic mirror (one-to-one chats): the topic wanted, the one applied, and the edit budget.
	wantTopic    string
	topic        string
	topicPending time.Time // when wantTopic started to differ from topic; zero when equal
	topicRetry   time.Time // not before (after a 429 or failure)
	topicEdits   []time.Time

	// Category mirror (OnlineOfflineCategories).
	wantParent    string
	parent        string
	parentPending time.Time
	parentRetry   time.Time

	// Contact's picture on the webhook (one-to-one chats, see avatar.go).
	avatarRetry   time.Time // not before (after a 429 or failure)
	avatarRefused string    // a SHA1D Discord refused as a picture

	lastTyping time.Time
	members    map[string]bool // group chats: who is in
	ended      bool            // group chat over
}

func newPortal(f *Frontend, acc *bridge.Account) *portal {
	return &portal{
		f:         f,
		handle:    acc.Handle(),
		acc:       acc,
		log:       f.log.With().Str("account", acc.Handle()).Logger(),
		wake:      make(chan struct{}, 1),
		outbox:    make(chan *outgoingMsg, 256),
		fileSlots: make(chan struct{}, fileSendsPerAccount),
		sends:     newRecentIndex[sentRef](512),
		carried:   newRecentIndex[string](512),
		queued:    newRecentIndex[string](512),
		contacts:  map[string]bridge.Contact{},
		known:     map[string]*knownChannel{},
		chats:     map[bridge.ChatID]*chatChannel{},
		typingOut: map[bridge.ChatID]time.Time{},
	}
}

func (p *portal) setAccount(acc *bridge.Account) {
	p.mu.Lock()
	p.acc = acc
	p.mu.Unlock()
}

func (p *portal) account() *bridge.Account {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acc
}

// owner returns the Discord user id linked to the account, or "".
func (p *portal) owner() string {
	for _, u := range p.account().Owners() {
		if u.Frontend == FrontendName {
			return u.UserID
		}
	}
	return ""
}

func (p *portal) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// handleEvent shows one event. It runs on the account's delivery goroutine.
func (p *portal) handleEvent(ctx context.Context, evt bridge.Event) error {
	switch e := evt.(type) {
	case bridge.AccountState:
		return p.handleState(ctx, e)
	case bridge.ContactSnapshot:
		p.mu.Lock()
		p.contacts = make(map[string]bridge.Contact, len(e.Contacts))
		for _, c := range e.Contacts {
			p.contacts[c.Handle] = c
		}
		p.markRosterLocked()
		p.refreshChannelsLocked()
		p.mu.Unlock()
		p.kick()
	case bridge.ContactPresence:
		p.mu.Lock()
		c := p.contacts[e.Handle]
		if c.Handle == "" {
			c = bridge.Contact{Handle: e.Handle, Forward: true}
		}
		c.Status, c.MSNStatus, c.PSM, c.Media = e.Status, e.MSNStatus, e.PSM, e.Media
		if e.Name != "" {
			c.Name = e.Name
		}
		p.contacts[e.Handle] = c
		p.markRosterLocked()
		p.refreshChannelLocked(bridge.DirectChat(e.Handle))
		p.mu.Unlock()
		p.kick()
	case bridge.ContactProfile:
		p.mu.Lock()
		if c, ok := p.contacts[e.Handle]; ok {
			c.Name = e.Name
			p.contacts[e.Handle] = c
			p.markRosterLocked()
		}
		p.mu.Unlock()
		p.kick()
	case bridge.ListChange:
		p.mu.Lock()
		p.contacts[e.Contact.Handle] = e.Contact
		p.markRosterLocked()
		p.mu.Unlock()
		p.kick()
		return p.noteListChange(ctx, e)
	case bridge.OwnProfile:
		p.mu.Lock()
		p.own, p.haveOwn = e, true
		p.markRosterLocked()
		p.mu.Unlock()
		p.kick()
	case bridge.ContactRequest:
		return p.postRequest(ctx, e)
	case bridge.Message:
		return p.showMessage(ctx, e)
	case bridge.Nudge:
		return p.showNudge(ctx, e)
	case bridge.Typing:
		return p.showTyping(ctx, e)
	case bridge.ChatMembership:
		return p.showMembership(ctx, e)
	case bridge.DeliveryFailure:
		return p.showDeliveryFailure(ctx, e)
	case bridge.File:
		return p.showFile(ctx, e)
	case bridge.FileFailed:
		return p.showFileFailed(ctx, e)
	case bridge.Wink:
		return p.showWink(ctx, e)
	case bridge.ContactAvatar:
		p.noteAvatar(e)
	case bridge.EventsDropped:
		return p.notice(ctx, fmt.Sprintf("⚠️ The bridge fell behind and %d MSN events could not be shown here.", e.Count))
	}
	return nil
}

func (p *portal) markRosterLocked() {
	if !p.rosterDirty {
		p.rosterDirty = true
		p.rosterSince = p.f.now()
	}
}

// handleState notes account state changes in the roster channel, once per transition.
func (p *portal) handleState(ctx context.Context, st bridge.AccountState) error {
	p.mu.Lock()
	prev := p.lastState
	p.lastState = st.State
	p.mu.Unlock()
	var line string
	switch st.State {
	case bridge.StateOnline:
		if prev == bridge.StateReconnecting || prev == bridge.StateStopped {
			line = "✅ Connected to MSN again."
		}
	case bridge.StateReconnecting:
		if prev != bridge.StateReconnecting {
			line = "🔄 Lost the connection to MSN; reconnecting…"
			if st.Err != nil {
				line = "🔄 Lost the connection to MSN (" + shown(st.Err.Error(), maxShownError) + "); reconnecting…"
			}
		}
	case bridge.StateStopped:
		line = stopLine(st)
		p.mu.Lock()
		if line == p.lastStopNote {
			line = ""
		} else {
			p.lastStopNote = line
		}
		p.mu.Unlock()
	case bridge.StateLoggedOut:
		if prev != "" && prev != bridge.StateLoggedOut {
			line = "👋 Logged out of MSN."
		}
	}
	if st.State != bridge.StateStopped {
		p.mu.Lock()
		p.lastStopNote = ""
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.markRosterLocked()
	p.mu.Unlock()
	p.kick()
	if line == "" {
		return nil
	}
	return p.notice(ctx, line)
}

// maxShownError caps an error's text in a notice.
const maxShownError = 300

// stopLine describes why an account stopped, for its owner, with what to do about it.
func stopLine(st bridge.AccountState) string {
	why := "⚠️ " + bridge.Sentence(st.Reason.Describe())
	switch st.Reason {
	case bridge.StopOtherLocation:
		return why + " Use `/msn login` to take it back."
	case bridge.StopBadCredentials:
		return why + " Use `/msn login` with the right one."
	case bridge.StopServerGone:
		return why + " Use `/msn login` to try again."
	case bridge.StopKeyError:
		return why + " Use `/msn login` again."
	case bridge.StopShutdown:
		return ""
	}
	if st.Err != nil {
		return strings.TrimSuffix(why, ".") + ": " + shown(st.Err.Error(), maxShownError)
	}
	return why
}

// notice posts a bot line in the roster channel, cut to Discord's limit; transient failures are
// retried (retryTransient).
func (p *portal) notice(ctx context.Context, text string) error {
	text = fitMessage(text)
	id, err := p.ensureRoster(ctx)
	if err != nil {
		return err
	}
	send := func(id string) error {
		_, err := retryTransient(ctx, func() (*discordgo.Message, error) {
			return p.f.s.ChannelMessageSendComplex(id, &discordgo.MessageSend{Content: text, AllowedMentions: noMentions()},
				discordgo.WithContext(ctx))
		})
		return err
	}
	err = send(id)
	if isUnknown(err, discordgo.ErrCodeUnknownChannel) {
		p.forgetChannel(id)
		if id, err = p.ensureRoster(ctx); err == nil {
			err = send(id)
		}
	}
	if err != nil {
		return fmt.Errorf("failed to post in the roster channel: %w", err)
	}
	return nil
}

func (p *portal) noteListChange(ctx context.Context, e bridge.ListChange) error {
	name := contactLabel(e.Contact)
	var line string
	switch e.Kind {
	case bridge.ListAdded:
		line = "➕ " + name + " is now on your contact list."
	case bridge.ListRemoved:
		line = "➖ " + name + " was removed from your contact list."
	case bridge.ListBlocked:
		line = "🚫 " + name + " is blocked."
	case bridge.ListUnblocked:
		line = "✅ " + name + " is no longer blocked."
	case bridge.ListRemovedYou:
		line = "💔 " + name + " removed you from their contact list."
	default:
		return nil
	}
	return p.notice(ctx, line)
}

// contactLabel names a contact in a notice: "**name** (handle)", both cleaned and escaped.
func contactLabel(c bridge.Contact) string {
	handle := shown(c.Handle, bridge.MaxShownName)
	if name := bridge.CleanLine(c.Name, bridge.MaxShownName); name != "" && name != c.Handle {
		return "**" + escapeMarkdown(name) + "** (" + handle + ")"
	}
	return handle
}

// Layout.

// discover finds the account's existing category, roster channel, roster messages and contact
// channels (from an earlier run). The caller holds p.setup.
func (p *portal) discover(ctx context.Context) error {
	p.mu.Lock()
	done := p.discovered
	p.mu.Unlock()
	if done {
		return nil
	}
	f := p.f
	chans, err := retryTransient(ctx, func() ([]*discordgo.Channel, error) {
		return f.s.GuildChannels(f.cfg.GuildID, discordgo.WithContext(ctx))
	})
	if err != nil {
		return fmt.Errorf("failed to list guild channels: %w", err)
	}
	chans = nonNil(chans)
	// The account's categories: the first of each name, then the numbered overflow ones.
	var cats [2]map[int]string
	mine := map[string]bool{}
	for _, c := range chans {
		if c.Type != discordgo.ChannelTypeGuildCategory {
			continue
		}
		for _, offline := range []bool{false, true} {
			if offline && !f.cfg.OnlineOfflineCategories {
				continue
			}
			n, ok := categoryNumber(c.Name, p.categoryTemplate(offline), p.handle)
			if !ok {
				continue
			}
			fam := family(offline)
			if cats[fam] == nil {
				cats[fam] = map[int]string{}
			}
			if _, dup := cats[fam][n]; !dup {
				cats[fam][n] = c.ID
				mine[c.ID] = true
			}
			break
		}
	}
	catID := cats[0][1]
	online := map[string]bool{}
	for _, id := range cats[0] {
		online[id] = true
	}
	// Every channel of the account gets the overwrites of its current owner: an earlier owner
	// must not keep reading.
	want := p.overwrites()
	owner := p.owner()
	var stale []string // the categories first, then the channels in them
	for _, inside := range []bool{false, true} {
		for _, c := range chans {
			if (inside && mine[c.ParentID] || !inside && mine[c.ID]) && !sameOverwrites(c.PermissionOverwrites, want) {
				stale = append(stale, c.ID)
			}
		}
	}
	permsOK := true
	for _, id := range stale {
		if err := p.writeOverwrites(ctx, id, want); err != nil {
			p.permissionsFailed(id, err)
			if forbidden(err) {
				return err
			}
			permsOK = false
		}
	}
	known := map[string]*knownChannel{}
	var rosterID, rosterParent string
	for _, c := range chans {
		if c.Type != discordgo.ChannelTypeGuildText || !mine[c.ParentID] {
			continue
		}
		// The roster is in an online category: the first one, unless it was full.
		if c.Name == f.cfg.RosterChannelName && online[c.ParentID] && (rosterID == "" || c.ParentID == catID && rosterParent != catID) {
			if rosterID != "" {
				known[rosterID] = &knownChannel{id: rosterID, name: c.Name, parent: rosterParent}
			}
			rosterID, rosterParent = c.ID, c.ParentID
			continue
		}
		known[c.ID] = &knownChannel{id: c.ID, name: c.Name, parent: c.ParentID, topic: c.Topic, handle: topicHandle(c.Topic)}
	}
	var msgs []string
	if rosterID != "" {
		pins, err := retryTransient(ctx, func() ([]*discordgo.Message, error) {
			return f.s.ChannelMessagesPinned(rosterID, discordgo.WithContext(ctx))
		})
		if err != nil && !isUnknown(err, discordgo.ErrCodeUnknownChannel) {
			return fmt.Errorf("failed to list roster pins: %w", err)
		}
		pins = nonNil(pins)
		sort.Slice(pins, func(i, j int) bool { return snowflakeLess(pins[i].ID, pins[j].ID) })
		for _, m := range pins {
			if m.Author != nil && m.Author.ID == f.botID {
				msgs = append(msgs, m.ID)
			}
		}
		if len(msgs) == 0 {
			// A pin that failed (Pin Messages taken away) must not mean a new roster at every
			// start: the roster is also recognised among the channel's recent messages.
			msgs = p.findRoster(ctx, rosterID)
		}
	}
	p.mu.Lock()
	p.discovered = true
	p.permsFor, p.permsOK = owner, permsOK
	p.cats, p.fullCats, p.rosterID, p.rosterParent = cats, nil, rosterID, rosterParent
	p.rosterMsgs, p.rosterHashes = msgs, make([]string, len(msgs))
	p.known = known
	p.mu.Unlock()
	if rosterID != "" {
		f.bindChannel(rosterID, channelRef{p: p})
	}
	// Bind the contact channels found, so topics are maintained and messages routed.
	p.mu.Lock()
	for handle := range p.contacts {
		p.adoptLocked(bridge.DirectChat(handle), true)
	}
	p.mu.Unlock()
	p.log.Debug().Str("category_id", catID).Int("categories", len(mine)).Str("roster_channel_id", rosterID).
		Int("contact_channels", len(known)).
		Msg("Discovered the account's Discord layout")
	return nil
}

// rosterScan is how many of the roster channel's latest messages findRoster reads.
const rosterScan = 100

// findRoster returns the bot's latest roster messages (a first page and the continuations
// after it) among the roster channel's recent messages, oldest first, or nil.
func (p *portal) findRoster(ctx context.Context, rosterID string) []string {
	recent, err := retryTransient(ctx, func() ([]*discordgo.Message, error) {
		return p.f.s.ChannelMessages(rosterID, rosterScan, "", "", "", discordgo.WithContext(ctx))
	})
	if err != nil {
		p.log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to read the roster channel's messages")
		return nil
	}
	recent = nonNil(recent)
	sort.Slice(recent, func(i, j int) bool { return snowflakeLess(recent[i].ID, recent[j].ID) })
	head := "**MSN — " + escapeMarkdown(p.handle) + "**"
	var msgs []string
	for _, m := range recent {
		if m.Author == nil || m.Author.ID != p.f.botID || !strings.HasPrefix(m.Content, head) {
			continue
		}
		first, _, _ := strings.Cut(m.Content, "\n")
		if first == head+" (continued)" {
			if len(msgs) > 0 && len(msgs) < maxRosterPages {
				msgs = append(msgs, m.ID)
			}
			continue
		}
		msgs = []string{m.ID}
	}
	return msgs
}

// adoptLocked binds the existing channel of chat found by discovery, if any. A contact's
// channel is the one whose topic starts with the contact's exact handle (names are not one to
// one: "bob.smith@x" and "bob-smith@x" give the same); a channel already bound to another chat
// is never taken. A channel of an earlier version, without the handle in its topic, is taken by
// name only for a contact on the list (contact) whose name no other contact shares; its topic is
// then rewritten with the handle. p.mu is held.
func (p *portal) adoptLocked(chat bridge.ChatID, contact bool) {
	if ch, ok := p.chats[chat]; ok && ch.id != "" {
		return
	}
	var k *knownChannel
	if chat.IsGroup() {
		k = p.knownByNameLocked(chatChannelName(chat))
	} else {
		handle := chat.Contact()
		for _, c := range p.known {
			if c.handle == handle && !p.boundElsewhereLocked(c.id, chat) {
				k = c
				break
			}
		}
		if k == nil && contact {
			k = p.legacyChannelLocked(chat)
		}
	}
	if k == nil || p.boundElsewhereLocked(k.id, chat) {
		return
	}
	if !chat.IsGroup() {
		k.handle = chat.Contact()
	}
	ch := p.chats[chat]
	if ch == nil {
		ch = &chatChannel{chat: chat}
		p.chats[chat] = ch
	}
	ch.id, ch.name, ch.webhook, ch.ownHook, ch.topic, ch.parent = k.id, k.name, nil, nil, k.topic, k.parent
	ch.topicPending, ch.parentPending = time.Time{}, time.Time{}
	p.refreshChannelLocked(chat)
	p.f.bindChannel(k.id, channelRef{p: p, chat: chat})
}

// knownByNameLocked returns the unmarked channel named name (a group chat's), or nil. p.mu is
// held.
func (p *portal) knownByNameLocked(name string) *knownChannel {
	for _, c := range p.known {
		if c.name == name && c.handle == "" {
			return c
		}
	}
	return nil
}

// legacyChannelLocked returns the unmarked channel carrying chat's name when chat's contact is
// on the list and is the only contact with that name, or nil. p.mu is held.
func (p *portal) legacyChannelLocked(chat bridge.ChatID) *knownChannel {
	handle := chat.Contact()
	if _, ok := p.contacts[handle]; !ok {
		return nil
	}
	name := chatChannelName(chat)
	k := p.knownByNameLocked(name)
	if k == nil || topicHandle(k.topic) != "" {
		return nil
	}
	for h := range p.contacts {
		if h != handle && chatChannelName(bridge.DirectChat(h)) == name {
			return nil
		}
	}
	return k
}

// boundElsewhereLocked reports whether channel id mirrors something other than chat of this
// portal. p.mu is held (the frontend's lock is taken after it).
func (p *portal) boundElsewhereLocked(id string, chat bridge.ChatID) bool {
	ref, ok := p.f.channel(id)
	if ok && (ref.p != p || ref.chat != chat) {
		return true
	}
	for c, ch := range p.chats {
		if c != chat && ch.id == id {
			return true
		}
	}
	return false
}

// knownChannel is an existing contact or group channel of the account's categories: found by
// discovery or created since.
type knownChannel struct {
	id     string
	name   string
	parent string
	topic  string
	handle string // the exact contact handle its topic names; "" for a group or an old channel
}

// uniqueChannelNameLocked is the name of a new channel for chat: chatChannelName, with a short
// suffix stable for the chat when another channel of the account already has that name. p.mu
// is held.
func (p *portal) uniqueChannelNameLocked(chat bridge.ChatID) string {
	name := chatChannelName(chat)
	taken := func(n string) bool {
		for _, c := range p.known {
			if c.name == n {
				return true
			}
		}
		return n == p.f.cfg.RosterChannelName
	}
	if !taken(name) {
		return name
	}
	sum := sha256.Sum256([]byte(chat))
	suffix := "-" + hex.EncodeToString(sum[:3])
	return strings.TrimRight(name[:min(len(name), 100-len(suffix))], "-") + suffix
}

// topicMarker is how a contact channel's topic starts: the exact handle in a code span.
func topicMarker(handle string) string {
	return "`" + strings.ReplaceAll(bridge.CleanLine(handle, 0), "`", "'") + "`"
}

// topicHandle returns the handle a topic starts with (see topicMarker), or "".
func topicHandle(topic string) string {
	rest, ok := strings.CutPrefix(topic, "`")
	if !ok {
		return ""
	}
	h, _, ok := strings.Cut(rest, "`")
	if !ok {
		return ""
	}
	return h
}

// ensureCategory returns the account's first (online or offline) category with room for one
// more channel, creating it, or the next numbered one when all are full, private to the owner
// and the bot. The caller holds p.setup.
func (p *portal) ensureCategory(ctx context.Context, offline bool) (string, error) {
	if err := p.discover(ctx); err != nil {
		return "", err
	}
	p.mu.Lock()
	id, n := p.roomyCategoryLocked(offline)
	p.mu.Unlock()
	if id != "" {
		return id, nil
	}
	c, err := retryTransient(ctx, func() (*discordgo.Channel, error) {
		return p.f.s.GuildChannelCreateComplex(p.f.cfg.GuildID, discordgo.GuildChannelCreateData{
			Name:                 numberedCategory(p.categoryTemplate(offline), p.handle, n),
			Type:                 discordgo.ChannelTypeGuildCategory,
			PermissionOverwrites: p.overwrites(),
		}, discordgo.WithContext(ctx))
	})
	if err != nil {
		return "", fmt.Errorf("failed to create the account's category: %w", guildFull(err))
	}
	p.mu.Lock()
	p.setCategoryLocked(offline, n, c.ID)
	p.mu.Unlock()
	if n > 1 {
		p.log.Info().Int("number", n).Bool("offline", offline).Msg("The account's category is full, continuing in a new one")
	}
	return c.ID, nil
}

// overwrites make a channel visible only to the account's owner and the bot.
func (p *portal) overwrites() []*discordgo.PermissionOverwrite {
	const see = discordgo.PermissionViewChannel | discordgo.PermissionSendMessages | discordgo.PermissionReadMessageHistory
	ows := []*discordgo.PermissionOverwrite{
		{ID: p.f.cfg.GuildID, Type: discordgo.PermissionOverwriteTypeRole, Deny: discordgo.PermissionViewChannel},
		{ID: p.f.botID, Type: discordgo.PermissionOverwriteTypeMember, Allow: see | discordgo.PermissionManageChannels |
			discordgo.PermissionManageWebhooks | discordgo.PermissionManageMessages | discordgo.PermissionAddReactions},
	}
	if owner := p.owner(); owner != "" {
		ows = append(ows, &discordgo.PermissionOverwrite{ID: owner, Type: discordgo.PermissionOverwriteTypeMember,
			Allow: see | discordgo.PermissionAddReactions | discordgo.PermissionAttachFiles | discordgo.PermissionUseSlashCommands})
	}
	return ows
}

// syncPermissions rewrites the overwrites of every channel of the account when its Discord
// owner changed since they were written (a login, a link, a logout): only the current owner
// and the bot may see them. Before discovery it discovers, which checks them all. A channel
// that cannot be updated leaves the account marked, so the next event tries again. A refusal
// (Manage Permissions missing) stops the rewrite and is returned: nothing more may be shown
// to channels an earlier owner may still read.
func (p *portal) syncPermissions(ctx context.Context) error {
	owner := p.owner()
	p.mu.Lock()
	done := p.discovered && p.permsOK && p.permsFor == owner
	p.mu.Unlock()
	if done {
		return nil
	}
	p.setup.Lock()
	defer p.setup.Unlock()
	p.mu.Lock()
	discovered := p.discovered
	p.mu.Unlock()
	if !discovered {
		err := p.discover(ctx)
		if forbidden(err) {
			return err
		}
		if err != nil && ctx.Err() == nil {
			p.log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to find the account's Discord channels")
		}
		return nil
	}
	owner = p.owner()
	want := p.overwrites()
	p.mu.Lock()
	ids := make([]string, 0, len(p.known)+3)
	ids = append(ids, p.allCategoriesLocked()...)
	if p.rosterID != "" {
		ids = append(ids, p.rosterID)
	}
	for id := range p.known {
		ids = append(ids, id)
	}
	p.mu.Unlock()
	ok := true
	for _, id := range ids {
		err := p.writeOverwrites(ctx, id, want)
		switch {
		case isUnknown(err, discordgo.ErrCodeUnknownChannel):
			p.forgetChannel(id)
		case forbidden(err):
			p.permissionsFailed(id, err)
			return err
		case err != nil:
			ok = false
			p.permissionsFailed(id, err)
		}
	}
	p.mu.Lock()
	p.permsFor, p.permsOK = owner, ok
	p.mu.Unlock()
	p.log.Info().Int("channels", len(ids)).Bool("owner_linked", owner != "").Msg("Channel permissions set for the account's owner")
	return nil
}

// permissionsFailed logs a channel whose overwrites could not be rewritten; without the
// Manage Permissions (Manage Roles) permission the bot can never rewrite them, which leaves an
// earlier owner reading, so that is an error an admin must fix.
func (p *portal) permissionsFailed(id string, err error) {
	if isUnknown(err, discordgo.ErrCodeMissingPermissions) || isUnknown(err, discordgo.ErrCodeMissingAccess) {
		p.log.Error().Err(err).Str("channel_id", id).
			Msg("The bot may not change channel permissions: give it Manage Permissions, or an earlier owner keeps access")
		return
	}
	p.log.Warn().Err(bridge.ScrubError(err)).Str("channel_id", id).Msg("Failed to update a channel's permissions")
}

// writeOverwrites replaces a channel's permission overwrites (Discord requires Manage
// Permissions for it), under a bucket of its own so that it never waits behind the channel's
// topic edits.
func (p *portal) writeOverwrites(ctx context.Context, id string, ows []*discordgo.PermissionOverwrite) error {
	body := map[string]any{"permission_overwrites": ows}
	_, err := p.f.s.RequestWithBucketID("PATCH", discordgo.EndpointChannel(id), body,
		discordgo.EndpointChannel(id)+"#permissions", discordgo.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("failed to set channel permissions: %w", err)
	}
	return nil
}

// sameOverwrites reports whether two overwrite lists grant and deny the same, in any order.
func sameOverwrites(a, b []*discordgo.PermissionOverwrite) bool {
	a, b = nonNil(a), nonNil(b)
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y *discordgo.PermissionOverwrite) bool {
			return x.ID == y.ID && x.Type == y.Type && x.Allow == y.Allow && x.Deny == y.Deny
		}) {
			return false
		}
	}
	return true
}

// ensureRoster returns the roster channel, creating the category and channel when needed.
func (p *portal) ensureRoster(ctx context.Context) (string, error) {
	p.mu.Lock()
	id := p.rosterID
	p.mu.Unlock()
	if id != "" {
		return id, nil
	}
	p.setup.Lock()
	defer p.setup.Unlock()
	var c *discordgo.Channel
	var cat string
	for attempt := 0; ; attempt++ {
		var err error
		if cat, err = p.ensureCategory(ctx, false); err != nil {
			return "", err
		}
		p.mu.Lock()
		id = p.rosterID
		p.mu.Unlock()
		if id != "" {
			return id, nil
		}
		c, err = retryTransient(ctx, func() (*discordgo.Channel, error) {
			return p.f.s.GuildChannelCreateComplex(p.f.cfg.GuildID, discordgo.GuildChannelCreateData{
				Name:                 p.f.cfg.RosterChannelName,
				Type:                 discordgo.ChannelTypeGuildText,
				Topic:                "Contacts of " + escapeMarkdown(p.handle) + " on MSN, live. Use /msn here to manage the account.",
				ParentID:             cat,
				Position:             0,
				PermissionOverwrites: p.overwrites(),
			}, discordgo.WithContext(ctx))
		})
		if isParentFull(err) && attempt < 2 {
			p.markFull(cat)
			continue
		}
		if isUnknown(err, discordgo.ErrCodeUnknownChannel) || isInvalidParent(err) {
			p.mu.Lock()
			p.forgetCategoryLocked(cat)
			p.mu.Unlock()
			return "", fmt.Errorf("the account's category is gone: %w", err)
		}
		if err != nil {
			return "", fmt.Errorf("failed to create the roster channel: %w", guildFull(err))
		}
		break
	}
	p.mu.Lock()
	p.rosterID, p.rosterParent = c.ID, cat
	p.rosterMsgs, p.rosterHashes = nil, nil
	p.markRosterLocked()
	p.mu.Unlock()
	p.f.bindChannel(c.ID, channelRef{p: p})
	p.kick()
	return c.ID, nil
}

// isInvalidParent reports a 50035 form error about parent_id other than the category being
// full (the category was deleted).
func isInvalidParent(err error) bool {
	var re *discordgo.RESTError
	return errors.As(err, &re) && re.Message != nil && re.Message.Code == discordgo.ErrCodeInvalidFormBody &&
		strings.Contains(string(re.ResponseBody), "parent_id") && !isParentFull(err)
}

// ensureChat returns the channel of chat, creating it (with its current topic) when needed.
func (p *portal) ensureChat(ctx context.Context, chat bridge.ChatID) (*chatChannel, error) {
	p.mu.Lock()
	ch := p.chats[chat]
	p.mu.Unlock()
	if ch != nil && ch.id != "" {
		return ch, nil
	}
	p.setup.Lock()
	defer p.setup.Unlock()
	if err := p.discover(ctx); err != nil {
		return nil, err
	}
	p.mu.Lock()
	_, isContact := p.contacts[chat.Contact()]
	p.adoptLocked(chat, isContact && !chat.IsGroup())
	ch = p.chats[chat]
	p.mu.Unlock()
	if ch != nil && ch.id != "" {
		return ch, nil
	}
	for attempt := 0; ; attempt++ {
		p.mu.Lock()
		topic, parentOffline := p.topicForLocked(chat)
		name := p.uniqueChannelNameLocked(chat)
		p.mu.Unlock()
		cat, err := p.ensureCategory(ctx, parentOffline && p.f.cfg.OnlineOfflineCategories)
		if err != nil {
			return nil, err
		}
		c, err := retryTransient(ctx, func() (*discordgo.Channel, error) {
			return p.f.s.GuildChannelCreateComplex(p.f.cfg.GuildID, discordgo.GuildChannelCreateData{
				Name:                 name,
				Type:                 discordgo.ChannelTypeGuildText,
				Topic:                topic,
				ParentID:             cat,
				PermissionOverwrites: p.overwrites(),
			}, discordgo.WithContext(ctx))
		})
		if isParentFull(err) && attempt < 2 {
			p.markFull(cat) // continue in the next category
			continue
		}
		if (isUnknown(err, discordgo.ErrCodeUnknownChannel) || isInvalidParent(err)) && attempt == 0 {
			p.mu.Lock()
			p.forgetCategoryLocked(cat)
			p.mu.Unlock()
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("failed to create a channel for %s: %w", chat, guildFull(err))
		}
		p.mu.Lock()
		ch = p.chats[chat]
		if ch == nil {
			ch = &chatChannel{chat: chat}
			p.chats[chat] = ch
		}
		ch.id, ch.name, ch.webhook, ch.ownHook = c.ID, name, nil, nil
		ch.topic, ch.wantTopic, ch.topicPending = topic, topic, time.Time{}
		ch.parent, ch.wantParent, ch.parentPending = cat, cat, time.Time{}
		ch.topicEdits = nil
		k := &knownChannel{id: c.ID, name: c.Name, parent: cat, topic: topic}
		if !chat.IsGroup() {
			k.handle = chat.Contact()
		}
		p.known[c.ID] = k
		p.mu.Unlock()
		p.f.bindChannel(c.ID, channelRef{p: p, chat: chat})
		p.log.Debug().Str("chat", string(chat)).Str("channel_id", c.ID).Msg("Created a contact channel")
		return ch, nil
	}
}

// forgetChannel drops a channel that was deleted; the next use recreates it.
func (p *portal) forgetChannel(id string) {
	p.f.unbindChannel(id)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rosterID == id {
		p.rosterID, p.rosterMsgs, p.rosterHashes = "", nil, nil
		p.markRosterLocked()
	}
	p.forgetCategoryLocked(id)
	delete(p.known, id)
	for _, ch := range p.chats {
		if ch.id == id {
			ch.id, ch.webhook, ch.ownHook = "", nil, nil
			ch.topicPending, ch.parentPending = time.Time{}, time.Time{}
		}
	}
}

// ensureWebhook returns the channel's webhook — the owner's (own) or everyone else's — ours
// found again by application id and name, or a new one. The caller does not hold p.mu.
func (p *portal) ensureWebhook(ctx context.Context, ch *chatChannel, own bool) (*discordgo.Webhook, string, error) {
	p.mu.Lock()
	slot := &ch.webhook
	if own {
		slot = &ch.ownHook
	}
	wh, id := *slot, ch.id
	p.mu.Unlock()
	if wh != nil {
		return wh, id, nil
	}
	p.setup.Lock()
	defer p.setup.Unlock()
	hooks, err := retryTransient(ctx, func() ([]*discordgo.Webhook, error) {
		return p.f.s.ChannelWebhooks(id, discordgo.WithContext(ctx))
	})
	if err != nil {
		return nil, id, fmt.Errorf("failed to list webhooks: %w", err)
	}
	for _, h := range nonNil(hooks) {
		if h.Token != "" && (h.ApplicationID == p.f.appID || h.User != nil && h.User.ID == p.f.botID) &&
			(h.Name == ownHookName) == own {
			wh = h
			break
		}
	}
	if wh == nil {
		name := webhookBaseName
		if own {
			name = ownHookName
		}
		if wh, err = retryTransient(ctx, func() (*discordgo.Webhook, error) {
			return p.f.s.WebhookCreate(id, name, "", discordgo.WithContext(ctx))
		}); err != nil {
			return nil, id, fmt.Errorf("failed to create a webhook: %w", err)
		}
	}
	p.mu.Lock()
	if ch.id == id {
		*slot = wh
	}
	p.mu.Unlock()
	return wh, id, nil
}

// execute posts params through chat's webhook, creating the channel and webhook as needed,
// with every mention suppressed unless params says otherwise. A deleted webhook (10015) is
// recreated and a deleted channel (10003) recreated, each retried once; a transient failure is
// retried with backoff (retryTransient).
func (p *portal) execute(ctx context.Context, chat bridge.ChatID, params *discordgo.WebhookParams) (*discordgo.Message, error) {
	return p.executeAs(ctx, chat, params, false)
}

// executeAs is execute through the channel's own webhook when own and the chat is one to one:
// the owner's posts from other frontends must not show the contact's face (see avatar.go).
func (p *portal) executeAs(ctx context.Context, chat bridge.ChatID, params *discordgo.WebhookParams, own bool) (*discordgo.Message, error) {
	own = own && !chat.IsGroup()
	if params.AllowedMentions == nil {
		params.AllowedMentions = noMentions()
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ch, err := p.ensureChat(ctx, chat)
		if err != nil {
			return nil, err
		}
		wh, chID, err := p.ensureWebhook(ctx, ch, own)
		if isUnknown(err, discordgo.ErrCodeUnknownChannel) {
			p.forgetChannel(chID)
			lastErr = err
			continue
		}
		if err != nil {
			return nil, err
		}
		if !chat.IsGroup() && !own {
			wh = p.avatarBeforePost(ctx, ch, wh)
		}
		m, err := retryTransient(ctx, func() (*discordgo.Message, error) {
			return p.f.executeWebhook(ctx, chID, wh, params)
		})
		switch {
		case err == nil:
			return m, nil
		case isUnknown(err, discordgo.ErrCodeUnknownWebhook):
			p.log.Info().Str("channel_id", chID).Msg("Webhook was deleted, recreating it")
			p.mu.Lock()
			if ch.webhook == wh {
				ch.webhook = nil
			}
			if ch.ownHook == wh {
				ch.ownHook = nil
			}
			p.mu.Unlock()
		case isUnknown(err, discordgo.ErrCodeUnknownChannel):
			p.log.Info().Str("channel_id", chID).Msg("Channel was deleted, recreating it")
			p.forgetChannel(chID)
		default:
			return nil, fmt.Errorf("failed to execute webhook: %w", bridge.ScrubError(err))
		}
		lastErr = err
	}
	return nil, fmt.Errorf("failed to post after recreating the channel and webhook: %w", lastErr)
}

// retryDelays are the waits before each new attempt of a request that failed transiently.
var retryDelays = []time.Duration{250 * time.Millisecond, time.Second, 3 * time.Second}

// retryTransient runs do until it succeeds, fails for good, ctx ends, or it failed transiently
// (see transient) once more than retryDelays has waits for.
func retryTransient[T any](ctx context.Context, do func() (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, err := do()
		if err == nil || attempt == len(retryDelays) || !transient(ctx, err) {
			return v, err
		}
		t := time.NewTimer(retryDelays[attempt])
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
	}
}

// transient reports whether a failed request may work when sent again: a network failure, or
// a 500, 502, 503 or 504 from Discord (discordgo retries only 502, and only at once).
func transient(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var re *discordgo.RESTError
	if errors.As(err, &re) {
		if re.Response == nil {
			return false
		}
		switch re.Response.StatusCode {
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// botSend posts a bot message in chat's channel (creating it when needed), retrying once on a
// deleted channel and with backoff on transient failures.
func (p *portal) botSend(ctx context.Context, chat bridge.ChatID, msg *discordgo.MessageSend) (*discordgo.Message, error) {
	if msg.AllowedMentions == nil {
		msg.AllowedMentions = noMentions()
	}
	msg.Content = fitMessage(msg.Content)
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		ch, err := p.ensureChat(ctx, chat)
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		id := ch.id
		p.mu.Unlock()
		m, err := retryTransient(ctx, func() (*discordgo.Message, error) {
			rewind(msg.Files) // a file's reader was read by an earlier attempt
			return p.f.s.ChannelMessageSendComplex(id, msg, discordgo.WithContext(ctx))
		})
		if isUnknown(err, discordgo.ErrCodeUnknownChannel) {
			p.forgetChannel(id)
			lastErr = err
			continue
		}
		return m, err
	}
	return nil, lastErr
}

// chatChannelName is the Discord channel name of a chat: the handle made channel-safe
// ("bob@example.com" → "bob-at-example-com"), or "group-<id>".
func chatChannelName(chat bridge.ChatID) string {
	raw := string(chat)
	if chat.IsGroup() {
		raw = "group-" + chat.GroupID()
	} else {
		raw = strings.Replace(raw, "@", "-at-", 1)
	}
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(raw) {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_'
		if !ok {
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
				dash = true
			}
			continue
		}
		b.WriteRune(r)
		dash = false
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 100 {
		name = name[:100]
	}
	if name == "" {
		name = "msn-chat"
	}
	return name
}

// snowflakeLess orders Discord ids numerically.
func snowflakeLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// nonNil drops the null entries a list from Discord's API may hold, which would otherwise end
// the process when read.
func nonNil[T any](xs []*T) []*T {
	return slices.DeleteFunc(xs, func(x *T) bool { return x == nil })
}
