package msn

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// P2P engine defaults.
const (
	DefaultMaxObjectSize    = 1 << 20
	DefaultMaxFileSize      = 64 << 20
	DefaultP2PAnswerTimeout = 30 * time.Second
	DefaultP2PIdleTimeout   = 60 * time.Second
	DefaultFileOfferTimeout = 5 * time.Minute
	DefaultMaxP2PSessions   = 4
	maxP2PReassemblies      = 8    // messages being reassembled per peer
	maxP2PQueue             = 1024 // control packets waiting to be sent per peer
	p2pSendTimeout          = 30 * time.Second
	fileAnswerTimeout       = 10 * time.Minute
	p2pDataQueue            = 64 // file packets waiting for the writer
	p2pDataPrepSize         = 4
)

// P2PSendFunc sends one P2P switchboard payload (NewP2PMessage) to the handle to. It blocks
// until the payload is written (a client also waits for the switchboard's ACK) or ctx ends.
type P2PSendFunc func(ctx context.Context, to string, payload []byte) error

// P2PConfig configures a P2P engine. Self and Send are required; zero fields get defaults.
type P2PConfig struct {
	Self string
	Send P2PSendFunc
	Log  zerolog.Logger
	// MaxObjectSize caps an fetched object, MaxFileSize a file received or sent.
	MaxObjectSize, MaxFileSize int64
	// AnswerTimeout bounds the wait for an answer to an object INVITE and for each ACK of a
	// served object; IdleTimeout the time without data progress; OfferTimeout how long a
	// received file offer waits for Accept or Decline before it is declined.
	AnswerTimeout, IdleTimeout, OfferTimeout time.Duration
	// MaxSessions bounds the concurrent sessions per peer (default 4); INVITEs beyond it are
	// declined, local calls beyond it fail.
	MaxSessions int
	// OnFileOffer is called for each file a peer offers, on the goroutine that delivered the
	// INVITE; it must not block. Exactly one of Accept or Decline should follow.
	OnFileOffer func(from string, offer *FileOffer)
}

// P2P is a transport-agnostic MSNP2P v1 + MSNSLP engine for one account: feed it every P2P
// payload addressed to the account (Deliver); it sends through P2PConfig.Send. It serves the
// objects published with Publish, fetches objects, and sends and receives files. Safe for
// concurrent use.
type P2P struct {
	cfg    P2PConfig
	log    zerolog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	nextID atomic.Uint32
	wg     sync.WaitGroup

	mu       sync.Mutex
	objects  map[string]served // by SHA1D
	sessions map[p2pKey]*p2pSession
	calls    map[string]*p2pSession // by Call-ID
	perPeer  map[string]int
	reasm    map[reasmKey]*reassembly
	acks     map[ackKey]chan P2PHeader
	queues   map[string]*sendQueue
	fetching map[string]*fetchLock // per peer: one object fetch at a time
}

type served struct {
	obj  MSNObject
	data []byte
}

type p2pKey struct {
	peer string
	sid  uint32
}

type reasmKey struct {
	peer    string
	sid, id uint32
}

type ackKey struct {
	peer string
	id   uint32
}

type reassembly struct {
	h       P2PHeader
	buf     []byte
	started time.Time
}

type sendQueue struct {
	items   []queuedPacket
	running bool
}

type queuedPacket struct {
	payload []byte
	done    chan error // nil: nobody waits (post)
}

// NewP2P returns an engine; Close ends it.
func NewP2P(cfg P2PConfig) *P2P {
	if cfg.MaxObjectSize <= 0 {
		cfg.MaxObjectSize = DefaultMaxObjectSize
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	if cfg.AnswerTimeout <= 0 {
		cfg.AnswerTimeout = DefaultP2PAnswerTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultP2PIdleTimeout
	}
	if cfg.OfferTimeout <= 0 {
		cfg.OfferTimeout = DefaultFileOfferTimeout
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxP2PSessions
	}
	e := &P2P{
		cfg:      cfg,
		log:      cfg.Log.With().Str("component", "p2p").Logger(),
		objects:  make(map[string]served),
		sessions: make(map[p2pKey]*p2pSession),
		calls:    make(map[string]*p2pSession),
		perPeer:  make(map[string]int),
		reasm:    make(map[reasmKey]*reassembly),
		acks:     make(map[ackKey]chan P2PHeader),
		queues:   make(map[string]*sendQueue),
		fetching: make(map[string]*fetchLock),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.nextID.Store(4 + randUint32()%0xFFFFFF00)
	return e
}

// Close ends every session and waits for the engine's goroutines.
func (e *P2P) Close() {
	e.halt()
	e.wg.Wait()
}

// halt ends every session without waiting.
func (e *P2P) halt() {
	e.cancel()
	e.mu.Lock()
	all := make([]*p2pSession, 0, len(e.sessions))
	for _, s := range e.sessions {
		all = append(all, s)
	}
	e.mu.Unlock()
	for _, s := range all {
		s.finish(ErrClosed)
	}
}

func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint32(b[:])
}

func (e *P2P) newID() uint32 { return e.nextID.Add(1) }

// Publish makes data servable under its msnobj. Objects are found by SHA1D.
func (e *P2P) Publish(obj MSNObject, data []byte) {
	e.mu.Lock()
	e.objects[obj.SHA1D] = served{obj: obj, data: data}
	e.mu.Unlock()
}

// Unpublish stops serving the object with this SHA1D.
func (e *P2P) Unpublish(sha1d string) {
	e.mu.Lock()
	delete(e.objects, sha1d)
	e.mu.Unlock()
}

// Deliver handles one P2P payload's binary part (after the MIME header) from the handle from.
// It never blocks for long: a file's data waits for its writer at most until the session ends.
// Malformed packets are dropped with a log line and end the session they name.
func (e *P2P) Deliver(from string, bin []byte) {
	if e.ctx.Err() != nil {
		return
	}
	p, err := ParseP2PBinary(bin)
	if err != nil {
		e.log.Debug().Err(err).Str("from", from).Msg("Dropping malformed P2P packet")
		if len(bin) >= 4 {
			if sid := binary.LittleEndian.Uint32(bin); sid != 0 {
				e.failSession(from, sid, err)
			}
		}
		return
	}
	h := p.Header
	switch {
	case h.Flags == P2PFlagAck:
		e.onAck(from, h)
		return
	case p2pFailure(h.Flags):
		if h.SessionID != 0 {
			e.failSession(from, h.SessionID, fmt.Errorf("%w: peer sent flags %#x", ErrTransferCanceled, h.Flags))
		}
		return
	case h.Flags == P2PFlagWaiting || h.Flags == P2PFlagDirect:
		return
	}
	if h.SessionID != 0 {
		e.mu.Lock()
		s := e.sessions[p2pKey{from, h.SessionID}]
		e.mu.Unlock()
		if s == nil {
			e.log.Debug().Str("from", from).Uint32("session", h.SessionID).Msg("Dropping P2P data for an unknown session")
			return
		}
		if s.kind == sessFileIn {
			s.fileData(p)
			return
		}
		if s.kind != sessFetch {
			s.fail(fmt.Errorf("%w: data on a session that sends", ErrP2PMalformed))
			return
		}
		switch {
		case isObjectData(h.Flags) && h.TotalSize != uint64(s.obj.Size):
			s.fail(fmt.Errorf("%w: object data of %d bytes, msnobj says %d", ErrObjectMismatch, h.TotalSize, s.obj.Size))
			return
		case !isObjectData(h.Flags) && h.TotalSize != p2pDataPrepSize:
			s.fail(fmt.Errorf("%w: data preparation of %d bytes", ErrP2PMalformed, h.TotalSize))
			return
		}
		s.touch()
	} else if h.TotalSize > maxSLPSize {
		e.log.Debug().Str("from", from).Uint64("size", h.TotalSize).Msg("Dropping oversized SLP message")
		return
	}
	msg, done := e.reassemble(from, p)
	if !done {
		return
	}
	if p2pNeedsAck(h.Flags) {
		e.post(from, NewP2PMessage(from, P2PHeader{SessionID: h.SessionID, Identifier: e.newID(),
			TotalSize: h.TotalSize, Flags: P2PFlagAck, AckID: h.Identifier, AckUID: h.AckID, AckSize: h.TotalSize}, nil, P2PAppSLP))
	}
	if h.SessionID != 0 {
		e.mu.Lock()
		s := e.sessions[p2pKey{from, h.SessionID}]
		e.mu.Unlock()
		if s != nil && isObjectData(h.Flags) {
			s.push(p2pEvent{data: msg})
		}
		return
	}
	m, err := ParseSLP(msg)
	if err != nil {
		e.log.Debug().Err(err).Str("from", from).Msg("Dropping malformed SLP message")
		return
	}
	e.handleSLP(from, m)
}

// reassemble adds a packet to its message; it returns the message once complete. Gaps,
// overlaps and too many messages at once drop the packet.
func (e *P2P) reassemble(from string, p P2PPacket) ([]byte, bool) {
	h := p.Header
	if h.Offset == 0 && uint64(h.MessageSize) == h.TotalSize {
		return append([]byte(nil), p.Data...), true
	}
	k := reasmKey{from, h.SessionID, h.Identifier}
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.reasm[k]
	if h.Offset == 0 {
		n := 0
		now := time.Now()
		for rk, rr := range e.reasm { // at most maxP2PReassemblies per peer
			if now.Sub(rr.started) > e.cfg.IdleTimeout {
				delete(e.reasm, rk)
				continue
			}
			if rk.peer == from {
				n++
			}
		}
		if n >= maxP2PReassemblies {
			e.log.Warn().Str("from", from).Msg("Too many P2P messages under way from one contact; dropping one")
			return nil, false
		}
		r = &reassembly{h: h, buf: make([]byte, 0, h.TotalSize), started: now}
		e.reasm[k] = r
	}
	if r == nil || r.h.TotalSize != h.TotalSize || uint64(len(r.buf)) != h.Offset {
		delete(e.reasm, k)
		e.log.Debug().Str("from", from).Uint64("offset", h.Offset).Msg("Dropping out-of-order P2P packet")
		return nil, false
	}
	r.buf = append(r.buf, p.Data...)
	if uint64(len(r.buf)) < h.TotalSize {
		return nil, false
	}
	delete(e.reasm, k)
	return r.buf, true
}

// onAck hands an ACK to whoever waits for it.
func (e *P2P) onAck(from string, h P2PHeader) {
	e.mu.Lock()
	ch := e.acks[ackKey{from, h.AckID}]
	e.mu.Unlock()
	if ch != nil {
		select {
		case ch <- h:
		default:
		}
	}
}

// expectAck registers a waiter for the ACK of the message id sent to peer; release with
// forgetAck.
func (e *P2P) expectAck(peer string, id uint32) chan P2PHeader {
	ch := make(chan P2PHeader, 1)
	e.mu.Lock()
	e.acks[ackKey{peer, id}] = ch
	e.mu.Unlock()
	return ch
}

func (e *P2P) forgetAck(peer string, id uint32) {
	e.mu.Lock()
	delete(e.acks, ackKey{peer, id})
	e.mu.Unlock()
}

// post queues a control packet (an ACK, an SLP answer) for peer without waiting: Deliver
// cannot wait for the transport.
func (e *P2P) post(peer string, payload []byte) {
	if err := e.enqueue(peer, payload, nil); err != nil {
		e.log.Warn().Err(err).Str("to", peer).Msg("Dropping a P2P packet")
	}
}

// sendQueued sends payload to peer behind everything queued for it before, and waits until it
// was handed to the transport. Every packet to a peer goes through its one queue, so the wire
// order is the order the engine decided on (an ACK queued by Deliver precedes the data that
// its sender then sends).
func (e *P2P) sendQueued(ctx context.Context, peer string, payload []byte) error {
	done := make(chan error, 1)
	if err := e.enqueue(peer, payload, done); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-e.ctx.Done():
		return ErrClosed
	}
}

func (e *P2P) enqueue(peer string, payload []byte, done chan error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx.Err() != nil {
		return ErrClosed
	}
	q := e.queues[peer]
	if q == nil {
		q = &sendQueue{}
		e.queues[peer] = q
	}
	if len(q.items) >= maxP2PQueue {
		return fmt.Errorf("p2p send queue full (%d packets)", maxP2PQueue)
	}
	q.items = append(q.items, queuedPacket{payload, done})
	if !q.running {
		q.running = true
		e.wg.Add(1)
		go e.drain(peer, q)
	}
	return nil
}

func (e *P2P) drain(peer string, q *sendQueue) {
	defer e.wg.Done()
	for {
		e.mu.Lock()
		if len(q.items) == 0 || e.ctx.Err() != nil {
			q.running = false
			q.items = nil
			if e.queues[peer] == q {
				delete(e.queues, peer)
			}
			e.mu.Unlock()
			return
		}
		p := q.items[0]
		q.items = q.items[1:]
		e.mu.Unlock()
		ctx, cancel := context.WithTimeout(e.ctx, p2pSendTimeout)
		err := e.cfg.Send(ctx, peer, p.payload)
		cancel()
		if p.done != nil {
			p.done <- err
		} else if err != nil {
			e.log.Debug().Err(err).Str("to", peer).Msg("Failed to send P2P packet")
		}
	}
}

// sendMessage sends one whole message to peer in packets of at most P2PMaxChunk data bytes,
// synchronously. h's Identifier is set when zero, and AckID when zero; it returns the header
// of the last packet.
func (e *P2P) sendMessage(ctx context.Context, peer string, h P2PHeader, data []byte, footer uint32) (P2PHeader, error) {
	if h.Identifier == 0 {
		h.Identifier = e.newID()
	}
	if h.AckID == 0 {
		h.AckID = randUint32() % 0xFFFFFF00
	}
	h.TotalSize = uint64(len(data))
	for off := 0; ; {
		n := min(len(data)-off, P2PMaxChunk)
		h.Offset = uint64(off)
		if err := e.sendQueued(ctx, peer, NewP2PMessage(peer, h, data[off:off+n], footer)); err != nil {
			return h, err
		}
		off += n
		if off >= len(data) {
			return h, nil
		}
	}
}

// sendSLP sends an SLP message to peer (session 0) and returns its identifier.
func (e *P2P) sendSLP(ctx context.Context, peer string, m *SLPMessage) (P2PHeader, error) {
	return e.sendMessage(ctx, peer, P2PHeader{}, m.Marshal(), P2PAppSLP)
}

// postSLP queues an SLP message to peer (session 0).
func (e *P2P) postSLP(peer string, m *SLPMessage) { e.postMessage(peer, m.Marshal(), nil) }

// postSLPAcked queues an SLP message to peer and returns its header and the channel its ACK
// arrives on; the caller releases it with forgetAck.
func (e *P2P) postSLPAcked(peer string, m *SLPMessage) (P2PHeader, chan P2PHeader) {
	var ch chan P2PHeader
	h := e.postMessage(peer, m.Marshal(), func(id uint32) { ch = e.expectAck(peer, id) })
	return h, ch
}

func (e *P2P) postMessage(peer string, data []byte, register func(id uint32)) P2PHeader {
	h := P2PHeader{Identifier: e.newID(), AckID: randUint32() % 0xFFFFFF00, TotalSize: uint64(len(data))}
	if register != nil {
		register(h.Identifier)
	}
	for off := 0; off < len(data); off += P2PMaxChunk {
		n := min(len(data)-off, P2PMaxChunk)
		h.Offset = uint64(off)
		e.post(peer, NewP2PMessage(peer, h, data[off:off+n], P2PAppSLP))
	}
	h.Offset = 0
	return h
}

// handleSLP dispatches a complete SLP message from peer.
func (e *P2P) handleSLP(from string, m *SLPMessage) {
	if m.To != "" && m.To != e.cfg.Self {
		e.log.Debug().Str("from", from).Msg("Ignoring SLP message for another handle")
		return
	}
	if m.From != "" && m.From != from {
		e.log.Debug().Str("from", from).Msg("Ignoring SLP message whose From is not its sender")
		return
	}
	e.mu.Lock()
	s := e.calls[m.CallID]
	e.mu.Unlock()
	if s != nil && s.peer != from {
		s = nil
	}
	switch {
	case m.Method == "INVITE" && m.ContentType == slpTransReq:
		if s == nil {
			e.postSLP(from, newSLPResponse(m, 603, "Decline", slpSessionReq, nil))
			return
		}
		// Never a direct connection: stay on the switchboard.
		e.postSLP(from, newSLPResponse(m, 200, "OK", slpTransResp, []Header{
			{"Bridge", "TCPv1"}, {"Listening", "false"}, {"Nonce", "{00000000-0000-0000-0000-000000000000}"}}))
	case m.Method == "INVITE":
		e.handleInvite(from, m)
	case m.Method == "BYE":
		if s != nil {
			s.push(p2pEvent{bye: true})
		}
	case m.Code != 0:
		if s != nil {
			s.push(p2pEvent{resp: m})
		}
	}
}

// handleInvite answers a session INVITE: objects are served, files offered, the rest declined.
func (e *P2P) handleInvite(from string, m *SLPMessage) {
	decline := func(why string) {
		e.log.Debug().Str("from", from).Str("reason", why).Msg("Declining P2P invitation")
		e.postSLP(from, newSLPResponse(m, 603, "Decline", slpSessionReq, []Header{{"SessionID", m.BodyValue("SessionID")}}))
	}
	if m.ContentType != slpSessionReq {
		decline("content type")
		return
	}
	sid64, err := strconv.ParseUint(m.BodyValue("SessionID"), 10, 32)
	if err != nil || sid64 == 0 {
		decline("session id")
		return
	}
	sid := uint32(sid64)
	switch m.BodyValue("EUF-GUID") {
	case EUFObject:
		obj, err := parseObjectContext(m.BodyValue("Context"))
		if err != nil {
			decline(err.Error())
			return
		}
		e.mu.Lock()
		o, ok := e.objects[obj.SHA1D]
		e.mu.Unlock()
		if !ok || obj.Creator != e.cfg.Self {
			decline("unknown object")
			return
		}
		s, err := e.newSession(from, sid, m.CallID, sessServe, func(s *p2pSession) { s.invite, s.obj = m, o.obj })
		if err != nil {
			decline(err.Error())
			return
		}
		e.wg.Add(1)
		go s.serve(o.data)
	case EUFFile:
		fc, err := parseFileInvite(m)
		if err != nil {
			decline(err.Error())
			return
		}
		s, err := e.newSession(from, sid, m.CallID, sessFileIn, func(s *p2pSession) {
			s.invite, s.size = m, fc.Size
			s.offer = &FileOffer{s: s, Name: fc.Name, Size: fc.Size}
		})
		if err != nil {
			decline(err.Error())
			return
		}
		s.rmu.Lock() // stopOfferTimer reads the timer under rmu
		s.offerTimer = time.AfterFunc(e.cfg.OfferTimeout, func() {
			if s.offer.decide() {
				e.log.Info().Str("from", from).Msg("File offer neither accepted nor declined in time; declining it")
				s.decline()
			}
		})
		s.rmu.Unlock()
		if e.cfg.OnFileOffer != nil {
			e.cfg.OnFileOffer(from, s.offer)
		}
	default:
		decline("application " + truncate(m.BodyValue("EUF-GUID"), 40))
	}
}

// failSession ends the session (peer, sid) with err, if there is one.
func (e *P2P) failSession(peer string, sid uint32, err error) {
	e.mu.Lock()
	s := e.sessions[p2pKey{peer, sid}]
	e.mu.Unlock()
	if s != nil {
		s.fail(err)
	}
}

// ErrTooManyTransfers: the contact has as many P2P sessions under way as allowed.
var ErrTooManyTransfers = errors.New("msn: too many transfers with this contact")

// isObjectData reports whether flags mark msnobj data (MSN 7.0 or WLM).
func isObjectData(flags uint32) bool { return flags == P2PFlagData || flags == P2PFlagWLMData }
