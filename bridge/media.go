package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// Media: contacts' display pictures (avatars), files both ways, winks and custom emoticons,
// carried over MSN P2P by the session.
//
// Avatars. Contact.Avatar is the SHA1D of the display picture that was fetched, not merely
// announced: when it is set, Core.Avatar returns the picture. A contact's msnobj (in ILN/NLN)
// announces a picture; the core fetches it in the background, unless it is in the shared cache
// already (a picture is fetched once by the whole bridge, whatever the number of accounts or
// restarts), then sets Contact.Avatar and emits ContactAvatar. Fetches are bounded per account
// and overall (MediaConfig), a contact's picture is fetched at most once per
// MediaConfig.AvatarInterval (the latest one announced wins), and a failed fetch is retried
// with backoff while the contact still announces that picture. A contact going offline keeps
// its picture; an online contact announcing none removes it (ContactAvatar with Avatar "").
//
// Files. A contact's file is accepted when it is within MediaConfig.MaxFileSize and a transfer
// slot is free, streamed to a spool file (mode 0600, in a directory of mode 0700), and shown as
// File once complete; the spool file is deleted once every frontend's HandleEvent of that File
// returned (or its delivery was abandoned). Otherwise the offer is declined and FileFailed says
// why. A file the owner sends (SendFile) is spooled while it is sent, so the File shown on the
// other frontends can be opened as well.
//
// Emoticons. A message with custom emoticons waits (at most MediaConfig.EmoticonWait) for their
// images, from the cache or fetched; the account's later messages and nudges wait behind it, so
// order is kept. Those not resolved in time stay as their shortcut text.
//
// Winks. A wink's object (a CAB archive) is fetched in the background and its thumbnail
// extracted; Wink is emitted when that is done or failed (Image nil), not in order with
// messages.

// Failure reasons of a file send, besides those of text.
const (
	FailureDeclined SendFailure = "declined" // the contact declined the file
	FailureCanceled SendFailure = "canceled" // the contact cancelled the transfer under way
	FailureTooLarge SendFailure = "too_large"
)

// ErrTooManyTransfers means every file transfer slot (MediaConfig.MaxTransfers) is taken.
var ErrTooManyTransfers = errors.New("too many file transfers at once")

// MediaConfig bounds what media costs. Zero fields take the defaults noted.
type MediaConfig struct {
	// MaxFileSize caps a file received or sent, in bytes (default 50 MiB). Larger offers are
	// declined.
	MaxFileSize int64 `yaml:"max_file_size"`
	// MaxObjectSize caps a fetched display picture, emoticon or wink, in bytes (default 1 MiB).
	MaxObjectSize int64 `yaml:"max_object_size"`
	// CacheSize bounds the cache of pictures and emoticons in the database, in bytes (default
	// 1 GiB); the oldest are deleted beyond it (and fetched again if announced again).
	CacheSize int64 `yaml:"cache_size"`
	// AvatarFetchesPerAccount and AvatarFetches bound the display pictures fetched at once, per
	// account (default 2) and over all accounts (default 16).
	AvatarFetchesPerAccount int `yaml:"avatar_fetches_per_account"`
	AvatarFetches           int `yaml:"avatar_fetches"`
	// AvatarInterval is the least time between two fetches of one contact's picture (default
	// 30 s): a contact changing pictures faster is shown the latest one after it.
	AvatarInterval time.Duration `yaml:"avatar_interval"`
	// AvatarRetry is the first wait before a failed fetch is tried again (default 1 min),
	// doubling up to an hour.
	AvatarRetry time.Duration `yaml:"avatar_retry"`
	// FetchTimeout bounds one fetch of a display picture or wink (default 1 min).
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
	// EmoticonWait is how long a message waits for its custom emoticons (default 3 s).
	EmoticonWait time.Duration `yaml:"emoticon_wait"`
	// MaxTransfers bounds the files received or sent at once over all accounts (default 8), so
	// the spool holds at most MaxTransfers × MaxFileSize; MaxTransfersPerAccount per account
	// (default 2).
	MaxTransfers           int `yaml:"max_transfers"`
	MaxTransfersPerAccount int `yaml:"max_transfers_per_account"`
	// SpoolDir holds files in transit (made with mode 0700). "" is a private temporary
	// directory, made by the first transfer and removed at Stop.
	SpoolDir string `yaml:"spool_dir"`
}

// Defaults of MediaConfig.
const (
	DefaultMaxFileSize   = 50 << 20
	DefaultMaxObjectSize = 1 << 20
	DefaultCacheSize     = 1 << 30
)

func (c MediaConfig) withDefaults() MediaConfig {
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = DefaultMaxFileSize
	}
	if c.MaxObjectSize <= 0 {
		c.MaxObjectSize = DefaultMaxObjectSize
	}
	if c.CacheSize <= 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.AvatarFetchesPerAccount <= 0 {
		c.AvatarFetchesPerAccount = 2
	}
	if c.AvatarFetches <= 0 {
		c.AvatarFetches = 16
	}
	if c.AvatarInterval <= 0 {
		c.AvatarInterval = 30 * time.Second
	}
	if c.AvatarRetry <= 0 {
		c.AvatarRetry = time.Minute
	}
	if c.FetchTimeout <= 0 {
		c.FetchTimeout = time.Minute
	}
	if c.EmoticonWait <= 0 {
		c.EmoticonWait = 3 * time.Second
	}
	if c.MaxTransfers <= 0 {
		c.MaxTransfers = 8
	}
	if c.MaxTransfersPerAccount <= 0 {
		c.MaxTransfersPerAccount = 2
	}
	return c
}

// ContactAvatar is emitted when a contact's display picture was fetched (or removed: Avatar ""
// and Data nil). Avatar is the picture's SHA1D (also in Contact.Avatar); Data is the image as
// the contact published it (usually PNG), MIME its detected type. Only the latest per contact
// is kept in a frontend's queue.
type ContactAvatar struct {
	Handle string
	Avatar string
	Data   []byte
	MIME   string

	lazy bool // Data and MIME are read from the cache just before delivery
}

func (ContactAvatar) EventType() string { return "contact_avatar" }

// File is a file in a chat: sent by a contact (Origin OriginMSN), or by the account through
// another frontend (FromMe, Origin that frontend). Open returns its content; it may be called
// more than once and until the event's delivery returns, not after (the spool file is deleted
// then).
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

	spool *spoolFile // deleted once every delivery of the event returned
}

func (File) EventType() string { return "file" }

// release is called once for every queue the event was handed to, after its delivery.
func (f File) release() { f.spool.release() }

// FileFailed is emitted when a contact's file could not be carried: over the size cap
// (FailureTooLarge), too many transfers at once (FailureRateLimited), the contact cancelled
// (FailureCanceled), it stalled (FailureTimeout), or another error (FailureOther). The
// frontend tells the owner, so nothing is dropped unseen.
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

var (
	_ Event = ContactAvatar{}
	_ Event = File{}
	_ Event = FileFailed{}
	_ Event = Wink{}
)

// OutgoingFile is a file the owner sends to a chat with SendFile.
type OutgoingFile struct {
	Name string
	Size int64
	MIME string
	Data io.Reader // exactly Size bytes
}

// SendFile sends f to chat (a one-to-one chat; in a group chat, to its only other participant)
// as an MSN file transfer and blocks until the contact received it, declined it, or it failed
// (*SendError with FailureDeclined, FailureCanceled, FailureTooLarge, FailureTimeout for a
// stalled transfer, FailureNotConnected, FailureRateLimited when the send rate or the transfer
// slots are exhausted, …). It returns the id of the File event that shows it on the other
// attached frontends; that File's Open reads the copy spooled while sending. A file counts
// against the account's send rate as SendLimitConfig.NudgeCost messages.
func (a *Account) SendFile(ctx context.Context, origin string, chat ChatID, f OutgoingFile) (string, error) {
	if err := a.core.beginAction(); err != nil {
		return "", err
	}
	defer a.core.endAction()
	cfg := a.core.cfg.Media
	name := cleanFileName(f.Name)
	switch {
	case f.Data == nil || f.Size < 0 || name == "":
		return "", &SendError{Reason: FailureInvalid, Parts: 1, Err: fmt.Errorf("%w: no file data, name or size", ErrInvalidArgument)}
	case f.Size > cfg.MaxFileSize:
		return "", &SendError{Reason: FailureTooLarge, Parts: 1, Err: fmt.Errorf("%w: %d bytes, at most %d", msn.ErrTransferTooLarge, f.Size, cfg.MaxFileSize)}
	}
	contact, err := a.fileTarget(chat)
	if err != nil {
		return "", &SendError{Reason: FailureInvalid, Parts: 1, Err: err}
	}
	if _, err = a.connected(); err != nil {
		return "", &SendError{Reason: FailureNotConnected, Parts: 1, Err: err}
	}
	if err = a.gate().wait(ctx, a.core.cfg.SendLimit.NudgeCost); err != nil {
		return "", &SendError{Reason: FailureRateLimited, Parts: 1, Err: err}
	}
	sess, err := a.connected()
	if err != nil {
		return "", &SendError{Reason: FailureNotConnected, Parts: 1, Err: err}
	}
	slot, err := a.core.media.takeSlot(a)
	if err != nil {
		return "", &SendError{Reason: FailureRateLimited, Parts: 1, Err: err}
	}
	defer slot()
	sp, err := a.core.media.newSpool("out-")
	if err != nil {
		return "", &SendError{Reason: FailureOther, Parts: 1, Err: err}
	}
	data := io.TeeReader(io.LimitReader(f.Data, f.Size), &limitWriter{w: sp, left: f.Size})
	err = sess.SendFile(ctx, contact, msn.OutgoingFile{Name: name, Size: f.Size, Data: data})
	if err == nil {
		err = sp.finish(f.Size)
	}
	if err != nil {
		sp.release()
		se := classifyTransfer(err)
		a.core.metrics.mediaResult("file_out", string(se.Reason))
		return "", se
	}
	a.core.metrics.mediaResult("file_out", "sent")
	mimeType := f.MIME
	if mimeType == "" {
		mimeType = sp.mime(name)
	}
	id := a.NewMessageID()
	a.mu.Lock()
	a.emitFileLocked(File{ID: id, Chat: chat, Sender: a.handle, SenderName: a.profile.Name, Name: name, Size: f.Size,
		MIME: mimeType, Time: a.core.clock.Now(), FromMe: true, Origin: origin}, sp, origin)
	a.mu.Unlock()
	return id, nil
}

// fileTarget resolves the contact a file for chat goes to.
func (a *Account) fileTarget(chat ChatID) (string, error) {
	contact, sessionID, err := a.target(chat)
	if err != nil || sessionID == "" {
		return contact, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if cs, ok := a.chats[sessionID]; ok && len(cs.members) == 1 {
		return membersOf(cs)[0], nil
	}
	return "", fmt.Errorf("%w: a file goes to one contact, and this chat has several", ErrInvalidArgument)
}

// classifyTransfer maps a file transfer error to a *SendError.
func classifyTransfer(err error) *SendError {
	switch {
	case errors.Is(err, msn.ErrTransferDeclined):
		return &SendError{Reason: FailureDeclined, Parts: 1, Err: err}
	case errors.Is(err, msn.ErrTransferCanceled):
		return &SendError{Reason: FailureCanceled, Parts: 1, Err: err}
	case errors.Is(err, msn.ErrTransferTooLarge), errors.Is(err, errOverSize):
		return &SendError{Reason: FailureTooLarge, Parts: 1, Err: err}
	case errors.Is(err, msn.ErrTransferStalled):
		return &SendError{Reason: FailureTimeout, Parts: 1, Err: err}
	case errors.Is(err, ErrTooManyTransfers):
		return &SendError{Reason: FailureRateLimited, Parts: 1, Err: err}
	}
	return classifySend(err)
}

// SetAvatar makes image (PNG, JPEG or GIF, at most MaxAvatarInput bytes and MaxAvatarPixels
// pixels) the account's MSN display picture, converted to a 96×96 PNG (centre-cropped to a
// square), stored so it is published again at every login. nil removes it. While the account
// is not connected it is only stored. It fails with ErrInvalidArgument for an image it cannot
// use.
func (a *Account) SetAvatar(ctx context.Context, origin string, image []byte) error {
	if err := a.core.beginAction(); err != nil {
		return err
	}
	defer a.core.endAction()
	var png []byte
	if image != nil {
		var err error
		if png, err = avatarPNG(image); err != nil {
			return err
		}
	}
	if sess, err := a.connected(); err == nil {
		if err = sess.SetDisplayPicture(ctx, png); err != nil {
			return fmt.Errorf("failed to publish display picture: %w", err)
		}
	}
	return a.core.store.SetOwnAvatar(ctx, a.handle, png, a.core.clock.Now())
}

// MaxFileSize is the largest file carried either way: MediaConfig.MaxFileSize with its default
// (or the session's msn.Config.MaxFileSize when that is lower). Frontends announce it and refuse
// larger files before reading them.
func (c *Core) MaxFileSize() int64 { return min(c.cfg.Media.MaxFileSize, c.cfg.MSN.MaxFileSize) }

// Avatar returns a cached display picture or emoticon by its SHA1D, or ErrObjectNotCached.
func (c *Core) Avatar(ctx context.Context, sha1d string) (data []byte, mime string, err error) {
	return c.store.Object(ctx, sha1d)
}
