package matrix

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// maxQueuedSends bounds the owner's messages waiting for one chat; past it a message fails at
// once ("… messages are still waiting …") instead of growing the queue. A variable for tests.
var maxQueuedSends = 256

const (
	// sendTimeout bounds one message's way to MSN (the core has shorter ACK timeouts of its own).
	sendTimeout = 2 * time.Minute
	// drainTimeout is how long Disconnect waits for the queued messages to be sent.
	drainTimeout = 10 * time.Second
)

// sendQueue carries the owner's Matrix messages to MSN off bridgev2's portal loop, one chat at a
// time and in order. HandleMatrixMessage queues a message and returns Pending, so the portal goes
// on with the contact's messages while MSN's ACK is awaited; the chat's worker then sends it,
// stores its row and sends its message status (success, or the failure the owner is shown).
//
// A worker runs only while its chat has messages: the push that finds none running starts one,
// and it exits when it finds the chat's queue empty, both under mu.
type sendQueue struct {
	mu       sync.Mutex
	chats    map[bridge.ChatID]*chatSends
	inFlight map[id.EventID]bool // queued or being sent, to ignore a redelivered event
	wg       sync.WaitGroup      // running workers
}

type chatSends struct {
	items []*outgoing
	// unsent are the ids of the messages the worker could deliver nothing of, for the edits
	// queued behind them. Only the worker uses it; it lives as long as the worker, which runs
	// until the queue is empty, so an edit queued before its target's outcome was known finds
	// it here.
	unsent map[string]bool
}

// outgoing is one Matrix message, or the edit of one, on its way to MSN.
type outgoing struct {
	acc    *bridge.Account
	evt    *event.Event
	msg    *bridgev2.MatrixMessage // nil for an edit
	chat   bridge.ChatID
	id     string            // the message's id in the core (bridge.Account.NewMessageID); "" for an edit
	row    *database.Message // the message's row (read once stored is closed); nil for an edit, or once deleted
	stored chan struct{}     // closed once row is set; nil for an edit
	// storeFirst: the chat's new worker sends the message at once and stores its row as it
	// sends; otherwise HandleMatrixMessage stores it when queued. Set by push.
	storeFirst bool
	target     string // for an edit: the id of the message it corrects
	text       string
	format     bridge.Format
	log        zerolog.Logger
	// edit is set for an edit: HandleMatrixEdit waits for its outcome (bridgev2 stores the edit
	// and sends its status) up to editWait, then leaves a failure for the worker to report.
	edit *editWaiter
}

// editWait bounds how long an edit holds its portal (bridgev2 handles the portal's events one
// at a time, and an edit has no pending state): past it the edit is reported sent and, should
// MSN refuse it, its failure status follows. A variable for tests.
var editWait = 5 * time.Second

// editWaiter hands an edit's outcome to HandleMatrixEdit while it waits, or to the worker's
// own failure status after it stopped waiting.
type editWaiter struct {
	mu      sync.Mutex
	waiting bool
	outcome chan error // capacity 1
}

// done records the send's outcome; it reports whether the waiter took it.
func (w *editWaiter) done(err error) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waiting {
		w.outcome <- err
	}
	return w.waiting
}

// wait returns the outcome (ok), or ok false once editWait passed (the worker then reports
// it).
func (w *editWaiter) wait() (ok bool, err error) {
	t := time.NewTimer(editWait)
	defer t.Stop()
	select {
	case err = <-w.outcome:
		return true, err
	case <-t.C:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waiting = false
	select {
	case err = <-w.outcome: // sent as the timer fired
		return true, err
	default:
		return false, nil
	}
}

// pushed is what push did with a message.
type pushed int

const (
	pushQueued pushed = iota // behind the chat's earlier messages, or first for a new worker (storeFirst)
	pushRepeat               // its event is already queued or being sent: dropped
	pushFull                 // the chat has maxQueuedSends waiting: refused
	// pushBehindTarget: an edit queued while the message it corrects is still waiting too; its
	// outcome is not waited for (see HandleMatrixEdit).
	pushBehindTarget
)

// push queues o behind the chat's earlier messages. A message whose event is already queued or
// being sent (a redelivered transaction) is dropped, and one past maxQueuedSends refused.
func (c *MSNClient) push(o *outgoing) pushed {
	q := &c.sends
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.chats == nil { // most logins never send: no maps until one does
		q.chats, q.inFlight = map[bridge.ChatID]*chatSends{}, map[id.EventID]bool{}
	}
	evtID := o.evt.ID
	if q.inFlight[evtID] {
		o.log.Debug().Msg("Message already on its way to MSN, ignoring the repeat")
		return pushRepeat
	}
	cs := q.chats[o.chat]
	res := pushQueued
	if cs == nil {
		cs = &chatSends{}
		q.chats[o.chat] = cs
		q.wg.Add(1)
		go c.runSends(o.chat, cs)
		// The new worker takes o first, at once: it stores the row itself (set before the
		// worker can see o).
		o.storeFirst = o.edit == nil
	} else if len(cs.items) >= maxQueuedSends {
		return pushFull
	}
	if o.edit != nil && slices.ContainsFunc(cs.items, func(m *outgoing) bool { return m.edit == nil && m.id == o.target }) {
		res = pushBehindTarget
		o.edit.waiting = false // before the worker can see it
	}
	cs.items = append(cs.items, o)
	q.inFlight[evtID] = true
	return res
}

// withdraw takes the message with the core id msgID out of chat's queue, with the edits queued
// behind it, if the worker has not started sending it; it reports whether it did. The statuses
// of the message and its edits say that they were not sent, and why.
func (c *MSNClient) withdraw(chat bridge.ChatID, msgID string) bool {
	q := &c.sends
	q.mu.Lock()
	cs := q.chats[chat]
	if cs == nil {
		q.mu.Unlock()
		return false
	}
	var gone []*outgoing
	kept := cs.items[:0]
	for _, o := range cs.items {
		switch {
		case o.edit == nil && o.id == msgID, len(gone) > 0 && o.edit != nil && o.target == msgID:
			gone = append(gone, o)
		default:
			kept = append(kept, o)
			continue
		}
		delete(q.inFlight, o.evt.ID)
	}
	clear(cs.items[len(kept):])
	cs.items = kept
	q.mu.Unlock()
	for _, o := range gone {
		bg := o.log.WithContext(context.Background())
		if o.edit == nil {
			c.sendStatus(bg, o.evt, "", failStatus(errors.New("deleted before it was sent"), event.MessageStatusGenericError,
				"deleted before it was sent: the contact will not get it", true))
			continue
		}
		err := failStatus(errors.New("edit target deleted"), event.MessageStatusGenericError,
			"the message this corrects was deleted before it was sent, so the correction was not sent either", true)
		if !o.edit.done(err) {
			c.sendStatus(bg, o.evt, "", err)
		}
	}
	return len(gone) > 0
}

// runSends is the worker of one chat: it sends the queued messages one at a time and exits
// when none is left.
func (c *MSNClient) runSends(chat bridge.ChatID, cs *chatSends) {
	q := &c.sends
	defer q.wg.Done()
	for {
		q.mu.Lock()
		if len(cs.items) == 0 {
			delete(q.chats, chat)
			q.mu.Unlock()
			return
		}
		o := cs.items[0]
		cs.items[0] = nil
		cs.items = cs.items[1:]
		q.mu.Unlock()
		c.deliver(o, cs)
		q.mu.Lock()
		delete(q.inFlight, o.evt.ID)
		q.mu.Unlock()
	}
}

// drain waits up to timeout for every queued message to be sent and reports whether they were.
func (c *MSNClient) drain(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() {
		c.sends.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// deliver sends o to MSN and reports the outcome to Matrix: a success status, or a failure
// status with the reason. A message of which nothing was delivered loses its row; an edit of
// such a message is not sent (the contact never saw what it corrects) and fails saying so.
func (c *MSNClient) deliver(o *outgoing, cs *chatSends) {
	// The status and the row outlive the send's deadline.
	bg := o.log.WithContext(context.Background())
	if o.edit != nil && cs.unsent[o.target] {
		err := targetUnsent()
		if !o.edit.done(err) {
			c.sendStatus(bg, o.evt, "", err)
		}
		return
	}
	if o.storeFirst {
		// While MSN's answer is awaited, not before the send.
		go func() {
			o.row = c.storeOutgoing(bg, o)
			close(o.stored)
		}()
	}
	ctx, cancel := context.WithTimeout(bg, sendTimeout)
	var err error
	if o.edit != nil {
		_, err = o.acc.SendText(ctx, FrontendName, o.chat, o.text, o.format)
	} else {
		err = o.acc.SendTextAs(ctx, FrontendName, o.chat, o.id, o.text, o.format)
	}
	cancel()
	if o.edit != nil {
		if !o.edit.done(err) && err != nil {
			o.log.Debug().Err(bridge.ScrubError(err)).Msg("Failed to send edit to MSN")
			c.sendStatus(bg, o.evt, "", sendErrorStatus(err))
		}
		return
	}
	if err != nil {
		o.log.Debug().Err(bridge.ScrubError(err)).Msg("Failed to send message to MSN")
		var se *bridge.SendError
		if !errors.As(err, &se) || se.Part == 0 {
			c.dropRow(bg, o)
			if cs.unsent == nil {
				cs.unsent = map[string]bool{}
			}
			cs.unsent[o.id] = true
		}
		c.sendStatus(bg, o.evt, "", sendErrorStatus(err))
		return
	}
	<-o.stored
	mxid := o.evt.ID
	if o.row != nil {
		mxid = o.row.MXID
	}
	c.sendStatus(bg, o.evt, mxid, nil)
}

// targetUnsent is the status of an edit of a message MSN got nothing of.
func targetUnsent() error {
	return failStatus(errors.New("edit target not sent"), event.MessageStatusGenericError,
		"the message this corrects was not sent, so neither was the correction", true)
}

// sendStatus sends the message status of evt: success when err is nil, else the failure err
// describes (a bridgev2.MessageStatus from failStatus, or any error, as bridgev2 wraps it).
func (c *MSNClient) sendStatus(ctx context.Context, evt *event.Event, newID id.EventID, err error) {
	info := bridgev2.StatusEventInfoFromEvent(evt)
	var ms bridgev2.MessageStatus
	if err == nil {
		ms.Status = event.MessageStatusSuccess
		if newID != evt.ID {
			info.NewEventID = newID
		}
	} else {
		ms = bridgev2.WrapErrorInStatus(err)
		if ms.Status == "" {
			ms.Status = event.MessageStatusRetriable
		}
		if ms.ErrorReason == "" {
			ms.ErrorReason = event.MessageStatusGenericError
		}
		if ms.InternalError == nil {
			ms.InternalError = err
		}
	}
	c.main.Bridge.Matrix.SendMessageStatus(ctx, &ms, info)
}
