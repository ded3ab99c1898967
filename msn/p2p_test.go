package msn

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestP2PHeaderRoundTrip(t *testing.T) {
	h := P2PHeader{SessionID: 1, Identifier: 2, Offset: 3, TotalSize: 10, MessageSize: 4, Flags: P2PFlagData,
		AckID: 7, AckUID: 8, AckSize: 9}
	p := NewP2PMessage("bob@example.com", h, []byte("abcd"), P2PAppObject)
	m, err := ParseMIME(p)
	if err != nil || m.ContentType() != "application/x-msnmsgrp2p" || m.Get("P2P-Dest") != "bob@example.com" {
		t.Fatalf("MIME: %v %+v", err, m)
	}
	bin := m.Body
	if len(bin) != 48+4+4 {
		t.Fatalf("binary part of %d bytes", len(bin))
	}
	// Little-endian header, big-endian footer.
	if binary.LittleEndian.Uint64(bin[16:]) != 10 || binary.LittleEndian.Uint32(bin[28:]) != 0x20 ||
		!bytes.Equal(bin[len(bin)-4:], []byte{0, 0, 0, 1}) {
		t.Fatalf("wire bytes % x", bin)
	}
	got, err := ParseP2PBinary(bin)
	if err != nil || got.Header != h || string(got.Data) != "abcd" || got.Footer != 1 {
		t.Fatalf("decoded %+v %v", got, err)
	}
}

func TestP2PHeaderMalformed(t *testing.T) {
	hdr := func(h P2PHeader, data int) []byte {
		b := MarshalP2PHeader(nil, h)
		return append(append(b, make([]byte, data)...), 0, 0, 0, 0)
	}
	for name, b := range map[string][]byte{
		"short":           make([]byte, 51),
		"size mismatch":   hdr(P2PHeader{TotalSize: 10, MessageSize: 5}, 4),
		"beyond total":    hdr(P2PHeader{Offset: 8, TotalSize: 10, MessageSize: 4}, 4),
		"offset overflow": hdr(P2PHeader{Offset: ^uint64(0), TotalSize: 10, MessageSize: 4}, 4),
	} {
		if _, err := ParseP2PBinary(b); !errors.Is(err, ErrP2PMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSLPMarshal checks the exact text: header order, the space before ";branch", "CSeq: 0 ",
// and a Content-Length counting the body's NUL.
func TestSLPMarshal(t *testing.T) {
	m := &SLPMessage{Method: "INVITE", To: "carol@example.com", From: "bob@example.com", Branch: "{B}", CallID: "{C}",
		ContentType: slpSessionReq, Body: []Header{{"SessionID", "5"}}}
	body := "SessionID: 5\r\n\r\n\x00"
	want := "INVITE MSNMSGR:carol@example.com MSNSLP/1.0\r\nTo: <msnmsgr:carol@example.com>\r\nFrom: <msnmsgr:bob@example.com>\r\n" +
		"Via: MSNSLP/1.0/TLP ;branch={B}\r\nCSeq: 0 \r\nCall-ID: {C}\r\nMax-Forwards: 0\r\n" +
		"Content-Type: application/x-msnmsgr-sessionreqbody\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if got := string(m.Marshal()); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	bye := (&SLPMessage{Method: "BYE", To: "a@b.c", From: "d@e.f", Branch: "{B}", CallID: "{C}", ContentType: slpSessionClose}).Marshal()
	if !bytes.Contains(bye, []byte("Content-Length: 3\r\n\r\n\r\n\x00")) {
		t.Fatalf("BYE %q", bye)
	}
	r, err := ParseSLP(m.Marshal())
	if err != nil || r.Method != "INVITE" || r.To != "carol@example.com" || r.From != "bob@example.com" || r.Branch != "{B}" ||
		r.CallID != "{C}" || r.BodyValue("SessionID") != "5" || r.CSeq != 0 {
		t.Fatalf("parsed %+v %v", r, err)
	}
	resp := newSLPResponse(r, 603, "Decline", slpSessionReq, nil)
	if resp.To != "bob@example.com" || resp.From != "carol@example.com" || resp.Branch != "{B}" || resp.CSeq != 1 {
		t.Fatalf("response %+v", resp)
	}
	if !strings.HasPrefix(string(resp.Marshal()), "MSNSLP/1.0 603 Decline\r\n") {
		t.Fatalf("response text %q", resp.Marshal())
	}
}

// TestMSNObjectSHA1C uses the check vector of the reference.
func TestMSNObjectSHA1C(t *testing.T) {
	o := MSNObject{Creator: "buddy1@hotmail.com", Size: 24539, Type: 3, Location: "TFR2C.tmp", friendlyRaw: "AAA=",
		SHA1D: "trC8SlFx2sWQxZMIBAWSEnXc8oQ="}
	if got := o.computeSHA1C(); got != "U32o6bosZzluJq82eAtMpx5dIEI=" {
		t.Fatalf("SHA1C %s", got)
	}
	n := NewMSNObject("Bob@Example.com", ObjectEmoticon, "", "Smile", []byte("data"))
	p, err := ParseMSNObject(n.XML())
	if err != nil || p != n || p.Friendly != "Smile" || p.Creator != "bob@example.com" {
		t.Fatalf("round trip %+v %v", p, err)
	}
	if EncodeMSNObject(`<a b="c/d"/>`) != "%3Ca%20b%3D%22c%2Fd%22%2F%3E" {
		t.Fatalf("encoding %s", EncodeMSNObject(`<a b="c/d"/>`))
	}
	for _, bad := range []string{"<msnobj/>", `<msnobj Creator="a@b.c" Size="0" Type="3" SHA1D="trC8SlFx2sWQxZMIBAWSEnXc8oQ="/>`,
		`<msnobj Creator="a@b.c" Size="1" Type="3" SHA1D="short"/>`, `<msnobj Creator=a@b.c/>`, "<img/>"} {
		if _, err := ParseMSNObject(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFileContext(t *testing.T) {
	c := newFileContext("résumé.pdf", 123456)
	if len(c) != 574 || binary.LittleEndian.Uint32(c) != 574 || binary.LittleEndian.Uint32(c[4:]) != 2 ||
		binary.LittleEndian.Uint32(c[570:]) != 0xFFFFFFFF {
		t.Fatalf("context % x", c[:24])
	}
	fc, err := ParseFileContext(c)
	if err != nil || fc.Size != 123456 || fc.Name != "résumé.pdf" {
		t.Fatalf("%+v %v", fc, err)
	}
	for in, want := range map[string]string{`..\..\windows\evil.exe`: "evil.exe", "/etc/passwd": "passwd", "a\x00b": "a",
		"bad\x07name\u202e.txt": "badname.txt", "..": "file", "": "file", "C:x": "Cx"} {
		if got := SanitizeFileName(decodeUTF16LE(encodeUTF16LE(in))); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
	if _, err := ParseFileContext(make([]byte, 100)); err == nil {
		t.Error("short context accepted")
	}
}

func TestParseEmoticonsBounds(t *testing.T) {
	o := NewMSNObject("bob@example.com", ObjectEmoticon, "", "", []byte("x"))
	var b strings.Builder
	b.WriteString("toolongsc\t" + o.XML() + "\t")
	b.WriteString("(a)\t<msnobj/>\t")
	for i := 0; i < 40; i++ {
		b.WriteString(":" + strconv.Itoa(i) + "\t" + o.XML() + "\t")
	}
	list := ParseEmoticons(b.String())
	if len(list) != MaxEmoticonsPerMessage || list[0].Shortcut != ":0" {
		t.Fatalf("%d emoticons, first %+v", len(list), list[0])
	}
}

// pipeNet connects engines in memory: Send delivers the payload's binary part to the engine
// of the addressee, on the sender's goroutine, like a switchboard relaying in order.
type pipeNet struct {
	mu      sync.Mutex
	engines map[string]*P2P
	// tamper, when set, may change or drop (nil) a packet on its way.
	tamper func(from, to string, bin []byte) []byte
}

func (n *pipeNet) send(from string) P2PSendFunc {
	return func(ctx context.Context, to string, payload []byte) error {
		m, err := ParseMIME(payload)
		if err != nil {
			return err
		}
		n.mu.Lock()
		e, tamper := n.engines[to], n.tamper
		n.mu.Unlock()
		bin := m.Body
		if tamper != nil {
			if bin = tamper(from, to, bin); bin == nil {
				return nil
			}
		}
		if e != nil {
			e.Deliver(from, bin)
		}
		return nil
	}
}

func newPipePair(t *testing.T, cfg P2PConfig) (*pipeNet, *P2P, *P2P) {
	n := &pipeNet{engines: map[string]*P2P{}}
	mk := func(h string) *P2P {
		c := cfg
		c.Self, c.Send = h, n.send(h)
		e := NewP2P(c)
		t.Cleanup(e.Close)
		n.engines[h] = e
		return e
	}
	return n, mk("a@x.com"), mk("b@x.com")
}

// TestP2PHostileObject: a creator that announces more than the msnobj's Size is refused at the
// first packet; one that stops sending fails the fetch with ErrTransferStalled; bytes that do
// not hash to SHA1D fail with ErrObjectMismatch. Each time the session is gone afterwards.
func TestP2PHostileObject(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, a, b := newPipePair(t, P2PConfig{AnswerTimeout: 2 * time.Second, IdleTimeout: 300 * time.Millisecond})
	data := bytes.Repeat([]byte("picture "), 500)
	obj := NewMSNObject("b@x.com", ObjectDisplayPicture, "", "", data)
	b.Publish(obj, data)
	var silent atomic.Bool
	cases := []struct {
		name   string
		tamper func(bin []byte) []byte
		want   error
	}{
		{"oversize", func(bin []byte) []byte {
			binary.LittleEndian.PutUint64(bin[16:], 1<<40)
			binary.LittleEndian.PutUint64(bin[8:], 0)
			return bin
		}, ErrObjectMismatch},
		{"stall", func(bin []byte) []byte {
			if binary.LittleEndian.Uint64(bin[8:]) > 0 {
				silent.Store(true) // the creator goes quiet, its BYE included
				return nil
			}
			return bin
		}, ErrTransferStalled},
		{"corrupt", func(bin []byte) []byte { bin[48] ^= 0xFF; return bin }, ErrObjectMismatch},
	}
	for _, tc := range cases {
		silent.Store(false)
		n.mu.Lock()
		n.tamper = func(from, to string, bin []byte) []byte {
			if from == "b@x.com" && silent.Load() {
				return nil
			}
			if from == "b@x.com" && binary.LittleEndian.Uint32(bin[28:]) == P2PFlagData {
				return tc.tamper(bin)
			}
			return bin
		}
		n.mu.Unlock()
		if _, err := a.Fetch(ctx, obj); !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
		a.mu.Lock()
		left, reasm := len(a.sessions), len(a.reasm)
		a.mu.Unlock()
		if left != 0 || reasm != 0 {
			t.Fatalf("%s: %d sessions, %d reassemblies left", tc.name, left, reasm)
		}
	}
	n.mu.Lock()
	n.tamper = nil
	n.mu.Unlock()
	got, err := a.Fetch(ctx, obj)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("clean fetch after the hostile ones: %v", err)
	}
}

// TestP2PSessionCapAndOfferTimeout: INVITEs beyond MaxSessions are declined; an offer left
// unanswered is declined after OfferTimeout.
func TestP2PSessionCapAndOfferTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offers := make(chan *FileOffer, 16)
	_, a, _ := newPipePair(t, P2PConfig{MaxSessions: 2, OfferTimeout: 200 * time.Millisecond,
		OnFileOffer: func(_ string, o *FileOffer) { offers <- o }})
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			errs <- a.SendFile(ctx, "b@x.com", OutgoingFile{Name: "f", Size: 1, Data: strings.NewReader("x")})
		}()
	}
	// Nobody answers the offers b gets, so b declines each after OfferTimeout; a's third offer,
	// beyond a's MaxSessions, fails at once.
	var declined, capped int
	for i := 0; i < 3; i++ {
		err := <-errs
		switch {
		case errors.Is(err, ErrTransferDeclined):
			declined++
		case errors.Is(err, ErrTooManyTransfers):
			capped++
		default:
			t.Fatalf("SendFile: %v", err)
		}
	}
	if declined != 2 || capped != 1 {
		t.Fatalf("declined %d, capped %d", declined, capped)
	}
	if len(offers) != 2 {
		t.Fatalf("%d offers seen", len(offers))
	}
	if err := (<-offers).Accept(ctx, nil, nil); !errors.Is(err, ErrOfferAnswered) {
		t.Fatalf("Accept after the timeout: %v", err)
	}
}

// TestP2PFileStall: a sender that stops half way leaves the receiver with ErrTransferStalled
// after IdleTimeout, and both engines without sessions.
func TestP2PFileStall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offers := make(chan *FileOffer, 1)
	n, a, b := newPipePair(t, P2PConfig{IdleTimeout: 300 * time.Millisecond, OnFileOffer: func(_ string, o *FileOffer) { offers <- o }})
	var silent atomic.Bool
	n.tamper = func(from, to string, bin []byte) []byte {
		if from == "a@x.com" && binary.LittleEndian.Uint64(bin[8:]) >= 5*P2PMaxChunk {
			silent.Store(true)
		}
		if from == "a@x.com" && silent.Load() {
			return nil
		}
		return bin
	}
	errc := make(chan error, 1)
	go func() {
		errc <- a.SendFile(ctx, "b@x.com", OutgoingFile{Name: "f", Size: 20 * P2PMaxChunk, Data: bytes.NewReader(make([]byte, 20*P2PMaxChunk))})
	}()
	o := <-offers
	var got int64
	if err := o.Accept(ctx, io.Discard, func(n int64) { got = n }); !errors.Is(err, ErrTransferStalled) {
		t.Fatalf("Accept: %v", err)
	}
	if got != 5*P2PMaxChunk {
		t.Fatalf("received %d before the stall", got)
	}
	if err := <-errc; !errors.Is(err, ErrTransferStalled) && !errors.Is(err, ErrTransferCanceled) {
		t.Fatalf("SendFile: %v", err)
	}
	for _, e := range []*P2P{a, b} {
		e.mu.Lock()
		left := len(e.sessions) + len(e.calls) + len(e.acks)
		e.mu.Unlock()
		if left != 0 {
			t.Fatalf("%s: %d sessions, calls or ack waiters left", e.cfg.Self, left)
		}
	}
}

func TestFileOfferZeroValue(t *testing.T) {
	var o FileOffer
	if err := o.Accept(context.Background(), io.Discard, nil); !errors.Is(err, ErrOfferAnswered) {
		t.Fatalf("Accept: %v", err)
	}
	if err := o.Decline(); !errors.Is(err, ErrOfferAnswered) || o.From() != "" {
		t.Fatalf("Decline: %v", err)
	}
}

// TestP2POfferCanceledBeforeAnswer: the sender's BYE before Accept makes Accept return
// ErrTransferCanceled.
func TestP2POfferCanceledBeforeAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offers := make(chan *FileOffer, 1)
	_, a, _ := newPipePair(t, P2PConfig{OnFileOffer: func(_ string, o *FileOffer) { offers <- o }})
	sendCtx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		errc <- a.SendFile(sendCtx, "b@x.com", OutgoingFile{Name: "f", Size: 1, Data: strings.NewReader("x")})
	}()
	o := <-offers
	stop()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("SendFile: %v", err)
	}
	// Whether the BYE arrives before Accept or after it, Accept reports the cancellation.
	if err := o.Accept(ctx, io.Discard, nil); !errors.Is(err, ErrTransferCanceled) {
		t.Fatalf("Accept: %v", err)
	}
}

// TestP2PReceiverCancels: the receiver's ctx ends half way; its BYE stops the sender, which
// returns ErrTransferCanceled without waiting for an idle timeout.
func TestP2PReceiverCancels(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offers := make(chan *FileOffer, 1)
	// A long idle timeout: the test fails by deadline if the sender only stops on it.
	_, a, _ := newPipePair(t, P2PConfig{IdleTimeout: time.Hour, OnFileOffer: func(_ string, o *FileOffer) { offers <- o }})
	r := &pausingReader{n: 10 * P2PMaxChunk, release: make(chan struct{})}
	errc := make(chan error, 1)
	go func() { errc <- a.SendFile(ctx, "b@x.com", OutgoingFile{Name: "f", Size: 100 * P2PMaxChunk, Data: r}) }()
	o := <-offers
	accCtx, stop := context.WithCancel(ctx)
	acc := make(chan error, 1)
	var got atomic.Int64
	go func() { acc <- o.Accept(accCtx, io.Discard, func(n int64) { got.Store(n) }) }()
	for i := 0; i < 2000 && got.Load() < 5*P2PMaxChunk; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if err := <-acc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Accept: %v", err)
	}
	close(r.release) // the sender goes on reading, then finds its session ended
	if err := <-errc; !errors.Is(err, ErrTransferCanceled) {
		t.Fatalf("SendFile: %v, want ErrTransferCanceled", err)
	}
}

// pausingReader returns n zero bytes, then blocks until release is closed, then returns zeros.
type pausingReader struct {
	n       int
	release chan struct{}
}

func (r *pausingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		<-r.release
	} else {
		p = p[:min(len(p), r.n)]
		r.n -= len(p)
	}
	clear(p)
	return len(p), nil
}

// TestP2PByeRightAfterData: a sender that closes with BYE right behind its last data packet
// (some clients do) still leaves the receiver with the whole file and no error.
func TestP2PByeRightAfterData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offers := make(chan *FileOffer, 1)
	n, a, b := newPipePair(t, P2PConfig{OnFileOffer: func(_ string, o *FileOffer) { offers <- o }})
	var callID atomic.Value
	n.tamper = func(from, to string, bin []byte) []byte {
		if from != "a@x.com" {
			return bin
		}
		p, err := ParseP2PBinary(bin)
		if err != nil {
			return bin
		}
		h := p.Header
		if h.SessionID == 0 && h.Flags == 0 {
			if m, err := ParseSLP(p.Data); err == nil && m.Method == "INVITE" {
				callID.Store(m.CallID)
			}
		}
		if h.Flags == P2PFlagFileData && h.Offset+uint64(h.MessageSize) == h.TotalSize {
			bye := (&SLPMessage{Method: "BYE", To: "b@x.com", From: "a@x.com", Branch: newGUID(), CallID: callID.Load().(string),
				ContentType: slpSessionClose}).Marshal()
			m, _ := ParseMIME(NewP2PMessage("b@x.com", P2PHeader{Identifier: 1, TotalSize: uint64(len(bye)), AckID: 1}, bye, 0))
			b.Deliver("a@x.com", bin)
			b.Deliver("a@x.com", m.Body)
			return nil
		}
		return bin
	}
	data := bytes.Repeat([]byte("0123456789"), 300)
	for i := 0; i < 20; i++ {
		errc := make(chan error, 1)
		go func() {
			errc <- a.SendFile(ctx, "b@x.com", OutgoingFile{Name: "f", Size: int64(len(data)), Data: bytes.NewReader(data)})
		}()
		o := <-offers
		var buf bytes.Buffer
		if err := o.Accept(ctx, &buf, nil); err != nil || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("transfer %d: Accept %v, %d bytes", i, err, buf.Len())
		}
		<-errc // the sender may see its ACK or the BYE first; either way it returns
	}
}
