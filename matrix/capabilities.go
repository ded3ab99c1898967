package matrix

import (
	"context"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/event"
)

// GetCapabilities returns the general capabilities: no disappearing messages, no backfill.
func (mc *MSNConnector) GetCapabilities() *bridgev2.NetworkGeneralCapabilities {
	return &bridgev2.NetworkGeneralCapabilities{
		Provisioning: bridgev2.ProvisioningCapabilities{
			ResolveIdentifier: bridgev2.ResolveIdentifierCapabilities{
				CreateDM:       true,
				LookupEmail:    true,
				LookupUsername: true,
				ContactList:    true,
				Search:         true,
			},
		},
	}
}

// msnRoomFeatures is what MSN can carry, declared honestly: text with whole-message bold,
// italic, underline, strikethrough and colour, and typing notifications. No edits, reactions,
// replies, threads, deletions, read receipts or files (bridgev2 rejects files before they reach
// the connector). No maximum length: the core splits long texts.
var msnRoomFeatures = &event.RoomFeatures{
	ID: "net.msn.capabilities.v1",
	Formatting: event.FormattingFeatureMap{
		event.FmtBold:                event.CapLevelPartialSupport,
		event.FmtItalic:              event.CapLevelPartialSupport,
		event.FmtUnderline:           event.CapLevelPartialSupport,
		event.FmtStrikethrough:       event.CapLevelPartialSupport,
		event.FmtTextForegroundColor: event.CapLevelPartialSupport,
		event.FmtInlineLink:          event.CapLevelDropped,
		event.FmtUserLink:            event.CapLevelDropped,
		event.FmtInlineCode:          event.CapLevelDropped,
		event.FmtCodeBlock:           event.CapLevelDropped,
		event.FmtBlockquote:          event.CapLevelDropped,
		event.FmtUnorderedList:       event.CapLevelDropped,
		event.FmtOrderedList:         event.CapLevelDropped,
	},
	File:                event.FileFeatureMap{},
	Reply:               event.CapLevelPartialSupport, // carried as a quote line, see replyQuote
	Thread:              event.CapLevelRejected,
	Edit:                event.CapLevelPartialSupport, // carried as a new message, see HandleMatrixEdit
	Delete:              event.CapLevelPartialSupport, // only a message not sent yet, see HandleMatrixMessageRemove
	Reaction:            event.CapLevelRejected,
	LocationMessage:     event.CapLevelRejected,
	Poll:                event.CapLevelRejected,
	ReadReceipts:        false,
	TypingNotifications: true,
}

// GetCapabilities returns the room features of every MSN portal (MSN has no per-chat
// differences).
func (c *MSNClient) GetCapabilities(ctx context.Context, portal *bridgev2.Portal) *event.RoomFeatures {
	return msnRoomFeatures
}
