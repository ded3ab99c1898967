package msn

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
)

// File transfer: the sender invites with the file's Context; once the receiver answers 200 OK,
// the whole file is one P2P message on the session, acknowledged once at its end.

// FileOffer is a file a contact offers. Exactly one of Accept or Decline should be called;
// an offer neither accepted nor declined is declined after the client's offer timeout.
type FileOffer struct {
	s     *p2pSession
	state atomic.Int32
	// Name is the file name without path or control characters; Size its offered size.
	Name string
	Size int64
}

const (
	offerOpen int32 = iota
	offerAccepted
	offerDeclined
)

// ErrOfferAnswered: Accept or Decline was already called, or the offer timed out. A FileOffer
// not made by the library (the zero value) fails the same way.
var ErrOfferAnswered = errors.New("msn: file offer already answered")

func (o *FileOffer) claim(state int32) bool {
	return o != nil && o.s != nil && o.state.CompareAndSwap(offerOpen, state)
}

// decide reports whether the offer was still open, declining it.
func (o *FileOffer) decide() bool { return o.claim(offerDeclined) }

// From returns the handle of the contact who offered the file.
func (o *FileOffer) From() string {
	if o == nil || o.s == nil {
		return ""
	}
	return o.s.peer
}

// Accept accepts the offer and writes the file to w as it arrives. It blocks until the whole
// file was received, the peer cancelled (ErrTransferCanceled), it stalled, ctx ended (the
// transfer is then cancelled), or the data went beyond the offered size. A file over the
// configured MaxFileSize is declined and Accept returns ErrTransferTooLarge. It blocks for the
// whole transfer: call it from a goroutine of its own, not from the event handler.
func (o *FileOffer) Accept(ctx context.Context, w io.Writer, progress func(received int64)) error {
	if !o.claim(offerAccepted) {
		return ErrOfferAnswered
	}
	s, e := o.s, o.s.e
	s.stopOfferTimer()
	select {
	case <-s.done:
		return s.err
	default:
	}
	if o.Size > e.cfg.MaxFileSize {
		s.decline()
		return fmt.Errorf("%w: %d bytes, cap %d", ErrTransferTooLarge, o.Size, e.cfg.MaxFileSize)
	}
	s.rmu.Lock()
	s.accepted = true
	s.rmu.Unlock()
	s.touch()
	e.postSLP(s.peer, newSLPResponse(s.invite, 200, "OK", slpSessionReq,
		[]Header{{"SessionID", strconv.FormatUint(uint64(s.sid), 10)}}))
	var got int64
	for {
		ev, err := s.next(ctx, e.cfg.IdleTimeout, ErrTransferStalled)
		if err != nil {
			s.abort(err) // no-op when the session had already ended
			return err
		}
		switch {
		case ev.chunk != nil || ev.last:
			if len(ev.chunk) > 0 {
				if _, err := w.Write(ev.chunk); err != nil {
					err = fmt.Errorf("failed to write file: %w", err)
					s.abort(err)
					return err
				}
				got += int64(len(ev.chunk))
				if progress != nil {
					progress(got)
				}
			}
			if ev.last {
				// The receiver closes the finished session (the sender accepts a BYE or none).
				s.abort(nil)
				return nil
			}
		}
	}
}

// Decline declines the offer (603).
func (o *FileOffer) Decline() error {
	if !o.claim(offerDeclined) {
		return ErrOfferAnswered
	}
	o.s.decline()
	return nil
}

// decline answers the INVITE with 603 and ends the session, unless it has ended already.
func (s *p2pSession) decline() {
	select {
	case <-s.done:
		return
	default:
	}
	s.e.postSLP(s.peer, newSLPResponse(s.invite, 603, "Decline", slpSessionReq,
		[]Header{{"SessionID", strconv.FormatUint(uint64(s.sid), 10)}}))
	s.finish(ErrTransferDeclined)
}

// parseFileInvite reads the file Context of an INVITE.
func parseFileInvite(m *SLPMessage) (FileContext, error) {
	c := m.BodyValue("Context")
	if len(c) > maxSLPContext {
		return FileContext{}, fmt.Errorf("context of %d bytes", len(c))
	}
	b, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return FileContext{}, fmt.Errorf("context is not base64: %w", err)
	}
	return ParseFileContext(b)
}

// fileData takes one packet of an offered file. Runs on the delivering goroutine; it waits
// while the writer is behind, until the session ends.
func (s *p2pSession) fileData(p P2PPacket) {
	h := p.Header
	s.rmu.Lock()
	var bad error
	switch {
	case !s.accepted:
		bad = fmt.Errorf("%w: file data before the offer was accepted", ErrP2PMalformed)
	case h.Flags != P2PFlagFileData && h.Flags != p2pFlagFileData0 && h.Flags != P2PFlagFile:
		bad = fmt.Errorf("%w: file data with flags %#x", ErrP2PMalformed, h.Flags)
	case h.TotalSize != uint64(s.size):
		bad = fmt.Errorf("%w: file data of %d bytes, offered %d", ErrP2PMalformed, h.TotalSize, s.size)
	case s.received == 0 && h.Offset == 0:
		s.dataID = h.Identifier
	}
	if bad == nil && (h.Identifier != s.dataID || h.Offset != uint64(s.received)) {
		bad = fmt.Errorf("%w: file data out of order", ErrP2PMalformed)
	}
	if bad != nil {
		s.rmu.Unlock()
		s.fail(bad)
		return
	}
	s.received += int64(len(p.Data))
	last := s.received == s.size
	s.rmu.Unlock()
	s.touch()
	if last {
		e := s.e
		e.post(s.peer, NewP2PMessage(s.peer, P2PHeader{SessionID: h.SessionID, Identifier: e.newID(),
			TotalSize: h.TotalSize, Flags: P2PFlagAck, AckID: h.Identifier, AckUID: h.AckID, AckSize: h.TotalSize}, nil, P2PAppSLP))
	}
	s.push(p2pEvent{chunk: append([]byte(nil), p.Data...), last: last})
}

// SendFile offers f to peer and, once accepted, sends it, reading f.Data as it goes. It
// returns once the peer acknowledged the data; ErrTransferDeclined on 603,
// ErrTransferCanceled on the peer's BYE, ctx's error (after a BYE), ErrTransferTooLarge over
// MaxFileSize, or a read or send error.
func (e *P2P) SendFile(ctx context.Context, peer string, f OutgoingFile) error {
	if f.Size < 0 || f.Data == nil {
		return fmt.Errorf("%w: file without data or with a negative size", ErrInvalidArgument)
	}
	if f.Size > e.cfg.MaxFileSize {
		return fmt.Errorf("%w: %d bytes, cap %d", ErrTransferTooLarge, f.Size, e.cfg.MaxFileSize)
	}
	s, err := e.newSession(peer, 0, "", sessFileOut, func(s *p2pSession) { s.size = f.Size })
	if err != nil {
		return err
	}
	defer s.finish(nil)
	c := base64.StdEncoding.EncodeToString(newFileContext(SanitizeFileName(f.Name), f.Size))
	inv := &SLPMessage{Method: "INVITE", To: peer, From: e.cfg.Self, Branch: newGUID(), CallID: s.callID,
		ContentType: slpSessionReq, Body: []Header{{"EUF-GUID", EUFFile},
			{"SessionID", strconv.FormatUint(uint64(s.sid), 10)}, {"AppID", "2"}, {"Context", c}}}
	if _, err := e.sendSLP(ctx, peer, inv); err != nil {
		// The INVITE may have gone out all the same (ctx ended while it was queued): close it.
		s.abort(err)
		return fmt.Errorf("failed to offer file: %w", err)
	}
	s.touch()
	for answered := false; !answered; {
		ev, err := s.next(ctx, fileAnswerTimeout, fmt.Errorf("%w: no answer to the file offer", ErrTransferStalled))
		if err != nil {
			s.abort(err)
			return err
		}
		switch {
		case ev.resp != nil && ev.resp.Code != 200:
			s.finish(ErrTransferDeclined)
			return ErrTransferDeclined
		case ev.resp != nil:
			answered = true
		}
	}
	read := func(b []byte) error {
		if _, err := io.ReadFull(f.Data, b); err != nil {
			return fmt.Errorf("failed to read file: %w", err)
		}
		return nil
	}
	h, ack, err := s.sendData(ctx, P2PHeader{SessionID: s.sid, Flags: P2PFlagFileData}, f.Size, P2PAppFile, read, f.Progress)
	defer e.forgetAck(peer, h.Identifier)
	if err != nil {
		s.abort(err)
		return err
	}
	for {
		err := s.waitAck(ctx, ack, h, e.cfg.IdleTimeout)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrTransferCanceled) {
			// A BYE right behind the ACK: take the ACK if it is there.
			select {
			case a := <-ack:
				if a.AckUID == h.AckID {
					return nil
				}
			default:
			}
		}
		s.abort(err)
		return err
	}
}
