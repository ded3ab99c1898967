package msntest

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ListBits is a set of MSN contact lists, as in LST (docs/protocol.md §3.1).
type ListBits uint8

// The five lists.
const (
	FL ListBits = 1 << iota // forward: people the owner watches
	AL                      // allow
	BL                      // block
	RL                      // reverse: people who have the owner on their FL
	PL                      // pending: RL entries the owner has not acknowledged
)

// Errors returned by the account API.
var (
	ErrUnknownAccount = errors.New("unknown account")
	ErrAccountExists  = errors.New("account already exists")
	ErrBadHandle      = errors.New("invalid handle")
	ErrHasSession     = errors.New("account has a live session")
	ErrNotOnline      = errors.New("account is not online")
	ErrNotBot         = errors.New("account is not a socketless account")
	ErrClosed         = errors.New("server closed")
	// ErrNotAnswered: a bot's messages wait for an invitation the user has not answered, and
	// no more can wait.
	ErrNotAnswered = errors.New("invitation not answered")
)

// account is one user. Accounts are never deleted. All fields are guarded by Server.mu.
//
// Memory: the contact list is a slice sorted by handle (no per-account map), handle and id
// strings of account contacts share the contact account's own strings.
type account struct {
	handle   string
	password string
	name     string // friendly name, decoded
	uuid     string
	puid     uint64
	psm      string // decoded PSM
	media    string // decoded CurrentMedia
	psmSet   bool   // a UUX (or SetPresence) was seen: send UBX
	blp      string // "AL" or "BL"
	gtc      string // "A" or "N"
	contacts []contact
	groups   []group

	ns *nsSession // live NS session, nil when none

	// Socketless presence (bots and accounts put online by SetPresence).
	virtStatus string // "" = offline
	virtCaps   uint32
	bot        BotFunc
	botSet     bool
	// P2P of a socketless account (botp2p.go), set up on first use.
	p2p *botP2P

	nakNext bool // NAK the next MSG A from this account (NAKNext)
}

// contact is one entry of an owner's contact list.
type contact struct {
	handle string
	id     string // contact GUID (C=)
	nick   string // stored friendly name (F=), decoded
	groups []string
	lists  ListBits
}

type group struct {
	id   string
	name string // decoded
}

// find returns the index of handle in a's sorted contact list, or -1.
func (a *account) find(handle string) int {
	i := sort.Search(len(a.contacts), func(i int) bool { return a.contacts[i].handle >= handle })
	if i < len(a.contacts) && a.contacts[i].handle == handle {
		return i
	}
	return -1
}

// entry returns the contact entry for handle, or nil.
func (a *account) entry(handle string) *contact {
	if i := a.find(handle); i >= 0 {
		return &a.contacts[i]
	}
	return nil
}

// upsert returns the entry for handle, creating it with id and nick when missing. The pointer is
// valid until the next insertion or removal.
func (a *account) upsert(handle, id, nick string) *contact {
	i := sort.Search(len(a.contacts), func(i int) bool { return a.contacts[i].handle >= handle })
	if i < len(a.contacts) && a.contacts[i].handle == handle {
		return &a.contacts[i]
	}
	a.contacts = append(a.contacts, contact{})
	copy(a.contacts[i+1:], a.contacts[i:])
	a.contacts[i] = contact{handle: handle, id: id, nick: nick}
	return &a.contacts[i]
}

// dropIfEmpty removes handle's entry when it is on no list any more.
func (a *account) dropIfEmpty(handle string) {
	i := a.find(handle)
	if i < 0 || a.contacts[i].lists != 0 {
		return
	}
	a.contacts = append(a.contacts[:i], a.contacts[i+1:]...)
}

// entryByID returns the FL entry whose contact id is id, or nil.
func (a *account) entryByID(id string) *contact {
	for i := range a.contacts {
		if a.contacts[i].id == id {
			return &a.contacts[i]
		}
	}
	return nil
}

func (a *account) group(id string) *group {
	for i := range a.groups {
		if a.groups[i].id == id {
			return &a.groups[i]
		}
	}
	return nil
}

// normHandle lower-cases a handle and checks its shape: an e-mail address or a tel: number.
func normHandle(h string) (string, bool) {
	h = strings.ToLower(strings.TrimSpace(h))
	if strings.HasPrefix(h, "tel:") {
		if len(h) < 5 || len(h) > 40 {
			return "", false
		}
		for _, c := range h[4:] {
			if (c < '0' || c > '9') && c != '+' {
				return "", false
			}
		}
		return h, true
	}
	at := strings.IndexByte(h, '@')
	if at <= 0 || at == len(h)-1 || len(h) > 129 || strings.ContainsAny(h, " \t\r\n,") {
		return "", false
	}
	return h, true
}

// newGUID returns a random version-4 GUID in lower case.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// randomToken returns n lower-case hex characters.
func randomToken(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// randomDigits returns n decimal digits, the first one non-zero.
func randomDigits(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	if b[0] == '0' {
		b[0] = '1'
	}
	return string(b)
}

func randomUint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// AddAccount creates an account. The handle is lower-cased; it must be an e-mail address. The
// account starts with an empty contact list, BLP AL and GTC A.
func (s *Server) AddAccount(handle, password, friendlyName string) error {
	h, ok := normHandle(handle)
	if !ok || strings.HasPrefix(h, "tel:") {
		return fmt.Errorf("%w: %q", ErrBadHandle, handle)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.accounts[h]; dup {
		return fmt.Errorf("%w: %s", ErrAccountExists, h)
	}
	if friendlyName == "" {
		friendlyName = h
	}
	s.accounts[h] = &account{
		handle: h, password: password, name: friendlyName,
		uuid: newGUID(), puid: randomUint64(), blp: "AL", gtc: "A",
	}
	return nil
}

// HasAccount reports whether an account exists.
func (s *Server) HasAccount(handle string) bool {
	h, _ := normHandle(handle)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accounts[h] != nil
}

// SetPassword changes an account's Passport password.
func (s *Server) SetPassword(handle, password string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookup(handle)
	if err != nil {
		return err
	}
	a.password = password
	return nil
}

// lookup returns the account for handle. Callers hold s.mu.
func (s *Server) lookup(handle string) (*account, error) {
	h, _ := normHandle(handle)
	a := s.accounts[h]
	if a == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownAccount, handle)
	}
	return a, nil
}

// AddContact puts contact on owner's lists (any of FL, AL, BL; RL and PL are maintained by the
// server). Adding to FL also puts owner on contact's RL, pending (PL) unless contact already
// has owner on AL or FL, exactly as an ADC from owner's client would; live sessions are not
// notified. Both must be existing accounts.
func (s *Server) AddContact(owner, contact string, lists ListBits) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.lookup(owner)
	if err != nil {
		return err
	}
	c, err := s.lookup(contact)
	if err != nil {
		return err
	}
	e := o.upsert(c.handle, c.uuid, c.name)
	e.lists |= lists & (FL | AL | BL)
	if lists&AL != 0 {
		e.lists &^= BL
	}
	if lists&BL != 0 && lists&AL == 0 {
		e.lists &^= AL
	}
	if lists&FL != 0 {
		r := c.upsert(o.handle, o.uuid, o.name)
		r.lists |= RL
		if r.lists&(AL|FL|BL) == 0 {
			r.lists |= PL
		}
	}
	return nil
}

// AddFriends makes a and b mutual contacts: each has the other on FL and AL (and so on RL).
func (s *Server) AddFriends(a, b string) error {
	if err := s.AddContact(a, b, FL|AL); err != nil {
		return err
	}
	if err := s.AddContact(b, a, FL|AL); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range [][2]string{{a, b}, {b, a}} {
		x, _ := s.lookup(p[0])
		y, _ := s.lookup(p[1])
		if e := x.entry(y.handle); e != nil {
			e.lists &^= PL
		}
	}
	return nil
}

// AddGroup creates a group in owner's list and returns its id.
func (s *Server) AddGroup(owner, name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.lookup(owner)
	if err != nil {
		return "", err
	}
	id := newGUID()
	o.groups = append(o.groups, group{id: id, name: name})
	return id, nil
}

// AddToGroup puts contact (on owner's FL) into owner's group groupID.
func (s *Server) AddToGroup(owner, contact, groupID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.lookup(owner)
	if err != nil {
		return err
	}
	h, _ := normHandle(contact)
	e := o.entry(h)
	if e == nil || e.lists&FL == 0 || o.group(groupID) == nil {
		return fmt.Errorf("%w: %s not on FL or no group %s", ErrUnknownAccount, contact, groupID)
	}
	for _, g := range e.groups {
		if g == groupID {
			return nil
		}
	}
	e.groups = append(e.groups, groupID)
	return nil
}

// Lists returns the lists contact is on in owner's contact list (0 when absent).
func (s *Server) Lists(owner, contact string) ListBits {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.lookup(owner)
	if err != nil {
		return 0
	}
	h, _ := normHandle(contact)
	if e := o.entry(h); e != nil {
		return e.lists
	}
	return 0
}

// ContactID returns the GUID the server uses as contact's C= id in owner's list.
func (s *Server) ContactID(owner, contact string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.lookup(owner)
	if err != nil {
		return ""
	}
	h, _ := normHandle(contact)
	if e := o.entry(h); e != nil {
		return e.id
	}
	return ""
}

// Groups returns owner's groups as id → name.
func (s *Server) Groups(owner string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]string{}
	if o, err := s.lookup(owner); err == nil {
		for _, g := range o.groups {
			m[g.id] = g.name
		}
	}
	return m
}

// FriendlyName returns an account's current friendly name.
func (s *Server) FriendlyName(handle string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, err := s.lookup(handle); err == nil {
		return a.name
	}
	return ""
}

// PSM returns an account's current personal message.
func (s *Server) PSM(handle string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, err := s.lookup(handle); err == nil {
		return a.psm
	}
	return ""
}
