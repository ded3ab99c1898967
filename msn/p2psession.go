package msn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

type sessKind int

const (
	sessFetch   sessKind = iota // we requested an object
	sessServe                   // we serve an object
	sessFileIn                  // a peer offers a file
	sessFileOut                 // we send a file
)

// p2pEvent is what a session's owner receives: an SLP response, a complete object, or a file
// chunk; or, only on its way to push, a BYE (which ends the session instead).
type p2pEvent struct {
	resp  *SLPMessage
	bye   bool
	data  []byte // sessFetch: the whole object
	chunk []byte // sessFileIn: the next data bytes
	last  bool   // sessFileIn: chunk ends the file
}

// p2pSession is one MSNSLP session with a peer, keyed by (peer, SessionID) and by Call-ID.
type p2pSession struct {
	e      *P2P
	peer   string
	sid    uint32
	callID string
	kind   sessKind
	invite *SLPMessage // the INVITE received (sessServe, sessFileIn)
	obj    MSNObject   // sessFetch, sessServe
	size   int64       // sessFileIn, sessFileOut

	offer      *FileOffer
	offerTimer *time.Timer

	ev   chan p2pEvent
	done chan struct{}
	once sync.Once
	err  error
	last atomic.Int64 // unix nanoseconds of the last progress

	rmu      sync.Mutex // file reception state, written by Deliver
	accepted bool
	received int64
	dataID   uint32
}

var errSessionEnded = errors.New("p2p session ended")

// newSession registers a session; sid 0 picks a fresh random one (an outgoing session). init,
// when set, fills the session's fields before any other goroutine can find it.
func (e *P2P) newSession(peer string, sid uint32, callID string, kind sessKind, init func(*p2pSession)) (*p2pSession, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if e.perPeer[peer] >= e.cfg.MaxSessions {
		return nil, fmt.Errorf("%w (%d)", ErrTooManyTransfers, e.cfg.MaxSessions)
	}
	if sid == 0 {
		for sid == 0 || e.sessions[p2pKey{peer, sid}] != nil {
			sid = randUint32() & 0x7FFFFFFF
		}
	} else if e.sessions[p2pKey{peer, sid}] != nil {
		return nil, errors.New("session id in use")
	}
	if callID == "" {
		callID = newGUID()
	} else if e.calls[callID] != nil {
		return nil, errors.New("call id in use")
	}
	s := &p2pSession{e: e, peer: peer, sid: sid, callID: callID, kind: kind,
		ev: make(chan p2pEvent, p2pDataQueue+8), done: make(chan struct{})}
	s.touch()
	if init != nil {
		init(s)
	}
	e.sessions[p2pKey{peer, sid}] = s
	e.calls[callID] = s
	e.perPeer[peer]++
	return s, nil
}

func (s *p2pSession) touch() { s.last.Store(time.Now().UnixNano()) }

// finish ends the session once with err (nil: completed) and forgets it.
func (s *p2pSession) finish(err error) {
	s.once.Do(func() {
		if err == nil {
			err = errSessionEnded
		}
		s.err = err
		close(s.done)
		s.stopOfferTimer()
		e := s.e
		e.mu.Lock()
		if e.sessions[p2pKey{s.peer, s.sid}] == s {
			delete(e.sessions, p2pKey{s.peer, s.sid})
			if e.perPeer[s.peer]--; e.perPeer[s.peer] <= 0 {
				delete(e.perPeer, s.peer)
			}
		}
		if e.calls[s.callID] == s {
			delete(e.calls, s.callID)
		}
		for k := range e.reasm {
			if k.peer == s.peer && k.sid == s.sid {
				delete(e.reasm, k)
			}
		}
		e.mu.Unlock()
	})
}

func (s *p2pSession) stopOfferTimer() {
	s.rmu.Lock()
	t := s.offerTimer
	s.rmu.Unlock()
	if t != nil {
		t.Stop()
	}
}

// fail ends the session because of the peer (its BYE, an error flag, malformed data): no BYE
// is sent for a peer failure flag; malformed input is answered with a BYE.
func (s *p2pSession) fail(err error) {
	if errors.Is(err, ErrP2PMalformed) || errors.Is(err, ErrObjectMismatch) || errors.Is(err, ErrTransferTooLarge) {
		s.abort(err)
		return
	}
	s.finish(err)
}

// abort sends a BYE for the session and ends it with err.
func (s *p2pSession) abort(err error) {
	select {
	case <-s.done:
		return
	default:
	}
	s.e.log.Debug().Err(err).Str("peer", s.peer).Uint32("session", s.sid).Msg("Ending P2P session")
	s.e.postSLP(s.peer, s.bye())
	s.finish(err)
}

// bye is the session's BYE.
func (s *p2pSession) bye() *SLPMessage {
	return &SLPMessage{Method: "BYE", To: s.peer, From: s.e.cfg.Self, Branch: newGUID(), CallID: s.callID,
		ContentType: slpSessionClose}
}

// push hands ev to the session's owner; it blocks while the queue is full, until the session
// ends. A BYE ends the session at once: its owner may be busy sending and not reading events.
func (s *p2pSession) push(ev p2pEvent) {
	if ev.bye {
		s.finish(ErrTransferCanceled)
		return
	}
	select {
	case s.ev <- ev:
	case <-s.done:
	case <-s.e.ctx.Done():
	}
}

// next waits for the session's next event. It fails with stalled when nothing progressed for
// idle (measured from the last touch), with the session's error once it ended, or with ctx's.
func (s *p2pSession) next(ctx context.Context, idle time.Duration, stalled error) (p2pEvent, error) {
	for {
		select {
		case ev := <-s.ev:
			return ev, nil
		default:
		}
		left := idle - time.Since(time.Unix(0, s.last.Load()))
		if left <= 0 {
			return p2pEvent{}, stalled
		}
		t := time.NewTimer(left)
		select {
		case ev := <-s.ev:
			t.Stop()
			return ev, nil
		case <-s.done:
			t.Stop()
			// Events pushed before the session ended (the last file chunk, then the
			// sender's BYE) are still delivered, in order.
			select {
			case ev := <-s.ev:
				return ev, nil
			default:
			}
			return p2pEvent{}, s.err
		case <-ctx.Done():
			t.Stop()
			return p2pEvent{}, ctx.Err()
		case <-s.e.ctx.Done():
			t.Stop()
			return p2pEvent{}, ErrClosed
		case <-t.C:
		}
	}
}

// waitAck waits for the ACK of the message h (registered with expectAck as ch) for up to
// timeout. ACKs whose AckUID or AckSize do not match h are ignored.
func (s *p2pSession) waitAck(ctx context.Context, ch chan P2PHeader, h P2PHeader, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case a := <-ch:
			if a.AckUID == h.AckID && a.AckSize == h.TotalSize {
				s.touch()
				return nil
			}
			s.e.log.Debug().Str("peer", s.peer).Msg("Ignoring P2P ACK that does not match its message")
		case <-s.done:
			return s.err
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("%w: no acknowledgement in %s", ErrTransferStalled, timeout)
		}
	}
}

// sendData sends a whole message of size bytes read by read (called with a buffer to fill
// completely) on the session, checking between packets that it was not ended; progress gets
// the bytes sent. h carries SessionID and Flags; Identifier and AckID are set here and h is
// returned complete.
func (s *p2pSession) sendData(ctx context.Context, h P2PHeader, size int64, footer uint32, read func([]byte) error, progress func(int64)) (P2PHeader, chan P2PHeader, error) {
	e := s.e
	h.Identifier = e.newID()
	h.AckID = randUint32() % 0xFFFFFF00
	h.TotalSize = uint64(size)
	ack := e.expectAck(s.peer, h.Identifier)
	buf := make([]byte, P2PMaxChunk)
	for off := int64(0); ; {
		select {
		case <-s.done:
			return h, ack, s.err
		default:
		}
		if err := ctx.Err(); err != nil {
			return h, ack, err
		}
		n := int(min(size-off, P2PMaxChunk))
		if err := read(buf[:n]); err != nil {
			return h, ack, err
		}
		h.Offset = uint64(off)
		if err := e.sendQueued(ctx, s.peer, NewP2PMessage(s.peer, h, buf[:n], footer)); err != nil {
			return h, ack, fmt.Errorf("failed to send p2p data: %w", err)
		}
		off += int64(n)
		s.touch()
		if progress != nil {
			progress(off)
		}
		if off >= size {
			return h, ack, nil
		}
	}
}
