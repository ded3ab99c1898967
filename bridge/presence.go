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

// presenceView is the part of a contact that presence and profile events show: the fields of
// ContactPresence, so that an event is a conversion of it.
type presenceView ContactPresence

// presenceCoalescer turns a burst of presence changes (ILN/NLN/FLN/UBX) into at most one
// ContactPresence and one ContactProfile per contact per flush, latest state wins, and nothing
// when the state that frontends last saw did not change (so a name that flips and flips back
// within a window is never shown). It keeps only the contacts changed since the last flush,
// each with what frontends were told of it before: the latest state is the owner's model, read
// at flush. It is a plain data structure: the owner serialises access and schedules flushes
// (Account does both, flushing one window after the first change).
type presenceCoalescer struct {
	// pending is nil between bursts, because a map keeps its buckets when cleared and most
	// accounts are idle most of the time.
	pending map[string]shownView
}

// shownView is what frontends were told of a contact: view, or nothing when !known.
type shownView struct {
	view  presenceView
	known bool
}

// update records that the contact handle is changing; before is what frontends were last told
// of it (known false: nothing). Only the first change of a window is recorded. It reports
// whether this is the first pending change since the last flush (the owner then schedules
// one).
func (p *presenceCoalescer) update(handle string, before presenceView, known bool) (first bool) {
	first = len(p.pending) == 0
	if p.pending == nil {
		p.pending = make(map[string]shownView)
	}
	if _, ok := p.pending[handle]; !ok {
		p.pending[handle] = shownView{view: before, known: known}
	}
	return first
}

// pendingCount is the number of contacts with a pending change.
func (p *presenceCoalescer) pendingCount() int { return len(p.pending) }

// flush returns the events for the pending changes, ordered by handle. current returns a
// pending contact's latest state (false when it is gone, then nothing is emitted for it); it is
// called once per pending contact, whose state frontends are told from then on.
func (p *presenceCoalescer) flush(current func(handle string) (presenceView, bool)) []Event {
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
		v, ok := current(h)
		if !ok {
			continue
		}
		shown := p.pending[h]
		prev := shown.view
		if !shown.known || prev.Status != v.Status || prev.MSNStatus != v.MSNStatus || prev.PSM != v.PSM || prev.Media != v.Media {
			out = append(out, ContactPresence(v))
		}
		if shown.known && prev.Name != v.Name {
			out = append(out, ContactProfile{Handle: v.Handle, Name: v.Name})
		}
	}
	p.pending = nil
	return out
}

// reset forgets pending changes (after a ContactSnapshot has told frontends everything).
func (p *presenceCoalescer) reset() { p.pending = nil }

// forget drops a contact's pending change (it was removed from the list).
func (p *presenceCoalescer) forget(handle string) { delete(p.pending, handle) }
