package bridge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// handleMSN translates one event of a session into the neutral model. It runs on the session's
// event goroutine, never blocks (frontend queues do not block), and ignores events of sessions
// that are no longer current.
func (a *Account) handleMSN(live *liveSession, ev msn.Event) {
	if d, ok := ev.(*msn.Disconnected); ok {
		a.mu.Lock()
		if live.ended {
			a.mu.Unlock()
			return
		}
		live.ended, live.cause = true, d.Err
		onEnd := live.onEnd
		if n, ok := disconnectNotice(d.Err); ok && live.gen == a.gen {
			a.emitLocked(n, "")
		}
		a.mu.Unlock()
		if onEnd != nil {
			onEnd(d.Err)
		}
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if live.gen != a.gen {
		return
	}
	if h, ok := checkEventHandles(ev); !ok {
		a.log.Debug().Str("event", fmt.Sprintf("%T", ev)).Int("length", len(h)).Msg("Ignoring an MSN event with an invalid handle")
		return
	}
	switch e := ev.(type) {
	case *msn.LoggedIn:
		// A chosen name is the desired one: connect restores it right after login, and keeps
		// it for the next login if that fails. Only an account without one adopts the server's.
		if a.profile.Name == "" && e.Self.FriendlyName != "" {
			a.profile.Name = e.Self.FriendlyName
		}
		a.sessionOnlineLocked(live)
	case *msn.ContactListSynced:
		// The client delivers it right after LoggedIn, and its contacts are the list as the
		// SYN left it, without the presence that came after. The model was already taken from
		// the session at login, which is newer: using this one would show every contact
		// offline until their presence events arrive again.
		if live.online {
			return
		}
		contacts := a.capContactsLocked(e.Contacts)
		a.contacts = newContactSet(len(contacts))
		for i := range contacts {
			a.contacts.put(&contacts[i])
		}
	case *msn.PresenceChanged:
		// Only a contact's: a server sending presence for strangers must not make them contacts.
		c := a.contacts.get(NormalizeHandle(e.Handle))
		if !c.ok() {
			a.log.Debug().Str("contact", e.Handle).Msg("Ignoring presence of a handle that is not a contact")
			return
		}
		delete(a.carriedStatus, c.Handle())
		before := c.view()
		c.setStatus(e.Status)
		if e.FriendlyName != "" {
			c.set(fieldFriendlyName, e.FriendlyName)
		}
		a.presenceChangedLocked(c, before)
		a.announceAvatarLocked(c, e.MSNObject)
	case *msn.PersonalMessageChanged:
		c := a.contacts.get(NormalizeHandle(e.Handle))
		if !c.ok() {
			a.log.Debug().Str("contact", e.Handle).Msg("Ignoring the personal message of a handle that is not a contact")
			return
		}
		delete(a.carriedPSM, c.Handle())
		before := c.view()
		c.set(fieldPSM, e.PSM)
		c.set(fieldMedia, e.Media.Render())
		a.presenceChangedLocked(c, before)
	case *msn.ListChanged:
		a.listChangedLocked(e)
	case *msn.ContactRequest:
		c, ok := a.contactLocked(e.Handle)
		if !ok {
			return
		}
		c.lists |= msn.ListPending | msn.ListReverse
		if e.Name != "" && c.StoredName() == "" {
			c.set(fieldStoredName, e.Name)
		}
		a.checkRequestLocked(c)
	case *msn.GroupChanged:
		if c := a.contacts.get(NormalizeHandle(e.Handle)); c.ok() {
			groups := c.Groups()
			if e.Added && !slices.Contains(groups, e.Group.ID) {
				c.setGroups(append(groups, e.Group.ID))
			} else if !e.Added && slices.Contains(groups, e.Group.ID) {
				c.setGroups(slices.DeleteFunc(groups, func(g string) bool { return g == e.Group.ID }))
			}
		}
	case *msn.MessageReceived:
		chat := a.chatForLocked(e.SessionID, e.From, e.Participants)
		if from := NormalizeHandle(e.From); e.FromName != "" && chat.members[from] {
			chat.names[from] = e.FromName
		}
		a.seq++
		t := e.Time
		if t.IsZero() {
			t = a.core.clock.Now()
		}
		a.core.metrics.message("in", "received")
		a.emitChatLocked(Message{
			ID: messageID(e.From, t, a.seq), Chat: chat.id, Sender: NormalizeHandle(e.From),
			SenderName: e.FromName, Text: e.Text, Format: neutralFormat(e.Format), Time: t,
		}, e.Emoticons)
	case *msn.TypingReceived:
		chat := a.chatForLocked(e.SessionID, e.From, nil)
		a.emitLocked(Typing{Chat: chat.id, Sender: NormalizeHandle(e.From)}, "")
	case *msn.NudgeReceived:
		chat := a.chatForLocked(e.SessionID, e.From, nil)
		a.emitChatLocked(Nudge{Chat: chat.id, Sender: NormalizeHandle(e.From), Time: a.core.clock.Now()}, nil)
	case *msn.FileOffered:
		chat := a.chatForLocked(e.SessionID, e.From, nil)
		offer, name := live.sess.offerOf(e), a.senderNameLocked(chat, e.From)
		a.core.media.spawn(func() { a.receiveFile(offer, e, chat.id, name) })
	case *msn.WinkReceived:
		chat := a.chatForLocked(e.SessionID, e.From, nil)
		name := a.senderNameLocked(chat, e.From)
		a.core.media.spawn(func() { a.receiveWink(e, chat.id, name) })
	case *msn.ParticipantJoined:
		a.joinedLocked(e.SessionID, NormalizeHandle(e.Handle), e.Name)
	case *msn.ParticipantLeft:
		h := NormalizeHandle(e.Handle)
		if cs, ok := a.chats[e.SessionID]; ok {
			delete(cs.members, h)
			delete(cs.names, h)
			if cs.group {
				a.emitLocked(ChatMembership{Chat: cs.id, Handle: h, Joined: false, Members: membersOf(cs), Names: maps.Clone(cs.names)}, "")
			}
		}
	case *msn.SessionClosed:
		if cs, ok := a.chats[e.SessionID]; ok {
			delete(a.chats, e.SessionID)
			if cs.group {
				// The account itself leaving marks the end of an ephemeral group chat.
				a.emitLocked(ChatMembership{Chat: cs.id, Handle: a.handle, Joined: false}, "")
			}
		}
	// An own change marked Requested is the confirmation of the core's own call (a profile
	// change, or what connect restored): the profile already holds it, or a newer value that
	// the confirmation, delivered late, must not undo.
	case *msn.OwnStatusChanged:
		if e.Requested {
			return
		}
		if a.overtakenLocked(live, func(s msn.Self) bool { return s.Status != e.Status }) {
			return
		}
		if st := StatusFromMSN(string(e.Status)); st != a.profile.Status && e.Status != msn.StatusOffline {
			a.profile.Status = st
			a.emitLocked(OwnProfile{Status: st, PSM: a.profile.PSM, Name: a.profile.Name}, "")
		}
	case *msn.OwnNameChanged:
		if e.Requested {
			// The restored name confirmed ends the restore.
			live.restoringName = live.restoringName && e.Name != a.profile.Name
			return
		}
		if live.restoringName {
			live.restoringName = e.Name != a.profile.Name
			return
		}
		if a.overtakenLocked(live, func(s msn.Self) bool { return s.FriendlyName != e.Name }) {
			return
		}
		if e.Name != a.profile.Name {
			a.profile.Name = e.Name
			a.emitLocked(OwnProfile{Status: a.profile.Status, PSM: a.profile.PSM, Name: e.Name}, "")
		}
	case *msn.OwnPersonalMessageChanged:
		if e.Requested {
			return
		}
		if a.overtakenLocked(live, func(s msn.Self) bool { return s.PSM != e.PSM }) {
			return
		}
		if e.PSM != a.profile.PSM {
			a.profile.PSM = e.PSM
			a.emitLocked(OwnProfile{Status: a.profile.Status, PSM: e.PSM, Name: a.profile.Name}, "")
		}
	case *msn.SystemMessage:
		a.log.Info().Int("type", e.Type).Int("minutes", e.MinutesUntilShutdown).Msg("MSN server announcement")
		if e.Type == 1 {
			a.emitLocked(ServerNotice{Kind: NoticeMaintenance, Minutes: max(e.MinutesUntilShutdown, 0)}, "")
		}
	}
}

// disconnectNotice is the notice of a session the server closed for a shutdown or for a while.
func disconnectNotice(err error) (ServerNotice, bool) {
	var de *msn.DisconnectError
	if !errors.As(err, &de) {
		return ServerNotice{}, false
	}
	switch de.Reason {
	case msn.ReasonShutdown:
		return ServerNotice{Kind: NoticeShutdown}, true
	case msn.ReasonRetryLater:
		return ServerNotice{Kind: NoticeRetryLater, Minutes: int((de.RetryAfter + time.Minute - 1) / time.Minute)}, true
	}
	return ServerNotice{}, false
}

// overtakenLocked reports whether a change of the own profile that the server reported, and
// the core did not ask for, is older than what the core has since: one of the core's own
// changes is waiting for the server (it will be the newer), or the session no longer has the
// reported value (moved reports whether it moved). The session's state changes before its
// event is delivered, so a value it no longer has was overtaken: by the core's own change,
// whose confirmation follows, or by a later report. Adopting it would undo the user's choice
// (the name reported during login, delivered after the user set another, was taken for a
// change made elsewhere and stored).
func (a *Account) overtakenLocked(live *liveSession, moved func(msn.Self) bool) bool {
	if a.ownCalls > 0 {
		return true
	}
	ms, ok := live.sess.(interface{ Self() msn.Self })
	return ok && moved(ms.Self())
}

// sessionOnlineLocked takes a session that logged in into the model, once: the contact list
// from the session, StateOnline and a ContactSnapshot.
func (a *Account) sessionOnlineLocked(live *liveSession) {
	if live.online {
		return
	}
	live.online = true
	a.resyncLocked(live)
	a.setStateLocked(AccountState{State: StateOnline})
	a.emitSnapshotLocked()
}

// resyncLocked refreshes the contact model from the session after login.
//
// A session's contact list comes before the presence of its contacts (the server sends ILN and
// UBX after the first CHG), so after a reconnect it would show every contact offline until
// those arrive, and frontends would see each of them go offline and back. Instead, a contact
// the previous session knew as present keeps that presence (and a PSM it had keeps that PSM)
// until the server says otherwise; what the server has not confirmed by the end of
// Config.PresenceGrace is taken as gone (offline, no PSM) then, through the usual coalescing.
func (a *Account) resyncLocked(live *liveSession) {
	contacts := a.capContactsLocked(live.sess.Contacts())
	prev := a.contacts
	a.contacts = newContactSet(len(contacts))
	clear(a.carriedStatus)
	clear(a.carriedPSM)
	for i := range contacts {
		c := a.contacts.put(&contacts[i])
		h := contacts[i].Handle
		if old := prev.get(h); old.ok() {
			// The picture shown stays; announceAvatarLocked below drops or replaces it.
			c.set(fieldAnnounced, old.field(fieldAnnounced))
			c.set(fieldAvatar, old.field(fieldAvatar))
			if StatusFromMSN(string(c.Status())) == StatusOffline && StatusFromMSN(string(old.Status())) != StatusOffline {
				c.status = old.status
				a.carriedStatus[h] = true
			}
			if psm, media := old.PSM(), old.Media(); c.PSM() == "" && c.Media() == "" && (psm != "" || media != "") {
				c.set(fieldPSM, psm)
				c.set(fieldMedia, media)
				a.carriedPSM[h] = true
			}
		}
	}
	for i := range contacts {
		if c := a.contacts.get(NormalizeHandle(contacts[i].Handle)); c.ok() {
			a.announceAvatarLocked(c, contacts[i].MSNObject)
		}
	}
	for h := range a.requests {
		if !a.contacts.get(h).ok() {
			delete(a.requests, h)
		}
	}
	for i := range a.contacts.len() {
		a.checkRequestLocked(a.contacts.at(i))
	}
	if len(a.carriedStatus) > 0 || len(a.carriedPSM) > 0 {
		gen := live.gen
		a.core.clock.AfterFunc(a.core.cfg.PresenceGrace, func() { a.endPresenceGrace(gen) })
	}
}

// endPresenceGrace ends the carry-over of presence of session gen: what the server did not
// confirm is taken as gone.
func (a *Account) endPresenceGrace(gen uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if gen != a.gen {
		return
	}
	for h := range a.carriedStatus {
		if c := a.contacts.get(h); c.ok() {
			before := c.view()
			c.setStatus(msn.StatusOffline)
			a.presenceChangedLocked(c, before)
		}
	}
	for h := range a.carriedPSM {
		if c := a.contacts.get(h); c.ok() {
			before := c.view()
			c.set(fieldPSM, "")
			c.set(fieldMedia, "")
			a.presenceChangedLocked(c, before)
		}
	}
	clear(a.carriedStatus)
	clear(a.carriedPSM)
}

func (a *Account) emitSnapshotLocked() {
	a.presence.reset()
	for i := range a.contacts.len() {
		a.contacts.at(i).announced = true
	}
	a.emitLocked(ContactSnapshot{Contacts: a.contactsLocked()}, "")
}

// contactLocked returns the contact with handle (valid), adding it unless the account has
// maxContacts already: ok is then false, and the first time the account says so in its log.
func (a *Account) contactLocked(handle string) (c contactRef, ok bool) {
	h := NormalizeHandle(handle)
	if c := a.contacts.get(h); c.ok() {
		return c, true
	}
	if a.contacts.len() >= a.maxContacts() {
		a.listFullLocked()
		return contactRef{}, false
	}
	return a.contacts.add(h, msn.StatusOffline), true
}

// maxContacts is the most contacts the account keeps: Config.MSN.MaxContacts, which the MSN
// client keeps too, so that neither a server nor a session can grow the model without bound.
func (a *Account) maxContacts() int {
	if n := a.core.cfg.MSN.MaxContacts; n > 0 {
		return n
	}
	return msn.DefaultMaxContacts
}

// capContactsLocked returns the first maxContacts of contacts (a session's list).
func (a *Account) capContactsLocked(contacts []msn.Contact) []msn.Contact {
	if max := a.maxContacts(); len(contacts) > max {
		a.listFullLocked()
		return contacts[:max]
	}
	return contacts
}

// listFullLocked logs, once per account, that its contact list reached maxContacts.
func (a *Account) listFullLocked() {
	if !a.listFullLogged {
		a.listFullLogged = true
		a.log.Warn().Int("max_contacts", a.maxContacts()).Msg("Contact list full, ignoring contacts beyond the limit")
	}
}

// checkEventHandles checks the handles an MSN event names (package msn checks them already; the
// core does not depend on it): ok is false, with the first invalid one, when one is not a
// valid handle.
func checkEventHandles(ev msn.Event) (string, bool) {
	var hs []string
	switch e := ev.(type) {
	case *msn.PresenceChanged:
		hs = []string{e.Handle}
	case *msn.PersonalMessageChanged:
		hs = []string{e.Handle}
	case *msn.ListChanged:
		hs = []string{e.Handle}
	case *msn.ContactRequest:
		hs = []string{e.Handle}
	case *msn.MessageReceived:
		hs = append([]string{e.From}, e.Participants...)
	case *msn.TypingReceived:
		hs = []string{e.From}
	case *msn.NudgeReceived:
		hs = []string{e.From}
	case *msn.FileOffered:
		hs = []string{e.From}
	case *msn.WinkReceived:
		hs = []string{e.From}
	case *msn.ParticipantJoined:
		hs = []string{e.Handle}
	}
	for _, h := range hs {
		if _, err := ValidateHandle(h); err != nil {
			return h, false
		}
	}
	return "", true
}

// presenceChangedLocked feeds the coalescer with a change of c (before is c's view before it)
// and schedules a flush one window later.
func (a *Account) presenceChangedLocked(c contactRef, before presenceView) {
	a.presence.update(c.Handle(), before, c.announced)
	if !a.armed {
		a.armed = true
		gen := a.gen
		a.core.clock.AfterFunc(a.core.cfg.PresenceWindow, func() { a.flushPresence(gen) })
	}
}

func (a *Account) flushPresence(gen uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.armed = false
	if gen != a.gen {
		return
	}
	evts := a.presence.flush(func(h string) (presenceView, bool) {
		c := a.contacts.get(h)
		if !c.ok() {
			return presenceView{}, false
		}
		c.announced = true
		return c.copyView(), true
	})
	for _, evt := range evts {
		a.emitLocked(evt, "")
	}
}

func (a *Account) listChangedLocked(e *msn.ListChanged) {
	c := a.contacts.get(NormalizeHandle(e.Handle))
	if e.Added && !c.ok() {
		var ok bool
		if c, ok = a.contactLocked(e.Handle); !ok {
			return
		}
	}
	if !c.ok() {
		return // a removal from a list of a handle the account does not have
	}
	before := c.lists
	if e.Added {
		c.lists |= e.List
	} else {
		c.lists &^= e.List
	}
	if e.Name != "" {
		c.set(fieldStoredName, e.Name)
	}
	if before == c.lists {
		return
	}
	a.checkRequestLocked(c)
	var kind ListChangeKind
	switch {
	case e.List == msn.ListForward && e.Added:
		kind = ListAdded
	case e.List == msn.ListForward:
		kind = ListRemoved
	case e.List == msn.ListBlock && e.Added:
		kind = ListBlocked
	case e.List == msn.ListBlock:
		kind = ListUnblocked
	case e.List == msn.ListReverse && e.Added:
		kind = ListAddedYou
	case e.List == msn.ListReverse:
		kind = ListRemovedYou
	default:
		return // allow/pending bookkeeping is visible through Contact and PendingRequests
	}
	a.emitLocked(ListChange{Kind: kind, Contact: neutralContact(c)}, "")
	if c.lists == 0 {
		h := c.Handle()
		a.contacts.remove(h)
		a.presence.forget(h)
		a.avatars.forget(h)
		delete(a.avatars.last, h)
		delete(a.requests, h)
	}
}

// isRequest reports whether a contact on lists is a contact request: it added the account (the
// server flags it pending) and the account has not answered, by allowing or blocking it. A
// pending flag the server kept after an answer given elsewhere is no request.
func isRequest(lists msn.List) bool {
	return lists&msn.ListPending != 0 && lists&(msn.ListAllow|msn.ListBlock) == 0
}

// checkRequestLocked announces c as a contact request when it became one, once: a request
// already announced is not announced again at a reconnect, and one that stopped being a
// request is forgotten. A pending flag left on an answered contact is cleared on the server in
// the background, so the server stops presenting it as a request.
func (a *Account) checkRequestLocked(c contactRef) {
	h := c.Handle()
	if !isRequest(c.lists) {
		delete(a.requests, h)
		if c.lists&msn.ListPending != 0 {
			a.stalePending[h] = c.lists&msn.ListBlock != 0
			if !a.clearing {
				a.clearing = true
				go a.clearStalePending()
			}
		}
		return
	}
	if a.requests[h] {
		return
	}
	a.requests[h] = true
	f := c.copyFields()
	a.emitLocked(ContactRequest{Handle: f[fieldHandle], Name: f.displayName()}, "")
}

// clearStalePending removes the contacts of stalePending, already allowed or blocked, from the
// pending list on the server, one at a time (a list with many never floods the server), until
// none is left. A failure is logged; the next login tries again.
func (a *Account) clearStalePending() {
	for {
		a.mu.Lock()
		var h string
		var blocked bool
		for h, blocked = range a.stalePending {
			break
		}
		delete(a.stalePending, h)
		if h == "" {
			a.clearing = false
		}
		a.mu.Unlock()
		if h == "" {
			return
		}
		if err := a.clearPending(h, blocked); err != nil {
			a.log.Debug().Err(ScrubError(err)).Str("contact", h).Msg("Failed to clear a stale pending flag")
		}
	}
}

func (a *Account) clearPending(h string, blocked bool) error {
	if err := a.core.beginAction(); err != nil {
		return err
	}
	defer a.core.endAction()
	sess, err := a.connected()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(a.core.bgCtx, 2*max(a.core.cfg.MSN.RequestTimeout, 30*time.Second))
	defer cancel()
	if blocked {
		return sess.DeclineContact(ctx, h, false)
	}
	return sess.AcceptContact(ctx, h, false)
}

// chatForLocked finds or creates the chat of a switchboard session. A session with more than
// one other participant is a group chat for the rest of its life.
func (a *Account) chatForLocked(sessionID, from string, participants []string) *chatState {
	from = NormalizeHandle(from)
	cs, ok := a.chats[sessionID]
	if !ok {
		cs = &chatState{members: map[string]bool{}, names: map[string]string{}}
		a.chats[sessionID] = cs
	}
	if from != "" && from != a.handle {
		cs.members[from] = true
	}
	for _, p := range participants {
		if p = NormalizeHandle(p); p != a.handle && p != "" {
			cs.members[p] = true
		}
	}
	a.classifyLocked(sessionID, cs, from)
	return cs
}

func (a *Account) classifyLocked(sessionID string, cs *chatState, fallback string) (becameGroup bool) {
	if !cs.group && len(cs.members) > 1 {
		cs.group = true
		cs.id = GroupChat(sessionID)
		return true
	}
	if cs.id == "" {
		if cs.group {
			cs.id = GroupChat(sessionID)
		} else if m := membersOf(cs); len(m) == 1 {
			cs.id = DirectChat(m[0])
		} else {
			cs.id = DirectChat(fallback)
		}
	}
	return false
}

func (a *Account) joinedLocked(sessionID, handle, name string) {
	if handle == a.handle {
		return
	}
	cs, ok := a.chats[sessionID]
	if !ok {
		cs = &chatState{members: map[string]bool{}, names: map[string]string{}}
		a.chats[sessionID] = cs
	}
	was := cs.members[handle]
	cs.members[handle] = true
	if name != "" {
		cs.names[handle] = name
	}
	became := a.classifyLocked(sessionID, cs, handle)
	if cs.group && (became || !was) {
		a.emitLocked(ChatMembership{Chat: cs.id, Handle: handle, Joined: true, Members: membersOf(cs), Names: maps.Clone(cs.names)}, "")
	}
}

func membersOf(cs *chatState) []string {
	out := make([]string, 0, len(cs.members))
	for h := range cs.members {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

func neutralFormat(f *msn.TextFormat) Format {
	if f == nil {
		return Format{}
	}
	return Format{Font: f.Font, Bold: f.Bold, Italic: f.Italic, Underline: f.Underline, Strikethrough: f.Strike, Color: f.Color}
}

func msnFormat(f Format) *msn.TextFormat {
	if f.IsZero() {
		return nil
	}
	return &msn.TextFormat{Font: f.Font, Bold: f.Bold, Italic: f.Italic, Underline: f.Underline, Strike: f.Strikethrough, Color: f.Color}
}

// senderNameLocked is the name a chat's switchboard gave from, else the contact's display name.
func (a *Account) senderNameLocked(chat *chatState, from string) string {
	from = NormalizeHandle(from)
	if n := chat.names[from]; n != "" {
		return n
	}
	if c := a.contacts.get(from); c.ok() {
		return c.copyFields().displayName()
	}
	return ""
}
