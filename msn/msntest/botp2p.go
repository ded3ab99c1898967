package msntest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// P2P for socketless accounts: a bot runs the same msn.P2P engine as the client, its packets
// relayed by the switchboard like any member's. A bot serves its display picture and the
// objects it publishes, fetches objects, sends files, and accepts or declines files.

// Bot P2P limits.
const (
	// MaxBotFileSize caps a file a bot accepts.
	MaxBotFileSize = 8 << 20
	// botOutputHigh is the output a user's switchboard connection may hold before a bot's P2P
	// sender waits for it to drain (the connection is dropped at Options.MaxPendingOutput).
	botOutputHigh = 128 << 10
)

// botP2P is a bot's P2P state. Its fields are guarded by Server.mu, except engine (set once).
type botP2P struct {
	engine      *msn.P2P
	msnobj      string // percent-encoded display picture msnobj for presence, "" when none
	picture     string // its SHA1D
	acceptFiles bool
	files       []BotFile
	// stallAfter, when positive, makes the bot stop reading an accepted file after that many
	// bytes until stallRelease is closed (or the server closes).
	stallAfter   int64
	stallRelease chan struct{}
}

// BotFile is a file offered to a bot.
type BotFile struct {
	From     string
	Name     string
	Size     int64
	Accepted bool
	Data     []byte // the bytes received when accepted
	Err      error  // why the transfer failed, nil when complete (or declined)
}

// maxBotFiles bounds the files a bot records; the oldest go first.
const maxBotFiles = 64

// botP2PLocked returns a's engine, creating it; s.mu must be held.
func (s *Server) botP2PLocked(a *account) *botP2P {
	if a.p2p != nil {
		return a.p2p
	}
	bp := &botP2P{}
	handle := a.handle
	bp.engine = msn.NewP2P(msn.P2PConfig{
		Self:        handle,
		Send:        func(ctx context.Context, to string, p []byte) error { return s.botP2PSend(ctx, handle, to, p) },
		Log:         s.log,
		MaxFileSize: MaxBotFileSize,
		OnFileOffer: func(from string, o *msn.FileOffer) { s.botFileOffered(handle, bp, from, o) },
	})
	a.p2p = bp
	return bp
}

// botP2PSend relays one P2P payload from the bot to the user to, waiting while the user's
// connection has much unread output, so that a file does not pile up in memory.
func (s *Server) botP2PSend(ctx context.Context, from, to string, payload []byte) error {
	for {
		s.mu.Lock()
		busy := false
		if ss := s.botSessionLocked(from, to); ss != nil {
			busy = ss.members[ss.member(to)].conn.pending() > botOutputHigh
		}
		s.mu.Unlock()
		if !busy {
			return s.botSend(from, to, payload)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ErrClosed
		case <-time.After(time.Millisecond):
		}
	}
}

// botFileOffered accepts (into memory, up to MaxBotFileSize) or declines a file offered to a bot
// and records it.
func (s *Server) botFileOffered(handle string, bp *botP2P, from string, o *msn.FileOffer) {
	s.mu.Lock()
	accept, stallAfter, release := bp.acceptFiles, bp.stallAfter, bp.stallRelease
	s.mu.Unlock()
	f := BotFile{From: from, Name: o.Name, Size: o.Size, Accepted: accept}
	if !accept {
		f.Err = o.Decline()
		s.recordBotFile(bp, f)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var buf bytes.Buffer
		var w io.Writer = &buf
		if stallAfter > 0 {
			w = &stallingWriter{w: &buf, left: stallAfter, release: release, done: s.done}
		}
		f.Err = o.Accept(s.ctx, w, nil)
		f.Data = buf.Bytes()
		s.recordBotFile(bp, f)
	}()
}

func (s *Server) recordBotFile(bp *botP2P, f BotFile) {
	s.mu.Lock()
	if len(bp.files) >= maxBotFiles {
		bp.files = append(bp.files[:0], bp.files[1:]...)
	}
	bp.files = append(bp.files, f)
	s.mu.Unlock()
	s.botFiles.Broadcast()
}

// closeBotP2P ends every bot engine (Server.Close).
func (s *Server) closeBotP2P() {
	s.mu.Lock()
	var es []*msn.P2P
	for _, a := range s.accounts {
		if a.p2p != nil {
			es = append(es, a.p2p.engine)
		}
	}
	s.mu.Unlock()
	for _, e := range es {
		e.Close()
	}
}

// lookupBot returns the socketless account handle; s.mu must be held.
func (s *Server) lookupBot(handle string) (*account, error) {
	a, err := s.lookup(handle)
	if err != nil {
		return nil, err
	}
	if a.ns != nil {
		return nil, fmt.Errorf("%s: %w", handle, ErrHasSession)
	}
	return a, nil
}

// SetBotDisplayPicture gives the socketless account handle a display picture (nil removes it):
// its msnobj goes into the account's presence (ILN/NLN, announced at once to its watchers) and
// the bot serves the data to whoever requests it.
func (s *Server) SetBotDisplayPicture(handle string, data []byte) (msn.MSNObject, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookupBot(handle)
	if err != nil {
		return msn.MSNObject{}, err
	}
	bp := s.botP2PLocked(a)
	if bp.picture != "" {
		bp.engine.Unpublish(bp.picture)
	}
	var obj msn.MSNObject
	bp.msnobj, bp.picture = "", ""
	if len(data) > 0 {
		obj = msn.NewMSNObject(a.handle, msn.ObjectDisplayPicture, "0", "", data)
		bp.engine.Publish(obj, data)
		bp.msnobj, bp.picture = msn.EncodeMSNObject(obj.XML()), obj.SHA1D
	}
	if a.online() {
		s.broadcastPresence(a, false)
	}
	return obj, nil
}

// BotPublishObject makes data servable by the socketless account handle under the returned
// msnobj (an emoticon, a wink).
func (s *Server) BotPublishObject(handle string, typ int, friendly string, data []byte) (msn.MSNObject, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookupBot(handle)
	if err != nil {
		return msn.MSNObject{}, err
	}
	obj := msn.NewMSNObject(a.handle, typ, "0", friendly, data)
	s.botP2PLocked(a).engine.Publish(obj, data)
	return obj, nil
}

// SetBotAcceptFiles makes the socketless account handle accept (true) or decline (false, the
// default) the files offered to it. Either way each offer is recorded (BotFiles).
func (s *Server) SetBotAcceptFiles(handle string, accept bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookupBot(handle)
	if err != nil {
		return err
	}
	s.botP2PLocked(a).acceptFiles = accept
	return nil
}

// SetBotStallFiles makes the socketless account handle stop, without a word, in the middle of
// the files it accepts from now on: once after bytes of one were received, it reads no more
// (its packets wait, and so does the switchboard connection that carries them) until release
// is called or the server closes. It is a peer that stops half way.
func (s *Server) SetBotStallFiles(handle string, after int64) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookupBot(handle)
	if err != nil {
		return nil, err
	}
	bp := s.botP2PLocked(a)
	ch := make(chan struct{})
	bp.stallAfter, bp.stallRelease = after, ch
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }, nil
}

// stallingWriter passes left bytes to w, then blocks until release or done is closed and fails.
type stallingWriter struct {
	w             io.Writer
	left          int64
	release, done <-chan struct{}
}

func (sw *stallingWriter) Write(p []byte) (int, error) {
	if int64(len(p)) <= sw.left {
		sw.left -= int64(len(p))
		return sw.w.Write(p)
	}
	select {
	case <-sw.release:
	case <-sw.done:
	}
	return 0, errors.New("the bot stopped reading the file")
}

// BotFiles returns the files offered to the bot handle so far, oldest first (accepted ones
// once their transfer ended).
func (s *Server) BotFiles(handle string) []BotFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookup(handle)
	if err != nil || a.p2p == nil {
		return nil
	}
	return append([]BotFile(nil), a.p2p.files...)
}

// WaitBotFile waits until the bot handle has recorded n files, or ctx ends, and returns the
// n-th (1-based).
func (s *Server) WaitBotFile(ctx context.Context, handle string, n int) (BotFile, error) {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.botFiles.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if a, err := s.lookup(handle); err == nil && a.p2p != nil && len(a.p2p.files) >= n {
			return a.p2p.files[n-1], nil
		}
		if err := ctx.Err(); err != nil {
			return BotFile{}, err
		}
		s.botFiles.Wait()
	}
}

// BotSendFile makes the socketless account from offer a file to the logged-in user to and send
// it once accepted; it returns when to acknowledged the data (msn.ErrTransferDeclined when
// declined).
func (s *Server) BotSendFile(ctx context.Context, from, to, name string, data []byte) error {
	e, err := s.botEngine(from)
	if err != nil {
		return err
	}
	h, _ := normHandle(to)
	return e.SendFile(ctx, h, msn.OutgoingFile{Name: name, Size: int64(len(data)), Data: bytes.NewReader(data)})
}

// BotSendFileFrom is BotSendFile with the file's size bytes read from r while they are sent: a
// reader that blocks makes a bot that stops half way, and cancelling ctx meanwhile one that
// cancels the transfer half way.
func (s *Server) BotSendFileFrom(ctx context.Context, from, to, name string, size int64, r io.Reader) error {
	e, err := s.botEngine(from)
	if err != nil {
		return err
	}
	h, _ := normHandle(to)
	return e.SendFile(ctx, h, msn.OutgoingFile{Name: name, Size: size, Data: r})
}

// BotFetchObject makes the socketless account bot fetch obj from its creator (a logged-in user).
func (s *Server) BotFetchObject(ctx context.Context, bot string, obj msn.MSNObject) ([]byte, error) {
	e, err := s.botEngine(bot)
	if err != nil {
		return nil, err
	}
	return e.Fetch(ctx, obj)
}

func (s *Server) botEngine(handle string) (*msn.P2P, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookupBot(handle)
	if err != nil {
		return nil, err
	}
	return s.botP2PLocked(a).engine, nil
}

// BotWink makes the socketless account from send the wink obj (a datacast, ID 2) to to.
func (s *Server) BotWink(from, to string, obj msn.MSNObject) error {
	return s.botSend(from, to, msn.NewWinkMessage(obj))
}

// BotSayWithEmoticons makes the socketless account from send text to to, preceded by the
// definition of emoticons (text/x-mms-emoticon), whose objects it should have published.
func (s *Server) BotSayWithEmoticons(from, to, text string, emoticons []msn.Emoticon) error {
	if err := s.botSend(from, to, msn.NewEmoticonMessage(emoticons)); err != nil {
		return err
	}
	return s.botSend(from, to, textPayload(text))
}

// SendFile offers a file to the session's (first) user, as BotSendFile does.
func (c *BotChat) SendFile(ctx context.Context, name string, data []byte) error {
	return c.s.BotSendFile(ctx, c.bot.handle, c.user(), name, data)
}

// Wink sends the wink obj to the session.
func (c *BotChat) Wink(obj msn.MSNObject) error { return c.Send(msn.NewWinkMessage(obj)) }

// SayWithEmoticons sends the emoticon definitions, then text, to the session.
func (c *BotChat) SayWithEmoticons(text string, emoticons []msn.Emoticon) error {
	if err := c.Send(msn.NewEmoticonMessage(emoticons)); err != nil {
		return err
	}
	return c.Say(text)
}

// user is the first member of the session with a connection.
func (c *BotChat) user() string {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	for _, m := range c.sess.members {
		if m.conn != nil && !strings.EqualFold(m.acct.handle, c.bot.handle) {
			return m.acct.handle
		}
	}
	return ""
}
