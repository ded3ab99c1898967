package bridge

import (
	"container/list"
	"context"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/rs/zerolog"
)

// Frontend is a place accounts are mirrored to (the Matrix connector, the Discord bot). One
// Frontend value serves every account it is attached to.
//
// Delivery contract: for each (account, frontend) pair the core runs one goroutine that calls
// HandleEvent with that account's events one at a time, in the order they happened. Different
// accounts, and different frontends of the same account, are delivered concurrently and
// independently: a slow frontend delays only itself. HandleEvent may block (it holds up only
// its own queue); ctx is cancelled when the frontend is detached without time to drain or the
// core stops. A returned error or a panic is logged and counted, and delivery goes on with the
// next event: it never affects the account or other frontends.
//
// Queue policy: each pair has a bounded queue (Config.FrontendQueueSize). State-like events
// (AccountState, ContactSnapshot, ContactPresence, ContactProfile, Typing, OwnProfile) are
// coalesced in the queue — a newer one for the same contact/chat replaces the queued one — so
// they never fill it. Other events (messages, nudges, list changes, requests, membership,
// delivery failures) are never coalesced; if a frontend falls so far behind that its queue is
// full, further ones are discarded for that frontend only, logged, counted, and announced to it
// by an EventsDropped event as soon as it catches up. MSN and the other frontends never wait.
//
// Events from a frontend's own actions (Origin == Name()) are not delivered back to it.
type Frontend interface {
	// Name is a short stable identifier ("matrix", "discord"), used in FrontendUser, Origin,
	// logs and metrics.
	Name() string
	// HandleEvent shows one event of acc.
	HandleEvent(ctx context.Context, acc *Account, evt Event) error
}

// DefaultFrontendQueueSize is the default number of non-coalescable events a frontend may have
// waiting per account.
const DefaultFrontendQueueSize = 4096

// coalesceKey returns the key under which a state-like event replaces an older queued one, or
// "" for events that must each be delivered.
func coalesceKey(evt Event) string {
	switch e := evt.(type) {
	case AccountState:
		return "state"
	case ContactSnapshot:
		return "snapshot"
	case OwnProfile:
		return "own"
	case ContactPresence:
		return "presence\x00" + e.Handle
	case ContactProfile:
		return "profile\x00" + e.Handle
	case Typing:
		return "typing\x00" + string(e.Chat) + "\x00" + e.Sender
	}
	return ""
}

type queued struct {
	evt Event
	key string
}

// frontendQueue delivers one account's events to one frontend.
type frontendQueue struct {
	fe       Frontend
	acc      *Account
	log      zerolog.Logger
	metrics  *Metrics
	capacity int

	ctx    context.Context // cancelled to abandon delivery
	cancel context.CancelFunc
	done   chan struct{} // closed when the delivery goroutine has exited

	mu        sync.Mutex
	items     *list.List // of queued
	byKey     map[string]*list.Element
	lossless  int // queued events without a key
	dropped   int
	dropChats []ChatID
	closed    bool
	held      bool          // events are queued but not delivered until resume
	wake      chan struct{} // capacity 1
}

func newFrontendQueue(fe Frontend, acc *Account, capacity int, held bool, log zerolog.Logger, metrics *Metrics) *frontendQueue {
	if capacity <= 0 {
		capacity = DefaultFrontendQueueSize
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &frontendQueue{
		fe: fe, acc: acc, capacity: capacity, metrics: metrics,
		log:    log.With().Str("frontend", fe.Name()).Logger(),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		items:  list.New(),
		byKey:  map[string]*list.Element{},
		wake:   make(chan struct{}, 1),
		held:   held,
	}
	go q.run()
	return q
}

// push enqueues evt without blocking. It reports false when the event was discarded.
func (q *frontendQueue) push(evt Event) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	key := coalesceKey(evt)
	if key != "" {
		if old, ok := q.byKey[key]; ok {
			q.items.Remove(old)
		}
		q.byKey[key] = q.items.PushBack(queued{evt: evt, key: key})
	} else if q.lossless >= q.capacity {
		q.dropped++
		if chat := chatOf(evt); chat != "" && len(q.dropChats) < 100 && !containsChat(q.dropChats, chat) {
			q.dropChats = append(q.dropChats, chat)
		}
		q.metrics.dropped(q.fe.Name(), 1)
		if q.dropped == 1 {
			q.log.Error().Int("queue_size", q.capacity).Str("event_type", evt.EventType()).
				Msg("Frontend queue full, discarding events for this frontend")
		}
		return false
	} else {
		q.items.PushBack(queued{evt: evt})
		q.lossless++
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

func containsChat(chats []ChatID, c ChatID) bool {
	for _, x := range chats {
		if x == c {
			return true
		}
	}
	return false
}

func chatOf(evt Event) ChatID {
	switch e := evt.(type) {
	case Message:
		return e.Chat
	case Nudge:
		return e.Chat
	case ChatMembership:
		return e.Chat
	case DeliveryFailure:
		return e.Chat
	}
	return ""
}

// next pops the next event to deliver; ok is false when the queue is closed and empty, or
// closed while held (what was held is discarded: the frontend never took the account on).
func (q *frontendQueue) next() (evt Event, ok bool) {
	for {
		q.mu.Lock()
		if q.held {
			closed := q.closed
			q.mu.Unlock()
			if closed {
				return nil, false
			}
			select {
			case <-q.wake:
			case <-q.ctx.Done():
				return nil, false
			}
			continue
		}
		if q.dropped > 0 {
			evt = EventsDropped{Count: q.dropped, Chats: q.dropChats}
			q.dropped, q.dropChats = 0, nil
			q.mu.Unlock()
			return evt, true
		}
		if front := q.items.Front(); front != nil {
			item := q.items.Remove(front).(queued)
			if item.key != "" {
				delete(q.byKey, item.key)
			} else {
				q.lossless--
			}
			q.mu.Unlock()
			return item.evt, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, false
		}
		select {
		case <-q.wake:
		case <-q.ctx.Done():
			return nil, false
		}
	}
}

func (q *frontendQueue) run() {
	defer close(q.done)
	for {
		evt, ok := q.next()
		if !ok || q.ctx.Err() != nil {
			return
		}
		q.deliver(evt)
	}
}

func (q *frontendQueue) deliver(evt Event) {
	defer func() {
		if r := recover(); r != nil {
			q.metrics.frontendFailure(q.fe.Name())
			q.log.Error().
				Str("event_type", evt.EventType()).
				Str("panic", fmt.Sprint(r)).
				Bytes("stack", debug.Stack()).
				Msg("Frontend panicked while handling event")
		}
	}()
	if err := q.fe.HandleEvent(q.ctx, q.acc, evt); err != nil {
		q.metrics.frontendFailure(q.fe.Name())
		q.log.Warn().Err(err).Str("event_type", evt.EventType()).Msg("Frontend failed to handle event")
	}
}

// resume starts delivering the events of a held queue. It reports whether the queue was held.
func (q *frontendQueue) resume() bool {
	q.mu.Lock()
	was := q.held
	q.held = false
	q.mu.Unlock()
	if was {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return was
}

// close stops accepting events and waits until the queued ones are delivered or ctx is done;
// then delivery is abandoned (the frontend's ctx is cancelled) and close waits for the delivery
// goroutine to return from HandleEvent.
func (q *frontendQueue) close(ctx context.Context) {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	select {
	case <-q.done:
	case <-ctx.Done():
		q.cancel()
		<-q.done
	}
	q.cancel()
}

// len returns the number of queued events (for tests).
func (q *frontendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.items.Len()
}
