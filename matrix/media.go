package matrix

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/exmime"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/simplevent"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// Media on Matrix: contacts' display pictures become their ghosts' avatars, the owner's Matrix
// avatar becomes the account's display picture, files go both ways, winks and custom emoticons
// are shown as images. Everything a contact chooses (file and wink names, MIME types, sizes,
// image data) is untrusted: names are shown as text, sizes are capped, and what cannot be shown
// is said in the chat instead of being dropped.

// Size caps of the media the frontend carries.
const (
	// maxAvatarDownload caps the owner's Matrix avatar downloaded to become the display picture.
	maxAvatarDownload = 8 << 20
	// maxInlineImage caps a wink's thumbnail or a custom emoticon uploaded as an image.
	maxInlineImage = 1 << 20
	// maxEmoticonsShown caps the distinct custom emoticons shown inline in one message.
	maxEmoticonsShown = 16
	// maxEmoticonCache bounds the uploaded emoticons remembered by SHA1D (then forgotten at once).
	maxEmoticonCache = 4096
	// maxFileNameShown caps a file's or a wink's name, in characters.
	maxFileNameShown = 255
)

// Time bounds of the media work.
var (
	// fileShowWait bounds how long the core's delivery of a contact's file waits for the
	// portal to upload it (the file's content may only be read during that delivery).
	fileShowWait = 5 * time.Minute
	// fileUploadTimeout bounds one upload of a file to the homeserver.
	fileUploadTimeout = 10 * time.Minute
	// fileSendTimeout bounds one of the owner's files on its way to a contact: the contact has to
	// accept it first.
	fileSendTimeout = 20 * time.Minute
	// avatarTimeout bounds reading, downloading and publishing the owner's avatar.
	avatarTimeout = 2 * time.Minute
)

// mediaCore is what the frontend asks of the core for media: a seam, so that the frontend's
// use of it is tested on its own.
type mediaCore interface {
	// Avatar returns a cached display picture by its SHA1D.
	Avatar(ctx context.Context, sha1d string) ([]byte, string, error)
	// SendFile sends the owner's file to chat (bridge.Account.SendFile).
	SendFile(ctx context.Context, acc *bridge.Account, chat bridge.ChatID, f bridge.OutgoingFile) (string, error)
	// SetAvatar makes image the account's display picture, nil removing it (bridge.Account.SetAvatar).
	SetAvatar(ctx context.Context, acc *bridge.Account, image []byte) error
	// MaxFileSize is the largest file carried either way (bridge.Core.MaxFileSize). The room
	// capabilities announce it; the homeserver's upload limit may be lower.
	MaxFileSize() int64
}

// coreMedia is mediaCore on the core itself.
type coreMedia struct{ core *bridge.Core }

func (m coreMedia) Avatar(ctx context.Context, sha1d string) ([]byte, string, error) {
	return m.core.Avatar(ctx, sha1d)
}

func (m coreMedia) SendFile(ctx context.Context, acc *bridge.Account, chat bridge.ChatID, f bridge.OutgoingFile) (string, error) {
	return acc.SendFile(ctx, FrontendName, chat, f)
}

func (m coreMedia) SetAvatar(ctx context.Context, acc *bridge.Account, image []byte) error {
	return acc.SetAvatar(ctx, FrontendName, image)
}

func (m coreMedia) MaxFileSize() int64 { return m.core.MaxFileSize() }

// emoticonCache remembers the mxc URI of each custom emoticon uploaded, by SHA1D, so each is
// uploaded once.
type emoticonCache struct {
	mu   sync.Mutex
	uris map[string]id.ContentURIString
}

func (ec *emoticonCache) get(key string) (id.ContentURIString, bool) {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	uri, ok := ec.uris[key]
	return uri, ok
}

func (ec *emoticonCache) put(key string, uri id.ContentURIString) {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if ec.uris == nil || len(ec.uris) >= maxEmoticonCache {
		ec.uris = map[string]id.ContentURIString{}
	}
	ec.uris[key] = uri
}

// --- Files, both ways ---

// errFileTooLarge is a file over a size cap; it says which.
type errFileTooLarge struct{ limit int64 }

func (e errFileTooLarge) Error() string {
	return fmt.Sprintf("the file is larger than %s, the most the bridge carries", humanSize(e.limit))
}

// downloadCapped downloads uri (decrypting it with file when set) to a temporary file, at most
// limit bytes, and calls fn with it; the file is removed once fn returned. Nothing of it is
// held in memory. A larger download stops at limit+1 bytes and fails with errFileTooLarge.
func downloadCapped(ctx context.Context, intent bridgev2.MatrixAPI, uri id.ContentURIString, file *event.EncryptedFileInfo, limit int64, fn func(f *os.File, size int64) error) error {
	if as, ok := intent.(*matrix.ASIntent); ok {
		return asDownload(ctx, as, uri, file, limit, fn)
	}
	return intent.DownloadMediaToFile(ctx, uri, file, false, func(f *os.File) error {
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if st.Size() > limit {
			return errFileTooLarge{limit}
		}
		return fn(f, st.Size())
	})
}

// asDownload is downloadCapped on the appservice: bridgev2's own download to a file caps it at
// the bridge-wide matrix.max_download_size only.
func asDownload(ctx context.Context, as *matrix.ASIntent, uri id.ContentURIString, file *event.EncryptedFileInfo, limit int64, fn func(f *os.File, size int64) error) error {
	if file != nil {
		uri = file.URL
		if err := file.PrepareForDecryption(); err != nil {
			return err
		}
	}
	parsed, err := uri.Parse()
	if err != nil {
		return fmt.Errorf("invalid media address: %w", err)
	}
	resp, err := as.Matrix().Download(ctx, parsed)
	if err != nil {
		return fmt.Errorf("failed to download the file from the homeserver: %w", err)
	}
	defer resp.Body.Close()
	if resp.ContentLength > limit {
		return errFileTooLarge{limit}
	}
	tmp, err := os.CreateTemp("", "msn-bridge-download-*")
	if err != nil {
		return fmt.Errorf("failed to create temp file: %w", err)
	}
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	var reader io.Reader = resp.Body
	var decrypt io.ReadCloser
	if file != nil {
		decrypt = file.DecryptStream(resp.Body)
		reader = decrypt
	}
	n, err := io.Copy(tmp, io.LimitReader(reader, limit+1))
	if err != nil {
		return fmt.Errorf("failed to download the file from the homeserver: %w", err)
	} else if n > limit {
		return errFileTooLarge{limit}
	}
	if decrypt != nil {
		// Closing the decrypting reader checks the file's hash.
		if err = decrypt.Close(); err != nil {
			return fmt.Errorf("failed to decrypt the file: %w", err)
		}
	}
	if _, err = tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return fn(tmp, n)
}

// isFileMessage reports whether a Matrix message is a file MSN carries as a file transfer.
func isFileMessage(t event.MessageType) bool {
	switch t {
	case event.MsgImage, event.MsgFile, event.MsgVideo, event.MsgAudio, event.CapMsgSticker:
		return true
	}
	return false
}

// sendFile carries the owner's Matrix file to MSN as a file transfer, on a goroutine of its own
// (a contact may take minutes to accept): HandleMatrixMessage returns Pending and the status
// follows, saying delivered, declined by the contact, or why it failed. A caption follows the
// file as a text message. The file is downloaded from the homeserver to a temporary file, at
// most the core's MaxFileSize bytes, and streamed from there.
func (c *MSNClient) sendFile(ctx context.Context, acc *bridge.Account, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	content := msg.Content
	maxFile := c.main.media.MaxFileSize()
	if content.Info != nil && int64(content.Info.Size) > maxFile {
		return nil, fileStatus(errFileTooLarge{maxFile})
	}
	if content.URL == "" && (content.File == nil || content.File.URL == "") {
		return nil, failStatus(errors.New("file without url"), event.MessageStatusUnsupported, "the file has no address to download it from", true)
	}
	chat := chatOf(msg.Portal)
	q := &c.sends
	q.mu.Lock()
	if q.chats == nil {
		q.chats, q.inFlight = map[bridge.ChatID]*chatSends{}, map[id.EventID]bool{}
	}
	if q.inFlight[msg.Event.ID] {
		q.mu.Unlock()
		return &bridgev2.MatrixMessageResponse{Pending: true}, nil
	}
	q.inFlight[msg.Event.ID] = true
	q.wg.Add(1)
	q.mu.Unlock()
	o := &outgoing{acc: acc, evt: msg.Event, msg: msg, chat: chat, id: acc.NewMessageID(), log: *zerolog.Ctx(ctx), stored: make(chan struct{})}
	o.row = c.storeOutgoing(ctx, o)
	close(o.stored)
	go func() {
		defer q.wg.Done()
		defer func() {
			q.mu.Lock()
			delete(q.inFlight, o.evt.ID)
			q.mu.Unlock()
		}()
		bg := o.log.WithContext(context.Background())
		sctx, cancel := context.WithTimeout(bg, fileSendTimeout)
		defer cancel()
		delivered, err := c.deliverFile(sctx, o, content)
		if err != nil && !delivered {
			o.log.Debug().Err(bridge.ScrubError(err)).Msg("Failed to send file to MSN")
			c.dropRow(bg, o)
		}
		mxid := o.evt.ID
		if o.row != nil {
			mxid = o.row.MXID
		}
		if err != nil {
			c.sendStatus(bg, o.evt, "", fileStatus(err))
			return
		}
		c.sendStatus(bg, o.evt, mxid, nil)
	}()
	return &bridgev2.MatrixMessageResponse{Pending: true}, nil
}

// errCaptionNotSent wraps the failure of a caption sent after its file was delivered.
type errCaptionNotSent struct{ err error }

func (e errCaptionNotSent) Error() string {
	return "the file was delivered, but its caption was not: " + bridge.UserMessage(e.err)
}
func (e errCaptionNotSent) Unwrap() error { return e.err }

// deliverFile downloads the file and sends it, then its caption; delivered reports whether the
// contact got the file.
func (c *MSNClient) deliverFile(ctx context.Context, o *outgoing, content *event.MessageEventContent) (delivered bool, err error) {
	uri := content.URL
	if content.File != nil {
		uri = content.File.URL
	}
	name, caption := content.Body, ""
	if content.FileName != "" {
		name = content.FileName
		if content.Body != "" && content.Body != content.FileName {
			caption, _ = matrixToMSN(content)
		}
	}
	name = cleanFileName(name)
	var mimeType string
	if content.Info != nil {
		mimeType = content.Info.MimeType
	}
	err = downloadCapped(ctx, c.main.Bridge.Bot, uri, content.File, c.main.media.MaxFileSize(), func(f *os.File, size int64) error {
		mimeType = cleanMIME(mimeType)
		if mimeType == "application/octet-stream" {
			head := make([]byte, 512)
			n, _ := io.ReadFull(f, head)
			mimeType = cleanMIME(http.DetectContentType(head[:n]))
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
		}
		_, err := c.main.media.SendFile(ctx, o.acc, o.chat, bridge.OutgoingFile{Name: withExtension(name, mimeType), Size: size, MIME: mimeType, Data: f})
		return err
	})
	if err != nil {
		return false, err
	}
	if strings.TrimSpace(caption) != "" {
		if _, err = o.acc.SendText(ctx, FrontendName, o.chat, caption, bridge.Format{}); err != nil {
			return true, errCaptionNotSent{err}
		}
	}
	return true, nil
}

// fileStatus maps the failure of a file send to the status the owner is shown.
func fileStatus(err error) error {
	var tooLarge errFileTooLarge
	var caption errCaptionNotSent
	var se *bridge.SendError
	var httpErr mautrix.HTTPError
	switch {
	case errors.As(err, &caption):
		return failStatus(err, event.MessageStatusNetworkError, caption.Error(), true)
	case errors.As(err, &tooLarge):
		return failStatus(err, event.MessageStatusUnsupported, tooLarge.Error(), true)
	case errors.As(err, &se) && se.Reason == bridge.FailureDeclined:
		return failStatus(err, event.MessageStatusGenericError, "the contact declined the file", true)
	case errors.As(err, &se) && se.Reason == bridge.FailureCanceled:
		return failStatus(err, event.MessageStatusGenericError, "the contact cancelled the transfer before it finished", true)
	case errors.As(err, &se) && se.Reason == bridge.FailureTooLarge:
		return failStatus(err, event.MessageStatusUnsupported, "the file is too large for MSN", true)
	case errors.As(err, &se) && se.Reason == bridge.FailureTimeout:
		// Unlike a text's missing ACK, a file transfer that stalled surely did not complete.
		return failStatus(err, event.MessageStatusNetworkError, "the transfer stalled: the contact stopped answering before the whole file arrived", true)
	case errors.As(err, &httpErr), errors.Is(err, mautrix.MNotFound), errors.Is(err, mautrix.MTooLarge):
		return failStatus(err, event.MessageStatusNetworkError, "the file could not be downloaded from the homeserver", true)
	}
	return sendErrorStatus(err)
}

// cleanFileName makes a remote file name safe to show and to offer as a name: one line, no
// path separators, capped, never empty. It is never used as a path.
func cleanFileName(name string) string {
	name = strings.NewReplacer("/", "_", "\\", "_").Replace(bridge.CleanLine(name, maxFileNameShown))
	name = strings.TrimLeft(name, ".")
	if strings.TrimSpace(name) == "" {
		return "file"
	}
	return name
}

// withExtension adds to name the usual extension of its MIME type when it has none (a sticker or
// a pasted image is often named without one), so that the contact's client knows what it is.
func withExtension(name, mimeType string) string {
	if path.Ext(name) != "" || mimeType == "application/octet-stream" {
		return name
	}
	return name + exmime.ExtensionFromMimetype(mimeType)
}

// cleanMIME returns mt when it is a well-formed MIME type (without parameters), else
// application/octet-stream.
func cleanMIME(mt string) string {
	parsed, _, err := mime.ParseMediaType(mt)
	if err != nil || !strings.Contains(parsed, "/") || len(parsed) > 100 {
		return "application/octet-stream"
	}
	return parsed
}

// fileMsgType is the Matrix message type of a file of MIME type mt.
func fileMsgType(mt string) event.MessageType {
	switch {
	case strings.HasPrefix(mt, "image/"):
		return event.MsgImage
	case strings.HasPrefix(mt, "video/"):
		return event.MsgVideo
	case strings.HasPrefix(mt, "audio/"):
		return event.MsgAudio
	}
	return event.MsgFile
}

// humanSize renders a byte count for people ("12 bytes", "340 KiB", "1.5 MiB").
func humanSize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d bytes", n)
	case n < 1<<20:
		return fmt.Sprintf("%d KiB", n>>10)
	case n < 1<<30:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/(1<<20)), ".0") + " MiB"
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/(1<<30)), ".0") + " GiB"
}

// fileNotice is the notice, in a contact's voice, of a file that could not be shown:
// "<who> tried to send <file> (<size>): <why>".
func fileNotice(who, name string, size int64, why string) *notice {
	n := new(notice).remote(who, bridge.MaxShownName).text(" tried to send ").remote(cleanFileName(name), maxFileNameShown)
	if size >= 0 {
		n.text(" (" + humanSize(size) + ")")
	}
	return n.text(": " + why)
}

// queueFileFailed shows a file a contact could not send.
func (c *MSNClient) queueFileFailed(f bridge.FileFailed) {
	if f.Chat == "" {
		return
	}
	var why string
	switch f.Reason {
	case bridge.FailureTooLarge:
		why = "too large (MSN files reach the bridge up to " + humanSize(c.main.media.MaxFileSize()) + ")"
	case bridge.FailureCanceled:
		why = "cancelled before it arrived"
	case bridge.FailureDeclined:
		why = "declined"
	case bridge.FailureTimeout:
		why = "the transfer stalled"
	default:
		why = "the transfer failed"
	}
	who := f.SenderName
	if who == "" {
		who = f.Sender
	}
	ts := f.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	c.queueNotice(f.Chat, f.Sender, false, ts, fmt.Sprintf("filefail:%s:%d", f.Sender, ts.UnixNano()), fileNotice(who, f.Name, f.Size, why))
}

// queueNotice shows n as an m.notice of sender in chat.
func (c *MSNClient) queueNotice(chat bridge.ChatID, sender string, fromMe bool, ts time.Time, msgID string, n *notice) {
	c.login.QueueRemoteEvent(&simplevent.Message[*notice]{
		EventMeta: simplevent.EventMeta{
			Type:         bridgev2.RemoteEventMessage,
			PortalKey:    makePortalKey(c.login.ID, chat),
			Sender:       c.senderOf(sender, fromMe),
			CreatePortal: true,
			Timestamp:    ts,
		},
		ID:   networkid.MessageID(msgID),
		Data: n,
		ConvertMessageFunc: func(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, n *notice) (*bridgev2.ConvertedMessage, error) {
			return &bridgev2.ConvertedMessage{Parts: []*bridgev2.ConvertedMessagePart{{Type: event.EventMessage, Content: n.content()}}}, nil
		},
	})
}

// showFile shows a file of the chat on Matrix as m.image, m.video, m.audio or m.file by its
// MIME type, uploaded as it is read from File.Open. The file may only be read while the core
// delivers its event, so this waits (fileShowWait at most) for the portal to upload it; a file
// that cannot be uploaded (over the homeserver's limit, say) is shown as a notice saying so.
func (c *MSNClient) showFile(ctx context.Context, f bridge.File) {
	if f.Chat == "" || f.Open == nil {
		return
	}
	dctx := ctx
	name, mimeType := cleanFileName(f.Name), cleanMIME(f.MIME)
	who := f.SenderName
	if who == "" {
		who = f.Sender
	}
	sender := f.Sender
	if f.FromMe {
		sender = c.handle
		who = "You"
	}
	ts := f.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	if maxFile := c.main.media.MaxFileSize(); f.Size < 0 || f.Size > maxFile {
		c.queueNotice(f.Chat, sender, f.FromMe, ts, f.ID, fileNotice(who, name, f.Size, "too large (MSN files reach the bridge up to "+humanSize(maxFile)+")"))
		return
	}
	const (
		waiting = iota
		uploading
		abandoned
	)
	var state atomic.Int32
	done := make(chan struct{})
	var doneOnce sync.Once
	finish := func() { doneOnce.Do(func() { close(done) }) }
	c.login.QueueRemoteEvent(&simplevent.Message[bridge.File]{
		EventMeta: simplevent.EventMeta{
			Type:           bridgev2.RemoteEventMessage,
			PortalKey:      makePortalKey(c.login.ID, f.Chat),
			Sender:         c.senderOf(sender, f.FromMe),
			CreatePortal:   true,
			Timestamp:      ts,
			PostHandleFunc: func(context.Context, *bridgev2.Portal) { finish() },
			LogContext: func(lc zerolog.Context) zerolog.Context {
				return lc.Str("message_id", f.ID).Str("chat", string(f.Chat))
			},
		},
		ID:   makeMessageID(f.ID),
		Data: f,
		ConvertMessageFunc: func(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, f bridge.File) (*bridgev2.ConvertedMessage, error) {
			if !state.CompareAndSwap(waiting, uploading) {
				n := fileNotice(who, name, f.Size, "it could not be shown in time")
				return &bridgev2.ConvertedMessage{Parts: []*bridgev2.ConvertedMessagePart{{Type: event.EventMessage, Content: n.content()}}}, nil
			}
			defer finish()
			uctx, cancel := context.WithTimeout(ctx, fileUploadTimeout)
			defer cancel()
			// The delivery ending (the frontend detached, the bridge stopping) ends the upload:
			// the file may not be read after it.
			defer context.AfterFunc(dctx, cancel)()
			part, err := uploadFile(uctx, portal, intent, f, name, mimeType)
			if err != nil {
				why := "it could not be uploaded to the homeserver"
				if errors.Is(err, bridgev2.ErrMediaTooLarge) || errors.Is(err, mautrix.MTooLarge) {
					why = "it is larger than the homeserver accepts"
				}
				part = &bridgev2.ConvertedMessagePart{Type: event.EventMessage, Content: fileNotice(who, name, f.Size, why).content()}
			}
			return &bridgev2.ConvertedMessage{Parts: []*bridgev2.ConvertedMessagePart{part}}, nil
		},
	})
	t := time.NewTimer(fileShowWait)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	case <-ctx.Done():
	}
	if state.CompareAndSwap(waiting, abandoned) {
		c.log.Warn().Str("chat", string(f.Chat)).Msg("File not shown in time; its notice follows when the portal gets to it")
		return
	}
	<-done // uploading: ends with ctx, or at fileUploadTimeout
}

// uploadFile uploads f to the homeserver, streaming it from f.Open, and returns its message
// part.
func uploadFile(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, f bridge.File, name, mimeType string) (*bridgev2.ConvertedMessagePart, error) {
	log := zerolog.Ctx(ctx)
	uri, file, err := intent.UploadMediaStream(ctx, portal.MXID, f.Size, false, func(w io.Writer) (*bridgev2.FileStreamResult, error) {
		r, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("failed to open the file: %w", err)
		}
		defer r.Close()
		n, err := io.Copy(w, io.LimitReader(ctxReader{ctx, r}, f.Size+1))
		if err != nil {
			return nil, fmt.Errorf("failed to read the file: %w", err)
		} else if n != f.Size {
			return nil, fmt.Errorf("the file has %d bytes, not the %d announced", n, f.Size)
		}
		return &bridgev2.FileStreamResult{FileName: name, MimeType: mimeType}, nil
	})
	if err != nil {
		log.Warn().Err(bridge.ScrubError(err)).Int64("size", f.Size).Msg("Failed to upload file")
		return nil, err
	}
	content := &event.MessageEventContent{
		MsgType:  fileMsgType(mimeType),
		Body:     name,
		FileName: name,
		Info:     &event.FileInfo{MimeType: mimeType, Size: int(f.Size)},
		Mentions: &event.Mentions{},
	}
	if file != nil {
		file.URL = uri
		content.File = file
	} else {
		content.URL = uri
	}
	return &bridgev2.ConvertedMessagePart{Type: event.EventMessage, Content: content}, nil
}

// ctxReader is r that fails once ctx ended, so a copy from it stops.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (cr ctxReader) Read(p []byte) (int, error) {
	if err := cr.ctx.Err(); err != nil {
		return 0, err
	}
	return cr.r.Read(p)
}

// --- Winks ---

// queueWink shows a contact's wink: its thumbnail as an image named after the wink, or, without
// one, a notice "sent a wink: <name>".
func (c *MSNClient) queueWink(w bridge.Wink) {
	if w.Chat == "" {
		return
	}
	ts := w.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	id := w.ID
	if id == "" {
		id = fmt.Sprintf("wink:%s:%d", w.Sender, ts.UnixNano())
	}
	name := bridge.CleanLine(w.Name, maxFileNameShown)
	if strings.TrimSpace(name) == "" {
		name = "wink"
	}
	c.login.QueueRemoteEvent(&simplevent.Message[bridge.Wink]{
		EventMeta: simplevent.EventMeta{
			Type:         bridgev2.RemoteEventMessage,
			PortalKey:    makePortalKey(c.login.ID, w.Chat),
			Sender:       c.senderOf(w.Sender, false),
			CreatePortal: true,
			Timestamp:    ts,
		},
		ID:   makeMessageID(id),
		Data: w,
		ConvertMessageFunc: func(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, w bridge.Wink) (*bridgev2.ConvertedMessage, error) {
			if content := winkImage(ctx, portal, intent, w, name); content != nil {
				return &bridgev2.ConvertedMessage{Parts: []*bridgev2.ConvertedMessagePart{{Type: event.EventMessage, Content: content}}}, nil
			}
			n := new(notice).text("sent a wink: ").remote(name, maxFileNameShown)
			return &bridgev2.ConvertedMessage{Parts: []*bridgev2.ConvertedMessagePart{{Type: event.EventMessage, Content: n.content()}}}, nil
		},
	})
}

// winkImage uploads a wink's thumbnail and returns its m.image, or nil when it has none that can
// be shown.
func winkImage(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, w bridge.Wink, name string) *event.MessageEventContent {
	mimeType := imageMIME(w.Image, w.MIME)
	if mimeType == "" {
		return nil
	}
	uri, file, err := intent.UploadMedia(ctx, portal.MXID, w.Image, cleanFileName(name), mimeType)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(bridge.ScrubError(err)).Msg("Failed to upload wink image")
		return nil
	}
	content := &event.MessageEventContent{
		MsgType:  event.MsgImage,
		Body:     name,
		Info:     &event.FileInfo{MimeType: mimeType, Size: len(w.Image)},
		Mentions: &event.Mentions{},
	}
	if file != nil {
		file.URL = uri
		content.File = file
	} else {
		content.URL = uri
	}
	return content
}

// imageMIME is the MIME type of an image to show inline, checked against its content; "" when
// it is empty, too large or not an image.
func imageMIME(data []byte, claimed string) string {
	if len(data) == 0 || len(data) > maxInlineImage {
		return ""
	}
	detected := http.DetectContentType(data)
	if strings.HasPrefix(detected, "image/") {
		return detected
	}
	if mt := cleanMIME(claimed); strings.HasPrefix(mt, "image/") && detected == "application/octet-stream" {
		return mt
	}
	return ""
}

// --- Custom emoticons ---

// emoticonURIs uploads the message's custom emoticons (each once per SHA1D across the bridge)
// and returns their mxc URIs by shortcut. Emoticons without data, or whose data is not an image,
// stay text.
func (c *MSNClient) emoticonURIs(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, emos []bridge.Emoticon) map[string]id.ContentURIString {
	out := map[string]id.ContentURIString{}
	for _, e := range emos {
		if len(out) >= maxEmoticonsShown {
			break
		}
		sc := e.Shortcut
		if sc == "" || len(sc) > 32 || strings.ContainsAny(sc, "\r\n") {
			continue
		}
		if _, ok := out[sc]; ok {
			continue
		}
		mimeType := imageMIME(e.Data, e.MIME)
		if mimeType == "" {
			continue
		}
		key := e.Avatar
		if key == "" {
			sum := sha256.Sum256(e.Data)
			key = "sha256:" + hex.EncodeToString(sum[:])
		}
		if uri, ok := c.main.emoticons.get(key); ok {
			out[sc] = uri
			continue
		}
		// Inline images are fetched by clients outside the room's encryption: uploaded in the
		// clear, as custom emoji are.
		uri, _, err := intent.UploadMedia(ctx, "", e.Data, "emoticon", mimeType)
		if err != nil {
			zerolog.Ctx(ctx).Warn().Err(bridge.ScrubError(err)).Msg("Failed to upload custom emoticon")
			continue
		}
		c.main.emoticons.put(key, uri)
		out[sc] = uri
	}
	return out
}

// emoticonHTML renders text as escaped HTML with each shortcut of uris shown as its inline
// image (the longest shortcut wins where several match); line breaks become <br>.
func emoticonHTML(text string, uris map[string]id.ContentURIString) string {
	shortcuts := make([]string, 0, len(uris))
	for sc := range uris {
		shortcuts = append(shortcuts, sc)
	}
	sort.Slice(shortcuts, func(i, j int) bool {
		if len(shortcuts[i]) != len(shortcuts[j]) {
			return len(shortcuts[i]) > len(shortcuts[j])
		}
		return shortcuts[i] < shortcuts[j]
	})
	var b strings.Builder
	plainStart := 0
	flush := func(end int) {
		b.WriteString(strings.ReplaceAll(html.EscapeString(text[plainStart:end]), "\n", "<br>"))
	}
	for i := 0; i < len(text); {
		matched := ""
		for _, sc := range shortcuts {
			if strings.HasPrefix(text[i:], sc) {
				matched = sc
				break
			}
		}
		if matched == "" {
			i++
			continue
		}
		flush(i)
		esc := html.EscapeString(matched)
		b.WriteString(`<img data-mx-emoticon src="` + html.EscapeString(string(uris[matched])) + `" alt="` + esc + `" title="` + esc + `" height="32">`)
		i += len(matched)
		plainStart = i
	}
	flush(len(text))
	return b.String()
}
