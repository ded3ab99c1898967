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
// italic, underline, strikethrough and colour, typing notifications, and files of any type up
// to maxFile bytes (the core's cap, sent as MSN file transfers; a caption follows as a text
// message). No reactions, threads or read receipts. No maximum length: the core splits long
// texts.
func msnRoomFeatures(maxFile int64) *event.RoomFeatures {
	files := msnFileFeatures(maxFile)
	return &event.RoomFeatures{
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
		File: event.FileFeatureMap{
			event.MsgImage:      files,
			event.MsgFile:       files,
			event.MsgVideo:      files,
			event.MsgAudio:      files,
			event.CapMsgVoice:   files,
			event.CapMsgGIF:     files,
			event.CapMsgSticker: files,
		},
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
}

// msnFileFeatures: MSN transfers any file as bytes with a name, up to maxFile bytes.
func msnFileFeatures(maxFile int64) *event.FileFeatures {
	return &event.FileFeatures{
		MimeTypes: map[string]event.CapabilitySupportLevel{"*/*": event.CapLevelFullySupported},
		Caption:   event.CapLevelPartialSupport, // sent as a text message after the file
		MaxSize:   maxFile,
	}
}

// GetCapabilities returns the room features of every MSN portal (MSN has no per-chat
// differences).
func (c *MSNClient) GetCapabilities(ctx context.Context, portal *bridgev2.Portal) *event.RoomFeatures {
	return c.main.roomFeatures()
}

// roomFeatures returns the room features with the core's file size cap, made once.
func (mc *MSNConnector) roomFeatures() *event.RoomFeatures {
	mc.featuresOnce.Do(func() { mc.features = msnRoomFeatures(mc.media.MaxFileSize()) })
	return mc.features
}
