package msntest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// Event is one command the server received, or one Passport HTTP request.
type Event struct {
	Seq    uint64
	Time   time.Time
	Server string // "NS", "DS" (dispatch), "SB" or "HTTP"
	Handle string // the account it came from, "" before the handle is known
	Name   string // command name; "NEXUS" or "LOGIN" for HTTP
	Args   []string
	// Payload is a copy of the command's payload (nil for none).
	Payload []byte
}

// eventLog is a bounded log of Events with per-(handle, name) cursors for WaitFor.
type eventLog struct {
	mu     sync.Mutex
	limit  int // < 0: disabled
	events []Event
	seq    uint64
	cursor map[string]uint64
	ch     chan struct{} // closed and replaced on every append
}

func (l *eventLog) wake() {
	l.mu.Lock()
	if l.ch != nil {
		close(l.ch)
		l.ch = nil
	}
	l.mu.Unlock()
}

// record appends an event; past the limit the older half of the log is dropped.
func (s *Server) record(server, handle, name string, args []string, payload []byte) {
	l := &s.ev
	if l.limit < 0 {
		return
	}
	e := Event{Time: time.Now(), Server: server, Handle: handle, Name: name,
		Args: append([]string(nil), args...)}
	if payload != nil {
		e.Payload = append([]byte{}, payload...)
	}
	l.mu.Lock()
	l.seq++
	e.Seq = l.seq
	if len(l.events) >= l.limit {
		// Drop the older half at once: amortised O(1) per event.
		keep := l.limit / 2
		n := copy(l.events, l.events[len(l.events)-keep:])
		clear(l.events[n:])
		l.events = l.events[:n]
	}
	l.events = append(l.events, e)
	if l.ch != nil {
		close(l.ch)
		l.ch = nil
	}
	l.mu.Unlock()
}

func (s *Server) recordCmd(server, handle string, cmd *msn.Command) {
	s.record(server, handle, cmd.Name, cmd.Args, cmd.Payload)
}

// Events returns a copy of the logged events, oldest first (at most Options.EventLimit).
func (s *Server) Events() []Event {
	s.ev.mu.Lock()
	defer s.ev.mu.Unlock()
	return append([]Event(nil), s.ev.events...)
}

// EventsFor returns the logged events of one handle, oldest first.
func (s *Server) EventsFor(handle string) []Event {
	h, _ := normHandle(handle)
	var out []Event
	for _, e := range s.Events() {
		if e.Handle == h {
			out = append(out, e)
		}
	}
	return out
}

// WaitFor blocks until the server has received a command named name from handle that no
// earlier WaitFor call for the same (handle, name) returned, and returns it. Commands received
// before the call count, so "send, then WaitFor" never misses. It fails when ctx ends or the
// server closes.
func (s *Server) WaitFor(ctx context.Context, handle, name string) (Event, error) {
	h, _ := normHandle(handle)
	key := h + "\x00" + name
	l := &s.ev
	for {
		l.mu.Lock()
		for _, e := range l.events {
			if e.Seq > l.cursor[key] && e.Handle == h && e.Name == name {
				l.cursor[key] = e.Seq
				l.mu.Unlock()
				return e, nil
			}
		}
		if l.ch == nil {
			l.ch = make(chan struct{})
		}
		ch := l.ch
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("failed waiting for %s from %s: %w", name, handle, ctx.Err())
		case <-s.done:
			return Event{}, fmt.Errorf("failed waiting for %s from %s: %w", name, handle, ErrClosed)
		}
	}
}
