package bridge

import (
	"slices"
	"strings"

	"github.com/msn-bridge/msn-bridge/internal/packed"
	"github.com/msn-bridge/msn-bridge/msn"
)

// contactSet is an account's contacts: the core's model of them, the fields of msn.Contact
// that the neutral model shows, with current media kept rendered. The core keeps one for every
// contact of every account (a million at 10,000 accounts of 100), so it is made for the
// garbage collector: the contacts are values without a pointer in one slice sorted by handle,
// and each one's eight strings are the fields of its record in the set's packed.Arena (the group
// ids a packed list in the last field). An account's contacts are then two objects for the
// collector whatever they hold, where a string per contact made a million objects more to mark
// at every collection. Setting a field appends the contact's record anew, which only presence,
// name, group and list changes do.
//
// A contactRef is valid until the next put, add or remove. The strings its accessors return
// are views of the arena, for use under the account's lock; what frontends are handed (events,
// snapshots) is a copy (copyView, neutralContact).
type contactSet struct {
	list  []contact
	arena packed.Arena
}

// contact is one contact in a contactSet, 12 bytes.
type contact struct {
	rec    packed.Ref
	status uint8 // index into msnStatuses
	lists  msn.List
	// announced is set once frontends have been told of the contact (in a ContactSnapshot or a
	// presence flush): its changes are then compared with what they were told.
	announced bool
}

// contactRef is a contact of a set; the zero contactRef is none.
type contactRef struct {
	*contact
	s *contactSet
}

// msnStatuses are the statuses a contact can have, for its index. package msn hands out only
// these; anything else is kept as offline.
var msnStatuses = [...]msn.Status{msn.StatusOnline, msn.StatusBusy, msn.StatusIdle, msn.StatusBRB, msn.StatusAway,
	msn.StatusPhone, msn.StatusLunch, msn.StatusHidden, msn.StatusOffline}

func statusIndex(st msn.Status) uint8 {
	for i, k := range msnStatuses {
		if k == st {
			return uint8(i)
		}
	}
	return uint8(len(msnStatuses) - 1)
}

// The fields of a contact's record, in order.
const (
	fieldHandle = iota
	fieldStoredName
	fieldFriendlyName
	fieldPSM
	fieldMedia
	fieldGroups // the ids, each after its uvarint length
	// fieldAnnounced is the SHA1D of the display picture the contact last announced (its
	// msnobj), fieldAvatar that of the picture fetched and shown (Contact.Avatar).
	fieldAnnounced
	fieldAvatar
	numFields
)

// contactFields is a contact's strings, unpacked.
type contactFields [numFields]string

func newContactSet(capacity int) contactSet {
	return contactSet{list: make([]contact, 0, capacity)}
}

func (s *contactSet) find(handle string) (int, bool) {
	return slices.BinarySearchFunc(s.list, handle, func(c contact, h string) int {
		return strings.Compare(s.arena.Field(c.rec, fieldHandle), h)
	})
}

func (s *contactSet) len() int { return len(s.list) }

// at returns the i-th contact in handle order.
func (s *contactSet) at(i int) contactRef { return contactRef{&s.list[i], s} }

// get returns the contact with handle (normalized), or the zero contactRef.
func (s *contactSet) get(handle string) contactRef {
	if i, ok := s.find(handle); ok {
		return s.at(i)
	}
	return contactRef{}
}

// add adds a contact with only its handle (normalized) and status, or replaces the one with
// its handle, and returns it.
func (s *contactSet) add(handle string, status msn.Status) contactRef {
	var f contactFields
	f[fieldHandle] = handle
	return s.store(contact{rec: s.arena.Add(f[:]...), status: statusIndex(status)})
}

// put takes an msn.Contact (a copy the session handed out) into the set, replacing the contact
// with its handle, and returns it.
func (s *contactSet) put(c *msn.Contact) contactRef {
	var f contactFields
	f[fieldHandle], f[fieldStoredName], f[fieldFriendlyName] = c.Handle, c.StoredName, c.FriendlyName
	f[fieldPSM], f[fieldMedia], f[fieldGroups] = c.PSM, c.Media.Render(), packed.List(c.Groups)
	return s.store(contact{rec: s.arena.Add(f[:]...), status: statusIndex(c.Status), lists: c.Lists})
}

func (s *contactSet) store(c contact) contactRef {
	i, ok := s.find(s.arena.Field(c.rec, fieldHandle))
	if ok {
		s.arena.Drop(s.list[i].rec)
		s.list[i] = c
		s.compactIfWasteful()
	} else {
		s.list = slices.Insert(s.list, i, c)
	}
	return s.at(i)
}

// remove drops the contact with handle, if there is one.
func (s *contactSet) remove(handle string) {
	if i, ok := s.find(handle); ok {
		s.arena.Drop(s.list[i].rec)
		s.list = slices.Delete(s.list, i, i+1)
		s.compactIfWasteful()
	}
}

func (s *contactSet) compactIfWasteful() {
	packed.CompactIfWasteful(&s.arena, s.list, func(c *contact) *packed.Ref { return &c.rec })
}

func (c contactRef) ok() bool { return c.contact != nil }

func (c contactRef) Handle() string       { return c.field(fieldHandle) }
func (c contactRef) StoredName() string   { return c.field(fieldStoredName) }
func (c contactRef) FriendlyName() string { return c.field(fieldFriendlyName) }
func (c contactRef) PSM() string          { return c.field(fieldPSM) }
func (c contactRef) Media() string        { return c.field(fieldMedia) }

// Status returns the contact's status, one of package msn's constants.
func (c contactRef) Status() msn.Status { return msnStatuses[c.status] }

func (c contactRef) setStatus(st msn.Status) { c.status = statusIndex(st) }

// Groups returns the group ids (a new slice of views).
func (c contactRef) Groups() []string { return packed.Items(c.field(fieldGroups)) }

// fields unpacks every field, as views.
func (c contactRef) fields() contactFields {
	var f contactFields
	packed.Unpack(c.s.arena.View(c.rec), f[:])
	return f
}

// copyFields unpacks every field, sharing one copy of the record.
func (c contactRef) copyFields() contactFields {
	var f contactFields
	packed.Unpack(c.s.arena.Copy(c.rec), f[:])
	return f
}

// set changes field i to v; the record is appended anew only when v is new.
func (c contactRef) set(i int, v string) {
	c.rec = c.s.arena.Set(c.rec, i, v)
	c.s.compactIfWasteful()
}

func (c contactRef) setGroups(ids []string) { c.set(fieldGroups, packed.List(ids)) }

func (c contactRef) field(i int) string { return c.s.arena.Field(c.rec, i) }

// DisplayName is msn.Contact.DisplayName (a view).
func (c contactRef) DisplayName() string { return c.fields().displayName() }

func (f contactFields) displayName() string {
	return msn.Contact{Handle: f[fieldHandle], StoredName: f[fieldStoredName], FriendlyName: f[fieldFriendlyName]}.DisplayName()
}

// view returns the part of c that presence and profile events show, as views: for comparing
// under the account's lock.
func (c contactRef) view() presenceView { return c.viewOf(c.fields()) }

// copyView is view with copies, for frontends.
func (c contactRef) copyView() presenceView { return c.viewOf(c.copyFields()) }

func (c contactRef) viewOf(f contactFields) presenceView {
	code := string(c.Status())
	return presenceView{Handle: f[fieldHandle], Status: StatusFromMSN(code), MSNStatus: code, Name: f.displayName(),
		PSM: f[fieldPSM], Media: f[fieldMedia]}
}
