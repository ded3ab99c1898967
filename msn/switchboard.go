package msn

import (
	"context"
	"fmt"
	"sync"
)

type sbManager struct {
	wg sync.WaitGroup
}

func (m *sbManager) init() {}

func (c *Client) closeAllSessions() {}

func (c *Client) waitSessions() { c.sb.wg.Wait() }

func (c *Client) handleRNG(cmd *Command) {}

// SendText sends text to a contact on a one-to-one switchboard session (reused while open,
// opened on demand; concurrent sends while it opens wait for it). Long text is split into
// several messages. It returns nil only when every part was acknowledged, and a *SendError
// naming the failed part otherwise.
func (c *Client) SendText(ctx context.Context, to, text string, format *TextFormat) error {
	return &SendError{Parts: 1, Reason: fmt.Errorf("switchboard: %w", ErrNotConnected)}
}

// SendTyping sends a typing notification to a contact.
func (c *Client) SendTyping(ctx context.Context, to string) error { return ErrNotConnected }

// SendNudge sends a nudge to a contact.
func (c *Client) SendNudge(ctx context.Context, to string) error { return ErrNotConnected }

// SendGroupText sends text to every participant of the session sessionID.
func (c *Client) SendGroupText(ctx context.Context, sessionID, text string, format *TextFormat) error {
	return &SendError{Parts: 1, Reason: ErrSessionNotFound}
}

// InviteToSession invites handle into the session sessionID.
func (c *Client) InviteToSession(ctx context.Context, sessionID, handle string) error {
	return ErrSessionNotFound
}

// LeaveSession leaves the session sessionID.
func (c *Client) LeaveSession(ctx context.Context, sessionID string) error {
	return ErrSessionNotFound
}
