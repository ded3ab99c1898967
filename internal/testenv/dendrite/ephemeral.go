package dendrite

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

var injectSeq atomic.Uint64

// InjectEphemeral delivers events to the appservice at asURL as one
// homeserver transaction carrying only MSC2409 ephemeral events
// ("de.sorunome.msc2409.ephemeral"), authenticated with hsToken. Dendrite
// never sends these, so this is how tests reach the appservice's typing and
// receipt handlers. It returns once the appservice has answered the
// transaction, and fails on any non-2xx answer. mautrix only handles the
// events when the registration has receive_ephemeral set (NewRegistration
// sets it).
func (hs *Homeserver) InjectEphemeral(ctx context.Context, asURL, hsToken string, events ...*event.Event) error {
	body, err := json.Marshal(&appservice.Transaction{
		Events:                 []*event.Event{},
		MSC2409EphemeralEvents: events,
	})
	if err != nil {
		return fmt.Errorf("failed to encode transaction: %w", err)
	}
	txnID := fmt.Sprintf("inject-%d-%d", time.Now().UnixNano(), injectSeq.Add(1))
	target := strings.TrimRight(asURL, "/") + "/_matrix/app/v1/transactions/" + url.PathEscape(txnID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("failed to build transaction request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+hsToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("failed to send transaction %s: %w", txnID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("appservice rejected transaction %s: %s: %s", txnID, resp.Status, bytes.TrimSpace(msg))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// TypingEvent returns an m.typing ephemeral event saying userIDs are typing in
// roomID (none: nobody is).
func TypingEvent(roomID id.RoomID, userIDs ...id.UserID) *event.Event {
	if userIDs == nil {
		userIDs = []id.UserID{}
	}
	return &event.Event{
		Type:    event.EphemeralEventTyping,
		RoomID:  roomID,
		Content: event.Content{Parsed: &event.TypingEventContent{UserIDs: userIDs}},
	}
}

// ReceiptEvent returns an m.receipt ephemeral event saying userID read
// eventID in roomID at ts.
func ReceiptEvent(roomID id.RoomID, eventID id.EventID, userID id.UserID, ts time.Time) *event.Event {
	content := event.ReceiptEventContent{}
	content.Set(eventID, event.ReceiptTypeRead, userID, event.ReadReceipt{Timestamp: ts})
	return &event.Event{
		Type:    event.EphemeralEventReceipt,
		RoomID:  roomID,
		Content: event.Content{Parsed: &content},
	}
}
