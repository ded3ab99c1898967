package matrix

import (
	"context"
	"time"

	"maunium.net/go/mautrix/bridgev2"
)

// DoublePuppetValue marks the events the bridge sends as a Matrix user through double
// puppeting (the fi.mau.double_puppet_source field). bridgev2 ignores the homeserver's echo of
// an event carrying it; without the marker, the echo of a message the owner wrote on Discord
// would come back as a new Matrix message and reach MSN a second time.
const DoublePuppetValue = "msn-bridge"

// doublePuppetSetupTimeout bounds the one-time check of the owner's double puppet (a whoami
// request) made when the bridge first sends something as them.
const doublePuppetSetupTimeout = 30 * time.Second

// ownSender is the sender of an event of the account's own handle. Only an event the core made
// from the owner's own action elsewhere (fromMe) may be sent as the owner's Matrix user through
// double puppeting. An MSN event that merely claims to come from the account's handle (MSNP11
// has one session per account, so only a forged one can) is sent by the ghost of the handle,
// as it is without double puppeting, and never by the owner's Matrix user.
func (c *MSNClient) ownSender(fromMe bool) bridgev2.EventSender {
	if !fromMe && c.doublePuppeted() {
		return bridgev2.EventSender{Sender: makeUserID(c.handle)}
	}
	return bridgev2.EventSender{IsFromMe: true, SenderLogin: c.login.ID, Sender: makeUserID(c.handle)}
}

// ownInfo is GetUserInfo for the account's own handle. Events of the owner carry their handle
// as the sender, so bridgev2 keeps a database row for it; when the owner's Matrix user is double
// puppeted, those events are sent as that user, and returning no info keeps bridgev2 from ever
// registering or naming a ghost of the owner on the homeserver. Otherwise the ghost of the
// owner's handle sends them, and gets a name like any contact's.
func (c *MSNClient) ownInfo(name string) *bridgev2.UserInfo {
	if c.doublePuppeted() {
		return nil
	}
	return c.main.userInfo(c.handle, name)
}

// doublePuppeted reports whether the login's Matrix user has a working double puppet.
// bridgev2 sets the double puppet up once per Matrix user (a whoami request) and caches the
// result, nil included, until the user logs in or out again.
func (c *MSNClient) doublePuppeted() bool {
	if c.login.User == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(c.log.WithContext(context.Background()), doublePuppetSetupTimeout)
	defer cancel()
	return c.login.User.DoublePuppet(ctx) != nil
}
