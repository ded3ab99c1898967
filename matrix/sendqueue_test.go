package matrix

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// openPortal has bob write first, so the DM portal exists, and returns its room.
func (e *glueEnv) openPortal() id.RoomID {
	e.t.Helper()
	must(e.t, e.srv.BotSay(bob, alice, "hello"))
	room := e.portal(bob).MXID
	e.waitMessage(room, ghostMXID(bob), "hello")
	return room
}

func textContent(s string) *event.MessageEventContent {
	return &event.MessageEventContent{MsgType: event.MsgText, Body: s}
}

// statusOf returns the status bridgev2 reported for evtID, or nil.
func (e *glueEnv) statusOf(evtID id.EventID) *event.MessageStatus {
	for _, s := range e.fm.Statuses() {
		if s.Info != nil && s.Info.SourceEventID == evtID {
			return &s.Status.Status
		}
	}
	return nil
}

// botTexts returns the texts bob received, in order.
func (b *botInbox) texts() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.msgs {
		if m.IsText() {
			out = append(out, m.Body)
		}
	}
	return out
}

// TestOwnerMessagesDoNotHoldUpTheContacts: while MSN takes its time to ACK the owner's
// messages, the contact's message in the same portal reaches Matrix; the owner's still reach MSN
// in order, each with a success status and a stored row.
func TestOwnerMessagesDoNotHoldUpTheContacts(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	room := e.openPortal()

	const n = 5
	e.srv.SetDelay("MSG", 400*time.Millisecond) // each of alice's MSGs: n of them take 2 s
	var ids []id.EventID
	for i := range n {
		ids = append(ids, e.sendMatrix(room, textContent(fmt.Sprintf("in order %d", i))))
	}
	must(t, e.srv.BotSay(bob, alice, "meanwhile"))
	e.waitMessage(room, ghostMXID(bob), "meanwhile")
	if st := e.statusOf(ids[n-1]); st != nil {
		t.Fatalf("the contact's message reached Matrix only after the owner's last message was sent (status %s)", *st)
	}
	e.srv.SetDelay("MSG", 0)

	for _, evtID := range ids {
		if st := e.waitStatus(evtID); st.Status != event.MessageStatusSuccess {
			t.Fatalf("status of %s: %+v, want success", evtID, st)
		}
		row, err := e.fe.Bridge().DB.Message.GetPartByMXID(e.ctx, evtID)
		must(t, err)
		if row == nil || row.SenderID != makeUserID(alice) || row.ID == "" {
			t.Fatalf("stored row of %s: %+v", evtID, row)
		}
	}
	// msntest ACKs a message before the bot's handler runs, so bob may see the last a moment after
	// its status.
	e.bob.waitText(t, fmt.Sprintf("in order %d", n-1))
	var got []string
	for _, s := range e.bob.texts() {
		if strings.HasPrefix(s, "in order ") {
			got = append(got, s)
		}
	}
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("in order %d", i)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bob received %q, want %q", got, want)
	}
}

// TestSendQueueBoundAndRepeats: a chat holds at most maxQueuedSends waiting messages; the rest
// fail at once with a reason, and every message taken is delivered once, in order. An event
// delivered twice (a repeated homeserver transaction) is sent once.
func TestSendQueueBoundAndRepeats(t *testing.T) {
	defer func(n int) { maxQueuedSends = n }(maxQueuedSends)
	maxQueuedSends = 4
	e := newGlueEnv(t, nil)
	e.mustLogin()
	room := e.openPortal()

	// The first message is at MSN for 2 s while the others come in.
	e.srv.SetDelay("MSG", 2*time.Second)
	const total = 10
	ids := make([]id.EventID, total)
	for i := range ids {
		ids[i] = e.sendMatrix(room, textContent(fmt.Sprintf("flood %d", i)))
	}
	// The same event again, while its first copy waits.
	e.fe.Bridge().QueueMatrixEvent(e.ctx, &event.Event{
		Type: event.EventMessage, RoomID: room, Sender: aliceMX, ID: ids[1],
		Timestamp: time.Now().UnixMilli(), Content: event.Content{Parsed: textContent("flood 1")},
	})
	for i := maxQueuedSends + 2; i < total; i++ {
		if st := e.waitStatus(ids[i]); !strings.Contains(st.Message, "waiting to be sent") {
			t.Fatalf("status of message %d: %+v, want refused", i, st)
		}
	}
	e.srv.SetDelay("MSG", 0)

	var sent []string
	refused := 0
	for i, evtID := range ids {
		st := e.waitStatus(evtID)
		switch {
		case st.Status == event.MessageStatusSuccess:
			sent = append(sent, fmt.Sprintf("flood %d", i))
		case strings.Contains(st.Message, "waiting to be sent"):
			refused++
		default:
			t.Fatalf("status of message %d: %+v", i, st)
		}
	}
	// One in flight and maxQueuedSends waiting; the (maxQueuedSends+1)th is refused too when
	// it came before the worker took the first out of the queue.
	if refused != total-maxQueuedSends-1 && refused != total-maxQueuedSends {
		t.Fatalf("%d of %d messages refused, want %d or %d", refused, total, total-maxQueuedSends-1, total-maxQueuedSends)
	}
	var got []string
	for deadline := time.Now().Add(testWait); ; time.Sleep(20 * time.Millisecond) {
		got = got[:0]
		for _, s := range e.bob.texts() {
			if strings.HasPrefix(s, "flood ") {
				got = append(got, s)
			}
		}
		if len(got) >= len(sent) || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(200 * time.Millisecond) // a second copy of flood 1 would come right behind
	got = got[:0]
	for _, s := range e.bob.texts() {
		if strings.HasPrefix(s, "flood ") {
			got = append(got, s)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(sent) {
		t.Fatalf("bob received %q, want the messages reported sent, once each: %q", got, sent)
	}
}

// TestStopWaitsForQueuedMessages: stopping the frontend while the owner's messages wait for MSN
// lets them be sent and their statuses reported.
func TestStopWaitsForQueuedMessages(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	room := e.openPortal()

	e.srv.SetDelay("MSG", 300*time.Millisecond)
	var ids []id.EventID
	for i := range 3 {
		ids = append(ids, e.sendMatrix(room, textContent(fmt.Sprintf("before stop %d", i))))
	}
	e.bob.waitText(t, "before stop 0") // the others are still queued
	e.fe.Stop(e.ctx)
	for _, evtID := range ids {
		if st := e.statusOf(evtID); st == nil || *st != event.MessageStatusSuccess {
			t.Fatalf("status of %s after Stop: %v, want success", evtID, st)
		}
	}
}

// waitFailure waits for a failure status of evtID (an edit may have bridgev2's success first,
// see HandleMatrixEdit) and returns it.
func (e *glueEnv) waitFailure(evtID id.EventID) *bridgev2.MessageStatus {
	e.t.Helper()
	return e.waitStatusWhere(evtID, "failure status", func(st *bridgev2.MessageStatus) bool {
		return st.Status != event.MessageStatusSuccess
	})
}

// waitRow waits until the row of the owner's message evtID is stored (an edit the owner makes
// after that finds it, see HandleMatrixMessage).
func (e *glueEnv) waitRow(evtID id.EventID) {
	e.t.Helper()
	for deadline := time.Now().Add(testWait); ; time.Sleep(5 * time.Millisecond) {
		row, err := e.fe.Bridge().DB.Message.GetPartByMXID(e.ctx, evtID)
		must(e.t, err)
		if row != nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no row stored for %s", evtID)
		}
	}
}

// TestEditOfMessageOnItsWay: the owner edits a message MSN has not taken yet; the edit finds
// its target (stored when the message was queued) and follows it to the contact.
func TestEditOfMessageOnItsWay(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	room := e.openPortal()

	e.srv.SetDelay("MSG", 500*time.Millisecond)
	orig := e.sendMatrix(room, textContent("helo bob"))
	e.waitRow(orig)
	if st := e.statusOf(orig); st != nil {
		t.Fatalf("the message was sent before the edit was made (status %s)", *st)
	}
	edit := e.sendMatrix(room, editOf(orig, "hello bob"))
	if st := e.waitStatus(edit); st.Status != event.MessageStatusSuccess {
		t.Fatalf("status of the edit of a message on its way: %s %q, want success", st.Status, st.Message)
	}
	if st := e.waitStatus(orig); st.Status != event.MessageStatusSuccess {
		t.Fatalf("status of the message: %+v, want success", st)
	}
	e.bob.waitText(t, "* hello bob")
	var got []string
	for _, s := range e.bob.texts() {
		if strings.Contains(s, "bob") {
			got = append(got, s)
		}
	}
	if want := []string{"helo bob", "* hello bob"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bob received %q, want %q", got, want)
	}
}

// TestEditOfUnsentMessage: a message MSN refuses loses its row, and the edit queued behind it
// is not sent (the contact never saw what it corrects) and fails saying so.
func TestEditOfUnsentMessage(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	room := e.openPortal()

	e.srv.NAKAll(true)
	e.srv.SetDelay("MSG", 300*time.Millisecond)
	orig := e.sendMatrix(room, textContent("never"))
	e.waitRow(orig)
	edit := e.sendMatrix(room, editOf(orig, "never ever"))
	if st := e.waitStatus(orig); st.Status == event.MessageStatusSuccess {
		t.Fatalf("status of the refused message: %+v, want a failure", st)
	}
	if st := e.waitFailure(edit); !strings.Contains(st.Message, "was not sent") {
		t.Fatalf("status of the edit of a refused message: %s %q, want a failure saying its target was not sent", st.Status, st.Message)
	}
	row, err := e.fe.Bridge().DB.Message.GetPartByMXID(e.ctx, orig)
	must(t, err)
	if row != nil {
		t.Fatalf("the refused message keeps its row: %+v", row)
	}

	e.srv.NAKAll(false)
	e.srv.SetDelay("MSG", 0)
	after := e.sendMatrix(room, textContent("after the refusal"))
	if st := e.waitStatus(after); st.Status != event.MessageStatusSuccess {
		t.Fatalf("status of the next message: %+v, want success", st)
	}
	e.bob.waitText(t, "after the refusal")
	for _, s := range e.bob.texts() {
		if strings.Contains(s, "never") {
			t.Fatalf("bob received %q", s)
		}
	}
}

// redact has alice delete target in room; it returns the redaction's event.
func (e *glueEnv) redact(room id.RoomID, target id.EventID) id.EventID {
	evtID := id.EventID(fmt.Sprintf("$mx%d", e.fm.NextID()))
	e.fe.Bridge().QueueMatrixEvent(e.ctx, &event.Event{
		Type: event.EventRedaction, RoomID: room, Sender: aliceMX, ID: evtID, Redacts: target,
		Timestamp: time.Now().UnixMilli(),
		Content:   event.Content{Parsed: &event.RedactionEventContent{Redacts: target}},
	})
	return evtID
}

// TestDeleteWithdrawsWhatIsNotSent: the owner deletes a message still waiting in its chat's
// queue: it is withdrawn with its edit, and the contact gets neither; deleting one MSN already
// took fails, saying the contact has it; deleting the contact's message succeeds.
func TestDeleteWithdrawsWhatIsNotSent(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	room := e.openPortal()

	e.srv.SetDelay("MSG", 500*time.Millisecond)
	first := e.sendMatrix(room, textContent("first"))
	second := e.sendMatrix(room, textContent("second, regretted"))
	edit := e.sendMatrix(room, editOf(second, "second, regretted twice"))
	third := e.sendMatrix(room, textContent("third"))
	del := e.redact(room, second)
	if st := e.waitStatus(del); st.Status != event.MessageStatusSuccess {
		t.Fatalf("deleting a message not sent yet: %s %q, want success", st.Status, st.Message)
	}
	if st := e.waitStatus(second); st.Status == event.MessageStatusSuccess || !strings.Contains(st.Message, "will not get it") {
		t.Fatalf("status of the withdrawn message: %s %q", st.Status, st.Message)
	}
	if st := e.waitFailure(edit); !strings.Contains(st.Message, "deleted before it was sent") {
		t.Fatalf("status of the withdrawn message's edit: %s %q", st.Status, st.Message)
	}
	for _, evtID := range []id.EventID{first, third} {
		if st := e.waitStatus(evtID); st.Status != event.MessageStatusSuccess {
			t.Fatalf("status of %s: %+v, want success", evtID, st)
		}
	}
	e.bob.waitText(t, "third")
	var got []string
	for _, s := range e.bob.texts() {
		if s != "hello" {
			got = append(got, s)
		}
	}
	if want := []string{"first", "third"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bob received %q, want %q", got, want)
	}
	if row, err := e.fe.Bridge().DB.Message.GetPartByMXID(e.ctx, second); err != nil || row != nil {
		t.Fatalf("row of the withdrawn message: %+v, %v", row, err)
	}

	e.srv.SetDelay("MSG", 0)
	if st := e.waitStatus(e.redact(room, first)); st.Status == event.MessageStatusSuccess || !strings.Contains(st.Message, "contact has it") {
		t.Fatalf("deleting a delivered message: %s %q, want a failure saying the contact has it", st.Status, st.Message)
	}
	hello := e.waitMessage(room, ghostMXID(bob), "hello")
	if st := e.waitStatus(e.redact(room, hello.ID)); st.Status != event.MessageStatusSuccess {
		t.Fatalf("deleting the contact's message: %s %q, want success", st.Status, st.Message)
	}
}
