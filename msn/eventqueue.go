package msn

import (
	"fmt"
	"sync"
)

// emit queues an event for the handler. When the queue overflows the session is dropped.
func (c *Client) emit(ev Event) {
	if !c.events.push(ev, false) {
		c.log.Error().Msg("Event handler too slow, dropping connection")
		if ns := c.nsConn(); ns != nil {
			ns.closeWith(ErrEventOverflow)
		}
	}
}

// deliverEvent hands one event to the handler, on the event queue's delivery goroutine. A
// panic in the handler is logged, and the next event is delivered.
func (c *Client) deliverEvent(ev Event) {
	if c.handler == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error().Str("panic", fmt.Sprint(r)).Msg("Event handler panicked")
		}
	}()
	c.handler(ev)
}

// eventQueue is the bounded FIFO between the goroutines that produce events (connection
// readers, callers of Client methods) and the handler. Pushes never block. No goroutine waits on
// an empty queue: a push that makes events deliverable while no delivery runs starts a delivery
// goroutine, which hands the events to deliver one at a time and in order and exits when it
// finds the queue empty. The start and that check are both made under mu, so an event is
// either taken by the running delivery or starts the next one, and there is never more than
// one delivery goroutine. While held (during Login) events are kept back, to be released after
// LoggedIn or discarded.
type eventQueue struct {
	deliver func(Event)
	max     int

	mu      sync.Mutex
	items   []Event
	held    bool
	ended   bool
	running bool // a delivery goroutine runs: set when it is started, cleared by it, under mu

	wg sync.WaitGroup // the delivery goroutine
}

func (q *eventQueue) init(max int, deliver func(Event)) {
	q.held, q.max, q.deliver = true, max, deliver
}

// push appends ev; it reports false when the queue is full (force bypasses the bound) and
// drops events pushed after finish.
func (q *eventQueue) push(ev Event, force bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ended {
		return true
	}
	if !force && len(q.items) >= q.max {
		return false
	}
	q.items = append(q.items, ev)
	q.startLocked()
	return true
}

// startLocked starts a delivery goroutine when events are deliverable and none runs. q.mu must
// be held and the queue not finished: after finish no delivery starts, so wait misses none.
func (q *eventQueue) startLocked() {
	if q.running || q.held || len(q.items) == 0 {
		return
	}
	q.running = true
	q.wg.Add(1)
	go q.run()
}

// release puts first in front of the held events and lets them all through. It does nothing
// after finish; Login releases under Client.mu in the step that marks the session online, which
// orders it before the shutdown's finish.
func (q *eventQueue) release(first Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ended {
		return
	}
	q.items = append([]Event{first}, q.items...)
	q.held = false
	q.startLocked()
}

// discard drops the queued events.
func (q *eventQueue) discard() {
	q.mu.Lock()
	q.items = nil
	q.mu.Unlock()
}

// finish accepts no more events; a delivery that runs still delivers the queued ones.
func (q *eventQueue) finish() {
	q.mu.Lock()
	q.ended = true
	q.mu.Unlock()
}

// wait returns when no delivery goroutine runs. After finish none can start, so it then
// returns once every queued event is delivered. It must not be called from the delivery
// goroutine, that is from the handler, where it would wait for itself.
func (q *eventQueue) wait() { q.wg.Wait() }

// run is the delivery goroutine: it delivers batches until it finds the queue empty.
func (q *eventQueue) run() {
	defer q.wg.Done()
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		batch := q.items
		q.items = nil
		q.mu.Unlock()
		for i, ev := range batch {
			batch[i] = nil // delivered events are not kept by the rest of the batch
			q.deliver(ev)
		}
	}
}
