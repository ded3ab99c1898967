package bridge

import (
	"context"
	"errors"
	"io"
	"time"
)

// Media: contacts' display pictures (avatars), files both ways, winks and custom emoticons,
// carried over MSN P2P by the session.

// Failure reasons of a file send, besides those of text.
const (
	FailureDeclined SendFailure = "declined" // the contact declined the file
	FailureCanceled SendFailure = "canceled" // the contact cancelled the transfer under way
	FailureTooLarge SendFailure = "too_large"
)

// errMediaPending marks media calls whose implementation is not in yet.
var errMediaPending = errors.New("bridge: media not implemented yet")

// ContactAvatar is emitted when a contact's display picture was fetched (or removed: Avatar ""
// and Data nil). Avatar is the picture's SHA1D (also in Contact.Avatar); Data is the image as
// the contact published it (usually PNG), MIME its detected type.
type ContactAvatar struct {
	Handle string
	Avatar string
	Data   []byte
	MIME   string
}

func (ContactAvatar) EventType() string { return "contact_avatar" }

// File is a file in a chat: sent by a contact (Origin OriginMSN), or by the account through
// another frontend (FromMe, Origin that frontend). Open returns its content; it may be called
// more than once and until the event's delivery returns, not after.
type File struct {
	ID         string
	Chat       ChatID
	Sender     string
	SenderName string
	Name       string // no path, no control characters
	Size       int64
	MIME       string // detected from the content and name; "application/octet-stream" when unknown
	Time       time.Time
	FromMe     bool
	Origin     string
	Open       func() (io.ReadCloser, error)
}

func (File) EventType() string { return "file" }

// FileFailed is emitted when a contact's file could not be carried: over the size cap, the
// contact cancelled, it stalled. The frontend tells the owner, so nothing is dropped unseen.
type FileFailed struct {
	Chat       ChatID
	Sender     string
	SenderName string
	Name       string
	Size       int64
	Reason     SendFailure
	Err        error
	Time       time.Time
}

func (FileFailed) EventType() string { return "file_failed" }

// Wink is an animation a contact sent. Name is the wink's name (remote text); Image is its
// thumbnail when one could be extracted (nil otherwise: show the name), MIME its type.
type Wink struct {
	ID         string
	Chat       ChatID
	Sender     string
	SenderName string
	Name       string
	Image      []byte
	MIME       string
	Time       time.Time
}

func (Wink) EventType() string { return "wink" }

// Emoticon is a custom emoticon in a Message: Shortcut in Text stands for the image Data.
type Emoticon struct {
	Shortcut string
	Avatar   string // SHA1D of the image, a stable key for caching uploads
	Data     []byte
	MIME     string
}

// OutgoingFile is a file the owner sends to a chat with SendFile.
type OutgoingFile struct {
	Name string
	Size int64
	MIME string
	Data io.Reader // exactly Size bytes
}

// SendFile sends f to chat (a one-to-one chat; in a group chat, to its only other participant)
// as an MSN file transfer and blocks until the contact received it, declined it, or it failed
// (*SendError with FailureDeclined, FailureCanceled, FailureTooLarge, …). It returns the id of the
// File event that shows it on the other attached frontends.
func (a *Account) SendFile(ctx context.Context, origin string, chat ChatID, f OutgoingFile) (string, error) {
	return "", errMediaPending
}

// SetAvatar makes image (PNG, JPEG or GIF) the account's MSN display picture, converted to a
// PNG of MSN's size, stored so it is published again at every login. nil removes it.
func (a *Account) SetAvatar(ctx context.Context, origin string, image []byte) error {
	return errMediaPending
}

// Avatar returns a cached display picture by its SHA1D.
func (c *Core) Avatar(ctx context.Context, sha1d string) (data []byte, mime string, err error) {
	return nil, "", errMediaPending
}
