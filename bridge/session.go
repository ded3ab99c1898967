package bridge

import (
	"context"
	"io"

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

	// FetchObject fetches an msnobj's data from its creator (msn.Client.FetchObject).
	FetchObject(ctx context.Context, obj msn.MSNObject) ([]byte, error)
	// SetDisplayPicture publishes the account's display picture; nil removes it.
	SetDisplayPicture(ctx context.Context, png []byte) error
	// SendFile offers a file to contact and sends it once accepted (msn.Client.SendFile).
	SendFile(ctx context.Context, contact string, f msn.OutgoingFile) error
	// offerOf returns the offer of a FileOffered event of this session.
	offerOf(e *msn.FileOffered) fileOffer
}

// fileOffer is a file a contact offers (msn.FileOffer): exactly one of Accept or Decline.
type fileOffer interface {
	Accept(ctx context.Context, w io.Writer, progress func(received int64)) error
	Decline() error
}

// sessionConfig is what a dial function needs to make a session.
type sessionConfig struct {
	Handle, Password string
	Status           Status
	PSM              string
	// DisplayPicture is the account's own display picture (PNG), published at login; nil for none.
	DisplayPicture []byte
	Handler        msn.Handler
}

// dialFunc makes a session that has not logged in yet.
type dialFunc func(cfg sessionConfig) (session, error)
