package matrix

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mau.fi/util/ptr"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/simplevent"
	"maunium.net/go/mautrix/event"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// GetChatInfo describes a portal. A one-to-one chat is a DM with the contact; a multi-party
// switchboard is a group whose members are the participants the core reported.
func (c *MSNClient) GetChatInfo(ctx context.Context, portal *bridgev2.Portal) (*bridgev2.ChatInfo, error) {
	chat := chatOf(portal)
	if chat.IsGroup() {
		return c.groupInfo(chat), nil
	}
	contact, err := bridge.ValidateHandle(chat.Contact())
	if err != nil {
		return nil, fmt.Errorf("portal %q is not an msn chat: %w", portal.ID, err)
	}
	return &bridgev2.ChatInfo{
		Type: ptr.Ptr(database.RoomTypeDM),
		Members: &bridgev2.ChatMemberList{
			IsFull:      true,
			OtherUserID: makeUserID(contact),
			// The owner's invite says the room is a direct chat, so clients list it with the
			// owner's DMs (and record it in m.direct when the owner joins).
			MemberMap: bridgev2.ChatMemberMap{}.
				Set(bridgev2.ChatMember{EventSender: c.senderOf(c.handle, true), Membership: event.MembershipJoin,
					MemberEventExtra: map[string]any{"is_direct": true}}).
				Set(bridgev2.ChatMember{EventSender: c.senderOf(contact, false), Membership: event.MembershipJoin}),
		},
	}, nil
}

func (c *MSNClient) groupInfo(chat bridge.ChatID) *bridgev2.ChatInfo {
	c.mu.Lock()
	members := slices.Clone(c.groups[chat])
	c.mu.Unlock()
	names := make([]string, 0, len(members))
	mm := bridgev2.ChatMemberMap{}.Set(bridgev2.ChatMember{EventSender: c.senderOf(c.handle, true), Membership: event.MembershipJoin})
	for _, h := range members {
		mm.Set(bridgev2.ChatMember{EventSender: c.senderOf(h, false), Membership: event.MembershipJoin})
		names = append(names, bridge.CleanLine(c.nameOf(h), bridge.MaxShownName))
	}
	name := "MSN group chat"
	if len(names) > 0 {
		name = bridge.CleanLine("MSN: "+strings.Join(names, ", "), maxRoomName)
	}
	return &bridgev2.ChatInfo{
		Name: &name,
		Type: ptr.Ptr(database.RoomTypeGroupDM),
		Members: &bridgev2.ChatMemberList{
			IsFull:    len(members) > 0,
			MemberMap: mm,
		},
	}
}

// GetUserInfo describes a contact's ghost from the core's contact list; a stranger, not on the
// list, is named by the name a switchboard gave them, else by the handle.
func (c *MSNClient) GetUserInfo(ctx context.Context, ghost *bridgev2.Ghost) (*bridgev2.UserInfo, error) {
	handle, err := parseUserID(ghost.ID)
	if err != nil {
		return nil, fmt.Errorf("ghost %q is not an msn handle: %w", ghost.ID, err)
	}
	name := c.nameOf(handle)
	if handle == c.handle {
		return c.ownInfo(name), nil
	}
	info := c.main.userInfo(handle, name)
	if acc := c.account(); acc != nil {
		if ct, ok := acc.Contact(handle); ok && ct.Avatar != "" {
			info.Avatar = c.main.contactAvatar(ctx, ct.Avatar, nil)
		}
	}
	return info, nil
}

// nameOf is the name to show for handle: the contact list's name when it has a friendly one,
// else the friendly name a live switchboard gave, else the handle.
func (c *MSNClient) nameOf(handle string) string {
	if acc := c.account(); acc != nil {
		if ct, ok := acc.Contact(handle); ok && ct.Name != "" && ct.Name != handle {
			return ct.Name
		}
	}
	if name := c.switchboardName(handle); name != "" {
		return name
	}
	return handle
}

// switchboardName is the friendly name a live group chat gave handle, or "".
func (c *MSNClient) switchboardName(handle string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, names := range c.sbNames {
		if n := names[handle]; n != "" && n != handle {
			return n
		}
	}
	return ""
}

func (mc *MSNConnector) userInfo(handle, name string) *bridgev2.UserInfo {
	ident := "mailto:" + handle
	if strings.HasPrefix(handle, "tel:") {
		ident = handle
	}
	return &bridgev2.UserInfo{
		Identifiers: []string{ident},
		Name:        ptr.Ptr(mc.renderName(handle, name)),
		IsBot:       ptr.Ptr(false),
	}
}

// handleMembership mirrors multi-party switchboards as group portals. The first event of a
// group (Members set) creates the portal; later joins and leaves change its members. The
// account leaving ends the chat; one-to-one switchboards never reach here.
func (c *MSNClient) handleMembership(m bridge.ChatMembership) {
	if !m.Chat.IsGroup() {
		return
	}
	key := makePortalKey(c.login.ID, m.Chat)
	if m.Handle == c.handle && !m.Joined {
		c.mu.Lock()
		_, known := c.groups[m.Chat]
		delete(c.groups, m.Chat)
		delete(c.sbNames, m.Chat)
		c.mu.Unlock()
		if !known {
			return
		}
		c.login.QueueRemoteEvent(&simplevent.ChatInfoChange{
			EventMeta: simplevent.EventMeta{
				Type: bridgev2.RemoteEventChatInfoChange, PortalKey: key, Sender: c.senderOf(c.handle, true),
				PostHandleFunc: func(ctx context.Context, portal *bridgev2.Portal) {
					if portal.MXID != "" {
						c.sendRoomNotice(ctx, portal, "This MSN group conversation has ended; messages sent here can no longer be delivered.")
					}
				},
			},
			ChatInfoChange: &bridgev2.ChatInfoChange{},
		})
		return
	}
	c.mu.Lock()
	_, known := c.groups[m.Chat]
	members := c.groups[m.Chat]
	if m.Members != nil {
		members = slices.DeleteFunc(slices.Clone(m.Members), func(h string) bool { return h == c.handle })
	} else if m.Joined && !slices.Contains(members, m.Handle) {
		members = append(slices.Clone(members), m.Handle)
	} else if !m.Joined {
		members = slices.DeleteFunc(slices.Clone(members), func(h string) bool { return h == m.Handle })
	}
	c.groups[m.Chat] = members
	if m.Names != nil {
		c.sbNames[m.Chat] = m.Names
	}
	c.mu.Unlock()
	// A participant who is not a contact has no other name than the switchboard's: their
	// ghost takes it (a contact's ghost keeps the contact list's name).
	for h, name := range m.Names {
		if acc := c.account(); acc != nil && h != c.handle && slices.Contains(members, h) {
			if ct, ok := acc.Contact(h); !ok || ct.Name == "" || ct.Name == h {
				c.updateGhost(c.log.WithContext(c.main.Bridge.BackgroundCtx), h, name, true)
			}
		}
	}
	if !known {
		c.login.QueueRemoteEvent(&simplevent.ChatResync{
			EventMeta: simplevent.EventMeta{
				Type: bridgev2.RemoteEventChatResync, PortalKey: key, CreatePortal: true,
			},
			GetChatInfoFunc: func(ctx context.Context, portal *bridgev2.Portal) (*bridgev2.ChatInfo, error) {
				return c.groupInfo(m.Chat), nil
			},
		})
		return
	}
	membership := event.MembershipJoin
	if !m.Joined {
		membership = event.MembershipLeave
	}
	c.login.QueueRemoteEvent(&simplevent.ChatInfoChange{
		EventMeta: simplevent.EventMeta{
			Type: bridgev2.RemoteEventChatInfoChange, PortalKey: key, Sender: c.senderOf(m.Handle, false),
		},
		ChatInfoChange: &bridgev2.ChatInfoChange{
			MemberChanges: &bridgev2.ChatMemberList{
				MemberMap: bridgev2.ChatMemberMap{}.Set(bridgev2.ChatMember{
					EventSender: c.senderOf(m.Handle, false), Membership: membership,
				}),
			},
		},
	})
}

// ResolveIdentifier resolves an MSN handle (e-mail address or tel: number) to its ghost and,
// with createChat, its DM portal. Any valid handle resolves: MSN cannot look accounts up.
func (c *MSNClient) ResolveIdentifier(ctx context.Context, identifier string, createChat bool) (*bridgev2.ResolveIdentifierResponse, error) {
	handle, err := bridge.ValidateHandle(strings.TrimPrefix(strings.TrimSpace(identifier), "mailto:"))
	if err != nil {
		return nil, bridgev2.WrapRespErr(fmt.Errorf("%q is not an msn handle (an e-mail address)", identifier), mautrix.MInvalidParam)
	}
	if handle == c.handle {
		return nil, bridgev2.WrapRespErr(errors.New("that is your own msn account"), mautrix.MInvalidParam)
	}
	return c.resolve(ctx, handle, createChat)
}

func (c *MSNClient) resolve(ctx context.Context, handle string, createChat bool) (*bridgev2.ResolveIdentifierResponse, error) {
	userID := makeUserID(handle)
	ghost, err := c.main.Bridge.GetGhostByID(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("failed to get ghost: %w", err)
	}
	resp := &bridgev2.ResolveIdentifierResponse{Ghost: ghost, UserID: userID, UserInfo: c.main.userInfo(handle, c.nameOf(handle))}
	if createChat {
		resp.Chat = &bridgev2.CreateChatResponse{PortalKey: makePortalKey(c.login.ID, bridge.DirectChat(handle))}
	}
	return resp, nil
}

// CreateChatWithGhost returns the DM portal with a ghost.
func (c *MSNClient) CreateChatWithGhost(ctx context.Context, ghost *bridgev2.Ghost) (*bridgev2.CreateChatResponse, error) {
	handle, err := parseUserID(ghost.ID)
	if err != nil {
		return nil, err
	}
	return &bridgev2.CreateChatResponse{PortalKey: makePortalKey(c.login.ID, bridge.DirectChat(handle))}, nil
}

// GetContactList returns the contacts on the account's forward list.
func (c *MSNClient) GetContactList(ctx context.Context) ([]*bridgev2.ResolveIdentifierResponse, error) {
	return c.SearchUsers(ctx, "")
}

// SearchUsers filters the forward list by handle or name (MSN has no directory search).
func (c *MSNClient) SearchUsers(ctx context.Context, query string) ([]*bridgev2.ResolveIdentifierResponse, error) {
	acc, err := c.mustAccount()
	if err != nil {
		return nil, err
	}
	query = strings.ToLower(strings.TrimSpace(query))
	var out []*bridgev2.ResolveIdentifierResponse
	for _, ct := range acc.Contacts() {
		if !ct.Forward {
			continue
		}
		if query != "" && !strings.Contains(ct.Handle, query) && !strings.Contains(strings.ToLower(ct.Name), query) {
			continue
		}
		resp, err := c.resolve(ctx, ct.Handle, false)
		if err != nil {
			return nil, err
		}
		out = append(out, resp)
	}
	return out, nil
}
