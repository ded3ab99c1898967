package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

const bob = "bob@example.com"

// avatarsOf returns the ContactAvatar events of handle.
func avatarsOf(evts []Event, handle string) []ContactAvatar {
	var out []ContactAvatar
	for _, e := range evts {
		if a, ok := e.(ContactAvatar); ok && a.Handle == handle {
			out = append(out, a)
		}
	}
	return out
}

func pngOf(t testing.TB, w, h int, c color.Color) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// advance moves the fake clock forward by d and fires the timers due (all of them).
func (c *fakeClock) advance(d time.Duration) {
	_ = c.SleepUntil(context.Background(), c.Now().Add(d))
	c.fire()
}

// A contact's picture is fetched once, shown with ContactAvatar and Contact.Avatar, readable
// with Core.Avatar; after a restart of the bridge, the cached picture is shown again without
// any fetch.
// TestAvatarAnnouncedDuringLogin: a picture announced while the login is still returning (the
// client's events race Login's return) is fetched once the session is the account's, not
// dropped as "not connected".
func TestAvatarAnnouncedDuringLogin(t *testing.T) {
	srv := newFakeServer()
	pic := testMSNObject(bob, msn.ObjectDisplayPicture, pngOf(t, 4, 4, color.White))
	srv.media.serve(pic)
	srv.loginEvents = []msn.Event{&msn.PresenceChanged{Handle: bob, Status: msn.StatusOnline, MSNObject: pic.XML, Initial: true}}
	core := newTestCore(t, testStore(t), srv, Config{})
	mx := &recorder{name: "matrix"}
	acc := loggedIn(t, core, mx)
	// Shown by a ContactAvatar, or in the snapshot when it was done before the login returned.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, _ := acc.Contact(bob); c.Avatar == pic.SHA1D {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("Contact.Avatar = %q, want the picture announced during login", c.Avatar)
		}
	}
	if n := srv.media.fetchCount(pic.SHA1D); n != 1 {
		t.Fatalf("fetched %d times, want 1", n)
	}
}

func TestAvatarFetchedOnceAndCachedAcrossRestart(t *testing.T) {
	ctx := context.Background()
	store := testStore(t)
	srv := newFakeServer()
	pic := testMSNObject(bob, msn.ObjectDisplayPicture, pngOf(t, 4, 4, color.White))
	srv.media.serve(pic)

	core := newTestCore(t, store, srv, Config{})
	mx := &recorder{name: "matrix"}
	acc := loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	sess := srv.session("alice@example.com")
	sess.emit(&msn.PresenceChanged{Handle: bob, Status: msn.StatusOnline, MSNObject: pic.XML, Initial: true})
	evts := mx.waitFor(t, "avatar", func(e []Event) bool { return len(avatarsOf(e, bob)) == 1 })
	got := avatarsOf(evts, bob)[0]
	if got.Avatar != pic.SHA1D || !bytes.Equal(got.Data, pic.Data) || got.MIME != "image/png" {
		t.Fatalf("ContactAvatar = %+v", got)
	}
	if c, _ := acc.Contact(bob); c.Avatar != pic.SHA1D {
		t.Fatalf("Contact.Avatar = %q", c.Avatar)
	}
	if data, mime, err := core.Avatar(ctx, pic.SHA1D); err != nil || !bytes.Equal(data, pic.Data) || mime != "image/png" {
		t.Fatalf("Core.Avatar = %d bytes, %q, %v", len(data), mime, err)
	}
	// The same announcement again, and going offline, change nothing.
	sess.emit(&msn.PresenceChanged{Handle: bob, Status: msn.StatusAway, MSNObject: pic.XML})
	sess.emit(&msn.PresenceChanged{Handle: bob, Status: msn.StatusOffline})
	sess.emit(&msn.MessageReceived{SessionID: "1", From: bob, Text: "sync"})
	evts = mx.waitFor(t, "sync", func(e []Event) bool { return countType[Message](e) == 1 })
	if n := len(avatarsOf(evts, bob)); n != 1 {
		t.Fatalf("%d ContactAvatar events, want 1", n)
	}
	if c, _ := acc.Contact(bob); c.Avatar != pic.SHA1D {
		t.Fatalf("Contact.Avatar after going offline = %q", c.Avatar)
	}
	if n := srv.media.fetchCount(pic.SHA1D); n != 1 {
		t.Fatalf("fetched %d times, want 1", n)
	}

	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := core.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	// Restart on the same store: the picture comes from the cache.
	core2 := newTestCore(t, store, srv, Config{})
	mx2 := &recorder{name: "matrix"}
	core2.AddFrontend(mx2)
	if err := core2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mx2.waitFor(t, "online", hasState(StateOnline))
	srv.session("alice@example.com").emit(&msn.PresenceChanged{Handle: bob, Status: msn.StatusOnline, MSNObject: pic.XML, Initial: true})
	evts = mx2.waitFor(t, "avatar after restart", func(e []Event) bool { return len(avatarsOf(e, bob)) == 1 })
	if got := avatarsOf(evts, bob)[0]; !bytes.Equal(got.Data, pic.Data) {
		t.Fatalf("ContactAvatar after restart = %+v", got)
	}
	if n := srv.media.fetchCount(pic.SHA1D); n != 1 {
		t.Fatalf("fetched %d times after the restart, want 1", n)
	}
}

// A contact flooding msnobj changes gets a bounded number of fetches, and the latest picture
// is shown in the end; an online contact announcing none removes it.
func TestAvatarFloodIsCoalesced(t *testing.T) {
	srv := newFakeServer()
	core := newTestCore(t, testStore(t), srv, Config{})
	mx := &recorder{name: "matrix"}
	acc := loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	sess := srv.session("alice@example.com")
	const changes = 1000
	var last testObject
	for i := range changes {
		last = testMSNObject(bob, msn.ObjectDisplayPicture, []byte(fmt.Sprintf("\x89PNG\r\n\x1a\npicture %d", i)))
		srv.media.serve(last)
		sess.emit(&msn.PresenceChanged{Handle: bob, Status: msn.StatusOnline, MSNObject: last.XML})
	}
	sess.emit(&msn.MessageReceived{SessionID: "1", From: bob, Text: "sync"})
	mx.waitFor(t, "sync", func(e []Event) bool { return countType[Message](e) == 1 })
	// Let the fetch under way end, then the interval pass.
	for i := 0; i < 1000 && srv.media.totalFetches() == 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	waitIdle(t, acc)
	core.clock.advance(time.Minute)
	evts := mx.waitFor(t, "latest avatar", func(e []Event) bool {
		a := avatarsOf(e, bob)
		return len(a) > 0 && a[len(a)-1].Avatar == last.SHA1D
	})
	// The first announcement, then the latest once the interval passed.
	if n := srv.media.totalFetches(); n > 2 {
		t.Fatalf("%d fetches for %d changes, want at most 2", n, changes)
	}
	if n := len(avatarsOf(evts, bob)); n > 2 {
		t.Fatalf("%d ContactAvatar events, want at most 2", n)
	}
	// No picture announced while online: removed.
	sess.emit(&msn.PresenceChanged{Handle: bob, Status: msn.StatusOnline})
	mx.waitFor(t, "avatar removed", func(e []Event) bool {
		a := avatarsOf(e, bob)
		return a[len(a)-1].Avatar == "" && a[len(a)-1].Data == nil
	})
	if c, _ := acc.Contact(bob); c.Avatar != "" {
		t.Fatalf("Contact.Avatar after removal = %q", c.Avatar)
	}
}

// waitIdle waits until the account fetches no picture.
func waitIdle(t *testing.T, acc *Account) {
	t.Helper()
	for range 1000 {
		acc.mu.Lock()
		n := acc.avatars.running + len(acc.avatars.order)
		acc.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("picture fetches did not end")
}

// Fetches are bounded per account and over the bridge.
func TestAvatarFetchConcurrencyBounded(t *testing.T) {
	srv := newFakeServer()
	gate := make(chan struct{})
	srv.media.set(func(m *fakeMedia) { m.gate = gate })
	core := newTestCore(t, testStore(t), srv, Config{Media: MediaConfig{AvatarFetchesPerAccount: 2, AvatarFetches: 3}})
	mx := &recorder{name: "matrix"}
	var contacts []msn.Contact
	for i := range 20 {
		contacts = append(contacts, msn.Contact{Handle: fmt.Sprintf("c%d@example.com", i), Lists: msn.ListForward | msn.ListAllow})
	}
	core.AddFrontend(mx)
	if err := core.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var objs []testObject
	for _, h := range []string{"a1@example.com", "a2@example.com"} {
		srv.mu.Lock()
		srv.passwords[h] = "pw"
		srv.contacts[h] = contacts
		srv.mu.Unlock()
		if _, err := core.Login(context.Background(), FrontendUser{"matrix", "@" + h}, h, "pw"); err != nil {
			t.Fatal(err)
		}
		sess := srv.session(h)
		for i, c := range contacts {
			o := testMSNObject(c.Handle, msn.ObjectDisplayPicture, []byte(fmt.Sprintf("%s %d", h, i)))
			srv.media.serve(o)
			objs = append(objs, o)
			sess.emit(&msn.PresenceChanged{Handle: c.Handle, Status: msn.StatusOnline, MSNObject: o.XML})
		}
	}
	for i := 0; i < 1000 && srv.media.maxInFlight() < 3; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for a fetch beyond the bounds to show
	if n := srv.media.maxInFlight(); n != 3 {
		t.Fatalf("%d fetches at once, want 3", n)
	}
	close(gate)
	mx.waitFor(t, "every avatar", func(e []Event) bool { return countType[ContactAvatar](e) == len(objs) })
	if n := srv.media.maxInFlight(); n != 3 {
		t.Fatalf("%d fetches at once, want 3", n)
	}
}

// A failed fetch is retried after a backoff, not at once, and the picture shown once it works.
func TestAvatarFetchRetriedWithBackoff(t *testing.T) {
	srv := newFakeServer()
	srv.media.set(func(m *fakeMedia) { m.fetchErr = msn.ErrTransferStalled })
	core := newTestCore(t, testStore(t), srv, Config{})
	mx := &recorder{name: "matrix"}
	acc := loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	pic := testMSNObject(bob, msn.ObjectDisplayPicture, []byte("GIF89a picture"))
	srv.media.serve(pic)
	sess := srv.session("alice@example.com")
	sess.emit(&msn.PresenceChanged{Handle: bob, Status: msn.StatusOnline, MSNObject: pic.XML})
	for i := 0; i < 1000 && srv.media.fetchCount(pic.SHA1D) == 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	waitIdle(t, acc)
	// Announced again meanwhile: no new fetch before the retry.
	sess.emit(&msn.PresenceChanged{Handle: bob, Status: msn.StatusBusy, MSNObject: pic.XML})
	sess.emit(&msn.MessageReceived{SessionID: "1", From: bob, Text: "sync"})
	mx.waitFor(t, "sync", func(e []Event) bool { return countType[Message](e) == 1 })
	waitIdle(t, acc)
	if n := srv.media.fetchCount(pic.SHA1D); n != 1 {
		t.Fatalf("fetched %d times before the retry, want 1", n)
	}
	core.clock.advance(2 * time.Minute) // the retry, failing again
	for i := 0; i < 1000 && srv.media.fetchCount(pic.SHA1D) < 2; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	waitIdle(t, acc)
	srv.media.set(func(m *fakeMedia) { m.fetchErr = nil })
	core.clock.advance(5 * time.Minute)
	mx.waitFor(t, "avatar", func(e []Event) bool { return len(avatarsOf(e, bob)) == 1 })
	if n := srv.media.fetchCount(pic.SHA1D); n != 3 {
		t.Fatalf("fetched %d times, want 3", n)
	}
}

// Data that does not match its msnobj is never cached or shown.
func TestAvatarMismatchNotCached(t *testing.T) {
	srv := newFakeServer()
	core := newTestCore(t, testStore(t), srv, Config{})
	mx := &recorder{name: "matrix"}
	acc := loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	pic := testMSNObject(bob, msn.ObjectDisplayPicture, []byte("real"))
	srv.media.set(func(m *fakeMedia) { m.objects = map[string][]byte{pic.SHA1D: []byte("fake")} })
	srv.session("alice@example.com").emit(&msn.PresenceChanged{Handle: bob, Status: msn.StatusOnline, MSNObject: pic.XML})
	for i := 0; i < 1000 && srv.media.fetchCount(pic.SHA1D) == 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	waitIdle(t, acc)
	if _, _, err := core.Avatar(context.Background(), pic.SHA1D); !errors.Is(err, ErrObjectNotCached) {
		t.Fatalf("Core.Avatar of mismatched data: %v", err)
	}
	if n := countType[ContactAvatar](mx.events()); n != 0 {
		t.Fatalf("%d ContactAvatar events for mismatched data", n)
	}
}

// SetAvatar scales the owner's picture to a 96×96 PNG, publishes it, and the next login
// carries it; a decompression bomb is refused before it is decoded.
func TestSetAvatar(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	var dialed [][]byte
	dial := srv.dial
	core := newTestCore(t, testStore(t), srv, Config{})
	core.dial = func(cfg sessionConfig) (session, error) {
		srv.mu.Lock()
		dialed = append(dialed, cfg.DisplayPicture)
		srv.mu.Unlock()
		return dial(cfg)
	}
	mx := &recorder{name: "matrix"}
	acc := loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))

	if err := acc.SetAvatar(ctx, "matrix", pngOf(t, 300, 200, color.NRGBA{R: 255, A: 255})); err != nil {
		t.Fatal(err)
	}
	srv.media.mu.Lock()
	pics := srv.media.pictures
	srv.media.mu.Unlock()
	if len(pics) != 1 {
		t.Fatalf("%d pictures published", len(pics))
	}
	img, err := png.Decode(bytes.NewReader(pics[0]))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 96 || b.Dy() != 96 {
		t.Fatalf("published picture is %v", b)
	}
	if r, g, b, a := img.At(48, 48).RGBA(); r>>8 != 255 || g != 0 || b != 0 || a>>8 != 255 {
		t.Fatalf("published picture's colour is %d,%d,%d,%d", r, g, b, a)
	}

	// A PNG declaring 60000×60000 pixels is refused from its header.
	bomb := pngOf(t, 1, 1, color.White)
	copy(bomb[16:24], []byte{0, 0, 0xea, 0x60, 0, 0, 0xea, 0x60}) // IHDR width and height (CRC now wrong: never read)
	if err := acc.SetAvatar(ctx, "matrix", bomb); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("SetAvatar(bomb) = %v", err)
	}
	if err := acc.SetAvatar(ctx, "matrix", []byte("not an image")); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("SetAvatar(junk) = %v", err)
	}

	from := len(mx.events())
	srv.kick("alice@example.com", msn.ReasonNetwork)
	mx.waitFor(t, "online again", func(e []Event) bool { return hasState(StateOnline)(e[from:]) })
	srv.mu.Lock()
	last := dialed[len(dialed)-1]
	srv.mu.Unlock()
	if !bytes.Equal(last, pics[0]) {
		t.Fatalf("login carried a picture of %d bytes, want the published %d", len(last), len(pics[0]))
	}
	if err := acc.SetAvatar(ctx, "matrix", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := core.store.OwnAvatar(ctx, acc.Handle()); err != nil || got != nil {
		t.Fatalf("OwnAvatar after removal = %d bytes, %v", len(got), err)
	}
}

// fileRecorder is a frontend that reads every File as it is delivered.
type fileRecorder struct {
	recorder
	contents [][]byte
}

func (r *fileRecorder) HandleEvent(ctx context.Context, acc *Account, evt Event) error {
	if f, ok := evt.(File); ok && f.Open != nil {
		rc, err := f.Open()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.contents = append(r.contents, data)
		r.mu.Unlock()
	}
	return r.recorder.HandleEvent(ctx, acc, evt)
}

func spoolFiles(t *testing.T, core *testCore) []string {
	t.Helper()
	dir, err := core.media.dir()
	if err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// A contact's file within the cap is spooled, shown and its spool deleted once delivered; files
// over the cap, of a negative size or with more data than announced are refused with
// FileFailed, and a cancelled one is reported.
func TestIncomingFiles(t *testing.T) {
	srv := newFakeServer()
	core := newTestCore(t, testStore(t), srv, Config{Media: MediaConfig{MaxFileSize: 1 << 20}})
	mx := &fileRecorder{recorder: recorder{name: "matrix"}}
	loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	sess := srv.session("alice@example.com")
	dir, _ := core.media.dir()
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("spool directory: %v, %v", st.Mode(), err)
	}

	content := bytes.Repeat([]byte("0123456789"), 5000)
	offer := sess.offerFile("f1", bob, `..\..\evil/notes.txt`+"\x07", int64(len(content)), content, nil)
	evts := mx.waitFor(t, "file", func(e []Event) bool { return countType[File](e) == 1 })
	if a := <-offer.answered; a != "accepted" {
		t.Fatalf("offer %s", a)
	}
	var f File
	for _, e := range evts {
		if x, ok := e.(File); ok {
			f = x
		}
	}
	if f.Name != "notes.txt" || f.Size != int64(len(content)) || f.Sender != bob || f.Chat != DirectChat(bob) || f.MIME != "text/plain; charset=utf-8" {
		t.Fatalf("File = %+v", f)
	}
	mx.mu.Lock()
	got := mx.contents[0]
	mx.mu.Unlock()
	if !bytes.Equal(got, content) {
		t.Fatalf("File content is %d bytes, want %d", len(got), len(content))
	}
	for i := 0; i < 1000 && len(spoolFiles(t, core)) > 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if left := spoolFiles(t, core); len(left) > 0 {
		t.Fatalf("spool files left after delivery: %v", left)
	}

	cases := []struct {
		name   string
		size   int64
		data   []byte
		err    error
		answer string
		reason SendFailure
	}{
		{"huge", 1 << 40, nil, nil, "declined", FailureTooLarge},
		{"just over", 1<<20 + 1, nil, nil, "declined", FailureTooLarge},
		{"negative", -5, nil, nil, "declined", FailureInvalid},
		{"lies about size", 10, make([]byte, 5000), nil, "accepted", FailureTooLarge},
		{"short", 5000, make([]byte, 10), nil, "accepted", FailureCanceled},
		{"cancelled", 5000, make([]byte, 10), msn.ErrTransferCanceled, "accepted", FailureCanceled},
		{"stalled", 5000, nil, msn.ErrTransferStalled, "accepted", FailureTimeout},
	}
	for i, tc := range cases {
		from := len(mx.events())
		o := sess.offerFile(fmt.Sprintf("bad%d", i), bob, tc.name, tc.size, tc.data, tc.err)
		evts := mx.waitFor(t, tc.name, func(e []Event) bool { return countType[FileFailed](e[from:]) == 1 })
		if a := <-o.answered; a != tc.answer {
			t.Errorf("%s: offer %s, want %s", tc.name, a, tc.answer)
		}
		for _, e := range evts[from:] {
			if ff, ok := e.(FileFailed); ok && (ff.Reason != tc.reason || ff.Name != tc.name || ff.Err == nil) {
				t.Errorf("%s: FileFailed = %+v, want reason %s", tc.name, ff, tc.reason)
			}
		}
		if n := countType[File](evts[from:]); n != 0 {
			t.Errorf("%s: %d File events", tc.name, n)
		}
	}
	for i := 0; i < 1000 && len(spoolFiles(t, core)) > 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if left := spoolFiles(t, core); len(left) > 0 {
		t.Fatalf("spool files left after failures: %v", left)
	}
}

// More files at once than the transfer slots are refused with FileFailed, not queued.
func TestIncomingFilesBoundedConcurrency(t *testing.T) {
	srv := newFakeServer()
	core := newTestCore(t, testStore(t), srv, Config{Media: MediaConfig{MaxTransfersPerAccount: 2}})
	mx := &recorder{name: "matrix"}
	loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	sess := srv.session("alice@example.com")
	gate := make(chan struct{})
	var held []*fakeOffer
	for i := range 2 {
		o := &fakeOffer{data: []byte("held"), gate: gate, answered: make(chan string, 1)}
		srv.media.set(func(m *fakeMedia) {
			if m.offers == nil {
				m.offers = map[string]*fakeOffer{}
			}
			m.offers[fmt.Sprint("held", i)] = o
		})
		sess.emit(&msn.FileOffered{SessionID: fmt.Sprint("held", i), From: bob, Name: "held", Size: 4})
		if a := <-o.answered; a != "accepted" {
			t.Fatalf("held offer %s", a)
		}
		held = append(held, o)
	}
	o := sess.offerFile("third", bob, "third", 4, []byte("more"), nil)
	evts := mx.waitFor(t, "refusal", func(e []Event) bool { return countType[FileFailed](e) == 1 })
	if a := <-o.answered; a != "declined" {
		t.Fatalf("third offer %s", a)
	}
	for _, e := range evts {
		if ff, ok := e.(FileFailed); ok && (ff.Reason != FailureRateLimited || !errors.Is(ff.Err, ErrTooManyTransfers)) {
			t.Fatalf("FileFailed = %+v", ff)
		}
	}
	close(gate)
	mx.waitFor(t, "held files", func(e []Event) bool { return countType[File](e) == len(held) })
}

// SendFile delivers the file, shows it on the other frontend (readable there), and maps the
// transfer's failures to send failures.
func TestSendFile(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	core := newTestCore(t, testStore(t), srv, Config{Media: MediaConfig{MaxFileSize: 1000}, SendLimit: SendLimitConfig{NudgeCost: 1}})
	mx := &recorder{name: "matrix"}
	dc := &fileRecorder{recorder: recorder{name: "discord"}}
	acc := loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	code, _, err := core.IssueLinkCode(ctx, acc.Handle(), matrixUser)
	if err != nil {
		t.Fatal(err)
	}
	core.AddFrontend(dc)
	if _, err = core.RedeemLinkCode(ctx, code, FrontendUser{"discord", "1"}); err != nil {
		t.Fatal(err)
	}
	dc.waitFor(t, "online", hasState(StateOnline))

	data := []byte("\x89PNG\r\n\x1a\n a picture")
	id, err := acc.SendFile(ctx, "matrix", DirectChat(bob), OutgoingFile{Name: "picture", Size: int64(len(data)), Data: bytes.NewReader(data)})
	if err != nil || id == "" {
		t.Fatalf("SendFile = %q, %v", id, err)
	}
	srv.media.mu.Lock()
	sent := srv.media.sent
	srv.media.mu.Unlock()
	if len(sent) != 1 || sent[0].contact != bob || sent[0].name != "picture" || !bytes.Equal(sent[0].data, data) {
		t.Fatalf("sent %+v", sent)
	}
	evts := dc.waitFor(t, "file shown", func(e []Event) bool { return countType[File](e) == 1 })
	for _, e := range evts {
		if f, ok := e.(File); ok && (!f.FromMe || f.Origin != "matrix" || f.ID != id || f.MIME != "image/png") {
			t.Fatalf("File = %+v", f)
		}
	}
	dc.mu.Lock()
	shown := dc.contents[0]
	dc.mu.Unlock()
	if !bytes.Equal(shown, data) {
		t.Fatalf("File content on the other frontend: %q", shown)
	}
	if n := countType[File](mx.events()); n != 0 {
		t.Fatalf("File echoed to its origin")
	}

	cases := []struct {
		err    error
		size   int
		reason SendFailure
	}{
		{msn.ErrTransferDeclined, 10, FailureDeclined},
		{fmt.Errorf("wrapped: %w", msn.ErrTransferCanceled), 10, FailureCanceled},
		{msn.ErrTransferStalled, 10, FailureTimeout},
		{nil, 1001, FailureTooLarge},
	}
	for _, tc := range cases {
		srv.media.set(func(m *fakeMedia) { m.sendErr = tc.err })
		_, err := acc.SendFile(ctx, "matrix", DirectChat(bob), OutgoingFile{Name: "x", Size: int64(tc.size), Data: bytes.NewReader(make([]byte, tc.size))})
		var se *SendError
		if !errors.As(err, &se) || se.Reason != tc.reason {
			t.Errorf("SendFile with %v: %v, want %s", tc.err, err, tc.reason)
		}
	}
	srv.media.set(func(m *fakeMedia) { m.sendErr = nil })
	if left := spoolFiles(t, core); len(left) > 0 {
		for i := 0; i < 1000 && len(spoolFiles(t, core)) > 0; i++ {
			time.Sleep(5 * time.Millisecond)
		}
		if left = spoolFiles(t, core); len(left) > 0 {
			t.Fatalf("spool files left: %v", left)
		}
	}
	srv.mu.Lock()
	srv.down = true
	srv.mu.Unlock()
	srv.kick("alice@example.com", msn.ReasonNetwork)
	for i := 0; i < 1000 && acc.State().State == StateOnline; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	_, err = acc.SendFile(ctx, "matrix", DirectChat(bob), OutgoingFile{Name: "x", Size: 1, Data: bytes.NewReader([]byte("x"))})
	var se *SendError
	if !errors.As(err, &se) || se.Reason != FailureNotConnected {
		t.Fatalf("SendFile while disconnected: %v", err)
	}
}

// The object cache is trimmed to its size, oldest first.
func TestTrimObjects(t *testing.T) {
	ctx := context.Background()
	s := testStore(t)
	start := time.Date(2005, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		if err := s.PutObject(ctx, fmt.Sprint("sha", i), "image/png", make([]byte, 100), start.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.TrimObjects(ctx, 450)
	if err != nil || n != 6 {
		t.Fatalf("TrimObjects = %d, %v; want 6", n, err)
	}
	for i := range 10 {
		ok, err := s.HasObject(ctx, fmt.Sprint("sha", i))
		if err != nil || ok != (i >= 6) {
			t.Fatalf("object %d cached: %v, %v", i, ok, err)
		}
	}
}

// Many accounts shown the same picture at once fetch it once.
func TestAvatarSharedAcrossAccounts(t *testing.T) {
	srv := newFakeServer()
	gate := make(chan struct{})
	srv.media.set(func(m *fakeMedia) { m.gate = gate })
	core := newTestCore(t, testStore(t), srv, Config{})
	mx := &recorder{name: "matrix"}
	core.AddFrontend(mx)
	if err := core.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	pic := testMSNObject(bob, msn.ObjectDisplayPicture, []byte("GIF89a shared"))
	srv.media.serve(pic)
	const accounts = 20
	for i := range accounts {
		h := fmt.Sprintf("a%d@example.com", i)
		srv.mu.Lock()
		srv.passwords[h] = "pw"
		srv.contacts[h] = []msn.Contact{{Handle: bob, Lists: msn.ListForward | msn.ListAllow}}
		srv.mu.Unlock()
		if _, err := core.Login(context.Background(), FrontendUser{"matrix", "@" + h}, h, "pw"); err != nil {
			t.Fatal(err)
		}
		srv.session(h).emit(&msn.PresenceChanged{Handle: bob, Status: msn.StatusOnline, MSNObject: pic.XML})
	}
	for i := 0; i < 1000 && srv.media.totalFetches() == 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	close(gate)
	mx.waitFor(t, "every account's avatar", func(e []Event) bool { return countType[ContactAvatar](e) == accounts })
	if n := srv.media.fetchCount(pic.SHA1D); n != 1 {
		t.Fatalf("fetched %d times for %d accounts, want 1", n, accounts)
	}
}

// A File still waiting for a frontend when the bridge stops has its spool file deleted; a
// configured spool directory is made 0700 and stays.
func TestSpoolRemovedAtStop(t *testing.T) {
	srv := newFakeServer()
	dir := filepath.Join(t.TempDir(), "spool")
	core := newTestCore(t, testStore(t), srv, Config{Media: MediaConfig{SpoolDir: dir}})
	mx := &recorder{name: "matrix", block: make(chan struct{})}
	loggedIn(t, core, mx)
	sess := srv.session("alice@example.com")
	sess.offerFile("f1", bob, "a.bin", 3, []byte("abc"), nil)
	var names []string
	for i := 0; i < 1000 && len(names) == 0; i++ {
		time.Sleep(5 * time.Millisecond)
		names = spoolFiles(t, core)
	}
	if len(names) != 1 {
		t.Fatalf("spool files %v", names)
	}
	if st, err := os.Stat(names[0]); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("spool file mode %v, %v", st.Mode(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = core.Stop(ctx) // the frontend never returns: delivery is abandoned
	if _, err := os.Stat(names[0]); !os.IsNotExist(err) {
		t.Fatalf("spool file after Stop: %v", err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("spool directory after Stop: %v, %v", st.Mode(), err)
	}
}
