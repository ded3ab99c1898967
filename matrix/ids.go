package matrix

import (
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// FrontendName is the Matrix frontend's name towards the core (bridge.Frontend.Name, the
// Frontend field of bridge.FrontendUser and the Origin of actions taken from Matrix).
const FrontendName = "matrix"

// IDs used in bridgev2:
//
//   - UserLoginID: the account's lower-cased MSN handle.
//   - ghost UserID: the contact's lower-cased handle (an e-mail address or a tel: number). The
//     Matrix connector turns it into @msn_<id.EncodeUserLocalpart(handle)>:server, which is
//     reversible, so handles with '@', '+' or ':' round-trip.
//   - PortalKey: ID is the core's ChatID (the contact's handle for a one-to-one chat,
//     "group:<id>" for a multi-party switchboard) and Receiver is always the login, since the
//     same contact is a different chat for every account.
//   - MessageID: the core's deterministic message id.

func makeUserLoginID(handle string) networkid.UserLoginID {
	return networkid.UserLoginID(bridge.NormalizeHandle(handle))
}

func makeUserID(handle string) networkid.UserID {
	return networkid.UserID(bridge.NormalizeHandle(handle))
}

// parseUserID returns the MSN handle of a ghost id, or an error for ids that are not handles.
func parseUserID(userID networkid.UserID) (string, error) {
	return bridge.ValidateHandle(string(userID))
}

func makePortalKey(login networkid.UserLoginID, chat bridge.ChatID) networkid.PortalKey {
	return networkid.PortalKey{ID: networkid.PortalID(chat), Receiver: login}
}

// chatOf returns the core chat a portal mirrors.
func chatOf(portal *bridgev2.Portal) bridge.ChatID {
	return bridge.ChatID(portal.ID)
}

func makeMessageID(id string) networkid.MessageID { return networkid.MessageID(id) }

// ownerOf returns the core's identity of a Matrix user.
func ownerOf(user *bridgev2.User) bridge.FrontendUser {
	return bridge.FrontendUser{Frontend: FrontendName, UserID: string(user.MXID)}
}
