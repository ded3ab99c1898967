package bridge

import (
	"context"

	"github.com/msn-bridge/msn-bridge/msn"
)

// session is what an Account needs of one MSN login. msnSession adapts *msn.Client; unit tests
// use fakes. A session logs in once; after Login fails or a Disconnected event, it is closed and
// a new one is made.
type session interface {
	// Login blocks until the session is online or failed (see msn.Client.Login).
	Login(ctx context.Context) error
	// Close logs out and waits for the session's goroutines (msn.Client.Close).
	Close() error

	Contacts() []msn.Contact

	// SendText sends text to a one-to-one chat (contact != "") or an open multi-party session
	// (sessionID != ""), blocking until every part is acknowledged or one fails.
	SendText(ctx context.Context, contact, sessionID, text string, f *msn.TextFormat) error
	SendTyping(ctx context.Context, contact, sessionID string) error
	SendNudge(ctx context.Context, contact, sessionID string) error

	SetStatus(ctx context.Context, s msn.Status) error
	SetPSM(ctx context.Context, psm string) error
	SetName(ctx context.Context, name string) error

	AddContact(ctx context.Context, handle, name string) error
	RemoveContact(ctx context.Context, handle string) error
	BlockContact(ctx context.Context, handle string) error
	UnblockContact(ctx context.Context, handle string) error
	AcceptContact(ctx context.Context, handle string, addBack bool) error
	DeclineContact(ctx context.Context, handle string, block bool) error
}

// sessionConfig is what a dial function needs to make a session.
type sessionConfig struct {
	Handle, Password string
	Status           Status
	PSM              string
	Handler          msn.Handler
}

// dialFunc makes a session that has not logged in yet.
type dialFunc func(cfg sessionConfig) (session, error)
