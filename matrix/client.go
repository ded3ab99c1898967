package matrix

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/status"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// MSNClient is the NetworkAPI of one UserLogin: a view of the core's Account with the same
// handle, owned by the login's Matrix user. It holds no MSN session of its own.
type MSNClient struct {
	main   *MSNConnector
	login  *bridgev2.UserLogin
	handle string
	owner  bridge.FrontendUser
	log    zerolog.Logger

	mu        sync.Mutex
	groups    map[bridge.ChatID][]string          // members (other than the account) of live group chats
	sbNames   map[bridge.ChatID]map[string]string // friendly names the switchboard gave them
	typingIn  map[typingKey]bool                  // contacts shown typing, to clear on their message
	typingOut map[bridge.ChatID]*typingLoop
	lastState bridge.AccountStateKind

	ownAvatar ownAvatar // the owner's Matrix avatar made the display picture

	sends sendQueue // the owner's messages on their way to MSN
}

type typingKey struct {
	chat   bridge.ChatID
	sender string
}

var (
	_ bridgev2.NetworkAPI                    = (*MSNClient)(nil)
	_ bridgev2.NetworkAPIWithUserID          = (*MSNClient)(nil)
	_ bridgev2.IdentifierResolvingNetworkAPI = (*MSNClient)(nil)
	_ bridgev2.GhostDMCreatingNetworkAPI     = (*MSNClient)(nil)
	_ bridgev2.ContactListingNetworkAPI      = (*MSNClient)(nil)
	_ bridgev2.UserSearchingNetworkAPI       = (*MSNClient)(nil)
	_ bridgev2.TypingHandlingNetworkAPI      = (*MSNClient)(nil)
	_ bridgev2.MembershipHandlingNetworkAPI  = (*MSNClient)(nil)
	_ bridgev2.EditHandlingNetworkAPI        = (*MSNClient)(nil)
	_ bridgev2.RedactionHandlingNetworkAPI   = (*MSNClient)(nil)
)

func newMSNClient(mc *MSNConnector, login *bridgev2.UserLogin) *MSNClient {
	return &MSNClient{
		main:      mc,
		login:     login,
		handle:    string(login.ID),
		owner:     ownerOf(login.User),
		log:       login.Log.With().Str("component", "msn_client").Logger(),
		groups:    map[bridge.ChatID][]string{},
		sbNames:   map[bridge.ChatID]map[string]string{},
		typingIn:  map[typingKey]bool{},
		typingOut: map[bridge.ChatID]*typingLoop{},
	}
}

// account returns the core's account of this login, or nil when the core does not know it or
// the login's Matrix user is not (or no longer) one of its owners.
func (c *MSNClient) account() *bridge.Account {
	acc := c.main.Core.Account(c.handle)
	if acc == nil || !acc.IsOwner(c.owner) {
		return nil
	}
	return acc
}

// errNoAccount is returned by actions when the login has no core account.
var errNoAccount = errors.New("this MSN account is not logged in to the bridge; log in again")

func (c *MSNClient) mustAccount() (*bridge.Account, error) {
	if acc := c.account(); acc != nil {
		return acc, nil
	}
	return nil, errNoAccount
}

// Connect attaches the frontend to the core's account (the core normally has already, on
// login or start) and reports its current state. It never opens an MSN session.
func (c *MSNClient) Connect(ctx context.Context) {
	acc := c.account()
	if acc == nil {
		c.login.BridgeState.Send(status.BridgeState{
			StateEvent: status.StateBadCredentials,
			Error:      "msn-not-logged-in",
			Message:    notLoggedInMessage,
		})
		return
	}
	if !slices.Contains(acc.Attached(), FrontendName) {
		acc.Attach(c.main.fe)
	}
	c.sendBridgeState(acc.State())
	c.readOwnAvatar()
}

// Disconnect stops typing notifications and waits (drainTimeout at most) for the owner's
// queued messages to be sent and their statuses to go out. The MSN session belongs to the core
// and stays up; the frontend is detached by Frontend.Stop or a logout.
func (c *MSNClient) Disconnect() {
	c.mu.Lock()
	loops := c.typingOut
	c.typingOut = map[bridge.ChatID]*typingLoop{}
	c.mu.Unlock()
	for _, l := range loops {
		l.stop()
	}
	if !c.drain(drainTimeout) {
		c.log.Warn().Msg("Messages still on their way to MSN after disconnecting; their statuses follow when they are sent")
	}
}

// IsLoggedIn reports whether the core has the account for this login.
func (c *MSNClient) IsLoggedIn() bool { return c.account() != nil }

// LogoutRemote unlinks the Matrix user from the account; the core logs out of MSN when no
// frontend user is left.
func (c *MSNClient) LogoutRemote(ctx context.Context) {
	c.Disconnect()
	err := c.main.Core.Logout(ctx, c.owner, c.handle)
	if err != nil && !errors.Is(err, bridge.ErrAccountNotFound) {
		c.log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to log out of the core")
	}
}

// IsThisUser reports whether userID is the account's own handle.
func (c *MSNClient) IsThisUser(ctx context.Context, userID networkid.UserID) bool {
	return userID == makeUserID(c.handle)
}

// GetUserID returns the account's handle as a remote user id.
func (c *MSNClient) GetUserID() networkid.UserID { return makeUserID(c.handle) }
