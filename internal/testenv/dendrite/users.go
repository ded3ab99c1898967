package dendrite

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"
)

// UserID returns the full Matrix ID of localpart on this homeserver.
func (hs *Homeserver) UserID(localpart string) id.UserID {
	return id.NewUserID(localpart, hs.ServerName)
}

// RegisterUser creates a normal (non-admin) user through shared-secret
// registration and returns a client logged in as that user with a fresh
// device. It fails if the user exists (M_USER_IN_USE) or the homeserver is not
// running. Requests are bounded by ctx.
func (hs *Homeserver) RegisterUser(ctx context.Context, localpart, password string) (*mautrix.Client, error) {
	cli, err := mautrix.NewClient(hs.URL, "", "")
	if err != nil {
		return nil, fmt.Errorf("failed to create client: %w", err)
	}
	admin := synapseadmin.Client{Client: cli}
	_, err = admin.SharedSecretRegister(ctx, hs.SharedSecret, synapseadmin.ReqSharedSecretRegister{
		Username:     localpart,
		Password:     password,
		InhibitLogin: true,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to register %s: %w", localpart, err)
	}
	return hs.Login(ctx, localpart, password)
}

// Login logs an existing user in with a password and returns a client holding
// the new access token. Requests are bounded by ctx.
func (hs *Homeserver) Login(ctx context.Context, localpart, password string) (*mautrix.Client, error) {
	cli, err := mautrix.NewClient(hs.URL, "", "")
	if err != nil {
		return nil, fmt.Errorf("failed to create client: %w", err)
	}
	_, err = cli.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:                 password,
		InitialDeviceDisplayName: "msn-bridge test",
		StoreCredentials:         true,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to log in as %s: %w", localpart, err)
	}
	return cli, nil
}
