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
// Delivery contract: for each (account, frontend) pair the core calls HandleEvent with that
// account's events one at a time, in the order they happened, from one goroutine at a time
// (which exists only while there are events to deliver). Different
// accounts, and different frontends of the same account, are delivered concurrently and
// independently: a slow frontend delays only itself. HandleEvent may block (it holds up only
// its own queue); ctx is cancelled when the frontend is detached without time to drain or the
// core stops. A returned error or a panic is logged and counted, and delivery goes on with the
// next event: it never affects the account or other frontends.
//
// Queue policy: each pair has a bounded queue (Config.FrontendQueueSize). State-like events
// (AccountState, ContactSnapshot, ContactPresence, ContactProfile, ContactAvatar, Typing,
// OwnProfile) are coalesced in the queue — a newer one for the same contact/chat replaces the
// queued one — so they never fill it. Other events (messages, nudges, files, winks, list
// changes, requests, membership, delivery failures) are never coalesced; if a frontend falls so
// far behind that its queue is full, further ones are discarded for that frontend only, logged,
// counted, and announced to it by an EventsDropped event as soon as it catches up. MSN and the
// other frontends never wait.
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
	case ContactAvatar:
		return "avatar\x00" + e.Handle
	}
	return ""
}

type queued struct {
	evt Event
	key string
}

// frontendQueue delivers one account's events to one frontend. No goroutine waits on an empty
// queue: a push that makes events deliverable while no delivery runs starts a delivery
// goroutine, which delivers one event at a time, in order, and exits when it finds nothing to
// deliver. Both the start and that check are made under mu, so an event is either taken by the
// running delivery or starts the next one, and there is never a second delivery goroutine.
type frontendQueue struct {
	fe       Frontend
	acc      *Account
	metrics  *Metrics
	capacity int

	ctx    context.Context // cancelled to abandon delivery
	cancel context.CancelFunc

	mu        sync.Mutex
	items     list.List // of queued
	byKey     map[string]*list.Element
	lossless  int // queued events without a key
	dropped   int
	dropChats []ChatID
	closed    bool
	held      bool          // events are queued but not delivered until resume
	running   bool          // a delivery goroutine runs
	exited    chan struct{} // made by close; closed once no delivery runs after it
}

func newFrontendQueue(fe Frontend, acc *Account, capacity int, held bool, metrics *Metrics) *frontendQueue {
	if capacity <= 0 {
		capacity = DefaultFrontendQueueSize
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &frontendQueue{fe: fe, acc: acc, capacity: capacity, metrics: metrics, ctx: ctx, cancel: cancel, held: held}
}

// log is the account's logger with the frontend's name (made only to log: one per queue would
// cost every account a copy of its context).
func (q *frontendQueue) log() zerolog.Logger {
	return q.acc.log.With().Str("frontend", q.fe.Name()).Logger()
}

// startLocked starts a delivery goroutine when something is deliverable and none runs. q.mu
// must be held.
func (q *frontendQueue) startLocked() {
	if q.running || q.held || q.ctx.Err() != nil || (q.items.Len() == 0 && q.dropped == 0) {
		return
	}
	q.running = true
	go q.run()
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
		} else if q.byKey == nil {
			q.byKey = make(map[string]*list.Element)
		}
		q.byKey[key] = q.items.PushBack(queued{evt: evt, key: key})
	} else if q.lossless >= q.capacity {
		q.dropped++
		if chat := chatOf(evt); chat != "" && len(q.dropChats) < 100 && !containsChat(q.dropChats, chat) {
			q.dropChats = append(q.dropChats, chat)
		}
		q.metrics.dropped(q.fe.Name(), 1)
		if q.dropped == 1 {
			log := q.log()
			log.Error().Int("queue_size", q.capacity).Str("event_type", evt.EventType()).
				Msg("Frontend queue full, discarding events for this frontend")
		}
		return false
	} else {
		q.items.PushBack(queued{evt: evt})
		q.lossless++
	}
	q.startLocked()
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
	case File:
		return e.Chat
	case FileFailed:
		return e.Chat
	case Wink:
		return e.Chat
	}
	return ""
}

// next pops the next event to deliver. When there is none (the queue is empty, held, or
// delivery was abandoned) it marks the delivery ended and reports false; the delivery goroutine
// must then return. A queue closed while held discards what was held: the frontend never took
// the account on.
func (q *frontendQueue) next() (evt Event, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.held && q.ctx.Err() == nil {
		if q.dropped > 0 {
			evt = EventsDropped{Count: q.dropped, Chats: q.dropChats}
			q.dropped, q.dropChats = 0, nil
			return evt, true
		}
		if front := q.items.Front(); front != nil {
			item := q.items.Remove(front).(queued)
			if item.key != "" {
				delete(q.byKey, item.key)
				if len(q.byKey) == 0 {
					q.byKey = nil // a map keeps its buckets when emptied; most queues are idle
				}
			} else {
				q.lossless--
			}
			return item.evt, true
		}
	}
	q.running = false
	if q.exited != nil {
		close(q.exited)
		q.exited = nil
	}
	return nil, false
}

func (q *frontendQueue) run() {
	for {
		evt, ok := q.next()
		if !ok {
			return
		}
		q.deliver(evt)
	}
}

func (q *frontendQueue) deliver(evt Event) {
	if r, ok := evt.(releasable); ok {
		defer r.release()
	}
	defer func() {
		if r := recover(); r != nil {
			q.metrics.frontendFailure(q.fe.Name())
			log := q.log()
			log.Error().
				Str("event_type", evt.EventType()).
				Str("panic", fmt.Sprint(r)).
				Bytes("stack", debug.Stack()).
				Msg("Frontend panicked while handling event")
		}
	}()
	if ca, ok := evt.(ContactAvatar); ok && ca.lazy {
		var err error
		if ca.Data, ca.MIME, err = q.acc.core.store.Object(q.ctx, ca.Avatar); err != nil {
			// Trimmed from the cache since, or the database failed: the contact's next
			// announcement fetches it again.
			q.acc.forgetAvatar(ca.Handle, ca.Avatar)
			log := q.log()
			log.Warn().Err(err).Str("contact", ca.Handle).Msg("Display picture not shown: not readable from the cache")
			return
		}
		ca.lazy = false
		evt = ca
	}
	if err := q.fe.HandleEvent(q.ctx, q.acc, evt); err != nil {
		q.metrics.frontendFailure(q.fe.Name())
		log := q.log()
		log.Warn().Err(ScrubError(err)).Str("event_type", evt.EventType()).Msg("Frontend failed to handle event")
	}
}

// resume starts delivering the events of a held queue. It reports whether the queue was held.
func (q *frontendQueue) resume() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	was := q.held
	q.held = false
	q.startLocked()
	return was
}

// close stops accepting events and waits until the queued ones are delivered or ctx is done;
// then delivery is abandoned (the frontend's ctx is cancelled) and close waits for the delivery
// goroutine to return from HandleEvent. What a held queue holds is discarded. close is called
// once.
func (q *frontendQueue) close(ctx context.Context) {
	q.mu.Lock()
	q.closed = true
	if q.held {
		q.discardLocked()
	}
	exited := make(chan struct{})
	if q.running {
		q.exited = exited
	} else {
		close(exited)
	}
	q.mu.Unlock()
	select {
	case <-exited:
	case <-ctx.Done():
		q.cancel()
		<-exited
	}
	q.cancel()
	// What delivery abandoned is never delivered.
	q.mu.Lock()
	q.discardLocked()
	q.mu.Unlock()
}

// discardLocked empties the queue, releasing what its events hold. q.mu must be held.
func (q *frontendQueue) discardLocked() {
	for e := q.items.Front(); e != nil; e = e.Next() {
		if r, ok := e.Value.(queued).evt.(releasable); ok {
			r.release()
		}
	}
	q.items.Init()
	q.byKey, q.lossless, q.dropped, q.dropChats = nil, 0, 0, nil
}

// len returns the number of queued events (for tests).
func (q *frontendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.items.Len()
}
