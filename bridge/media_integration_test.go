package bridge_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"github.com/msn-bridge/msn-bridge/internal/testenv/gated"
	"image"
	"image/png"
	"io"
	"net/url"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/bridge/bridgetest"
	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// Media through the whole path: msntest's bots speak real MSNP2P over the switchboard with the
// msn client the core runs, over loopback.

// fileFrontend is a Recorder that reads every File while it is delivered (its content may
// only be read then) and keeps the SHA-256 of each by event id.
type fileFrontend struct {
	*bridgetest.Recorder
	mu     sync.Mutex
	hashes map[string][32]byte
	errs   []error
}

func newFileFrontend(name string) *fileFrontend {
	return &fileFrontend{Recorder: bridgetest.NewRecorder(name), hashes: map[string][32]byte{}}
}

func (f *fileFrontend) HandleEvent(ctx context.Context, acc *bridge.Account, evt bridge.Event) error {
	if file, ok := evt.(bridge.File); ok {
		h := sha256.New()
		rc, err := file.Open()
		if err == nil {
			_, err = io.Copy(h, rc)
			rc.Close()
		}
		f.mu.Lock()
		if err != nil {
			f.errs = append(f.errs, err)
		} else {
			f.hashes[file.ID] = [32]byte(h.Sum(nil))
		}
		f.mu.Unlock()
	}
	return f.Recorder.HandleEvent(ctx, acc, evt)
}

// hash returns the SHA-256 of the File id as read during its delivery.
func (f *fileFrontend) hash(t *testing.T, id string) [32]byte {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) > 0 {
		t.Fatalf("%s could not read a file: %v", f.Name(), f.errs)
	}
	h, ok := f.hashes[id]
	if !ok {
		t.Fatalf("%s did not read the file %s", f.Name(), id)
	}
	return h
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// noisyPNG is a w×h PNG of random pixels (so that it does not compress to nothing).
func noisyPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	copy(img.Pix, randBytes(t, len(img.Pix)))
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// mediaConfig is the env's core configuration with a spool directory the test can watch, a
// file cap of 2 MiB and a short P2P idle timeout (a peer that stops half way).
func (e *env) mediaConfig() (bridge.Config, string) {
	cfg := e.config()
	spool := e.t.TempDir()
	cfg.Media.SpoolDir = spool
	cfg.Media.MaxFileSize = 2 << 20
	cfg.MSN.P2PIdleTimeout = 2 * time.Second
	return cfg, spool
}

// spoolFiles returns the names in the spool directory.
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func waitSpoolEmpty(t *testing.T, dir string) {
	t.Helper()
	waitUntil(t, "the spool directory emptied", func() bool { return len(spoolFiles(t, dir)) == 0 })
}

// sbDials counts the switchboards alice's client asked for (XFR SB), after event seq.
func (e *env) sbDials(after uint64) int {
	n := 0
	for _, ev := range e.srv.EventsFor(alice) {
		if ev.Seq > after && ev.Name == "XFR" && len(ev.Args) > 1 && ev.Args[1] == "SB" {
			n++
		}
	}
	return n
}

func (e *env) lastSeq() uint64 {
	evs := e.srv.Events()
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// announcedPicture returns the msnobj alice's latest CHG announced (zero when none).
func (e *env) announcedPicture(t *testing.T) msn.MSNObject {
	t.Helper()
	var enc string
	for _, ev := range e.srv.EventsFor(alice) {
		if ev.Server == "NS" && ev.Name == "CHG" {
			enc = ""
			if len(ev.Args) > 3 {
				enc = ev.Args[3]
			}
		}
	}
	if enc == "" {
		return msn.MSNObject{}
	}
	xml, err := url.PathUnescape(enc)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := msn.ParseMSNObject(xml)
	if err != nil {
		t.Fatalf("alice's CHG msnobj %q: %v", xml, err)
	}
	return obj
}

// TestMediaIntegrationDisplayPictures: a contact's display picture is fetched from the bot with
// the exact bytes, cached, and shown again after a restart without any fetch; the owner's
// picture becomes a 96×96 PNG announced in CHG (again at the next login) that a bot fetches
// byte for byte.
func TestMediaIntegrationDisplayPictures(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	bobPic := noisyPNG(t, 64, 48)
	obj, err := e.srv.SetBotDisplayPicture(bob, bobPic)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := e.mediaConfig()
	fe := bridgetest.NewRecorder("matrix")
	core := e.core(cfg, fe)
	acc := e.login(core, matrixOwner)

	// Fetched at login: shown by ContactAvatar, or (when fetched before the frontend was
	// attached) by the snapshot's Contact.Avatar, whose picture Core.Avatar returns.
	waitUntil(t, "bob's display picture shown", func() bool {
		for _, ca := range ofType[bridge.ContactAvatar](fe) {
			if ca.Handle == bob {
				if ca.Avatar != obj.SHA1D || !bytes.Equal(ca.Data, bobPic) || ca.MIME != "image/png" {
					t.Fatalf("ContactAvatar %s %s, %d bytes; want %s, the %d bytes bob published", ca.Avatar, ca.MIME, len(ca.Data), obj.SHA1D, len(bobPic))
				}
				return true
			}
		}
		return view(fe)[bob].Avatar == obj.SHA1D
	})
	if c, _ := acc.Contact(bob); c.Avatar != obj.SHA1D {
		t.Fatalf("Contact.Avatar %q, want %q", c.Avatar, obj.SHA1D)
	}
	if data, _, err := core.Avatar(ctx, obj.SHA1D); err != nil || !bytes.Equal(data, bobPic) {
		t.Fatalf("Core.Avatar: %v, %d bytes", err, len(data))
	}

	// The owner's picture: any image becomes a 96×96 PNG, announced and served.
	if err := acc.SetAvatar(ctx, "matrix", noisyPNG(t, 300, 200)); err != nil {
		t.Fatal(err)
	}
	own := e.announcedPicture(t)
	if own.SHA1D == "" || own.Type != msn.ObjectDisplayPicture {
		t.Fatalf("no display picture announced after SetAvatar: %+v", own)
	}
	got, err := e.srv.BotFetchObject(ctx, bob, own)
	if err != nil {
		t.Fatalf("bob's fetch of alice's picture: %v", err)
	}
	if want := msn.NewMSNObject(alice, msn.ObjectDisplayPicture, "0", "", got); want.SHA1D != own.SHA1D {
		t.Fatalf("fetched picture has SHA1D %s, announced %s", want.SHA1D, own.SHA1D)
	}
	cfgImg, format, err := image.DecodeConfig(bytes.NewReader(got))
	if err != nil || format != "png" || cfgImg.Width != 96 || cfgImg.Height != 96 {
		t.Fatalf("alice's display picture is %s %dx%d (%v), want a 96x96 PNG", format, cfgImg.Width, cfgImg.Height, err)
	}

	// A restart: the cached picture is shown again, nothing fetched; the owner's picture is
	// announced by the first CHG.
	stopCore(t, core)
	waitUntil(t, "logged out of msntest", func() bool { return !e.srv.LoggedIn(alice) })
	mark := e.lastSeq()
	fe2 := bridgetest.NewRecorder("matrix")
	core2 := e.core(cfg, fe2)
	e.waitServer("alice back online", func() bool { return e.srv.Online(alice) })
	ca := waitEvent(t, fe2, "bob's picture after the restart", func(c bridge.ContactAvatar) bool { return c.Handle == bob && c.Avatar != "" })
	if ca.Avatar != obj.SHA1D || !bytes.Equal(ca.Data, bobPic) {
		t.Fatalf("after restart: ContactAvatar %s, %d bytes", ca.Avatar, len(ca.Data))
	}
	if again := e.announcedPicture(t); again.SHA1D != own.SHA1D {
		t.Fatalf("after restart alice announces %q, want %q", again.SHA1D, own.SHA1D)
	}
	// Give a fetch, had one been started, the time to ask for a switchboard; then there is
	// none (bob has nothing else to talk to alice about).
	if _, err := core2.Account(alice).SendText(ctx, "matrix", bridge.DirectChat(echo), "sync", bridge.Format{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, fe2, "echo of sync", func(m bridge.Message) bool { return m.Text == "sync" })
	if n := e.sbDials(mark); n != 1 {
		t.Fatalf("%d switchboards asked for after the restart, want only the one to echo: the picture was fetched again", n)
	}
}

// TestMediaIntegrationFilesFromContact: a bot's file arrives as File with the same bytes and its
// spool file goes once delivered; an oversize one is declined (FileFailed too_large); one the
// bot cancels half way, and one where the bot stops half way, end as FileFailed with the spool
// removed and the transfer slots given back.
func TestMediaIntegrationFilesFromContact(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	cfg, spool := e.mediaConfig()
	fe := newFileFrontend("matrix")
	core := e.core(cfg, fe)
	e.login(core, matrixOwner)

	data := randBytes(t, 300_000)
	if err := e.srv.BotSendFile(ctx, bob, alice, "../report.pdf", data); err != nil {
		t.Fatalf("BotSendFile: %v", err)
	}
	f := waitEvent(t, fe.Recorder, "bob's file", func(f bridge.File) bool { return f.Sender == bob })
	if f.Name != "report.pdf" || f.Size != int64(len(data)) || f.Chat != bridge.DirectChat(bob) || f.FromMe {
		t.Fatalf("File %+v", f)
	}
	if fe.hash(t, f.ID) != sha256.Sum256(data) {
		t.Fatal("the File's content is not what bob sent")
	}
	waitSpoolEmpty(t, spool)

	// Over the 2 MiB cap: declined at the offer.
	err := e.srv.BotSendFile(ctx, bob, alice, "huge.bin", randBytes(t, 3<<20))
	if !errors.Is(err, msn.ErrTransferDeclined) {
		t.Fatalf("oversize BotSendFile: %v, want declined", err)
	}
	ff := waitEvent(t, fe.Recorder, "oversize refused", func(f bridge.FileFailed) bool { return f.Name == "huge.bin" })
	if ff.Reason != bridge.FailureTooLarge || ff.Sender != bob || ff.Size != 3<<20 {
		t.Fatalf("FileFailed %+v", ff)
	}

	// Half way: the bot sends 100 KB, then its reader blocks.
	halfWay := func(name string, then func(cancel context.CancelFunc)) error {
		r := &gated.Reader{Data: randBytes(t, 1<<20), Gate: 100_000, Release: make(chan struct{})}
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- e.srv.BotSendFileFrom(sctx, bob, alice, name, 1<<20, r) }()
		waitUntil(t, name+" half way in the spool", func() bool {
			for _, n := range spoolFiles(t, spool) {
				if st, err := os.Stat(spool + "/" + n); err == nil && st.Size() >= 50_000 {
					return true
				}
			}
			return false
		})
		then(cancel)
		close(r.Release)
		return <-errc
	}
	if err := halfWay("cancelled.bin", func(cancel context.CancelFunc) { cancel() }); !errors.Is(err, context.Canceled) {
		t.Fatalf("bot's cancelled send: %v", err)
	}
	ff = waitEvent(t, fe.Recorder, "cancelled file", func(f bridge.FileFailed) bool { return f.Name == "cancelled.bin" })
	if ff.Reason != bridge.FailureCanceled {
		t.Fatalf("cancelled: FileFailed %s (%v), want canceled", ff.Reason, ff.Err)
	}
	waitSpoolEmpty(t, spool)

	// The bot stops: alice's side gives up after the P2P idle timeout (then the bot is
	// stopped for good).
	_ = halfWay("stalled.bin", func(cancel context.CancelFunc) {
		ff = waitEvent(t, fe.Recorder, "stalled file", func(f bridge.FileFailed) bool { return f.Name == "stalled.bin" })
		cancel()
	})
	if ff.Reason != bridge.FailureTimeout {
		t.Fatalf("stalled: FileFailed %s (%v), want timeout", ff.Reason, ff.Err)
	}
	waitSpoolEmpty(t, spool)

	// Every slot was given back (two per account): two more files arrive.
	for i := range 2 {
		small := randBytes(t, 5000+i)
		if err := e.srv.BotSendFile(ctx, bob, alice, "after.bin", small); err != nil {
			t.Fatalf("file %d after the failures: %v", i, err)
		}
		f := waitEvent(t, fe.Recorder, "a file after the failures", func(f bridge.File) bool { return f.Size == int64(len(small)) })
		if fe.hash(t, f.ID) != sha256.Sum256(small) {
			t.Fatal("a file after the failures is not what bob sent")
		}
	}
	waitSpoolEmpty(t, spool)

	// A transfer under way at shutdown is cancelled, and Stop waits for it: no media goroutine
	// outlives the core.
	r := &gated.Reader{Data: randBytes(t, 1<<20), Gate: 100_000, Release: make(chan struct{})}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = e.srv.BotSendFileFrom(sctx, bob, alice, "at-stop.bin", 1<<20, r) }()
	waitUntil(t, "at-stop.bin under way", func() bool { return len(spoolFiles(t, spool)) > 0 })
	stopCore(t, core)
	if stacks := goroutines(); bytes.Contains(stacks, []byte("bridge.(*Account).receiveFile")) {
		t.Fatalf("a file transfer outlived Stop:\n%s", stacks)
	}
	if n := len(spoolFiles(t, spool)); n != 0 {
		t.Fatalf("%d spool files left after Stop", n)
	}
	cancel()
	close(r.Release)
}

// goroutines returns the stacks of every goroutine.
func goroutines() []byte {
	buf := make([]byte, 1<<20)
	return buf[:runtime.Stack(buf, true)]
}

// TestMediaIntegrationSendFile: the owner's file reaches the bot byte for byte and is shown,
// readable, on the other frontend; a declining bot gives FailureDeclined; an oversize file is
// refused before any offer; a send cancelled half way, and one to a bot that stops answering,
// fail as *SendError with the spool removed.
func TestMediaIntegrationSendFile(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	cfg, spool := e.mediaConfig()
	mx, dc := newFileFrontend("matrix"), newFileFrontend("discord")
	core := e.core(cfg, mx, dc)
	acc := e.login(core, matrixOwner)
	code, _, err := core.IssueLinkCode(ctx, alice, matrixOwner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.RedeemLinkCode(ctx, code, discordOwner); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.SetBotAcceptFiles(bob, true); err != nil {
		t.Fatal(err)
	}
	data := randBytes(t, 250_000)
	id, err := acc.SendFile(ctx, "matrix", bridge.DirectChat(bob), bridge.OutgoingFile{Name: "photo.jpg", Size: int64(len(data)), Data: bytes.NewReader(data)})
	if err != nil {
		t.Fatalf("SendFile: %v", err)
	}
	bf, err := e.srv.WaitBotFile(ctx, bob, 1)
	if err != nil {
		t.Fatal(err)
	}
	if bf.Err != nil || !bf.Accepted || bf.From != alice || bf.Name != "photo.jpg" || !bytes.Equal(bf.Data, data) {
		t.Fatalf("bob got %q from %s, %d bytes, %v", bf.Name, bf.From, len(bf.Data), bf.Err)
	}
	f := waitEvent(t, dc.Recorder, "the file on discord", func(f bridge.File) bool { return f.ID == id })
	if !f.FromMe || f.Origin != "matrix" || f.Sender != alice || dc.hash(t, id) != sha256.Sum256(data) {
		t.Fatalf("discord shown %+v", f)
	}
	if len(ofType[bridge.File](mx.Recorder)) != 0 {
		t.Fatal("the file was echoed to the frontend that sent it")
	}
	waitSpoolEmpty(t, spool)

	var se *bridge.SendError
	if err := e.srv.SetBotAcceptFiles(bob, false); err != nil {
		t.Fatal(err)
	}
	_, err = acc.SendFile(ctx, "matrix", bridge.DirectChat(bob), bridge.OutgoingFile{Name: "no.txt", Size: 5, Data: bytes.NewReader([]byte("12345"))})
	if !errors.As(err, &se) || se.Reason != bridge.FailureDeclined {
		t.Fatalf("SendFile to a declining bot: %v", err)
	}
	if bf, err := e.srv.WaitBotFile(ctx, bob, 2); err != nil || bf.Accepted || bf.Name != "no.txt" {
		t.Fatalf("bob's record of the declined file: %+v, %v", bf, err)
	}

	big := int64(3 << 20)
	_, err = acc.SendFile(ctx, "matrix", bridge.DirectChat(bob), bridge.OutgoingFile{Name: "big.iso", Size: big, Data: io.LimitReader(zeroReader{}, big)})
	if !errors.As(err, &se) || se.Reason != bridge.FailureTooLarge {
		t.Fatalf("oversize SendFile: %v", err)
	}
	if n := len(e.srv.BotFiles(bob)); n != 2 {
		t.Fatalf("bob was offered %d files, want 2: the oversize one reached him", n)
	}

	// Cancelled by the owner half way: the bot sees the transfer cancelled.
	if err := e.srv.SetBotAcceptFiles(bob, true); err != nil {
		t.Fatal(err)
	}
	r := &gated.Reader{Data: randBytes(t, 1<<20), Gate: 100_000, Release: make(chan struct{})}
	sctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := acc.SendFile(sctx, "matrix", bridge.DirectChat(bob), bridge.OutgoingFile{Name: "half.bin", Size: 1 << 20, Data: r})
		errc <- err
	}()
	waitUntil(t, "half of half.bin spooled", func() bool {
		for _, n := range spoolFiles(t, spool) {
			if st, err := os.Stat(spool + "/" + n); err == nil && st.Size() >= 100_000 {
				return true
			}
		}
		return false
	})
	cancel()
	close(r.Release)
	if err := <-errc; !errors.As(err, &se) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled SendFile: %v", err)
	}
	bf, err = e.srv.WaitBotFile(ctx, bob, 3)
	if err != nil || bf.Name != "half.bin" || !errors.Is(bf.Err, msn.ErrTransferCanceled) {
		t.Fatalf("bob's record of the cancelled file: %q %v, %v", bf.Name, bf.Err, err)
	}
	waitSpoolEmpty(t, spool)

	// The bot stops reading half way, without a word: the send fails as stalled.
	release, err := e.srv.SetBotStallFiles(bob, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	_, err = acc.SendFile(ctx, "matrix", bridge.DirectChat(bob), bridge.OutgoingFile{Name: "stuck.bin", Size: 1 << 20, Data: bytes.NewReader(randBytes(t, 1<<20))})
	if !errors.As(err, &se) || se.Reason != bridge.FailureTimeout {
		t.Fatalf("SendFile to a bot that stopped half way: %v, want a timeout", err)
	}
	release()
	waitSpoolEmpty(t, spool)
	if bf, err := e.srv.WaitBotFile(ctx, bob, 4); err != nil || bf.Name != "stuck.bin" || bf.Err == nil {
		t.Fatalf("bob's record of the stalled file: %q %v, %v", bf.Name, bf.Err, err)
	}
	if _, err := e.srv.SetBotStallFiles(bob, 0); err != nil {
		t.Fatal(err)
	}

	// The bot goes away half way: the send fails, nothing is left behind.
	r = &gated.Reader{Data: randBytes(t, 1<<20), Gate: 100_000, Release: make(chan struct{})}
	go func() {
		_, err := acc.SendFile(ctx, "matrix", bridge.DirectChat(bob), bridge.OutgoingFile{Name: "gone.bin", Size: 1 << 20, Data: r})
		errc <- err
	}()
	waitUntil(t, "half of gone.bin spooled", func() bool {
		for _, n := range spoolFiles(t, spool) {
			if st, err := os.Stat(spool + "/" + n); err == nil && st.Size() >= 100_000 {
				return true
			}
		}
		return false
	})
	if err := e.srv.SetOffline(bob); err != nil {
		t.Fatal(err)
	}
	close(r.Release)
	if err := <-errc; !errors.As(err, &se) {
		t.Fatalf("SendFile to a bot gone half way: %v, want a *SendError", err)
	} else {
		t.Logf("bot gone half way: %s (%v)", se.Reason, se.Err)
	}
	waitSpoolEmpty(t, spool)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestMediaIntegrationWinkAndEmoticons: a bot's wink (a real cabinet) is shown with its
// thumbnail, and its custom emoticon comes with its message.
func TestMediaIntegrationWinkAndEmoticons(t *testing.T) {
	e := newEnv(t)
	cfg, _ := e.mediaConfig()
	fe := bridgetest.NewRecorder("matrix")
	core := e.core(cfg, fe)
	e.login(core, matrixOwner)

	thumb := noisyPNG(t, 50, 50)
	cab := msntest.WinkCAB("Kiss", thumb, randBytes(t, 20_000))
	wink, err := e.srv.BotPublishObject(bob, msn.ObjectWink, "Kiss", cab)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.BotWink(bob, alice, wink); err != nil {
		t.Fatal(err)
	}
	w := waitEvent(t, fe, "bob's wink", func(w bridge.Wink) bool { return w.Sender == bob })
	if w.Name != "Kiss" || !bytes.Equal(w.Image, thumb) || w.MIME != "image/png" || w.Chat != bridge.DirectChat(bob) {
		t.Fatalf("Wink %q %s, %d bytes; want Kiss with its %d-byte thumbnail", w.Name, w.MIME, len(w.Image), len(thumb))
	}

	img := noisyPNG(t, 19, 19)
	emo, err := e.srv.BotPublishObject(bob, msn.ObjectEmoticon, "", img)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.BotSayWithEmoticons(bob, alice, "look (cat)!", []msn.Emoticon{{Shortcut: "(cat)", Object: emo}}); err != nil {
		t.Fatal(err)
	}
	m := waitEvent(t, fe, "bob's message with an emoticon", func(m bridge.Message) bool { return m.Sender == bob })
	if m.Text != "look (cat)!" || len(m.Emoticons) != 1 {
		t.Fatalf("message %q with %d emoticons", m.Text, len(m.Emoticons))
	}
	if em := m.Emoticons[0]; em.Shortcut != "(cat)" || em.Avatar != emo.SHA1D || !bytes.Equal(em.Data, img) || em.MIME != "image/png" {
		t.Fatalf("emoticon %q %s %s, %d bytes", em.Shortcut, em.Avatar, em.MIME, len(em.Data))
	}
}
