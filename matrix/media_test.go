package matrix

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/matrix/matrixtest"
)

// fakeMedia stands for the core's media calls: it records what the frontend passes to them.
type fakeMedia struct {
	mu         sync.Mutex
	cache      map[string][]byte // display pictures by SHA1D
	files      []sentFile
	fileErr    error
	avatars    [][]byte
	avatarErr  error
	avatarGets int
}

type sentFile struct {
	chat bridge.ChatID
	name string
	size int64
	mime string
	data []byte
}

func (f *fakeMedia) Avatar(ctx context.Context, sha1d string) ([]byte, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.avatarGets++
	if d, ok := f.cache[sha1d]; ok {
		return d, "image/png", nil
	}
	return nil, "", errors.New("not cached")
}

func (f *fakeMedia) SendFile(ctx context.Context, acc *bridge.Account, chat bridge.ChatID, of bridge.OutgoingFile) (string, error) {
	data, err := io.ReadAll(of.Data)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files = append(f.files, sentFile{chat: chat, name: of.Name, size: of.Size, mime: of.MIME, data: data})
	if f.fileErr != nil {
		return "", f.fileErr
	}
	return fmt.Sprintf("file%d", len(f.files)), nil
}

// MaxFileSize is the core's default cap.
func (f *fakeMedia) MaxFileSize() int64 { return bridge.DefaultMaxFileSize }

func (f *fakeMedia) SetAvatar(ctx context.Context, acc *bridge.Account, image []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.avatars = append(f.avatars, image)
	return f.avatarErr
}

func (f *fakeMedia) sent() []sentFile {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentFile(nil), f.files...)
}

func (f *fakeMedia) setAvatars() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.avatars...)
}

// withFakeMedia puts a fakeMedia between the frontend and the core; call before logging in.
func (e *glueEnv) withFakeMedia() *fakeMedia {
	fm := &fakeMedia{cache: map[string][]byte{}}
	e.fe.Connector().media = fm
	return fm
}

// testPNG is a small PNG whose pixels depend on seed.
func testPNG(t *testing.T, seed uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	for i := range 16 {
		img.Set(i%4, i/4, color.RGBA{R: seed, G: uint8(i), B: 7, A: 255})
	}
	var b bytes.Buffer
	must(t, png.Encode(&b, img))
	return b.Bytes()
}

func (e *glueEnv) waitFor(what string, cond func() bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, testWait)
	defer cancel()
	if !e.fm.WaitFor(ctx, cond) {
		e.t.Fatalf("%s never happened", what)
	}
}

func (e *glueEnv) feed(evt bridge.Event) {
	e.t.Helper()
	must(e.t, e.clientOf().handleEvent(e.ctx, e.core.Account(alice), evt))
}

// mediaOf returns the data behind an mxc URI of the fake.
func (e *glueEnv) mediaOf(uri id.ContentURIString) []byte {
	e.t.Helper()
	m, ok := e.fm.Media(uri)
	if !ok {
		e.t.Fatalf("no media %q", uri)
	}
	return m.Data
}

// TestContactAvatarOnGhost: a contact's display picture becomes their ghost's avatar; the same
// SHA1D again is neither fetched nor uploaded again; a new one replaces it; removal clears it.
// The contact list's SHA1D sets it too when the core has the picture cached.
func TestContactAvatarOnGhost(t *testing.T) {
	e := newGlueEnv(t, nil)
	fake := e.withFakeMedia()
	e.mustLogin()
	ghost := ghostMXID(bob)
	pic1, pic2 := testPNG(t, 1), testPNG(t, 2)

	e.feed(bridge.ContactAvatar{Handle: bob, Avatar: "sha-1", Data: pic1, MIME: "image/png"})
	e.waitFor("bob's avatar", func() bool { return e.fm.Avatar(ghost) != "" })
	if got := e.mediaOf(e.fm.Avatar(ghost)); !bytes.Equal(got, pic1) {
		t.Fatal("ghost avatar is not the display picture")
	}
	uploads := e.fm.Uploads()
	first := e.fm.Avatar(ghost)
	e.feed(bridge.ContactAvatar{Handle: bob, Avatar: "sha-1", Data: pic1, MIME: "image/png"})
	e.feed(bridge.ContactSnapshot{Contacts: []bridge.Contact{{Handle: bob, Name: "Bobby", Status: bridge.StatusOnline, Avatar: "sha-1"}}})
	if n := e.fm.Uploads(); n != uploads || e.fm.Avatar(ghost) != first {
		t.Fatalf("unchanged picture uploaded again (%d uploads, was %d)", n, uploads)
	}
	if fake.avatarGets != 0 {
		t.Fatalf("unchanged picture looked up %d times in the cache", fake.avatarGets)
	}

	e.feed(bridge.ContactAvatar{Handle: bob, Avatar: "sha-2", Data: pic2, MIME: "image/png"})
	e.waitFor("bob's new avatar", func() bool { return e.fm.Avatar(ghost) != first })
	if got := e.mediaOf(e.fm.Avatar(ghost)); !bytes.Equal(got, pic2) {
		t.Fatal("ghost avatar is not the new display picture")
	}
	e.feed(bridge.ContactAvatar{Handle: bob})
	e.waitFor("bob's avatar removed", func() bool { return e.fm.Avatar(ghost) == "" })

	// carol's picture is named by the contact list: not cached, nothing happens; cached, it is set.
	carolGhost := ghostMXID(carol)
	e.feed(bridge.ContactSnapshot{Contacts: []bridge.Contact{{Handle: carol, Name: "Carol", Avatar: "sha-c"}}})
	if e.fm.Avatar(carolGhost) != "" {
		t.Fatal("avatar set without the picture")
	}
	fake.mu.Lock()
	fake.cache["sha-c"] = pic1
	fake.mu.Unlock()
	e.feed(bridge.ContactSnapshot{Contacts: []bridge.Contact{{Handle: carol, Name: "Carol", Avatar: "sha-c"}}})
	e.waitFor("carol's avatar", func() bool { return e.fm.Avatar(carolGhost) != "" })
	if got := e.mediaOf(e.fm.Avatar(carolGhost)); !bytes.Equal(got, pic1) {
		t.Fatal("carol's avatar is not the cached picture")
	}
}

// memberEvent is the owner's member event in room changing their avatar from prev to next.
func memberEvent(t *testing.T, room id.RoomID, evtID id.EventID, prev, next id.ContentURIString) *event.Event {
	raw, err := json.Marshal(&event.MemberEventContent{Membership: event.MembershipJoin, AvatarURL: prev})
	must(t, err)
	sk := aliceMX.String()
	return &event.Event{
		Type: event.StateMember, RoomID: room, Sender: aliceMX, ID: evtID, StateKey: &sk,
		Timestamp: time.Now().UnixMilli(),
		Content:   event.Content{Parsed: &event.MemberEventContent{Membership: event.MembershipJoin, AvatarURL: next}},
		Unsigned:  event.Unsigned{PrevContent: &event.Content{VeryRaw: raw}},
	}
}

// TestOwnerAvatarBecomesDisplayPicture: the owner's Matrix avatar is read at login and made the
// display picture; a change seen in a portal's member event is applied once however many
// portals repeat it; a non-image is refused with a notice; the owner's ghost shows it.
func TestOwnerAvatarBecomesDisplayPicture(t *testing.T) {
	e := newGlueEnv(t, nil)
	fake := e.withFakeMedia()
	pic1, pic2 := testPNG(t, 1), testPNG(t, 2)
	uri1 := e.fm.AddMedia(matrixtest.Media{Data: pic1, MimeType: "image/png"})
	e.fm.SetProfileOf(aliceMX, "Alice", uri1)
	e.mustLogin()
	e.waitFor("display picture set at login", func() bool { return len(fake.setAvatars()) == 1 })
	if got := fake.setAvatars()[0]; !bytes.Equal(got, pic1) {
		t.Fatal("display picture is not the owner's avatar")
	}
	e.waitFor("owner's ghost avatar", func() bool { return e.fm.Avatar(ghostMXID(alice)) == uri1 })

	room := e.openPortal()
	uri2 := e.fm.AddMedia(matrixtest.Media{Data: pic2, MimeType: "image/png"})
	for i := range 3 { // the same change, as the member events of three portals
		e.fe.Bridge().QueueMatrixEvent(e.ctx, memberEvent(t, room, id.EventID(fmt.Sprintf("$m%d", i)), uri1, uri2))
	}
	e.waitFor("display picture changed", func() bool { return len(fake.setAvatars()) >= 2 })
	if got := fake.setAvatars()[1]; !bytes.Equal(got, pic2) {
		t.Fatal("display picture is not the new avatar")
	}
	// A member event that changes nothing of the avatar (a name change) does nothing either.
	e.fe.Bridge().QueueMatrixEvent(e.ctx, memberEvent(t, room, "$m9", uri2, uri2))
	mgmt, err := e.user().GetManagementRoom(e.ctx)
	must(t, err)
	before := len(e.fm.Messages(mgmt))

	// Not an image: refused, and the owner is told.
	notImage := e.fm.AddMedia(matrixtest.Media{Data: []byte("%PDF-1.4 not a picture"), MimeType: "application/pdf"})
	e.fe.Bridge().QueueMatrixEvent(e.ctx, memberEvent(t, room, "$m10", uri2, notImage))
	e.waitMessage(mgmt, e.fm.BotIntent().GetMXID(), "could not be made your MSN display picture: MSN display pictures must be PNG, JPEG or GIF images.")
	if n := len(fake.setAvatars()); n != 2 {
		t.Fatalf("SetAvatar called %d times, want 2 (the repeats and the refused image skipped)", n)
	}
	if n := len(e.botNotices(mgmt, before)); n != 1 {
		t.Fatalf("%d notices, want the one refusal", n)
	}

	// Removing the avatar removes the display picture.
	e.fe.Bridge().QueueMatrixEvent(e.ctx, memberEvent(t, room, "$m11", notImage, ""))
	e.waitFor("display picture removed", func() bool {
		a := fake.setAvatars()
		return len(a) == 3 && a[2] == nil
	})
}

// TestContactFileShown: a contact's files arrive as m.image / m.file / m.audio by MIME type,
// with a name that is text and never a path, their size and type, read through File.Open
// while the event is delivered; one over the homeserver's limit is a notice saying so.
func TestContactFileShown(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.withFakeMedia()
	e.mustLogin()
	room := e.openPortal()
	pic := testPNG(t, 3)
	cases := []struct {
		name, mime, wantName string
		data                 []byte
		want                 event.MessageType
	}{
		{"cat.png", "image/png", "cat.png", pic, event.MsgImage},
		{"../../etc/<b>passwd</b>", "text/plain", "_.._etc_<b>passwd<_b>", []byte("root:x:0:0"), event.MsgFile},
		{"song.mp3", "audio/mpeg", "song.mp3", []byte("ID3 not really"), event.MsgAudio},
		{"clip.bin", "not a mime", "clip.bin", []byte{0, 1, 2}, event.MsgFile},
	}
	for i, c := range cases {
		opened := 0
		f := bridge.File{
			ID: fmt.Sprintf("file:%d", i), Chat: bridge.DirectChat(bob), Sender: bob, SenderName: "Bobby",
			Name: c.name, Size: int64(len(c.data)), MIME: c.mime, Time: time.Now(),
			Open: func() (io.ReadCloser, error) {
				opened++
				return io.NopCloser(bytes.NewReader(c.data)), nil
			},
		}
		before := e.fm.Uploads()
		e.feed(f)
		// The delivery returned: the file is uploaded already (Open is not called later).
		if e.fm.Uploads() != before+1 || opened != 1 {
			t.Fatalf("%s: delivery returned before the upload (uploads %d→%d, opened %d)", c.name, before, e.fm.Uploads(), opened)
		}
		ev := e.waitMessage(room, ghostMXID(bob), c.wantName)
		msg := ev.Content.Parsed.(*event.MessageEventContent)
		wantMIME := c.mime
		if c.mime == "not a mime" {
			wantMIME = "application/octet-stream"
		}
		if msg.MsgType != c.want || msg.Body != c.wantName || msg.FileName != c.wantName || msg.Format != "" ||
			msg.Info == nil || msg.Info.Size != len(c.data) || msg.Info.MimeType != wantMIME {
			t.Fatalf("%s: shown as %+v (info %+v)", c.name, msg, msg.Info)
		}
		if got := e.mediaOf(msg.URL); !bytes.Equal(got, c.data) {
			t.Fatalf("%s: uploaded %q", c.name, got)
		}
	}

	// A file the homeserver refuses becomes a notice saying who sent what.
	e.fm.SetUploadLimit(4)
	data := bytes.Repeat([]byte("x"), 2048)
	e.feed(bridge.File{ID: "file:big", Chat: bridge.DirectChat(bob), Sender: bob, SenderName: "Bobby", Name: "big.txt",
		Size: int64(len(data)), MIME: "text/plain", Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }})
	ev := e.waitMessage(room, ghostMXID(bob), "big.txt")
	if msg := ev.Content.Parsed.(*event.MessageEventContent); msg.MsgType != event.MsgNotice ||
		msg.Body != "Bobby tried to send big.txt (2 KiB): it is larger than the homeserver accepts" {
		t.Fatalf("refused upload shown as %s %q", msg.MsgType, msg.Body)
	}
	// A file that is not the size announced is not shown as if it were.
	e.fm.SetUploadLimit(0)
	e.feed(bridge.File{ID: "file:short", Chat: bridge.DirectChat(bob), Sender: bob, SenderName: "Bobby", Name: "short.txt",
		Size: 100, MIME: "text/plain", Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("3 bytes")), nil }})
	ev = e.waitMessage(room, ghostMXID(bob), "short.txt")
	if msg := ev.Content.Parsed.(*event.MessageEventContent); msg.MsgType != event.MsgNotice {
		t.Fatalf("short file shown as %s %q", msg.MsgType, msg.Body)
	}
}

// TestFileFailedNotice: a file a contact could not send is told in the chat, its remote names
// as text.
func TestFileFailedNotice(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	room := e.openPortal()
	e.feed(bridge.FileFailed{Chat: bridge.DirectChat(bob), Sender: bob, SenderName: hostileName, Name: "[x](https://evil.example).zip",
		Size: 100 << 20, Reason: bridge.FailureTooLarge, Time: time.Now()})
	ev := e.waitMessage(room, ghostMXID(bob), "tried to send")
	msg := ev.Content.Parsed.(*event.MessageEventContent)
	if msg.MsgType != event.MsgNotice || !strings.HasSuffix(msg.Body, "(100 MiB): too large (MSN files reach the bridge up to 20 MiB)") {
		t.Fatalf("notice %s %q", msg.MsgType, msg.Body)
	}
	// The name is text, and never a path: its slashes are not kept.
	assertLiteral(t, "file failure", msg, cleanedName, "[x](https:__evil.example).zip")

	e.feed(bridge.FileFailed{Chat: bridge.DirectChat(bob), Sender: bob, SenderName: "Bobby", Name: "a.txt", Size: 10,
		Reason: bridge.FailureCanceled, Time: time.Now().Add(time.Second)})
	e.waitMessage(room, ghostMXID(bob), "Bobby tried to send a.txt (10 bytes): cancelled before it arrived")
}

// TestWinkShown: a wink with a thumbnail is an image named after it; without, a notice.
func TestWinkShown(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	room := e.openPortal()
	pic := testPNG(t, 4)
	e.feed(bridge.Wink{ID: "wink:1", Chat: bridge.DirectChat(bob), Sender: bob, Name: "Dancing <pig>", Image: pic, MIME: "image/png", Time: time.Now()})
	ev := e.waitMessage(room, ghostMXID(bob), "Dancing <pig>")
	msg := ev.Content.Parsed.(*event.MessageEventContent)
	if msg.MsgType != event.MsgImage || msg.Format != "" || !bytes.Equal(e.mediaOf(msg.URL), pic) {
		t.Fatalf("wink shown as %+v", msg)
	}
	// A "thumbnail" that is not an image is not shown as one.
	e.feed(bridge.Wink{ID: "wink:2", Chat: bridge.DirectChat(bob), Sender: bob, Name: hostileMarkup, Image: []byte("MSCF cab"), MIME: "image/png", Time: time.Now()})
	ev = e.waitMessage(room, ghostMXID(bob), "sent a wink: ")
	msg = ev.Content.Parsed.(*event.MessageEventContent)
	if msg.MsgType != event.MsgNotice {
		t.Fatalf("wink without image shown as %s", msg.MsgType)
	}
	assertLiteral(t, "wink", msg, bridge.CleanLine(hostileMarkup, maxFileNameShown))
}

// TestEmoticonsInline: custom emoticons are inline images in the formatted body, uploaded once
// per SHA1D; the plain body keeps the shortcuts; the rest of the text stays escaped.
func TestEmoticonsInline(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	room := e.openPortal()
	pic := testPNG(t, 5)
	emo := []bridge.Emoticon{{Shortcut: "(cat)", Avatar: "sha-cat", Data: pic, MIME: "image/png"}, {Shortcut: "(x)", Avatar: "sha-x"}}
	before := e.fm.Uploads()
	e.feed(bridge.Message{ID: "msn:bob@example.com:1:1", Chat: bridge.DirectChat(bob), Sender: bob, Text: "look (cat) <b>(cat)</b> (x)", Time: time.Now(), Emoticons: emo})
	ev := e.waitMessage(room, ghostMXID(bob), "look (cat)")
	msg := ev.Content.Parsed.(*event.MessageEventContent)
	if e.fm.Uploads() != before+1 {
		t.Fatalf("%d uploads, want 1", e.fm.Uploads()-before)
	}
	if msg.Body != "look (cat) <b>(cat)</b> (x)" || msg.Format != event.FormatHTML {
		t.Fatalf("message %q format %q", msg.Body, msg.Format)
	}
	start := strings.Index(msg.FormattedBody, `src="`)
	if start < 0 {
		t.Fatalf("no image in %q", msg.FormattedBody)
	}
	uri := id.ContentURIString(strings.SplitN(msg.FormattedBody[start+5:], `"`, 2)[0])
	img := `<img data-mx-emoticon src="` + string(uri) + `" alt="(cat)" title="(cat)" height="32">`
	if want := "look " + img + " &lt;b&gt;" + img + "&lt;/b&gt; (x)"; msg.FormattedBody != want {
		t.Fatalf("formatted body\n%q, want\n%q", msg.FormattedBody, want)
	}
	if !bytes.Equal(e.mediaOf(uri), pic) {
		t.Fatal("emoticon image is not the emoticon")
	}
	e.feed(bridge.Message{ID: "msn:bob@example.com:2:2", Chat: bridge.DirectChat(bob), Sender: bob, Text: "again (cat)", Time: time.Now(), Emoticons: emo})
	ev = e.waitMessage(room, ghostMXID(bob), "again (cat)")
	if msg = ev.Content.Parsed.(*event.MessageEventContent); !strings.Contains(msg.FormattedBody, string(uri)) || e.fm.Uploads() != before+1 {
		t.Fatalf("emoticon uploaded again: %q, %d uploads", msg.FormattedBody, e.fm.Uploads()-before)
	}
}

// TestOwnerFileToContact: the owner's Matrix file reaches SendFile with its name, size, type and
// content, its caption follows as text, and its status says delivered; a declined or cancelled
// file fails saying so; a file the homeserver does not have fails saying it could not be
// downloaded.
func TestOwnerFileToContact(t *testing.T) {
	e := newGlueEnv(t, nil)
	fake := e.withFakeMedia()
	e.mustLogin()
	room := e.openPortal()
	pic := testPNG(t, 6)
	uri := e.fm.AddMedia(matrixtest.Media{Data: pic, MimeType: "image/png"})
	evtID := e.sendMatrix(room, &event.MessageEventContent{MsgType: event.MsgImage, Body: "look at this", FileName: "../cat.png",
		URL: uri, Info: &event.FileInfo{MimeType: "image/png", Size: len(pic)}})
	if st := e.waitStatus(evtID); st.Status != event.MessageStatusSuccess {
		t.Fatalf("status %+v, want delivered", st)
	}
	sent := fake.sent()
	if len(sent) != 1 || sent[0].chat != bridge.DirectChat(bob) || sent[0].name != "_cat.png" || sent[0].size != int64(len(pic)) ||
		sent[0].mime != "image/png" || !bytes.Equal(sent[0].data, pic) {
		t.Fatalf("sent %+v", sent)
	}
	e.bob.waitText(t, "look at this")

	// An edit of the caption follows as a correction; an edit of a file without one fails.
	edit := e.sendMatrix(room, &event.MessageEventContent{MsgType: event.MsgImage, Body: "* look at that",
		NewContent: &event.MessageEventContent{MsgType: event.MsgImage, Body: "look at that", FileName: "cat.png", URL: uri},
		RelatesTo:  &event.RelatesTo{Type: event.RelReplace, EventID: evtID}})
	e.bob.waitText(t, "* look at that")
	if st := e.waitStatus(edit); st.Status != event.MessageStatusSuccess {
		t.Fatalf("caption edit status %+v", st)
	}

	// Without a MIME type, it is detected from the content, and the name gets its extension.
	evtID = e.sendMatrix(room, &event.MessageEventContent{MsgType: event.MsgFile, Body: "pic", URL: uri})
	if st := e.waitStatus(evtID); st.Status != event.MessageStatusSuccess {
		t.Fatalf("status %+v", st)
	}
	if s := fake.sent()[1]; s.name != "pic.png" || s.mime != "image/png" {
		t.Fatalf("sent %+v", s)
	}
	edit = e.sendMatrix(room, &event.MessageEventContent{MsgType: event.MsgFile, Body: "* pic2",
		NewContent: &event.MessageEventContent{MsgType: event.MsgFile, Body: "pic2", URL: uri},
		RelatesTo:  &event.RelatesTo{Type: event.RelReplace, EventID: evtID}})
	if st := e.waitStatus(edit); st.Status == event.MessageStatusSuccess || !strings.Contains(st.Message, "cannot change a file") {
		t.Fatalf("file edit status %+v", st)
	}

	for _, c := range []struct {
		reason bridge.SendFailure
		want   string
	}{
		{bridge.FailureDeclined, "declined"},
		{bridge.FailureCanceled, "cancelled"},
	} {
		fake.mu.Lock()
		fake.fileErr = &bridge.SendError{Reason: c.reason, Err: errors.New("peer said no")}
		fake.mu.Unlock()
		evtID = e.sendMatrix(room, &event.MessageEventContent{MsgType: event.MsgImage, Body: "cat.png", URL: uri})
		if st := e.waitStatus(evtID); st.Status != event.MessageStatusFail || !strings.Contains(st.Message, c.want) || !st.SendNotice {
			t.Fatalf("%s: status %+v", c.reason, st)
		}
	}
	evtID = e.sendMatrix(room, &event.MessageEventContent{MsgType: event.MsgImage, Body: "gone.png", URL: "mxc://test/gone"})
	if st := e.waitStatus(evtID); st.Status != event.MessageStatusFail || !strings.Contains(st.Message, "downloaded") {
		t.Fatalf("missing media: status %+v", st)
	}
	// Announced over the cap: refused (by bridgev2, from the room capabilities) before anything
	// is downloaded.
	n := len(fake.sent())
	evtID = e.sendMatrix(room, &event.MessageEventContent{MsgType: event.MsgFile, Body: "huge.iso", URL: uri,
		Info: &event.FileInfo{Size: bridge.DefaultMaxFileSize + 1}})
	if st := e.waitStatus(evtID); st.Status == event.MessageStatusSuccess || !strings.Contains(st.Error(), "too large") {
		t.Fatalf("huge file: status %s %s %q", st.Status, st.ErrorReason, st.Message)
	}
	if len(fake.sent()) != n {
		t.Fatal("a file over the cap was sent")
	}
}

// TestDownloadCapped: a download over the cap fails as too large whatever the event claimed.
func TestDownloadCapped(t *testing.T) {
	fm := matrixtest.New()
	uri := fm.AddMedia(matrixtest.Media{Data: bytes.Repeat([]byte("a"), 100)})
	called := false
	err := downloadCapped(context.Background(), fm.BotIntent(), uri, nil, 99, func(*os.File, int64) error { called = true; return nil })
	var tooLarge errFileTooLarge
	if !errors.As(err, &tooLarge) || called {
		t.Fatalf("over the cap: %v (fn called %v)", err, called)
	}
	err = downloadCapped(context.Background(), fm.BotIntent(), uri, nil, 100, func(f *os.File, size int64) error {
		data, err := io.ReadAll(f)
		if err != nil || size != 100 || len(data) != 100 {
			return fmt.Errorf("read %d of %d: %v", len(data), size, err)
		}
		return nil
	})
	must(t, err)
}

func TestMediaHelpers(t *testing.T) {
	for in, want := range map[string]string{
		"a.png": "a.png", "../../x": "_.._x", `C:\evil\x.exe`: "C:_evil_x.exe", "": "file", "...": "file",
		"a\nb\u202E.txt": "a b.txt", ".hidden": "hidden",
	} {
		if got := cleanFileName(in); got != want {
			t.Errorf("cleanFileName(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"image/png": "image/png", "text/plain; charset=utf-8": "text/plain", "": "application/octet-stream", "<script>": "application/octet-stream"} {
		if got := cleanMIME(in); got != want {
			t.Errorf("cleanMIME(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]event.MessageType{"image/gif": event.MsgImage, "video/mp4": event.MsgVideo, "audio/ogg": event.MsgAudio, "application/zip": event.MsgFile} {
		if got := fileMsgType(in); got != want {
			t.Errorf("fileMsgType(%q) = %q, want %q", in, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0 bytes", 1023: "1023 bytes", 2048: "2 KiB", 1 << 20: "1 MiB", 3 << 19: "1.5 MiB", 64 << 20: "64 MiB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
	for _, c := range [][3]string{{"smile", "image/png", "smile.png"}, {"a.gif", "image/png", "a.gif"}, {"blob", "application/octet-stream", "blob"}} {
		if got := withExtension(c[0], c[1]); got != c[2] {
			t.Errorf("withExtension(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
	uris := map[string]id.ContentURIString{":)": "mxc://t/a", ":))": "mxc://t/b", `"q"`: "mxc://t/c"}
	got := emoticonHTML("a :)) b :) <c>\n\"q\"", uris)
	want := `a <img data-mx-emoticon src="mxc://t/b" alt=":))" title=":))" height="32"> b ` +
		`<img data-mx-emoticon src="mxc://t/a" alt=":)" title=":)" height="32"> &lt;c&gt;<br>` +
		`<img data-mx-emoticon src="mxc://t/c" alt="&#34;q&#34;" title="&#34;q&#34;" height="32">`
	if got != want {
		t.Errorf("emoticonHTML:\n%q, want\n%q", got, want)
	}
}

// slowReader gives one byte per Read, after the first Read signals started.
type slowReader struct {
	mu      sync.Mutex
	reads   int
	closed  bool
	started chan struct{}
}

func (s *slowReader) Read(p []byte) (int, error) {
	s.mu.Lock()
	s.reads++
	first := s.reads == 1
	s.mu.Unlock()
	if first {
		close(s.started)
	}
	time.Sleep(time.Millisecond)
	p[0] = 'x'
	return 1, nil
}

func (s *slowReader) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *slowReader) count() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads, s.closed
}

// TestFileUploadStopsWithDelivery: a file's content is read only while its event is delivered:
// when the delivery ends (the frontend detached, the bridge stopping), the upload stops, the
// file is closed and the chat says it could not be uploaded.
func TestFileUploadStopsWithDelivery(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	room := e.openPortal()
	r := &slowReader{started: make(chan struct{})}
	ctx, cancel := context.WithCancel(e.ctx)
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		_ = e.clientOf().handleEvent(ctx, e.core.Account(alice), bridge.File{ID: "file:slow", Chat: bridge.DirectChat(bob), Sender: bob,
			SenderName: "Bobby", Name: "slow.bin", Size: 1 << 20, MIME: "application/octet-stream",
			Open: func() (io.ReadCloser, error) { return r, nil }})
	}()
	select {
	case <-r.started:
	case <-time.After(testWait):
		t.Fatal("the file was never read")
	}
	cancel()
	select {
	case <-returned:
	case <-time.After(testWait):
		t.Fatal("the delivery did not return once its context ended")
	}
	reads, closed := r.count()
	if !closed || reads >= 1<<20 {
		t.Fatalf("after the delivery: closed %v, %d reads", closed, reads)
	}
	time.Sleep(20 * time.Millisecond)
	if again, _ := r.count(); again != reads {
		t.Fatalf("read %d more times after the delivery returned", again-reads)
	}
	ev := e.waitMessage(room, ghostMXID(bob), "slow.bin")
	if msg := ev.Content.Parsed.(*event.MessageEventContent); msg.MsgType != event.MsgNotice || !strings.Contains(msg.Body, "could not be uploaded") {
		t.Fatalf("shown as %s %q", msg.MsgType, msg.Body)
	}
}
