package soak

import (
	"context"
	"sync"
	"time"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// matrixModel stands in for the Matrix frontend (matrix.Frontend with bridgev2 and a homeserver),
// whose constructor around a fake MatrixConnector is not importable from outside its package. It
// models the two things the soak needs of it, with the same calls the real glue makes:
//
//   - inbound (MSN → Matrix): a bridge.Frontend named "matrix" that records every Message event
//     by token. While the "homeserver" is down, HandleEvent blocks and retries until it is back,
//     as mautrix's HTTP client retries an appservice send (it never returns an error that would
//     drop the event, and it never records an event twice);
//   - outbound (Matrix → MSN): send calls Account.SendText with origin "matrix" and treats an
//     error as the failed message status bridgev2 would show, exactly as
//     MSNClient.HandleMatrixMessage does. Nothing is sent while the homeserver is down (no
//     Matrix event could reach the bridge).
type matrixModel struct {
	mu       sync.Mutex
	up       chan struct{} // closed while the homeserver is up
	down     bool
	received map[string]int // token → Message events from contacts
	mirrored map[string]int // token → Message events the owner sent from another frontend
	events   int
	stalls   int // HandleEvent calls that waited for the homeserver
}

var _ bridge.Frontend = (*matrixModel)(nil)

func newMatrixModel() *matrixModel {
	up := make(chan struct{})
	close(up)
	return &matrixModel{up: up, received: map[string]int{}, mirrored: map[string]int{}}
}

// Name implements bridge.Frontend.
func (m *matrixModel) Name() string { return "matrix" }

// HandleEvent implements bridge.Frontend. It blocks while the homeserver is down.
func (m *matrixModel) HandleEvent(ctx context.Context, _ *bridge.Account, evt bridge.Event) error {
	m.mu.Lock()
	up, down := m.up, m.down
	if down {
		m.stalls++
	}
	m.mu.Unlock()
	select {
	case <-up:
	case <-ctx.Done():
		return ctx.Err()
	}
	msg, ok := evt.(bridge.Message)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events++
	if !ok {
		return nil
	}
	for _, tok := range tokens(msg.Text) {
		if msg.FromMe {
			m.mirrored[tok]++
		} else {
			m.received[tok]++
		}
	}
	return nil
}

// setDown takes the homeserver down (true) or brings it back.
func (m *matrixModel) setDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if down == m.down {
		return
	}
	m.down = down
	if down {
		m.up = make(chan struct{})
	} else {
		close(m.up)
	}
}

func (m *matrixModel) isDown() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.down
}

// send is the owner writing text in the contact's Matrix room. It reports false when the message
// could not be written (homeserver down); otherwise err is the message status bridgev2 would
// show (nil for success).
func (m *matrixModel) send(ctx context.Context, acc *bridge.Account, contact, text string) (sent bool, err error) {
	if m.isDown() {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	_, err = acc.SendText(ctx, "matrix", bridge.DirectChat(contact), text, bridge.Format{})
	return true, err
}

func (m *matrixModel) counts(tok string) (received, mirrored int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.received[tok], m.mirrored[tok]
}
