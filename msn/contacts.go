package msn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// List is a set of contact-list bits (docs/protocol.md §3.1).
type List uint8

// The five lists.
const (
	ListForward List = 1 << iota // FL: contacts you watch
	ListAllow                    // AL: may see you and talk to you
	ListBlock                    // BL: may not
	ListReverse                  // RL: have you on their FL
	ListPending                  // PL: added you, not yet acknowledged
)

var listCodes = []struct {
	l    List
	code string
}{{ListForward, "FL"}, {ListAllow, "AL"}, {ListBlock, "BL"}, {ListReverse, "RL"}, {ListPending, "PL"}}

// String renders the set as "FL|AL".
func (l List) String() string {
	var parts []string
	for _, lc := range listCodes {
		if l&lc.l != 0 {
			parts = append(parts, lc.code)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

func (l List) code() string {
	for _, lc := range listCodes {
		if l == lc.l {
			return lc.code
		}
	}
	return ""
}

func parseList(code string) (List, bool) {
	for _, lc := range listCodes {
		if lc.code == code {
			return lc.l, true
		}
	}
	return 0, false
}

// Contact is a snapshot of one contact-list entry.
type Contact struct {
	Handle       string // lower-cased e-mail, or "tel:<number>"
	GUID         string // contact id (C=), "" when not on FL
	StoredName   string // the name stored in your list (F=)
	FriendlyName string // the contact's current own name (ILN/NLN), "" until seen online
	Lists        List
	Groups       []string // group ids
	Status       Status   // StatusOffline unless ILN/NLN said otherwise
	Capabilities uint32
	MSNObject    string // decoded msnobj XML, "" when none
	PSM          string
	Media        CurrentMedia
}

// DisplayName returns the best name to show: current name, stored name, or handle.
func (c Contact) DisplayName() string {
	switch {
	case c.FriendlyName != "":
		return c.FriendlyName
	case c.StoredName != "" && !strings.EqualFold(c.StoredName, c.Handle):
		return c.StoredName
	}
	return c.Handle
}

// Group is a contact group.
type Group struct {
	ID   string
	Name string
}

// Self is the state of the account itself.
type Self struct {
	Handle       string
	FriendlyName string
	Status       Status
	PSM          string
	Media        CurrentMedia
	Capabilities uint32
	// AllowByDefault is BLP AL: people on neither AL nor BL may contact you.
	AllowByDefault bool
	// PromptOnAdd is GTC A: ask before someone who added you is allowed.
	PromptOnAdd bool
}

// Contacts returns a snapshot of every contact, sorted by handle.
func (c *Client) Contacts() []Contact {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Contact, 0, c.contacts.len())
	for ct := range c.contacts.all() {
		out = append(out, c.publicLocked(ct))
	}
	return out
}

// Contact returns the contact with handle (case-insensitive).
func (c *Client) Contact(handle string) (Contact, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ct, ok := c.contacts.get(normHandle(handle))
	if !ok {
		return Contact{}, false
	}
	return c.publicLocked(ct), true
}

// Groups returns the groups in the order the server listed them.
func (c *Client) Groups() []Group {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Group, 0, len(c.groupSeq))
	for _, id := range c.groupSeq {
		if g, ok := c.groups[id]; ok {
			out = append(out, *g)
		}
	}
	return out
}

// Self returns the account's own state.
func (c *Client) Self() Self {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.self
	s.Media.Args = slices.Clone(s.Media.Args)
	return s
}

func normHandle(h string) string { return strings.ToLower(strings.TrimSpace(h)) }

// contactLocked returns the contact with handle h (normalized and valid), adding it unless
// the list holds Config.MaxContacts already: ok is then false, and the first time the client
// says so in its log. c.mu must be held.
func (c *Client) contactLocked(h string) (ct contactRef, ok bool) {
	if ct, ok := c.contacts.get(h); ok {
		return ct, true
	}
	if c.contacts.len() >= c.cfg.MaxContacts {
		if !c.listFullLogged {
			c.listFullLogged = true
			c.log.Warn().Int("max_contacts", c.cfg.MaxContacts).
				Msg("Contact list full, ignoring the contacts the server lists or adds beyond it")
		}
		return contactRef{}, false
	}
	return c.contacts.getOrAdd(h), true
}

// validContactHandle reports whether h, normalized, is a contact handle: an e-mail address of
// at most 129 bytes of ASCII letters, digits and "._-+'" with one '@' inside, or "tel:" and up
// to 60 digits after an optional '+'.
func validContactHandle(h string) bool {
	if strings.HasPrefix(h, "tel:") {
		return len(h) <= 64 && isNumber(strings.TrimPrefix(h[4:], "+"))
	}
	if len(h) < 3 || len(h) > 129 {
		return false
	}
	if at := strings.IndexByte(h, '@'); at <= 0 || at == len(h)-1 || strings.Count(h, "@") != 1 {
		return false
	}
	for i := 0; i < len(h); i++ {
		b := h[i]
		if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || strings.IndexByte("._-+'@", b) >= 0) {
			return false
		}
	}
	return true
}

// serverHandle decodes and normalizes a handle the server sent in a cmd line and checks it
// (validContactHandle). An invalid one is for dropping the line: ok is false and the client
// logs it (badHandle).
func (c *Client) serverHandle(cmd, raw string) (string, bool) {
	h := normHandle(Decode(raw))
	if !validContactHandle(h) {
		c.badHandle(cmd, raw)
		return "", false
	}
	return h, true
}

// badHandle logs a server line dropped for its invalid handle: the client's first at warn
// level, the rest at debug level, so that a server sending many does not flood the log.
func (c *Client) badHandle(cmd, raw string) {
	ev := c.log.Debug()
	if c.badHandleLogged.CompareAndSwap(false, true) {
		ev = c.log.Warn()
	}
	ev.Str("command", truncate(cmd, 8)).Int("length", len(raw)).Str("handle", truncate(raw, 64)).
		Msg("Ignoring a server line with an invalid contact handle")
}

type contactFlags uint8

const (
	guidLower   contactFlags = 1 << iota // guid holds the GUID, written in lower case
	guidUpper                            // guid holds the GUID, written in upper case
	guidOther                            // the GUID is not 8-4-4-4-12 hex of one case: see Client.otherGUIDs
	groupsEmpty                          // no group ids, but an empty list rather than none
)

const guidFlags = guidLower | guidUpper | guidOther

// statusIndex returns the index of s in statuses (s is always one of them in a contact).
func statusIndex(s Status) uint8 {
	for i, k := range statuses {
		if s == k {
			return uint8(i)
		}
	}
	return uint8(len(statuses) - 1) // StatusOffline
}

// parseGUID parses 8-4-4-4-12 hex. lower and upper report whether the letters in it are all of
// one case (both when it has none), so that it can be written back as it came.
func parseGUID(s string) (g [16]byte, lower, upper, ok bool) {
	if !isGUID(s) {
		return g, false, false, false
	}
	lower, upper = true, true
	j := 0
	for i := 0; i < len(s); i += 2 {
		if s[i] == '-' {
			i--
			continue
		}
		hi, lo := s[i], s[i+1]
		for _, h := range [2]byte{hi, lo} {
			switch {
			case h >= 'a' && h <= 'f':
				upper = false
			case h >= 'A' && h <= 'F':
				lower = false
			}
		}
		g[j] = unhex(hi)<<4 | unhex(lo)
		j++
	}
	return g, lower, upper, true
}

// formatGUID writes g as 8-4-4-4-12 hex.
func formatGUID(g [16]byte, upper bool) string {
	digits := "0123456789abcdef"
	if upper {
		digits = "0123456789ABCDEF"
	}
	var b [36]byte
	j := 0
	for i, x := range g {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = digits[x>>4], digits[x&15]
		j += 2
	}
	return string(b[:])
}

// guidLocked returns the contact's GUID as it was received, "" when none. c.mu must be held.
func (c *Client) guidLocked(ct contactRef) string {
	switch ct.flags & guidFlags {
	case guidLower:
		return formatGUID(ct.guid, false)
	case guidUpper:
		return formatGUID(ct.guid, true)
	case guidOther:
		return c.otherGUIDs[ct.handle()]
	}
	return ""
}

// setGUIDLocked stores a contact's GUID (s is not empty). c.mu must be held.
func (c *Client) setGUIDLocked(ct contactRef, s string) {
	ct.flags &^= guidFlags
	g, lower, upper, ok := parseGUID(s)
	switch {
	case ok && lower:
		ct.guid, ct.flags = g, ct.flags|guidLower
	case ok && upper:
		ct.guid, ct.flags = g, ct.flags|guidUpper
	default:
		if c.otherGUIDs == nil {
			c.otherGUIDs = make(map[string]string)
		}
		c.otherGUIDs[strings.Clone(ct.handle())] = strings.Clone(s)
		ct.flags |= guidOther
		return
	}
	delete(c.otherGUIDs, ct.handle())
}

// deleteContactLocked removes a contact (ct is then no longer valid). c.mu must be held.
func (c *Client) deleteContactLocked(ct contactRef) {
	delete(c.otherGUIDs, ct.handle())
	c.contacts.remove(ct)
}

// internGroupLocked returns the group's own copy of id when the group is known, a copy of id
// otherwise. c.mu must be held.
func (c *Client) internGroupLocked(id string) string {
	if g := c.groups[id]; g != nil {
		return g.ID
	}
	return strings.Clone(id)
}

// publicLocked returns the public form of a contact; its strings share one copy of the
// contact's record, not the store. c.mu must be held.
func (c *Client) publicLocked(ct contactRef) Contact {
	f := ct.copyFields()
	return Contact{
		Handle:       f[recHandle],
		GUID:         c.guidLocked(ct),
		StoredName:   f[recName],
		FriendlyName: f[recFriendly],
		Lists:        ct.lists,
		Groups:       ct.groupIDsOf(f[recGroups]),
		Status:       statuses[ct.status],
		Capabilities: ct.caps,
		MSNObject:    f[recMSNObject],
		PSM:          f[recPSM],
		Media:        ParseCurrentMedia(f[recMedia]),
	}
}

// lstEntry is one parsed LST line.
type lstEntry struct {
	Handle, Name, GUID string
	Lists              List
	Groups             []string
}

// parseLST parses the arguments of "LST N=<h> F=<name> [C=<id>] <bits> [<groups>]" by prefix,
// tolerating missing fields, a trailing empty group token and an MSNP12 network id.
func parseLST(args []string) (lstEntry, error) {
	var e lstEntry
	bitsSeen := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case strings.HasPrefix(a, "N="):
			e.Handle = normHandle(Decode(a[2:]))
		case strings.HasPrefix(a, "F="):
			e.Name = Decode(a[2:])
		case strings.HasPrefix(a, "C="):
			e.GUID = a[2:]
		case !bitsSeen && isNumber(a):
			n, err := strconv.ParseUint(a, 10, 8)
			if err != nil {
				return e, fmt.Errorf("bad list bits %q", truncate(a, 16))
			}
			e.Lists = List(n) & (ListForward | ListAllow | ListBlock | ListReverse | ListPending)
			bitsSeen = true
		case bitsSeen && isNumber(a) && i+1 < len(args):
			// MSNP12 network id before the groups.
		case bitsSeen:
			for _, g := range strings.Split(a, ",") {
				if g != "" {
					e.Groups = append(e.Groups, g)
				}
			}
		}
	}
	if e.Handle == "" {
		return e, errors.New("LST without N=")
	}
	if !bitsSeen {
		return e, errors.New("LST without list bits")
	}
	return e, nil
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// isGUID reports whether s looks like 8-4-4-4-12 hex.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if s[i] != '-' {
				return false
			}
		} else if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func (c *Client) handleLST(cmd *Command) {
	e, err := parseLST(cmd.Args)
	valid := err == nil && validContactHandle(e.Handle)
	if err == nil && !valid {
		c.badHandle(cmd.Name, e.Handle)
	}
	c.mu.Lock()
	c.syncLST++ // counted even when dropped: the SYN announced it
	ct, ok := contactRef{}, false
	if valid && e.Lists != 0 {
		ct, ok = c.contactLocked(e.Handle)
	}
	if ok {
		ct.lists = e.Lists
		if e.Name != "" {
			ct.setName(e.Name)
		}
		if e.GUID != "" {
			c.setGUIDLocked(ct, e.GUID)
		}
		for i, g := range e.Groups {
			e.Groups[i] = c.internGroupLocked(g)
		}
		ct.setGroups(e.Groups)
		c.lastLST = strings.Clone(ct.handle())
	}
	c.mu.Unlock()
	if err != nil {
		c.log.Warn().Err(err).Msg("Ignoring malformed LST")
	}
	c.signalSync()
}

func (c *Client) handleLSG(cmd *Command) {
	name, id := "", ""
	if len(cmd.Args) >= 2 {
		name, id = Decode(cmd.Args[0]), cmd.Args[1]
	}
	c.mu.Lock()
	c.syncLSG++
	if id != "" {
		// Copies: the group keeps neither the line nor, through its id, what contacts share.
		name, id = strings.Clone(name), strings.Clone(id)
		if _, ok := c.groups[id]; !ok {
			c.groupSeq = append(c.groupSeq, id)
		}
		c.groups[id] = &Group{ID: id, Name: name}
	}
	c.mu.Unlock()
	if id == "" {
		c.log.Warn().Msg("Ignoring malformed LSG")
	}
	c.signalSync()
}

func (c *Client) signalSync() {
	select {
	case c.syncSignal <- struct{}{}:
	default:
	}
}

func (c *Client) handlePrivacy(cmd *Command) {
	if len(cmd.Args) == 0 {
		return
	}
	v := cmd.Args[len(cmd.Args)-1]
	c.mu.Lock()
	switch cmd.Name {
	case "GTC":
		c.self.PromptOnAdd = v == "A"
	case "BLP":
		c.self.AllowByDefault = v == "AL"
	}
	c.mu.Unlock()
}

// handleListPush applies an ADC/REM that is not the reply to one of our requests: "ADC 0 RL
// N=… F=…" (someone added you), "REM 0 RL <handle>", and changes made by another client.
func (c *Client) handleListPush(cmd *Command) {
	args := cmd.Args
	if _, ok := cmd.TrID(); ok {
		args = args[1:]
	}
	if len(args) < 2 {
		return
	}
	l, ok := parseList(args[0])
	if !ok {
		return
	}
	if cmd.Name == "ADC" {
		ev := c.applyADC(l, args[1:])
		if ev != nil && l == ListReverse {
			c.emit(&ContactRequest{Handle: ev.Handle, Name: ev.Name})
		}
		return
	}
	c.applyREM(l, args[1:])
}

// applyADC updates the state from the arguments after the list of an ADC reply or push and
// emits ListChanged. It returns the event (nil when nothing could be parsed).
func (c *Client) applyADC(l List, args []string) *ListChanged {
	var handle, name, guid, group string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "N="):
			var ok bool
			if handle, ok = c.serverHandle("ADC", a[2:]); !ok {
				return nil
			}
		case strings.HasPrefix(a, "F="):
			name = Decode(a[2:])
		case strings.HasPrefix(a, "C="):
			guid = a[2:]
		default:
			group = a
		}
	}
	c.mu.Lock()
	var ct contactRef
	if handle == "" && guid != "" {
		ct = c.contactByGUIDLocked(guid)
	} else if handle != "" {
		ct, _ = c.contactLocked(handle)
	}
	if !ct.ok() {
		c.mu.Unlock()
		return nil
	}
	if guid != "" {
		c.setGUIDLocked(ct, guid)
	}
	if name != "" {
		ct.setName(name)
	}
	if handle == "" && group != "" {
		// "ADC t FL C=<id> <group>": a group membership, not a list change.
		if groups := ct.groupIDs(); !slices.Contains(groups, group) {
			group = c.internGroupLocked(group)
			ct.setGroups(append(groups, group))
		}
		g := c.groups[group]
		ev := &GroupChanged{Handle: strings.Clone(ct.handle()), Added: true, Group: Group{ID: group}}
		c.mu.Unlock()
		if g != nil {
			ev.Group = *g
		}
		c.emit(ev)
		return nil
	}
	ct.lists |= l
	if l == ListAllow {
		ct.lists &^= ListBlock
	} else if l == ListBlock {
		ct.lists &^= ListAllow
	}
	f := ct.copyFields()
	ev := &ListChanged{Handle: f[recHandle], List: l, Added: true, Name: f[recName], GUID: c.guidLocked(ct)}
	c.mu.Unlock()
	c.emit(ev)
	return ev
}

// applyREM updates the state from the arguments after the list of a REM reply or push.
func (c *Client) applyREM(l List, args []string) {
	id := Decode(args[0])
	group := ""
	if len(args) > 1 {
		group = args[1]
	}
	c.mu.Lock()
	ct, _ := c.contacts.get(normHandle(id))
	if !ct.ok() {
		ct = c.contactByGUIDLocked(id)
	}
	if !ct.ok() {
		c.mu.Unlock()
		return
	}
	if group != "" && l == ListForward {
		if groups := ct.groupIDs(); groups != nil {
			ct.setGroups(slices.DeleteFunc(groups, func(g string) bool { return g == group }))
		}
		ev := &GroupChanged{Handle: strings.Clone(ct.handle()), Group: Group{ID: group}}
		if g := c.groups[group]; g != nil {
			ev.Group = *g
		}
		c.mu.Unlock()
		c.emit(ev)
		return
	}
	ct.lists &^= l
	if l == ListForward {
		ct.setGroups(nil)
	}
	f := ct.copyFields()
	ev := &ListChanged{Handle: f[recHandle], List: l, Added: false, Name: f[recName], GUID: c.guidLocked(ct)}
	if ct.lists == 0 {
		c.deleteContactLocked(ct)
	}
	c.mu.Unlock()
	c.emit(ev)
}

// contactByGUIDLocked finds the contact whose GUID equals guid, ignoring case. c.mu must be
// held.
func (c *Client) contactByGUIDLocked(guid string) contactRef {
	if guid == "" {
		return contactRef{}
	}
	g, _, _, ok := parseGUID(guid)
	for ct := range c.contacts.all() {
		switch ct.flags & guidFlags {
		case guidLower, guidUpper:
			if ok && ct.guid == g {
				return ct
			}
		case guidOther:
			if strings.EqualFold(c.otherGUIDs[ct.handle()], guid) {
				return ct
			}
		}
	}
	return contactRef{}
}

// checkContactHandle validates a handle given by a caller (validContactHandle): an e-mail
// address or "tel:<digits>".
func checkContactHandle(handle string) (string, error) {
	h := normHandle(handle)
	if !validContactHandle(h) {
		return "", fmt.Errorf("%w: %q is not a valid handle", ErrInvalidArgument, truncate(handle, 64))
	}
	return h, nil
}

// AddToList adds handle to one list (FL, AL, BL; RL and PL cannot be added to). name is the
// stored name for FL (default: the handle). It blocks until the server's reply.
func (c *Client) AddToList(ctx context.Context, list List, handle, name string) error {
	h, err := checkContactHandle(handle)
	if err != nil {
		return err
	}
	code := list.code()
	if list != ListForward && list != ListAllow && list != ListBlock {
		return fmt.Errorf("%w: cannot add to list %s", ErrInvalidArgument, list)
	}
	args := []string{code, "N=" + Encode(h)}
	if list == ListForward {
		if name == "" {
			name = h
		}
		enc := Encode(name)
		if len(enc) > 387 {
			return fmt.Errorf("failed to add %s: name: %w", h, ErrTooLong)
		}
		args = append(args, "F="+enc)
	}
	c.mu.Lock()
	_, known := c.contacts.get(h)
	full := !known && c.contacts.len() >= c.cfg.MaxContacts
	c.mu.Unlock()
	if full {
		return fmt.Errorf("failed to add %s to %s: %w (%d)", h, code, ErrContactListFull, c.cfg.MaxContacts)
	}
	ns, err := c.online()
	if err != nil {
		return fmt.Errorf("failed to add %s to %s: %w", h, code, err)
	}
	// The reply is applied on the reader goroutine, before the lines after it: the ILN of a
	// contact just added follows the reply, and is only taken for a contact on a list.
	apply := func(reply *Command) {
		rest := reply.Args[1:]
		if len(rest) > 0 {
			rest = rest[1:]
		}
		if !slices.ContainsFunc(rest, func(a string) bool { return strings.HasPrefix(a, "N=") }) {
			rest = append(rest, "N="+h)
		}
		c.applyADC(list, rest)
	}
	if _, err := ns.callHook(ctx, c.cfg.RequestTimeout, apply, "ADC", args, nil); err != nil {
		return fmt.Errorf("failed to add %s to %s: %w", h, code, err)
	}
	return nil
}

// RemoveFromList removes handle from one list (FL, AL, BL, PL; never RL). FL removal uses the
// contact id when known (Escargot refuses handles there). It blocks until the server's reply.
func (c *Client) RemoveFromList(ctx context.Context, list List, handle string) error {
	h, err := checkContactHandle(handle)
	if err != nil {
		return err
	}
	if list != ListForward && list != ListAllow && list != ListBlock && list != ListPending {
		return fmt.Errorf("%w: cannot remove from list %s", ErrInvalidArgument, list)
	}
	id := Encode(h)
	if list == ListForward {
		c.mu.Lock()
		if ct, ok := c.contacts.get(h); ok && ct.flags&guidFlags != 0 {
			id = c.guidLocked(ct)
		}
		c.mu.Unlock()
	}
	if _, err := c.request(ctx, "REM", []string{list.code(), id}, nil); err != nil {
		return fmt.Errorf("failed to remove %s from %s: %w", h, list.code(), err)
	}
	c.applyREM(list, []string{h})
	return nil
}

// AddContact adds handle to the forward list with the stored name (default: the handle) and,
// unless blocked, to the allow list. It blocks until the server's replies.
func (c *Client) AddContact(ctx context.Context, handle, name string) error {
	if err := c.AddToList(ctx, ListForward, handle, name); err != nil {
		return err
	}
	ct, _ := c.Contact(handle)
	if ct.Lists&(ListAllow|ListBlock) == 0 {
		if err := c.AddToList(ctx, ListAllow, handle, ""); err != nil && !isCode(err, 215) {
			return err
		}
	}
	return nil
}

// RemoveContact removes handle from the forward list (its allow/block state is kept).
func (c *Client) RemoveContact(ctx context.Context, handle string) error {
	return c.RemoveFromList(ctx, ListForward, handle)
}

// BlockContact moves handle from the allow list to the block list.
func (c *Client) BlockContact(ctx context.Context, handle string) error {
	return c.moveContact(ctx, handle, ListAllow, ListBlock)
}

// UnblockContact moves handle from the block list to the allow list.
func (c *Client) UnblockContact(ctx context.Context, handle string) error {
	return c.moveContact(ctx, handle, ListBlock, ListAllow)
}

// moveContact takes handle off list from, when it is there, and puts it on list to. The
// server's "not on list" and "already on list" answers count as done.
func (c *Client) moveContact(ctx context.Context, handle string, from, to List) error {
	ct, _ := c.Contact(handle)
	if ct.Lists&from != 0 {
		if err := c.RemoveFromList(ctx, from, handle); err != nil && !isCode(err, 216) {
			return err
		}
	}
	if err := c.AddToList(ctx, to, handle, ""); err != nil && !isCode(err, 215) {
		return err
	}
	return nil
}

// AcceptContact approves a contact request: ADC AL, optionally ADC FL (addBack), then REM PL.
// It never sends ADC RL (Escargot disconnects on it for non-pending contacts).
func (c *Client) AcceptContact(ctx context.Context, handle string, addBack bool) error {
	if err := c.AddToList(ctx, ListAllow, handle, ""); err != nil && !isCode(err, 215) {
		return err
	}
	if addBack {
		if err := c.AddToList(ctx, ListForward, handle, ""); err != nil && !isCode(err, 215) {
			return err
		}
	}
	return c.clearPending(ctx, handle)
}

// DeclineContact refuses a contact request: optionally ADC BL (block), then REM PL.
func (c *Client) DeclineContact(ctx context.Context, handle string, block bool) error {
	if block {
		if err := c.BlockContact(ctx, handle); err != nil {
			return err
		}
	}
	return c.clearPending(ctx, handle)
}

func (c *Client) clearPending(ctx context.Context, handle string) error {
	if err := c.RemoveFromList(ctx, ListPending, handle); err != nil && !isCode(err, 216) {
		return err
	}
	return nil
}

func isCode(err error, code int) bool {
	var se *ServerError
	return errors.As(err, &se) && se.Code == code
}

// AddGroup creates a group and returns it. Every known reply shape is accepted (§3.6).
func (c *Client) AddGroup(ctx context.Context, name string) (Group, error) {
	enc := Encode(name)
	if name == "" {
		return Group{}, fmt.Errorf("%w: empty group name", ErrInvalidArgument)
	}
	if len(enc) > 61 {
		return Group{}, fmt.Errorf("failed to add group: name: %w", ErrTooLong)
	}
	reply, err := c.request(ctx, "ADG", []string{enc}, nil)
	if err != nil {
		return Group{}, fmt.Errorf("failed to add group: %w", err)
	}
	id := parseADGReply(reply.Args[1:], enc)
	if id == "" {
		return Group{}, fmt.Errorf("failed to add group: no group id in reply")
	}
	g := Group{ID: strings.Clone(id), Name: name} // the id is a piece of the reply line
	c.mu.Lock()
	if _, ok := c.groups[g.ID]; !ok {
		c.groupSeq = append(c.groupSeq, g.ID)
	}
	c.groups[g.ID] = &g
	c.mu.Unlock()
	c.emit(&GroupChanged{Group: g})
	return g, nil
}

// parseADGReply finds the group id in "name guid", "name guid 0" or "1 name guid".
func parseADGReply(args []string, sentName string) string {
	for _, a := range args {
		if isGUID(a) {
			return a
		}
	}
	// Non-GUID ids (MSNP10 without ABCH): the token after the name.
	for i, a := range args {
		if a == sentName && i+1 < len(args) {
			return args[i+1]
		}
	}
	if len(args) > 0 {
		return args[len(args)-1]
	}
	return ""
}

// RemoveGroup deletes a group.
func (c *Client) RemoveGroup(ctx context.Context, id string) error {
	if id == "" || strings.ContainsAny(id, " \r\n") {
		return fmt.Errorf("%w: bad group id", ErrInvalidArgument)
	}
	if _, err := c.request(ctx, "RMG", []string{id}, nil); err != nil {
		return fmt.Errorf("failed to remove group: %w", err)
	}
	c.mu.Lock()
	g := Group{ID: id}
	if old := c.groups[id]; old != nil {
		g = *old
	}
	delete(c.groups, id)
	c.groupSeq = slices.DeleteFunc(c.groupSeq, func(s string) bool { return s == id })
	for ct := range c.contacts.all() {
		if groups := ct.groupIDs(); slices.Contains(groups, id) {
			ct.setGroups(slices.DeleteFunc(groups, func(s string) bool { return s == id }))
		}
	}
	c.mu.Unlock()
	c.emit(&GroupChanged{Group: g, Removed: true})
	return nil
}

// RenameGroup renames a group.
func (c *Client) RenameGroup(ctx context.Context, id, name string) error {
	enc := Encode(name)
	if id == "" || strings.ContainsAny(id, " \r\n") || name == "" {
		return fmt.Errorf("%w: bad group id or name", ErrInvalidArgument)
	}
	if len(enc) > 127 {
		return fmt.Errorf("failed to rename group: name: %w", ErrTooLong)
	}
	if _, err := c.request(ctx, "REG", []string{id, enc}, nil); err != nil {
		return fmt.Errorf("failed to rename group: %w", err)
	}
	g := Group{ID: id, Name: name}
	c.mu.Lock()
	if _, ok := c.groups[id]; !ok {
		c.groupSeq = append(c.groupSeq, id)
	}
	c.groups[id] = &g
	c.mu.Unlock()
	c.emit(&GroupChanged{Group: g})
	return nil
}

// AddToGroup puts a forward-list contact into a group (ADC FL C=<id> <group>).
func (c *Client) AddToGroup(ctx context.Context, handle, groupID string) error {
	guid, err := c.contactGUID(handle)
	if err != nil {
		return err
	}
	if _, err := c.request(ctx, "ADC", []string{"FL", "C=" + guid, groupID}, nil); err != nil {
		return fmt.Errorf("failed to add %s to group: %w", handle, err)
	}
	c.applyADC(ListForward, []string{"C=" + guid, groupID})
	return nil
}

// RemoveFromGroup takes a contact out of a group (REM FL <id> <group>).
func (c *Client) RemoveFromGroup(ctx context.Context, handle, groupID string) error {
	guid, err := c.contactGUID(handle)
	if err != nil {
		return err
	}
	if _, err := c.request(ctx, "REM", []string{"FL", guid, groupID}, nil); err != nil {
		return fmt.Errorf("failed to remove %s from group: %w", handle, err)
	}
	c.applyREM(ListForward, []string{guid, groupID})
	return nil
}

func (c *Client) contactGUID(handle string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ct, ok := c.contacts.get(normHandle(handle))
	if !ok || ct.lists&ListForward == 0 {
		return "", fmt.Errorf("%s: %w", truncate(handle, 64), ErrNotOnList)
	}
	if ct.flags&guidFlags == 0 {
		return strings.Clone(ct.handle()), nil
	}
	return c.guidLocked(ct), nil
}
