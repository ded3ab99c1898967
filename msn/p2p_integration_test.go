package msn_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// p2pPeer is a logged-in client and its events.
type p2pPeer struct {
	c      *msn.Client
	events chan msn.Event
}

// loginPeer logs handle into srv with cfg; events go to a buffered channel.
func loginPeer(t *testing.T, ctx context.Context, srv *msntest.Server, handle, pw string, cfg msn.Config) *p2pPeer {
	t.Helper()
	cfg.Server, cfg.NexusURL = srv.NSAddr(), srv.HTTPSNexusURL()
	cfg.PingInterval = time.Hour
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}}
	p := &p2pPeer{events: make(chan msn.Event, 1024)}
	c, err := msn.NewClient(cfg, handle, pw, func(ev msn.Event) {
		select {
		case p.events <- ev:
		default:
			t.Errorf("%s: event channel full, dropped %T", handle, ev)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Login(ctx); err != nil {
		t.Fatalf("%s: Login: %v", handle, err)
	}
	p.c = c
	return p
}

// next returns the next event of type T matching match, failing the test when ctx ends first.
func next[T msn.Event](t *testing.T, ctx context.Context, p *p2pPeer, match func(T) bool) T {
	t.Helper()
	for {
		select {
		case ev := <-p.events:
			if e, ok := ev.(T); ok && (match == nil || match(e)) {
				return e
			}
		case <-ctx.Done():
			var zero T
			t.Fatalf("no %T before the deadline", zero)
			return zero
		}
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// alicePlusBob logs alice and bob (friends) in; bob with bobCfg.
func alicePlusBob(t *testing.T, ctx context.Context, aliceCfg, bobCfg msn.Config) (*msntest.Server, *p2pPeer, *p2pPeer) {
	srv := startServer(t, aliceAndBob(""))
	bob := loginPeer(t, ctx, srv, "bob@example.com", "bobpw", bobCfg)
	alice := loginPeer(t, ctx, srv, "alice@example.com", "alicepw", aliceCfg)
	return srv, alice, bob
}

// TestP2PDisplayPictureClientToClient: bob's picture, set in Config, is in the presence alice
// sees at login, and alice fetches exactly its bytes; an object bob never published is declined.
func TestP2PDisplayPictureClientToClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pic := randomBytes(5000)
	_, alice, _ := alicePlusBob(t, ctx, msn.Config{}, msn.Config{DisplayPicture: pic})
	pc := next(t, ctx, alice, func(e *msn.PresenceChanged) bool { return e.Handle == "bob@example.com" })
	obj, err := msn.ParseMSNObject(pc.MSNObject)
	if err != nil {
		t.Fatalf("bob's presence msnobj %q: %v", pc.MSNObject, err)
	}
	if obj.Creator != "bob@example.com" || obj.Size != int64(len(pic)) || obj.Type != msn.ObjectDisplayPicture {
		t.Fatalf("msnobj %+v", obj)
	}
	got, err := alice.c.FetchObject(ctx, obj)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pic) {
		t.Fatalf("fetched %d bytes, not the picture", len(got))
	}
	other := msn.NewMSNObject("bob@example.com", msn.ObjectEmoticon, "0", "x", []byte("not published"))
	if _, err := alice.c.FetchObject(ctx, other); !errors.Is(err, msn.ErrTransferDeclined) {
		t.Fatalf("unpublished object: %v, want ErrTransferDeclined", err)
	}
	// Again after the decline: the session state was cleaned up.
	if got, err = alice.c.FetchObject(ctx, obj); err != nil || !bytes.Equal(got, pic) {
		t.Fatalf("second fetch: %v", err)
	}
}

// TestP2PSetDisplayPicture: a picture set while online reaches the contact through the status
// bounce, and is served.
func TestP2PSetDisplayPicture(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, alice, bob := alicePlusBob(t, ctx, msn.Config{}, msn.Config{})
	pic := randomBytes(3000)
	if err := bob.c.SetDisplayPicture(ctx, pic); err != nil {
		t.Fatal(err)
	}
	pc := next(t, ctx, alice, func(e *msn.PresenceChanged) bool {
		return e.Handle == "bob@example.com" && e.Status == msn.StatusOnline && e.MSNObject != ""
	})
	obj, err := msn.ParseMSNObject(pc.MSNObject)
	if err != nil {
		t.Fatal(err)
	}
	got, err := alice.c.FetchObject(ctx, obj)
	if err != nil || !bytes.Equal(got, pic) {
		t.Fatalf("fetch: %v", err)
	}
}

// TestP2PFileClientToClient sends a file of several hundred packets and checks the bytes, the
// progress reports and the offer's name and size.
func TestP2PFileClientToClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, alice, bob := alicePlusBob(t, ctx, msn.Config{}, msn.Config{})
	data := randomBytes(300_000)
	var sent atomic.Int64
	errc := make(chan error, 1)
	go func() {
		errc <- alice.c.SendFile(ctx, "bob@example.com", msn.OutgoingFile{Name: `C:\secret\..\photo.jpg`, Size: int64(len(data)),
			Data: bytes.NewReader(data), Progress: func(n int64) { sent.Store(n) }})
	}()
	off := next[*msn.FileOffered](t, ctx, bob, nil)
	if off.From != "alice@example.com" || off.Name != "photo.jpg" || off.Size != int64(len(data)) {
		t.Fatalf("offer %+v", off)
	}
	var buf bytes.Buffer
	var last int64
	if err := off.Offer.Accept(ctx, &buf, func(n int64) { last = n }); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("SendFile: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("received %d bytes, not the file", buf.Len())
	}
	if last != int64(len(data)) || sent.Load() != int64(len(data)) {
		t.Fatalf("progress: received %d, sent %d", last, sent.Load())
	}
	if err := off.Offer.Decline(); !errors.Is(err, msn.ErrOfferAnswered) {
		t.Fatalf("Decline after Accept: %v", err)
	}
}

// TestP2PFileDeclineAndCaps: a declined offer fails SendFile with ErrTransferDeclined; an offer
// over the receiver's cap is refused by Accept and declined.
func TestP2PFileDeclineAndCaps(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, alice, bob := alicePlusBob(t, ctx, msn.Config{}, msn.Config{MaxFileSize: 1000})
	send := func(n int) chan error {
		errc := make(chan error, 1)
		go func() {
			errc <- alice.c.SendFile(ctx, "bob@example.com", msn.OutgoingFile{Name: "a.txt", Size: int64(n), Data: bytes.NewReader(make([]byte, n))})
		}()
		return errc
	}
	errc := send(10)
	off := next[*msn.FileOffered](t, ctx, bob, nil)
	if err := off.Offer.Decline(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, msn.ErrTransferDeclined) {
		t.Fatalf("SendFile after decline: %v", err)
	}
	errc = send(5000)
	off = next[*msn.FileOffered](t, ctx, bob, nil)
	if err := off.Offer.Accept(ctx, io.Discard, nil); !errors.Is(err, msn.ErrTransferTooLarge) {
		t.Fatalf("Accept over the cap: %v", err)
	}
	if err := <-errc; !errors.Is(err, msn.ErrTransferDeclined) {
		t.Fatalf("SendFile over the cap: %v", err)
	}
}

// stallingReader returns n bytes, then blocks until release is closed, then returns zeros.
type stallingReader struct {
	n       int
	release chan struct{}
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		<-r.release
		clear(p)
		return len(p), nil
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

// TestP2PFileCancel: the sender's ctx ends half way; the receiver's Accept ends with
// ErrTransferCanceled, and a later transfer between the two works.
func TestP2PFileCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, alice, bob := alicePlusBob(t, ctx, msn.Config{}, msn.Config{})
	sendCtx, stop := context.WithCancel(ctx)
	r := &stallingReader{n: 20_000, release: make(chan struct{})}
	errc := make(chan error, 1)
	var sent atomic.Int64
	go func() {
		errc <- alice.c.SendFile(sendCtx, "bob@example.com", msn.OutgoingFile{Name: "big.bin", Size: 100_000, Data: r,
			Progress: func(n int64) { sent.Store(n) }})
	}()
	off := next[*msn.FileOffered](t, ctx, bob, nil)
	acc := make(chan error, 1)
	var got atomic.Int64
	go func() { acc <- off.Offer.Accept(ctx, io.Discard, func(n int64) { got.Store(n) }) }()
	for i := 0; i < 2000 && got.Load() < 10_000; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	close(r.release)
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("SendFile: %v, want context.Canceled", err)
	}
	if err := <-acc; !errors.Is(err, msn.ErrTransferCanceled) {
		t.Fatalf("Accept: %v, want ErrTransferCanceled (received %d)", err, got.Load())
	}
	// The pair still works.
	errc = make(chan error, 1)
	go func() {
		errc <- alice.c.SendFile(ctx, "bob@example.com", msn.OutgoingFile{Name: "b", Size: 3, Data: bytes.NewReader([]byte("abc"))})
	}()
	off = next[*msn.FileOffered](t, ctx, bob, nil)
	var buf bytes.Buffer
	if err := off.Offer.Accept(ctx, &buf, nil); err != nil || buf.String() != "abc" {
		t.Fatalf("second transfer: %v %q", err, buf.String())
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// BenchmarkP2PFile moves 1 MB as a file from one client through msntest's switchboard to
// another (offer, accept, data, ACK); SetBytes makes the MB/s column the transfer rate.
func BenchmarkP2PFile(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	srv := startServer(b, aliceAndBob(""))
	mk := func(handle, pw string, h msn.Handler) *msn.Client {
		cfg := msn.Config{Server: srv.NSAddr(), NexusURL: srv.HTTPSNexusURL(), PingInterval: time.Hour,
			HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}}}
		c, err := msn.NewClient(cfg, handle, pw, h)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		if err := c.Login(ctx); err != nil {
			b.Fatal(err)
		}
		return c
	}
	offers := make(chan *msn.FileOffer, 1)
	mk("bob@example.com", "bobpw", func(ev msn.Event) {
		if o, ok := ev.(*msn.FileOffered); ok {
			offers <- o.Offer
		}
	})
	alice := mk("alice@example.com", "alicepw", nil)
	data := randomBytes(1 << 20)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		errc := make(chan error, 1)
		go func() {
			errc <- alice.SendFile(ctx, "bob@example.com", msn.OutgoingFile{Name: "bench", Size: int64(len(data)), Data: bytes.NewReader(data)})
		}()
		var o *msn.FileOffer
		select {
		case o = <-offers:
		case <-ctx.Done():
			b.Fatal("no offer")
		}
		if err := o.Accept(ctx, io.Discard, nil); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
}

// TestP2PEmoticonsAndWinkClientToClient: alice publishes an emoticon and a wink and sends
// both; bob gets them with the next text and as WinkReceived, and fetches their data.
func TestP2PEmoticonsAndWinkClientToClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, alice, bob := alicePlusBob(t, ctx, msn.Config{}, msn.Config{})
	img, cab := randomBytes(1500), append([]byte("MSCF"), randomBytes(2000)...)
	emo := alice.c.PublishObject(msn.ObjectEmoticon, "", img)
	wink := alice.c.PublishObject(msn.ObjectWink, "Wave", cab)
	if err := alice.c.SendEmoticons(ctx, "bob@example.com", []msn.Emoticon{{Shortcut: ":wave:", Object: emo}}); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.SendText(ctx, "bob@example.com", "hi :wave:", nil); err != nil {
		t.Fatal(err)
	}
	m := next[*msn.MessageReceived](t, ctx, bob, nil)
	if len(m.Emoticons) != 1 || m.Emoticons[0].Shortcut != ":wave:" || m.Emoticons[0].Object.SHA1D != emo.SHA1D {
		t.Fatalf("message %+v", m)
	}
	if got, err := bob.c.FetchObject(ctx, m.Emoticons[0].Object); err != nil || !bytes.Equal(got, img) {
		t.Fatalf("emoticon fetch: %v", err)
	}
	if err := alice.c.SendWink(ctx, "bob@example.com", wink); err != nil {
		t.Fatal(err)
	}
	w := next[*msn.WinkReceived](t, ctx, bob, nil)
	if w.Object.Friendly != "Wave" {
		t.Fatalf("wink %+v", w.Object)
	}
	if got, err := bob.c.FetchObject(ctx, w.Object); err != nil || !bytes.Equal(got, cab) {
		t.Fatalf("wink fetch: %v", err)
	}
	if err := alice.c.SendEmoticons(ctx, "bob@example.com", []msn.Emoticon{{Shortcut: "toolong!!", Object: emo}}); !errors.Is(err, msn.ErrInvalidArgument) {
		t.Fatalf("long shortcut: %v", err)
	}
}

// blockingWriter accepts n bytes, then blocks until release is closed.
type blockingWriter struct {
	n       int
	reached chan struct{}
	release chan struct{}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	if w.n <= 0 {
		<-w.release
		return len(p), nil
	}
	w.n -= len(p)
	if w.n <= 0 {
		close(w.reached)
	}
	return len(p), nil
}

// TestP2PCloseDuringTransfer: the receiver's Close in the middle of a transfer returns (its
// switchboard reader, blocked on a full queue behind a stuck writer, is let go), its Accept ends
// with ErrClosed, and the sender's SendFile fails instead of hanging.
func TestP2PCloseDuringTransfer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, alice, bob := alicePlusBob(t, ctx, msn.Config{}, msn.Config{})
	data := randomBytes(2 << 20)
	errc := make(chan error, 1)
	go func() {
		errc <- alice.c.SendFile(ctx, "bob@example.com", msn.OutgoingFile{Name: "big", Size: int64(len(data)), Data: bytes.NewReader(data)})
	}()
	off := next[*msn.FileOffered](t, ctx, bob, nil)
	w := &blockingWriter{n: 100_000, reached: make(chan struct{}), release: make(chan struct{})}
	acc := make(chan error, 1)
	go func() { acc <- off.Offer.Accept(ctx, w, nil) }()
	select {
	case <-w.reached:
	case <-ctx.Done():
		t.Fatal("transfer did not start")
	}
	closed := make(chan struct{})
	go func() { _ = bob.c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("Close hung during a transfer")
	}
	close(w.release)
	if err := <-acc; !errors.Is(err, msn.ErrClosed) {
		t.Fatalf("Accept: %v, want ErrClosed", err)
	}
	if err := <-errc; err == nil {
		t.Fatal("SendFile succeeded to a closed client")
	}
}

// TestP2PDisplayPictureCap: a picture over MaxObjectSize is not published at login (the login
// succeeds, contacts see no msnobj) and is refused by SetDisplayPicture.
func TestP2PDisplayPictureCap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, alice, bob := alicePlusBob(t, ctx, msn.Config{}, msn.Config{MaxObjectSize: 10, DisplayPicture: make([]byte, 11)})
	if pc := next(t, ctx, alice, func(e *msn.PresenceChanged) bool { return e.Handle == "bob@example.com" }); pc.MSNObject != "" {
		t.Fatalf("oversized picture announced: %q", pc.MSNObject)
	}
	if err := bob.c.SetDisplayPicture(ctx, make([]byte, 11)); !errors.Is(err, msn.ErrTransferTooLarge) {
		t.Fatalf("SetDisplayPicture: %v", err)
	}
}
