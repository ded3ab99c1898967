package bridge

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image/color"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// A message's custom emoticons are resolved before it is shown, and the messages after it wait
// behind it; one that cannot be fetched stays text.
func TestEmoticonsResolvedInOrder(t *testing.T) {
	srv := newFakeServer()
	gate := make(chan struct{})
	srv.media.set(func(m *fakeMedia) { m.gate = gate })
	core := newTestCore(t, testStore(t), srv, Config{Media: MediaConfig{EmoticonWait: 20 * time.Second}})
	mx := &recorder{name: "matrix"}
	loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	sess := srv.session("alice@example.com")

	smile := testMSNObject(bob, msn.ObjectEmoticon, pngOf(t, 2, 2, color.Black))
	missing := testMSNObject(bob, msn.ObjectEmoticon, []byte("not served"))
	srv.media.serve(smile)
	sess.emit(&msn.MessageReceived{SessionID: "1", From: bob, Text: "hi (cat) (dog)", Emoticons: []msn.Emoticon{
		{Shortcut: "(cat)", Object: smile.MSNObject}, {Shortcut: "(dog)", Object: missing.MSNObject},
	}})
	sess.emit(&msn.MessageReceived{SessionID: "1", From: bob, Text: "second"})
	sess.emit(&msn.NudgeReceived{SessionID: "1", From: bob})
	for i := 0; i < 1000 && srv.media.totalFetches() < 2; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if n := countType[Message](mx.events()); n != 0 {
		t.Fatalf("%d messages shown while the first waits for its emoticons", n)
	}
	close(gate)
	evts := mx.waitFor(t, "messages", func(e []Event) bool { return countType[Message](e) == 2 && countType[Nudge](e) == 1 })
	var order []string
	for _, e := range evts {
		switch x := e.(type) {
		case Message:
			order = append(order, x.Text)
			if x.Text == "hi (cat) (dog)" {
				if len(x.Emoticons) != 1 || x.Emoticons[0].Shortcut != "(cat)" || !bytes.Equal(x.Emoticons[0].Data, smile.Data) ||
					x.Emoticons[0].MIME != "image/png" || x.Emoticons[0].Avatar != smile.SHA1D {
					t.Fatalf("emoticons = %+v", x.Emoticons)
				}
			}
		case Nudge:
			order = append(order, "nudge")
		}
	}
	if fmt.Sprint(order) != "[hi (cat) (dog) second nudge]" {
		t.Fatalf("order %v", order)
	}
	// The cached emoticon is not fetched again; the failed one is not retried at once.
	before := srv.media.totalFetches()
	sess.emit(&msn.MessageReceived{SessionID: "1", From: bob, Text: "again (cat) (dog)", Emoticons: []msn.Emoticon{
		{Shortcut: "(cat)", Object: smile.MSNObject}, {Shortcut: "(dog)", Object: missing.MSNObject},
	}})
	evts = mx.waitFor(t, "third", func(e []Event) bool { return countType[Message](e) == 3 })
	if last := evts[len(evts)-1].(Message); len(last.Emoticons) != 1 {
		t.Fatalf("emoticons of the third message = %+v", last.Emoticons)
	}
	if n := srv.media.totalFetches(); n != before {
		t.Fatalf("%d more fetches", n-before)
	}
}

// A hostile contact's many emoticons, and ones not its own or not emoticons, cost a bounded
// number of fetches, and the message still arrives within the wait.
func TestManyEmoticonsBounded(t *testing.T) {
	srv := newFakeServer()
	srv.media.set(func(m *fakeMedia) { m.gate = make(chan struct{}) }) // never answers
	core := newTestCore(t, testStore(t), srv, Config{Media: MediaConfig{EmoticonWait: 200 * time.Millisecond}})
	mx := &recorder{name: "matrix"}
	loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	var emos []msn.Emoticon
	for i := range 500 {
		o := testMSNObject(bob, msn.ObjectEmoticon, []byte(fmt.Sprint("emo", i)))
		emos = append(emos, msn.Emoticon{Shortcut: fmt.Sprintf("(%d)", i), Object: o.MSNObject})
	}
	emos = append(emos, msn.Emoticon{Shortcut: "(x)", Object: testMSNObject("carol@example.com", msn.ObjectEmoticon, []byte("x")).MSNObject})
	srv.session("alice@example.com").emit(&msn.MessageReceived{SessionID: "1", From: bob, Text: "lots", Emoticons: emos})
	evts := mx.waitFor(t, "message", func(e []Event) bool { return countType[Message](e) == 1 })
	for _, e := range evts {
		if m, ok := e.(Message); ok && len(m.Emoticons) != 0 {
			t.Fatalf("%d emoticons resolved", len(m.Emoticons))
		}
	}
	n := srv.media.totalFetches()
	if n > maxEmoticons {
		t.Fatalf("%d fetches, want at most %d", n, maxEmoticons)
	}
	// A contact whose emoticons did not come gets no wait for new ones for a while.
	fresh := testMSNObject(bob, msn.ObjectEmoticon, []byte("fresh"))
	srv.session("alice@example.com").emit(&msn.MessageReceived{SessionID: "1", From: bob, Text: "more (f)",
		Emoticons: []msn.Emoticon{{Shortcut: "(f)", Object: fresh.MSNObject}}})
	mx.waitFor(t, "second message", func(e []Event) bool { return countType[Message](e) == 2 })
	if m := srv.media.totalFetches(); m != n {
		t.Fatalf("%d more fetches for a contact whose emoticons never came", m-n)
	}
}

// A wink flood is shown by name, with one wink fetched at a time.
func TestWinkFloodFetchesOneAtATime(t *testing.T) {
	srv := newFakeServer()
	gate := make(chan struct{})
	srv.media.set(func(m *fakeMedia) { m.gate = gate })
	core := newTestCore(t, testStore(t), srv, Config{})
	mx := &recorder{name: "matrix"}
	loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	sess := srv.session("alice@example.com")
	const winks = 50
	for i := range winks {
		w := testMSNObject(bob, msn.ObjectWink, []byte(fmt.Sprint("wink", i)))
		sess.emit(&msn.WinkReceived{SessionID: "1", From: bob, Object: w.MSNObject})
	}
	mx.waitFor(t, "winks by name", func(e []Event) bool { return countType[Wink](e) == winks-1 })
	if n := srv.media.maxInFlight(); n != 1 {
		t.Fatalf("%d wink fetches at once", n)
	}
	close(gate)
	mx.waitFor(t, "every wink", func(e []Event) bool { return countType[Wink](e) == winks })
}

// cabEntry is a file for makeCAB.
type cabEntry struct {
	name string
	data []byte
}

// makeCAB builds a one-folder cabinet of files, uncompressed or MSZIP, in blocks of blockSize.
func makeCAB(t testing.TB, files []cabEntry, mszip bool, blockSize int) []byte {
	t.Helper()
	var folder []byte
	for _, f := range files {
		folder = append(folder, f.data...)
	}
	var blocks [][]byte
	var sizes []int
	var prev []byte
	for off := 0; off < len(folder) || off == 0; off += blockSize {
		chunk := folder[off:min(off+blockSize, len(folder))]
		b := chunk
		if mszip {
			var buf bytes.Buffer
			buf.WriteString("CK")
			w, err := flate.NewWriterDict(&buf, flate.BestCompression, prev)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(chunk)
			w.Close()
			b = buf.Bytes()
		}
		prev = chunk
		blocks = append(blocks, b)
		sizes = append(sizes, len(chunk))
		if len(folder) == 0 {
			break
		}
	}
	le := binary.LittleEndian
	var filesPart []byte
	var off uint32
	for _, f := range files {
		rec := make([]byte, 16)
		le.PutUint32(rec[0:], uint32(len(f.data)))
		le.PutUint32(rec[4:], off)
		off += uint32(len(f.data))
		filesPart = append(filesPart, rec...)
		filesPart = append(filesPart, f.name...)
		filesPart = append(filesPart, 0)
	}
	const headerSize, folderSize = 36, 8
	coffFiles := headerSize + folderSize
	dataStart := coffFiles + len(filesPart)
	out := make([]byte, headerSize+folderSize)
	copy(out, "MSCF")
	le.PutUint32(out[16:], uint32(coffFiles))
	out[24], out[25] = 3, 1
	le.PutUint16(out[26:], 1)
	le.PutUint16(out[28:], uint16(len(files)))
	le.PutUint32(out[36:], uint32(dataStart))
	le.PutUint16(out[40:], uint16(len(blocks)))
	if mszip {
		le.PutUint16(out[42:], cabCompressMSZIP)
	}
	out = append(out, filesPart...)
	for i, b := range blocks {
		h := make([]byte, 8)
		le.PutUint16(h[4:], uint16(len(b)))
		le.PutUint16(h[6:], uint16(sizes[i]))
		out = append(out, h...)
		out = append(out, b...)
	}
	le.PutUint32(out[8:], uint32(len(out)))
	return out
}

func TestCABThumbnail(t *testing.T) {
	thumb := pngOf(t, 50, 50, color.NRGBA{G: 200, A: 255})
	swf := bytes.Repeat([]byte("FWS animation data "), 5000) // spans several blocks
	content := []byte(`<?xml version="1.0"?><package xmlns="http://messenger.msn.com/messengercontent/1.0" type="wink">` +
		`<item type="animation" mimetype="application/x-shockwave-flash" file="w.swf"/>` +
		`<item type="thumbnail" mimetype="image/png" file="t.png"/></package>`)
	files := []cabEntry{{"content.xml", content}, {"w.swf", swf}, {"t.png", thumb}}
	for _, mszip := range []bool{false, true} {
		cab := makeCAB(t, files, mszip, cabMaxBlock)
		img, mime, err := winkThumbnail(cab, 1<<20)
		if err != nil || mime != "image/png" || !bytes.Equal(img, thumb) {
			t.Fatalf("mszip %v: %d bytes, %q, %v", mszip, len(img), mime, err)
		}
	}
	// A cabinet whose thumbnail lies beyond the extract cap fails instead of inflating it.
	cab := makeCAB(t, files, true, cabMaxBlock)
	if _, _, err := winkThumbnail(cab, 4096); err == nil {
		t.Fatal("extracted beyond the cap")
	}
	for _, bad := range [][]byte{nil, []byte("MSCF"), cab[:60], append([]byte("MSCX"), cab[4:]...)} {
		if _, _, err := winkThumbnail(bad, 1<<20); err == nil {
			t.Fatalf("accepted a broken cabinet of %d bytes", len(bad))
		}
	}
}

func FuzzWinkThumbnail(f *testing.F) {
	thumb := pngOf(f, 4, 4, color.White)
	files := []cabEntry{{"content.xml", []byte(`<package><item type="thumbnail" file="t.png"/></package>`)}, {"t.png", thumb}}
	f.Add(makeCAB(f, files, true, 64))
	f.Add(makeCAB(f, files, false, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, _, err := winkThumbnail(data, 1<<16)
		if err == nil && len(img) > 1<<16 {
			t.Fatalf("%d bytes extracted beyond the cap", len(img))
		}
	})
}

// A wink is shown with its thumbnail; one that cannot be fetched is shown by its name alone.
func TestWink(t *testing.T) {
	srv := newFakeServer()
	core := newTestCore(t, testStore(t), srv, Config{})
	mx := &recorder{name: "matrix"}
	loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	thumb := pngOf(t, 8, 8, color.White)
	cab := makeCAB(t, []cabEntry{{"t.png", thumb}}, true, 1000)
	w := testMSNObject(bob, msn.ObjectWink, cab)
	w.Friendly = "Kiss\x07"
	srv.media.serve(w)
	sess := srv.session("alice@example.com")
	sess.emit(&msn.WinkReceived{SessionID: "1", From: bob, Object: w.MSNObject})
	evts := mx.waitFor(t, "wink", func(e []Event) bool { return countType[Wink](e) == 1 })
	for _, e := range evts {
		if x, ok := e.(Wink); ok && (x.Name != "Kiss" || !bytes.Equal(x.Image, thumb) || x.MIME != "image/png" || x.Chat != DirectChat(bob)) {
			t.Fatalf("Wink = %+v", x)
		}
	}
	gone := testMSNObject(bob, msn.ObjectWink, []byte("not served"))
	gone.Friendly = "Gone"
	sess.emit(&msn.WinkReceived{SessionID: "1", From: bob, Object: gone.MSNObject})
	evts = mx.waitFor(t, "second wink", func(e []Event) bool { return countType[Wink](e) == 2 })
	if x := evts[len(evts)-1].(Wink); x.Name != "Gone" || x.Image != nil {
		t.Fatalf("Wink = %+v", x)
	}
	if _, _, err := core.Avatar(context.Background(), w.SHA1D); err == nil {
		t.Fatal("a wink's cabinet is in the picture cache")
	}
}

func TestCleanFileName(t *testing.T) {
	long := bytes.Repeat([]byte("é"), 300)
	tests := []struct{ in, want string }{
		{"notes.txt", "notes.txt"},
		{`C:\Users\bob\notes.txt`, "notes.txt"},
		{"../../etc/passwd", "passwd"},
		{"a\x00b\x1b[31mc\u202e.exe", "ab[31mc.exe"},
		{"  spaced  ", "spaced"},
		{"..", ""},
		{"dir/", ""},
		{"bad\xffutf8", "badutf8"},
		{string(long), string(long[:254])},
	}
	for _, tt := range tests {
		if got := cleanFileName(tt.in); got != tt.want {
			t.Errorf("cleanFileName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// A file to a group chat goes to its only other participant, and is refused while it has
// several.
func TestSendFileToGroupChat(t *testing.T) {
	ctx := context.Background()
	const carol = "carol@example.com"
	srv := newFakeServer()
	core := newTestCore(t, testStore(t), srv, Config{SendLimit: SendLimitConfig{NudgeCost: 1}})
	mx := &recorder{name: "matrix"}
	acc := loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	sess := srv.session("alice@example.com")
	sess.emit(&msn.ParticipantJoined{SessionID: "g", Handle: bob})
	sess.emit(&msn.ParticipantJoined{SessionID: "g", Handle: carol})
	mx.waitFor(t, "group", func(e []Event) bool { return countType[ChatMembership](e) >= 1 })
	file := func() OutgoingFile { return OutgoingFile{Name: "f", Size: 2, Data: bytes.NewReader([]byte("hi"))} }
	_, err := acc.SendFile(ctx, "matrix", GroupChat("g"), file())
	var se *SendError
	if !errors.As(err, &se) || se.Reason != FailureInvalid {
		t.Fatalf("SendFile to a chat of three: %v", err)
	}
	sess.emit(&msn.ParticipantLeft{SessionID: "g", Handle: carol})
	mx.waitFor(t, "carol left", func(e []Event) bool {
		for _, x := range e {
			if m, ok := x.(ChatMembership); ok && m.Handle == carol && !m.Joined {
				return true
			}
		}
		return false
	})
	if _, err = acc.SendFile(ctx, "matrix", GroupChat("g"), file()); err != nil {
		t.Fatal(err)
	}
	srv.media.mu.Lock()
	defer srv.media.mu.Unlock()
	if len(srv.media.sent) != 1 || srv.media.sent[0].contact != bob {
		t.Fatalf("sent %+v", srv.media.sent)
	}
}
