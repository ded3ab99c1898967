package dendrite

import (
	"context"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// UserID returns the full Matrix ID of localpart on this homeserver.
func (hs *Homeserver) UserID(localpart string) id.UserID {
	return hs.srv.UserID(localpart)
}

// RegisterUser creates a normal (non-admin) user through shared-secret
// registration and returns a client logged in as that user with a fresh
// device. It fails if the user exists (M_USER_IN_USE) or the homeserver is not
// running. Requests are bounded by ctx.
func (hs *Homeserver) RegisterUser(ctx context.Context, localpart, password string) (*mautrix.Client, error) {
	if err := hs.srv.RegisterUser(ctx, localpart, password); err != nil {
		return nil, err
	}
	return hs.Login(ctx, localpart, password)
}

// Login logs an existing user in with a password and returns a client holding
// the new access token. Requests are bounded by ctx.
func (hs *Homeserver) Login(ctx context.Context, localpart, password string) (*mautrix.Client, error) {
	return hs.srv.Login(ctx, localpart, password, "msn-bridge test")
}
