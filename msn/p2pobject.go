package msn

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
)

// Object transfer (display pictures, emoticons, winks): the requester invites the creator,
// which answers 200 OK, sends a 4-byte data preparation message, then the data.

// Fetch fetches obj's data from obj.Creator and verifies its Size and SHA1D. Fetches from one
// creator run one at a time. It fails with ErrTransferDeclined (603), ErrTransferStalled (no
// answer within AnswerTimeout, no data progress within IdleTimeout), ErrTransferTooLarge
// (Size over MaxObjectSize), ErrObjectMismatch, ErrTransferCanceled (the creator's BYE) or
// ctx's error, after which a BYE is sent.
func (e *P2P) Fetch(ctx context.Context, obj MSNObject) ([]byte, error) {
	if obj.Creator == "" || obj.Size <= 0 || obj.SHA1D == "" {
		return nil, fmt.Errorf("%w: incomplete msnobj", ErrInvalidArgument)
	}
	if obj.Size > e.cfg.MaxObjectSize {
		return nil, fmt.Errorf("%w: object of %d bytes, cap %d", ErrTransferTooLarge, obj.Size, e.cfg.MaxObjectSize)
	}
	peer := obj.Creator
	if peer == e.cfg.Self {
		e.mu.Lock()
		o, ok := e.objects[obj.SHA1D]
		e.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("%w: own object not published", ErrInvalidArgument)
		}
		return append([]byte(nil), o.data...), nil
	}
	e.mu.Lock()
	lock := e.fetching[peer]
	if lock == nil {
		lock = &fetchLock{ch: make(chan struct{}, 1)}
		e.fetching[peer] = lock
	}
	lock.users++
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		if lock.users--; lock.users == 0 {
			delete(e.fetching, peer)
		}
		e.mu.Unlock()
	}()
	select {
	case lock.ch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-lock.ch }()

	s, err := e.newSession(peer, 0, "", sessFetch, func(s *p2pSession) { s.obj = obj })
	if err != nil {
		return nil, err
	}
	defer s.finish(nil)
	inv := &SLPMessage{Method: "INVITE", To: peer, From: e.cfg.Self, Branch: newGUID(), CallID: s.callID,
		ContentType: slpSessionReq, Body: []Header{{"EUF-GUID", EUFObject},
			{"SessionID", strconv.FormatUint(uint64(s.sid), 10)}, {"AppID", "1"}, {"Context", objectContext(obj)}}}
	if _, err := e.sendSLP(ctx, peer, inv); err != nil {
		// The INVITE may have gone out all the same (ctx ended while it was queued): close it.
		s.abort(err)
		return nil, fmt.Errorf("failed to request object: %w", err)
	}
	s.touch()
	timeout := e.cfg.AnswerTimeout
	for {
		ev, err := s.next(ctx, timeout, ErrTransferStalled)
		if err != nil {
			s.abort(err)
			return nil, err
		}
		switch {
		case ev.resp != nil && ev.resp.Code != 200:
			s.finish(ErrTransferDeclined)
			return nil, fmt.Errorf("%w: %d %s", ErrTransferDeclined, ev.resp.Code, truncate(ev.resp.Reason, 32))
		case ev.resp != nil:
			timeout = e.cfg.IdleTimeout
			s.touch()
		case ev.data != nil:
			sum := sha1.Sum(ev.data)
			if int64(len(ev.data)) != obj.Size || base64.StdEncoding.EncodeToString(sum[:]) != obj.SHA1D {
				s.abort(ErrObjectMismatch)
				return nil, ErrObjectMismatch
			}
			s.abort(nil) // the requester closes a finished session with BYE
			return ev.data, nil
		}
	}
}

// fetchLock makes the fetches from one creator run one at a time; users counts the fetches
// holding or waiting for it, so that it is forgotten when none does.
type fetchLock struct {
	ch    chan struct{}
	users int
}

// serve sends a published object on an accepted INVITE. It runs on its own goroutine.
func (s *p2pSession) serve(data []byte) {
	e := s.e
	defer e.wg.Done()
	defer s.finish(nil)
	ctx := e.ctx
	sid := strconv.FormatUint(uint64(s.sid), 10)
	ok := newSLPResponse(s.invite, 200, "OK", slpSessionReq, []Header{{"SessionID", sid}})
	// Queued behind the ACK of the INVITE, so the order on the wire is ACK, 200 OK.
	h, ack := e.postSLPAcked(s.peer, ok)
	err := s.waitAck(ctx, ack, h, e.cfg.AnswerTimeout)
	e.forgetAck(s.peer, h.Identifier)
	if err != nil {
		s.abort(err)
		return
	}
	prep := P2PHeader{SessionID: s.sid}
	zero := make([]byte, p2pDataPrepSize)
	h, ack, err = s.sendData(ctx, prep, p2pDataPrepSize, P2PAppObject, func(b []byte) error { copy(b, zero); return nil }, nil)
	if err == nil {
		err = s.waitAck(ctx, ack, h, e.cfg.AnswerTimeout)
	}
	e.forgetAck(s.peer, h.Identifier)
	if err != nil {
		s.abort(err)
		return
	}
	r := bytes.NewReader(data)
	h, ack, err = s.sendData(ctx, P2PHeader{SessionID: s.sid, Flags: P2PFlagData}, int64(len(data)), P2PAppObject,
		func(b []byte) error { _, err := io.ReadFull(r, b); return err }, nil)
	if err == nil {
		err = s.waitAck(ctx, ack, h, e.cfg.IdleTimeout)
	}
	e.forgetAck(s.peer, h.Identifier)
	if err != nil {
		s.abort(err)
		return
	}
	e.log.Debug().Str("peer", s.peer).Int("size", len(data)).Msg("Served P2P object")
}
