package msn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The Client's side of media: its P2P engine runs over one-to-one switchboards, in mode D.

// Caps on custom emoticon definitions (text/x-mms-emoticon) from a contact.
const (
	MaxEmoticonsPerMessage = 16
	MaxEmoticonShortcut    = 7 // characters
	maxPendingEmoticons    = 256
)

// initP2P creates the client's engine; NewClient calls it.
func (c *Client) initP2P() {
	c.p2p = NewP2P(P2PConfig{
		Self: c.handle, Send: c.sendP2P, Log: c.log,
		MaxObjectSize: c.cfg.MaxObjectSize, MaxFileSize: c.cfg.MaxFileSize,
		IdleTimeout: c.cfg.P2PIdleTimeout,
		OnFileOffer: func(from string, o *FileOffer) {
			c.mu.Lock()
			sid := c.p2pSB[from]
			c.mu.Unlock()
			c.emit(&FileOffered{SessionID: sid, From: from, Name: o.Name, Size: o.Size, Offer: o})
		},
	})
	c.p2pSB = make(map[string]string)
	c.p2pOut = make(map[string]*session)
	c.emoticons = make(map[string][]Emoticon)
	if int64(len(c.cfg.DisplayPicture)) > c.cfg.MaxObjectSize {
		c.log.Warn().Int("bytes", len(c.cfg.DisplayPicture)).Int64("max_object_size", c.cfg.MaxObjectSize).
			Msg("Display picture too large; logging in without one")
	} else if len(c.cfg.DisplayPicture) > 0 {
		o := NewMSNObject(c.handle, ObjectDisplayPicture, "0", "", c.cfg.DisplayPicture)
		c.p2p.Publish(o, c.cfg.DisplayPicture)
		c.displayPicture = &o
	}
}

// p2pWindowSize is how many P2P packets may await the switchboard's ACK on one session: waiting
// for each before the next would cap a transfer at one packet per round trip (24 KB/s at 50 ms).
const p2pWindowSize = 16

// p2pWindow pipelines the P2P packets of a session. mu also keeps the packets of concurrent
// senders whole and in the order they were written.
type p2pWindow struct {
	mu       sync.Mutex
	inflight []inflightMSG
}

type inflightMSG struct {
	id uint32
	w  *waiter
}

// sendP2P is the engine's transport: one payload in mode D on a one-to-one session with to.
// It returns once the payload is written and at most p2pWindowSize-1 earlier ones await their
// ACK; an earlier packet's NAK or missing ACK fails the call that finds it. A payload not yet
// written when its session closed is sent on a new one.
func (c *Client) sendP2P(ctx context.Context, to string, payload []byte) error {
	if len(payload) > MaxMSGPayload {
		return ErrTooLong
	}
	for attempt := 0; ; attempt++ {
		s, err := c.p2pSession(ctx, to)
		if err != nil {
			return err
		}
		err = s.sendWindowed(ctx, payload)
		if err == nil {
			c.mu.Lock()
			s.lastActive = time.Now()
			c.mu.Unlock()
			return nil
		}
		if attempt > 0 || !errors.Is(err, errNotSent) {
			return err
		}
	}
}

func (s *session) sendWindowed(ctx context.Context, payload []byte) error {
	win := &s.p2pw
	win.mu.Lock()
	defer win.mu.Unlock()
	for len(win.inflight) >= p2pWindowSize {
		f := win.inflight[0]
		win.inflight = win.inflight[1:]
		reply, err := s.cn.wait(ctx, f.id, f.w, s.c.cfg.AckTimeout)
		if err == nil && reply.Name == "NAK" {
			err = ErrNAK
		}
		if err != nil {
			return fmt.Errorf("earlier p2p packet not acknowledged: %w", err)
		}
	}
	id, w, err := s.cn.start("MSG", []string{"D"}, payload, "ACK", "NAK")
	if err != nil {
		return err
	}
	win.inflight = append(win.inflight, inflightMSG{id, w})
	return nil
}

// p2pSession returns the session P2P packets to to go on: the one used last while it stays
// usable, so that the packets of a message keep their order (two sessions with one contact are
// two connections: their messages may overtake each other).
func (c *Client) p2pSession(ctx context.Context, to string) (*session, error) {
	c.mu.Lock()
	s := c.p2pOut[to]
	if s != nil {
		if _, member := s.members[to]; member && s.ready && !s.closing && s.cn.Err() == nil && len(s.members) == 1 {
			c.mu.Unlock()
			return s, nil
		}
		delete(c.p2pOut, to)
	}
	c.mu.Unlock()
	s, err := c.sessionFor(ctx, to)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.p2pOut) >= c.cfg.MaxSessions {
		clear(c.p2pOut)
	}
	c.p2pOut[to] = s
	c.mu.Unlock()
	return s, nil
}

// handleP2P takes a P2P message from a switchboard: packets for another handle are dropped
// (a switchboard delivers to every participant).
func (s *session) handleP2P(from, sessionID string, m *MIMEMessage) {
	c := s.c
	if !strings.EqualFold(strings.TrimSpace(m.Get("P2P-Dest")), c.handle) {
		c.log.Trace().Msg("Ignoring P2P packet for another participant")
		return
	}
	c.mu.Lock()
	if _, ok := c.p2pSB[from]; ok || len(c.p2pSB) < c.cfg.MaxContacts {
		c.p2pSB[from] = sessionID
	}
	c.mu.Unlock()
	c.p2p.Deliver(from, m.Body)
}

// handleWink emits WinkReceived for a datacast ID 2; the Object is zero when its Data is not a
// valid msnobj (the user still learns that a wink came).
func (s *session) handleWink(from, sessionID string, m *MIMEMessage) {
	data, _ := m.mimeField("Data")
	obj, err := ParseMSNObject(data)
	if err != nil {
		s.c.log.Debug().Err(err).Msg("Wink with an invalid msnobj")
		obj = MSNObject{}
	}
	s.c.emit(&WinkReceived{SessionID: sessionID, From: from, Object: obj})
}

// handleEmoticons keeps the emoticon definitions of a text/x-mms-emoticon message for the next
// text from the same sender, on whichever session it comes (a contact and the client may each
// have opened one).
func (s *session) handleEmoticons(from string, m *MIMEMessage) {
	c := s.c
	list := ParseEmoticons(string(m.Body))
	if len(list) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.emoticons) >= maxPendingEmoticons {
		clear(c.emoticons)
	}
	c.emoticons[from] = list
}

// takeEmoticons returns and forgets the pending emoticons of from.
func (c *Client) takeEmoticons(from string) []Emoticon {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.emoticons[from]
	delete(c.emoticons, from)
	return list
}

// ParseEmoticons reads a text/x-mms-emoticon body: "<shortcut>\t<msnobj/>\t" repeated. Entries
// with a shortcut of more than MaxEmoticonShortcut characters or an invalid msnobj are skipped;
// at most MaxEmoticonsPerMessage are kept.
func ParseEmoticons(body string) []Emoticon {
	f := strings.Split(strings.TrimRight(body, "\r\n\x00"), "\t")
	var out []Emoticon
	for i := 0; i+1 < len(f) && len(out) < MaxEmoticonsPerMessage; i += 2 {
		sc := f[i]
		if sc == "" || utf8.RuneCountInString(sc) > MaxEmoticonShortcut || !utf8.ValidString(sc) {
			continue
		}
		obj, err := ParseMSNObject(f[i+1])
		if err != nil {
			continue
		}
		out = append(out, Emoticon{Shortcut: sc, Object: obj})
	}
	return out
}

// NewEmoticonMessage builds the text/x-mms-emoticon payload that defines emoticons for the next
// text message.
func NewEmoticonMessage(list []Emoticon) []byte {
	var b strings.Builder
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/x-mms-emoticon\r\n\r\n")
	for _, e := range list {
		b.WriteString(e.Shortcut + "\t" + e.Object.XML() + "\t")
	}
	return []byte(b.String())
}

// NewWinkMessage builds the datacast (ID 2) that sends the wink obj.
func NewWinkMessage(obj MSNObject) []byte {
	return []byte("MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 2\r\nData: " + obj.XML() + "\r\n\r\n")
}

// FetchObject fetches obj's data from obj.Creator over a switchboard (opened when needed),
// verifying its Size and SHA1D. It blocks until done, ctx ends, or the peer declines
// (ErrTransferDeclined). Fetches from one contact run one at a time; an unanswered request
// fails after 30 s and a transfer without progress for 60 s with ErrTransferStalled; an object
// over Config.MaxObjectSize is refused (ErrTransferTooLarge).
func (c *Client) FetchObject(ctx context.Context, obj MSNObject) ([]byte, error) {
	if _, err := c.online(); err != nil {
		return nil, err
	}
	if obj.Creator != c.handle {
		if _, err := c.checkPeer(obj.Creator); err != nil {
			return nil, err
		}
	}
	data, err := c.p2p.Fetch(ctx, obj)
	if err != nil {
		return nil, fmt.Errorf("failed to fetch object from %s: %w", obj.Creator, err)
	}
	return data, nil
}

// SetDisplayPicture publishes data (PNG) as the account's display picture, served to contacts
// who request it, and announces its msnobj in CHG so contacts see it. nil removes the picture;
// one over Config.MaxObjectSize is refused (ErrTransferTooLarge: peers cap what they fetch).
// The server announces a new msnobj only with a status change, so the status is bounced (CHG
// to another status and back, both with the new msnobj); OwnStatusChanged follows each CHG.
func (c *Client) SetDisplayPicture(ctx context.Context, data []byte) error {
	if _, err := c.online(); err != nil {
		return err
	}
	if int64(len(data)) > c.cfg.MaxObjectSize {
		return fmt.Errorf("%w: display picture of %d bytes, cap %d", ErrTransferTooLarge, len(data), c.cfg.MaxObjectSize)
	}
	var obj *MSNObject
	if len(data) > 0 {
		o := NewMSNObject(c.handle, ObjectDisplayPicture, "0", "", data)
		obj = &o
		c.p2p.Publish(o, data)
	}
	c.mu.Lock()
	old := c.displayPicture
	c.displayPicture = obj
	status := c.self.Status
	c.mu.Unlock()
	if old != nil && (obj == nil || old.SHA1D != obj.SHA1D) {
		c.p2p.Unpublish(old.SHA1D)
	}
	if !status.Valid() || status == StatusOffline {
		status = c.cfg.InitialStatus
	}
	if status == StatusHidden {
		// Nobody sees a hidden account: the msnobj goes with the next status change.
		return c.changeStatus(ctx, StatusHidden)
	}
	bounce := StatusAway
	if status == StatusAway {
		bounce = StatusBusy
	}
	if err := c.changeStatus(ctx, bounce); err != nil {
		return err
	}
	return c.changeStatus(ctx, status)
}

// PublishObject makes data servable to contacts under the returned msnobj (for custom
// emoticons and winks sent by the account). It stays published until the Client is closed.
func (c *Client) PublishObject(typ int, friendly string, data []byte) MSNObject {
	o := NewMSNObject(c.handle, typ, "0", friendly, data)
	c.p2p.Publish(o, data)
	return o
}

// SendFile offers f to contact and, once accepted, sends it over a one-to-one switchboard,
// reading f.Data as it goes (never whole in memory). It blocks until the contact acknowledged
// the data, declined (ErrTransferDeclined), cancelled (ErrTransferCanceled), ctx ended (the
// transfer is then cancelled), or it failed. A file over Config.MaxFileSize is refused with
// ErrTransferTooLarge.
func (c *Client) SendFile(ctx context.Context, contact string, f OutgoingFile) error {
	h, err := c.checkPeer(contact)
	if err != nil {
		return err
	}
	if _, err := c.online(); err != nil {
		return err
	}
	if err := c.p2p.SendFile(ctx, h, f); err != nil {
		return fmt.Errorf("failed to send file to %s: %w", h, err)
	}
	return nil
}

// SendEmoticons defines custom emoticons for the next text sent to contact (a
// text/x-mms-emoticon message in mode N on the one-to-one session, opened when needed): call it
// right before SendText with objects from PublishObject, which contacts then fetch. At most
// MaxEmoticonsPerMessage, shortcuts of at most MaxEmoticonShortcut characters without tabs.
func (c *Client) SendEmoticons(ctx context.Context, contact string, list []Emoticon) error {
	h, err := c.checkPeer(contact)
	if err != nil {
		return err
	}
	if len(list) == 0 || len(list) > MaxEmoticonsPerMessage {
		return fmt.Errorf("%w: %d emoticons", ErrInvalidArgument, len(list))
	}
	for _, e := range list {
		if e.Shortcut == "" || utf8.RuneCountInString(e.Shortcut) > MaxEmoticonShortcut || strings.ContainsAny(e.Shortcut, "\t\r\n") || e.Object.Creator == "" {
			return fmt.Errorf("%w: emoticon %q", ErrInvalidArgument, truncate(e.Shortcut, 16))
		}
	}
	p := NewEmoticonMessage(list)
	if len(p) > MaxMSGPayload {
		return fmt.Errorf("%w: emoticon definitions of %d bytes", ErrTooLong, len(p))
	}
	return c.postTo(ctx, h, p, "emoticons")
}

// SendWink sends the wink obj (a datacast, ID 2, mode N) to contact; publish its data first
// (PublishObject with ObjectWink) so that the contact can fetch it.
func (c *Client) SendWink(ctx context.Context, contact string, obj MSNObject) error {
	h, err := c.checkPeer(contact)
	if err != nil {
		return err
	}
	if obj.Creator == "" {
		return fmt.Errorf("%w: empty msnobj", ErrInvalidArgument)
	}
	return c.postTo(ctx, h, NewWinkMessage(obj), "wink")
}

// postTo writes payload in mode N on the one-to-one session with h.
func (c *Client) postTo(ctx context.Context, h string, payload []byte, what string) error {
	s, err := c.sessionFor(ctx, h)
	if err == nil {
		err = s.cn.post("MSG", []string{"N"}, payload)
	}
	if err != nil {
		return fmt.Errorf("failed to send %s: %w", what, err)
	}
	return nil
}

// displayPictureArg is the percent-encoded msnobj token for CHG, "" without a picture.
func (c *Client) displayPictureArg() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.displayPicture == nil {
		return ""
	}
	return EncodeMSNObject(c.displayPicture.XML())
}
