package msn

import (
	"iter"
	"slices"
	"strings"

	"github.com/msn-bridge/msn-bridge/internal/packed"
)

// contactStore is the client's contacts, in their stored form (Contacts and Contact build the
// public one on the way out). The client keeps one for every contact, a million at 10,000
// accounts of 100, so the store is made for the collector: the contacts are values without a
// pointer in one slice sorted by handle, and every string of theirs (the handle, stored and
// friendly name, msnobj, PSM, the current media as its wire text, the group ids) is a field of
// the contact's record in one packed.Arena. A client's contacts are then two objects for the
// collector, whatever they hold.
//
// A contactRef is valid until the next contact is added or removed. The strings its accessors
// return are views of the arena, for use under c.mu; what leaves the lock (events, the public
// form) is a copy (copyFields, strings.Clone).
type contactStore struct {
	list  []contact
	arena packed.Arena
}

// contact is one contact's stored form, 32 bytes: its record, the GUID as 16 bytes, and
// indexes and bits for the rest.
type contact struct {
	rec    packed.Ref // the fields below, packed in the store's arena
	guid   [16]byte
	caps   uint32
	lists  List
	status uint8 // index into statuses
	flags  contactFlags
}

// The fields of a contact's record.
const (
	recHandle = iota
	recName   // StoredName
	recFriendly
	recMSNObject
	recPSM
	recMedia  // the CurrentMedia wire text
	recGroups // the group ids, a packed list
	recFields
)

// contactRef is a contact of a store.
type contactRef struct {
	*contact
	s *contactStore
}

// ok reports whether ct is a contact (lookups that find none return the zero contactRef).
func (ct contactRef) ok() bool { return ct.contact != nil }

func (s *contactStore) len() int { return len(s.list) }

func (s *contactStore) find(h string) (int, bool) {
	return slices.BinarySearchFunc(s.list, h, func(c contact, h string) int {
		return strings.Compare(s.arena.Field(c.rec, recHandle), h)
	})
}

// get returns the contact with handle h (normalized).
func (s *contactStore) get(h string) (contactRef, bool) {
	if i, ok := s.find(h); ok {
		return contactRef{&s.list[i], s}, true
	}
	return contactRef{}, false
}

// getOrAdd returns the contact with handle h (normalized), adding it, offline and with empty
// fields, when there is none.
func (s *contactStore) getOrAdd(h string) contactRef {
	i, ok := s.find(h)
	if !ok {
		var f [recFields]string
		f[recHandle] = h // copied into the arena: never the line's memory
		s.list = slices.Insert(s.list, i, contact{rec: s.arena.Add(f[:]...), status: statusIndex(StatusOffline)})
	}
	return contactRef{&s.list[i], s}
}

// remove drops ct's contact.
func (s *contactStore) remove(ct contactRef) {
	if i, ok := s.find(ct.handle()); ok {
		s.arena.Drop(s.list[i].rec)
		s.list = slices.Delete(s.list, i, i+1)
		s.compactIfWasteful()
	}
}

// all yields every contact, in handle order. The loop's body must not add or remove one.
func (s *contactStore) all() iter.Seq[contactRef] {
	return func(yield func(contactRef) bool) {
		for i := range s.list {
			if !yield(contactRef{&s.list[i], s}) {
				return
			}
		}
	}
}

func (s *contactStore) compactIfWasteful() {
	packed.CompactIfWasteful(&s.arena, s.list, func(c *contact) *packed.Ref { return &c.rec })
}

func (ct contactRef) field(i int) string { return ct.s.arena.Field(ct.rec, i) }

func (ct contactRef) handle() string    { return ct.field(recHandle) }
func (ct contactRef) name() string      { return ct.field(recName) }
func (ct contactRef) friendly() string  { return ct.field(recFriendly) }
func (ct contactRef) msnobj() string    { return ct.field(recMSNObject) }
func (ct contactRef) psm() string       { return ct.field(recPSM) }
func (ct contactRef) mediaText() string { return ct.field(recMedia) }

// copyFields returns the contact's fields, sharing one copy of its record.
func (ct contactRef) copyFields() [recFields]string {
	var f [recFields]string
	packed.Unpack(ct.s.arena.Copy(ct.rec), f[:])
	return f
}

func (ct contactRef) set(i int, v string) {
	ct.rec = ct.s.arena.Set(ct.rec, i, v)
	ct.s.compactIfWasteful()
}

// setUBX stores a personal message and the text of the current media ("" for none).
func (ct contactRef) setUBX(psm, media string) {
	ct.set(recPSM, psm)
	ct.set(recMedia, media)
}

func (ct contactRef) setName(name string)     { ct.set(recName, name) }
func (ct contactRef) setFriendly(name string) { ct.set(recFriendly, name) }
func (ct contactRef) setMSNObject(obj string) { ct.set(recMSNObject, obj) }

// groupIDs returns the contact's group ids as a new slice of views: nil for none, or an empty
// non-nil slice when the list was emptied.
func (ct contactRef) groupIDs() []string { return ct.groupIDsOf(ct.field(recGroups)) }

// groupIDsOf is groupIDs from the packed list of the contact's ids (a view or a copy).
func (ct contactRef) groupIDsOf(list string) []string {
	if ct.flags&groupsEmpty != 0 {
		return []string{}
	}
	return packed.Items(list)
}

// setGroups stores ids (nil for none, an empty slice for an emptied list).
func (ct contactRef) setGroups(ids []string) {
	ct.flags &^= groupsEmpty
	if len(ids) == 0 && ids != nil {
		ct.flags |= groupsEmpty
	}
	ct.set(recGroups, packed.List(ids))
}
