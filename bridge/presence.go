package bridge

import (
	"slices"
	"time"
)

// DefaultPresenceWindow is the default coalescing window of contact presence updates.
const DefaultPresenceWindow = 250 * time.Millisecond

// DefaultPresenceGrace is the default time contacts keep their presence across a reconnect
// until the server confirms or changes it.
const DefaultPresenceGrace = 3 * time.Second

// presenceView is the part of a contact that presence and profile events show.
type presenceView struct {
	Handle    string
	Status    Status
	MSNStatus string
	Name      string
	PSM       string
	Media     string
}

func viewOf(c *Contact) presenceView {
	return presenceView{Handle: c.Handle, Status: c.Status, MSNStatus: c.MSNStatus, Name: c.Name, PSM: c.PSM, Media: c.Media}
}

// presenceCoalescer turns a burst of presence changes (ILN/NLN/FLN/UBX) into at most one
// ContactPresence and one ContactProfile per contact per flush, latest state wins, and nothing
// when the state that frontends last saw did not change (so a name that flips and flips back
// within a window is never shown). It is a plain data structure: the owner serialises access
// and schedules flushes (Account does both, flushing one window after the first change).
type presenceCoalescer struct {
	published map[string]presenceView // what frontends have been told
	// pending is the latest state since the last flush; nil between bursts, because a map
	// keeps its buckets when cleared and most accounts are idle most of the time.
	pending map[string]presenceView
}

func newPresenceCoalescer() *presenceCoalescer {
	return &presenceCoalescer{published: map[string]presenceView{}}
}

// update records the latest state of a contact. It reports whether this is the first pending
// change since the last flush (the owner then schedules one).
func (p *presenceCoalescer) update(v presenceView) (first bool) {
	first = len(p.pending) == 0
	if p.pending == nil {
		p.pending = make(map[string]presenceView)
	}
	p.pending[v.Handle] = v
	return first
}

// pendingCount is the number of contacts with a pending change.
func (p *presenceCoalescer) pendingCount() int { return len(p.pending) }

// flush returns the events for the pending changes, ordered by handle, and marks them
// published.
func (p *presenceCoalescer) flush() []Event {
	if len(p.pending) == 0 {
		return nil
	}
	handles := make([]string, 0, len(p.pending))
	for h := range p.pending {
		handles = append(handles, h)
	}
	slices.Sort(handles)
	var out []Event
	for _, h := range handles {
		v := p.pending[h]
		prev, known := p.published[h]
		if !known || prev.Status != v.Status || prev.MSNStatus != v.MSNStatus || prev.PSM != v.PSM || prev.Media != v.Media {
			out = append(out, ContactPresence{Handle: v.Handle, Status: v.Status, MSNStatus: v.MSNStatus, Name: v.Name, PSM: v.PSM, Media: v.Media})
		}
		if known && prev.Name != v.Name {
			out = append(out, ContactProfile{Handle: v.Handle, Name: v.Name})
		}
		p.published[h] = v
	}
	p.pending = nil
	return out
}

// reset forgets pending changes and takes contacts as what frontends now know (after a
// ContactSnapshot has been emitted).
func (p *presenceCoalescer) reset(contacts []Contact) {
	p.pending = nil
	// A new map rather than clear: it is sized for this list, not for the largest one seen.
	p.published = make(map[string]presenceView, len(contacts))
	for i := range contacts {
		p.published[contacts[i].Handle] = viewOf(&contacts[i])
	}
}

// forget drops a contact (removed from the list), so a later re-add is announced afresh.
func (p *presenceCoalescer) forget(handle string) {
	delete(p.pending, handle)
	delete(p.published, handle)
}
