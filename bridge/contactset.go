package bridge

import (
	"slices"
	"strings"

	"github.com/msn-bridge/msn-bridge/internal/packed"
	"github.com/msn-bridge/msn-bridge/msn"
)

// contact is the core's model of one contact: the fields of msn.Contact that the neutral
// model shows, with current media kept rendered. The core keeps one for every contact of every
// account (a million at 10,000 accounts of 100), so it is kept small and, above all, light for
// the garbage collector: its six strings are one, rec (package packed; the group ids a packed
// list inside the last field); its status is one of package msn's constants, as the client
// hands them out. A contact is then one allocation and one pointer into the heap instead of
// seven, and the collector marks a million objects fewer. Setting a field to a new value builds
// rec again, which only presence, name, group and list changes do.
type contact struct {
	rec    string
	status msn.Status
	lists  msn.List
	// announced is set once frontends have been told of the contact (in a ContactSnapshot or a
	// presence flush): its changes are then compared with what they were told.
	announced bool
}

// The fields of contact.rec, in order.
const (
	fieldHandle = iota
	fieldStoredName
	fieldFriendlyName
	fieldPSM
	fieldMedia
	fieldGroups // the ids, each after its uvarint length
	numFields
)

// contactFields is a contact's strings, unpacked.
type contactFields [numFields]string

func newContact(handle string, status msn.Status) contact {
	var f contactFields
	f[fieldHandle] = handle
	return contact{rec: packed.Pack(f[:]...), status: status}
}

// contactFrom takes an msn.Contact (a copy the session handed out) into the model.
func contactFrom(c *msn.Contact) contact {
	var f contactFields
	f[fieldHandle], f[fieldStoredName], f[fieldFriendlyName] = c.Handle, c.StoredName, c.FriendlyName
	f[fieldPSM], f[fieldMedia], f[fieldGroups] = c.PSM, c.Media.Render(), packed.List(c.Groups)
	return contact{rec: packed.Pack(f[:]...), status: c.Status, lists: c.Lists}
}

func (c *contact) Handle() string       { return c.field(fieldHandle) }
func (c *contact) StoredName() string   { return c.field(fieldStoredName) }
func (c *contact) FriendlyName() string { return c.field(fieldFriendlyName) }
func (c *contact) PSM() string          { return c.field(fieldPSM) }
func (c *contact) Media() string        { return c.field(fieldMedia) }

// Groups returns the group ids (a new slice; its strings share rec).
func (c *contact) Groups() []string { return packed.Items(c.field(fieldGroups)) }

// fields unpacks every field; the strings share rec.
func (c *contact) fields() contactFields {
	var f contactFields
	packed.Unpack(c.rec, f[:])
	return f
}

// set changes field i to v; rec is built again only when v is new.
func (c *contact) set(i int, v string) { c.rec = packed.Set(c.rec, i, v) }

func (c *contact) setGroups(ids []string) { c.set(fieldGroups, packed.List(ids)) }

func (c *contact) field(i int) string { return packed.Field(c.rec, i) }

// DisplayName is msn.Contact.DisplayName.
func (c *contact) DisplayName() string { return c.fields().displayName() }

func (f contactFields) displayName() string {
	return msn.Contact{Handle: f[fieldHandle], StoredName: f[fieldStoredName], FriendlyName: f[fieldFriendlyName]}.DisplayName()
}

// view returns the part of c that presence and profile events show.
func (c *contact) view() presenceView {
	code := string(c.status)
	if code == "" {
		code = "FLN"
	}
	f := c.fields()
	return presenceView{Handle: f[fieldHandle], Status: StatusFromMSN(code), MSNStatus: code, Name: f.displayName(),
		PSM: f[fieldPSM], Media: f[fieldMedia]}
}

// contactSet is an account's contacts, sorted by handle: one slice of small values rather
// than a map of pointers (see contact). A pointer that get or put returns is valid until the
// next put or remove.
type contactSet struct {
	list []contact
}

func newContactSet(capacity int) contactSet {
	return contactSet{list: make([]contact, 0, capacity)}
}

func (s *contactSet) find(handle string) (int, bool) {
	return slices.BinarySearchFunc(s.list, handle, func(c contact, h string) int {
		return strings.Compare(c.Handle(), h)
	})
}

// get returns the contact with handle (normalized), or nil.
func (s *contactSet) get(handle string) *contact {
	if i, ok := s.find(handle); ok {
		return &s.list[i]
	}
	return nil
}

// put adds c, or replaces the contact with its handle, and returns where it is kept.
func (s *contactSet) put(c contact) *contact {
	i, ok := s.find(c.Handle())
	if ok {
		s.list[i] = c
	} else {
		s.list = slices.Insert(s.list, i, c)
	}
	return &s.list[i]
}

// remove drops the contact with handle, if there is one.
func (s *contactSet) remove(handle string) {
	if i, ok := s.find(handle); ok {
		s.list = slices.Delete(s.list, i, i+1)
	}
}

// all returns the contacts in handle order, for ranging by index (&s.all()[i]).
func (s *contactSet) all() []contact { return s.list }
