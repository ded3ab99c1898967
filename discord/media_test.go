package discord

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/discord/discordtest"
)

// testPNG encodes a small one-colour PNG.
func testPNG(t *testing.T, c color.Color) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	for x := 0; x < 4; x++ {
		for y := 0; y < 4; y++ {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// opener returns a bridge.File's Open over data.
func opener(data []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
}

// channelHook returns the bridge's webhook of a channel.
func (h *harness) channelHook(channelID string) *discordgo.Webhook {
	h.t.Helper()
	for _, w := range h.dc.Webhooks() {
		if w.ChannelID == channelID {
			return w
		}
	}
	h.t.Fatalf("no webhook in channel %s", channelID)
	return nil
}

// waitContacts waits until the account's portal knows its contacts (the roster lists them).
func (h *harness) waitContacts() {
	h.t.Helper()
	h.waitFor("roster with the contacts", func() bool { _, r := h.roster(); return strings.Contains(r, "Erin") })
}

func (h *harness) handle(evt bridge.Event) {
	h.t.Helper()
	if err := h.fe.HandleEvent(context.Background(), h.core.Account(alice), evt); err != nil {
		h.t.Fatalf("%s: %v", evt.EventType(), err)
	}
}

// TestContactPictureOnWebhook: a contact's picture is set on their channel's webhook (a data
// URI, no avatar_url), so their messages show it; it is sent again only when it changes, also
// across a restart, and removed when the contact removes theirs.
func TestContactPictureOnWebhook(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	h.waitContacts()
	red, blue := testPNG(t, color.RGBA{255, 0, 0, 255}), testPNG(t, color.RGBA{0, 0, 255, 255})
	bobChat := bridge.DirectChat(bob)
	edits := func() int { return h.dc.Touched()["PATCH /webhooks/{w}"] }

	h.handle(bridge.ContactAvatar{Handle: bob, Avatar: "redSHA1D=", Data: red, MIME: "image/png"})
	h.handle(bridge.Message{ID: "m1", Chat: bobChat, Sender: bob, SenderName: "Bob", Text: "first"})
	ch := h.dc.ChannelByName("bob-at-example-com")
	if ch == nil {
		t.Fatal("no channel for bob")
	}
	hook := h.channelHook(ch.ID)
	if data, mime, ok := h.dc.WebhookAvatar(hook.ID); !ok || mime != "image/png" || !bytes.Equal(data, red) {
		t.Fatalf("webhook avatar %v %q, want the red picture", ok, mime)
	}
	msgs := h.webhookMessages(ch.ID)
	if len(msgs) != 1 || msgs[0].AvatarURL != "" || msgs[0].Author.Avatar == "" || msgs[0].Author.Avatar != hook.Avatar {
		t.Fatalf("first message: avatar_url %q, author avatar %q, webhook avatar %q", msgs[0].AvatarURL, msgs[0].Author.Avatar, hook.Avatar)
	}
	if n := edits(); n != 1 {
		t.Fatalf("%d webhook edits for one picture", n)
	}

	// The same picture again is not sent again.
	h.handle(bridge.ContactAvatar{Handle: bob, Avatar: "redSHA1D=", Data: red, MIME: "image/png"})
	h.handle(bridge.Message{ID: "m2", Chat: bobChat, Sender: bob, SenderName: "Bob", Text: "second"})
	if n := edits(); n != 1 {
		t.Fatalf("%d webhook edits after the same picture again", n)
	}

	// A new picture replaces it.
	h.handle(bridge.ContactAvatar{Handle: bob, Avatar: "blueSHA1D=", Data: blue, MIME: "image/png"})
	h.waitFor("the blue picture on the webhook", func() bool {
		data, _, ok := h.dc.WebhookAvatar(hook.ID)
		return ok && bytes.Equal(data, blue)
	})
	if n := edits(); n != 2 {
		t.Fatalf("%d webhook edits for two pictures", n)
	}

	// After a restart the webhook is known to carry it: nothing is sent again.
	h.stopBridge()
	h.startBridge()
	h.waitFor("the new frontend to know bob", func() bool {
		p := h.fe.portalByHandle(alice)
		if p == nil {
			return false
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		_, ok := p.contacts[bob]
		return ok
	})
	h.handle(bridge.ContactAvatar{Handle: bob, Avatar: "blueSHA1D=", Data: blue, MIME: "image/png"})
	h.handle(bridge.Message{ID: "m3", Chat: bobChat, Sender: bob, SenderName: "Bob", Text: "after restart"})
	if n := edits(); n != 2 {
		t.Fatalf("%d webhook edits after a restart with the same picture", n)
	}
	if n := len(h.dc.Webhooks()); n != 1 {
		t.Fatalf("%d webhooks after the restart", n)
	}

	// The owner's message from another frontend does not wear the contact's face: it goes
	// through the channel's second webhook, which has no picture.
	h.handle(bridge.Message{ID: "m4", Chat: bobChat, Sender: alice, SenderName: "Alice", Text: "from matrix",
		FromMe: true, Origin: "matrix"})
	msgs = h.webhookMessages(ch.ID)
	own := msgs[len(msgs)-1]
	if !strings.HasSuffix(own.Author.Username, "(you, via matrix)") || own.WebhookID == hook.ID || own.Author.Avatar != "" {
		t.Fatalf("owner's message by %q through webhook %s (contact's %s) with avatar %q",
			own.Author.Username, own.WebhookID, hook.ID, own.Author.Avatar)
	}
	h.handle(bridge.Message{ID: "m5", Chat: bobChat, Sender: bob, SenderName: "Bob", Text: "bob again"})
	msgs = h.webhookMessages(ch.ID)
	if last := msgs[len(msgs)-1]; last.WebhookID != hook.ID || last.Author.Avatar == "" {
		t.Fatalf("bob's message after the owner's through webhook %s with avatar %q", last.WebhookID, last.Author.Avatar)
	}
	if n := edits(); n != 2 {
		t.Fatalf("%d webhook edits after the owner's message", n)
	}

	// Removed: the webhook shows no picture.
	h.handle(bridge.ContactAvatar{Handle: bob})
	h.waitFor("the picture removed", func() bool { _, _, ok := h.dc.WebhookAvatar(hook.ID); return !ok })
	if n := edits(); n != 3 {
		t.Fatalf("%d webhook edits after the removal", n)
	}

	// Something that is no image is never sent to Discord.
	h.handle(bridge.ContactAvatar{Handle: bob, Avatar: "junkSHA1D=", Data: []byte("<html>not a picture</html>")})
	h.handle(bridge.Message{ID: "m6", Chat: bobChat, Sender: bob, SenderName: "Bob", Text: "junk picture"})
	if n := edits(); n != 3 {
		t.Fatalf("%d webhook edits after a picture that is no image", n)
	}
	if _, _, ok := h.dc.WebhookAvatar(hook.ID); ok {
		t.Fatal("the webhook has a picture after one that is no image")
	}
}

// TestGroupChannelShowsNoSingleFace: in a group channel, whose webhook serves several people,
// no one's picture is set, so no message shows someone else's face.
func TestGroupChannelShowsNoSingleFace(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	h.waitContacts()
	h.handle(bridge.ContactAvatar{Handle: carol, Avatar: "carolSHA1D=", Data: testPNG(t, color.White), MIME: "image/png"})
	chat := bridge.GroupChat("7")
	h.handle(bridge.ChatMembership{Chat: chat, Handle: carol, Joined: true, Members: []string{bob, carol}})
	h.handle(bridge.Message{ID: "g1", Chat: chat, Sender: carol, SenderName: "Carol", Text: "hello both"})
	g := h.dc.ChannelByName("group-7")
	if g == nil {
		t.Fatal("no group channel")
	}
	if _, _, ok := h.dc.WebhookAvatar(h.channelHook(g.ID).ID); ok {
		t.Fatal("the group channel's webhook carries a contact's picture")
	}
	if n := h.dc.Touched()["PATCH /webhooks/{w}"]; n != 0 {
		t.Fatalf("%d webhook edits for a group channel", n)
	}
}

// TestMSNFilesWinksAndEmoticons: a contact's file arrives as an attachment with its name under
// the contact's name; one over the upload limit, one that failed and one larger than it said
// become lines naming it (escaped); winks and custom emoticons come with their images.
func TestMSNFilesWinksAndEmoticons(t *testing.T) {
	const limit = 4 << 10
	h := newHarness(t, harnessOpts{feOpts: []Option{func(f *Frontend) { f.maxUpload = limit }}})
	h.login()
	h.waitContacts()
	bobChat := bridge.DirectChat(bob)
	content := []byte("quarterly numbers\n")
	h.handle(bridge.File{ID: "f1", Chat: bobChat, Sender: bob, SenderName: "Bob", Name: `..\dir/report 2026.txt`,
		Size: int64(len(content)), MIME: "text/plain", Open: opener(content)})
	ch := h.dc.ChannelByName("bob-at-example-com")
	if ch == nil {
		t.Fatal("no channel for bob")
	}
	msgs := h.webhookMessages(ch.ID)
	if len(msgs) != 1 || len(msgs[0].Attachments) != 1 {
		t.Fatalf("file posts: %d", len(msgs))
	}
	a := msgs[0].Attachments[0]
	if a.Filename != "report 2026.txt" || msgs[0].Author.Username != "Bob" {
		t.Errorf("attachment %q by %q", a.Filename, msgs[0].Author.Username)
	}
	resp, err := http.Get(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, content) {
		t.Errorf("downloaded %q, want %q", got, content)
	}

	// The owner's file sent from another frontend: their own webhook, marked as theirs.
	h.handle(bridge.File{ID: "f0", Chat: bobChat, Sender: alice, Name: "mine.txt", Size: 4, MIME: "text/plain",
		FromMe: true, Origin: "matrix", Open: opener([]byte("mine"))})
	msgs = h.webhookMessages(ch.ID)
	if mine := msgs[len(msgs)-1]; len(mine.Files) != 1 || string(mine.Files[0].Data) != "mine" ||
		!strings.HasSuffix(mine.Author.Username, "(you, via matrix)") || mine.WebhookID == msgs[0].WebhookID {
		t.Errorf("owner's file by %q through %s (bob's %s)", mine.Author.Username, mine.WebhookID, msgs[0].WebhookID)
	}

	big := bytes.Repeat([]byte("x"), limit+1)
	hostile := "**huge** @everyone.bin"
	h.handle(bridge.File{ID: "f2", Chat: bobChat, Sender: bob, SenderName: "Bob", Name: hostile, Size: int64(len(big)), Open: opener(big)})
	h.handle(bridge.File{ID: "f3", Chat: bobChat, Sender: bob, SenderName: "Bob", Name: "liar.bin", Size: 10, Open: opener(big)})
	h.handle(bridge.FileFailed{Chat: bobChat, Sender: bob, SenderName: "Bob", Name: "holiday.jpg", Size: 3 << 20,
		Reason: bridge.FailureCanceled})
	h.handle(bridge.File{ID: "f4", Chat: bobChat, Sender: bob, SenderName: "Bob", Name: "gone.txt", Size: 5,
		Open: func() (io.ReadCloser, error) { return nil, errors.New("transfer buffer gone") }})
	var lines []string
	for _, m := range h.dc.Messages(ch.ID) {
		if m.WebhookID == "" {
			lines = append(lines, m.Content)
		}
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		`**\*\*huge\*\* \@everyone.bin** (4.0 KiB): too large to show here (Discord takes files of up to 4.0 KiB`,
		"**liar.bin** (10 bytes): too large to show here",
		"**holiday.jpg** (3.0 MiB), but it did not arrive: the transfer was cancelled.",
		"**gone.txt** (5 bytes), but it could not be read",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no line with %q in:\n%s", want, all)
		}
	}
	if n := len(h.webhookMessages(ch.ID)); n != 2 {
		t.Errorf("%d webhook posts, want only the two files that fit", n)
	}

	// Winks: the thumbnail attached, or the line alone.
	wink := testPNG(t, color.RGBA{0, 255, 0, 255})
	h.handle(bridge.Wink{ID: "w1", Chat: bobChat, Sender: bob, SenderName: "Bob", Name: "Dancing *Pig*", Image: wink, MIME: "image/png"})
	h.handle(bridge.Wink{ID: "w2", Chat: bobChat, Sender: bob, SenderName: "Bob", Name: "Kiss"})
	h.handle(bridge.Wink{ID: "w3", Chat: bobChat, Sender: bob, SenderName: "Bob", Name: "Odd", Image: []byte("not an image")})
	winks := map[string]*discordtest.Message{}
	for _, m := range h.dc.Messages(ch.ID) {
		if strings.Contains(m.Content, "sent a wink") {
			winks[m.Content] = m
		}
	}
	for line, files := range map[string]int{
		`*😉 ` + escapeMarkdown(bobName) + ` sent a wink: Dancing \*Pig\**`: 1,
		`*😉 ` + escapeMarkdown(bobName) + ` sent a wink: Kiss*`:            0,
		`*😉 ` + escapeMarkdown(bobName) + ` sent a wink: Odd*`:             0,
	} {
		m := winks[line]
		if m == nil {
			t.Errorf("no wink line %q among %v", line, winks)
			continue
		}
		if len(m.Files) != files {
			t.Errorf("wink %q has %d files, want %d", line, len(m.Files), files)
		}
		if files == 1 && (m.Attachments[0].Filename != "wink.png" || !bytes.Equal(m.Files[0].Data, wink)) {
			t.Errorf("wink attachment %q", m.Attachments[0].Filename)
		}
	}

	// Custom emoticons: the text keeps the shortcuts; each image used is attached once.
	pig, cat := testPNG(t, color.RGBA{255, 192, 203, 255}), testPNG(t, color.Black)
	h.handle(bridge.Message{ID: "e1", Chat: bobChat, Sender: bob, SenderName: "Bob", Text: "hi (pig) and (pig) and [cat]",
		Emoticons: []bridge.Emoticon{
			{Shortcut: "(pig)", Avatar: "pig=", Data: pig, MIME: "image/png"},
			{Shortcut: "[cat]", Avatar: "cat=", Data: cat, MIME: "image/png"},
			{Shortcut: "(pig)", Avatar: "pig=", Data: pig, MIME: "image/png"},
			{Shortcut: "(dog)", Avatar: "dog=", Data: []byte("not used, not an image")},
			{Shortcut: "(and)", Avatar: "and=", Data: []byte("<b>used, not an image</b>")},
		}})
	posts := h.webhookMessages(ch.ID)
	last := posts[len(posts)-1]
	if last.Content != "hi (pig) and (pig) and \\[cat\\]" && last.Content != "hi (pig) and (pig) and [cat]" {
		t.Errorf("emoticon text %q", last.Content)
	}
	var names []string
	for _, a := range last.Attachments {
		names = append(names, a.Filename)
	}
	if strings.Join(names, ",") != "emoticon-pig.png,emoticon-cat.png" {
		t.Errorf("emoticon attachments %v", names)
	}
}

// TestExactReader: an attachment's stream ends where Discord said, and fails when the server
// sends less or more.
func TestExactReader(t *testing.T) {
	for _, tc := range []struct {
		body string
		size int64
		ok   bool
	}{
		{"hello", 5, true},
		{"hell", 5, false},
		{"hello!", 5, false},
		{"", 0, true},
	} {
		r := &exactReader{rc: io.NopCloser(strings.NewReader(tc.body)), left: tc.size}
		got, err := io.ReadAll(r)
		if tc.ok && (err != nil || string(got) != tc.body) {
			t.Errorf("%q/%d: %q %v", tc.body, tc.size, got, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("%q/%d: no error", tc.body, tc.size)
		}
	}
}

func TestUploadName(t *testing.T) {
	for in, want := range map[string]string{
		"report.pdf":                     "report.pdf",
		`..\..\windows\system.ini`:       "system.ini",
		"a/b/c.txt":                      "c.txt",
		"  ":                             "file",
		"..":                             "file",
		"what?.txt":                      "what_.txt",
		"bell\x07.txt":                   "bell .txt",
		strings.Repeat("n", 200) + ".gz": strings.Repeat("n", 97) + ".gz",
	} {
		if got := uploadName(in); got != want {
			t.Errorf("uploadName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUploadsRetriedWholeOrRefusedAsALine: an upload that failed transiently is sent again with
// all of its content; one Discord refuses as too large (40005, its limit lower than the
// frontend thought) becomes the line that names it.
func TestUploadsRetriedWholeOrRefusedAsALine(t *testing.T) {
	h := newHarness(t, harnessOpts{fake: func(o *discordtest.Options) { o.MaxFileBytes = 2 << 10 }})
	h.login()
	h.waitContacts()
	bobChat := bridge.DirectChat(bob)
	h.handle(bridge.Message{ID: "m1", Chat: bobChat, Sender: bob, SenderName: "Bob", Text: "a file follows"})
	ch := h.dc.ChannelByName("bob-at-example-com")
	if ch == nil {
		t.Fatal("no channel for bob")
	}

	content := bytes.Repeat([]byte("0123456789"), 100)
	h.dc.InjectFault("POST /webhooks/{w}/{tok}", 1, http.StatusInternalServerError)
	h.handle(bridge.File{ID: "f1", Chat: bobChat, Sender: bob, SenderName: "Bob", Name: "digits.txt",
		Size: int64(len(content)), MIME: "text/plain", Open: opener(content)})
	wink := testPNG(t, color.RGBA{1, 2, 3, 255})
	h.dc.InjectFault("POST /channels/{c}/messages", 1, http.StatusServiceUnavailable)
	h.handle(bridge.Wink{ID: "w1", Chat: bobChat, Sender: bob, SenderName: "Bob", Name: "Wave", Image: wink, MIME: "image/png"})
	var file, winked *discordtest.Message
	for _, m := range h.dc.Messages(ch.ID) {
		switch {
		case len(m.Files) == 1 && m.Files[0].Filename == "digits.txt":
			file = m
		case strings.Contains(m.Content, "sent a wink: Wave"):
			winked = m
		}
	}
	if file == nil || !bytes.Equal(file.Files[0].Data, content) {
		t.Fatalf("file after a 500: %+v", file)
	}
	if winked == nil || len(winked.Files) != 1 || !bytes.Equal(winked.Files[0].Data, wink) {
		t.Fatalf("wink after a 503: %+v", winked)
	}

	big := bytes.Repeat([]byte("x"), 3<<10)
	h.handle(bridge.File{ID: "f2", Chat: bobChat, Sender: bob, SenderName: "Bob", Name: "big.bin", Size: int64(len(big)), Open: opener(big)})
	found := false
	for _, m := range h.dc.Messages(ch.ID) {
		if m.WebhookID == "" && strings.Contains(m.Content, "**big.bin** (3.0 KiB): too large to show here") {
			found = true
		}
	}
	if !found {
		t.Fatal("no line for the file Discord refused as too large")
	}
}

// TestPictureEditRateLimitedIsRescheduled: a webhook edit answered 429 is not slept on and
// holds up no message; the presence loop applies the picture once the wait is over.
func TestPictureEditRateLimitedIsRescheduled(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	h.waitContacts()
	bobChat := bridge.DirectChat(bob)
	h.handle(bridge.Message{ID: "m1", Chat: bobChat, Sender: bob, SenderName: "Bob", Text: "no picture yet"})
	ch := h.dc.ChannelByName("bob-at-example-com")
	if ch == nil {
		t.Fatal("no channel for bob")
	}
	hook := h.channelHook(ch.ID)
	h.dc.Inject429("PATCH /webhooks/{w}", 1, 300*time.Millisecond)
	pic := testPNG(t, color.RGBA{9, 9, 9, 255})
	h.handle(bridge.ContactAvatar{Handle: bob, Avatar: "picSHA1D=", Data: pic, MIME: "image/png"})
	h.handle(bridge.Message{ID: "m2", Chat: bobChat, Sender: bob, SenderName: "Bob", Text: "posted while the edit waits"})
	if n := len(h.webhookMessages(ch.ID)); n != 2 {
		t.Fatalf("%d webhook posts, want 2", n)
	}
	h.waitFor("the picture after the 429", func() bool {
		data, _, ok := h.dc.WebhookAvatar(hook.ID)
		return ok && bytes.Equal(data, pic)
	})
	if n := h.dc.Routes429()["PATCH /webhooks/{w}"]; n != 1 {
		t.Errorf("%d webhook edits answered 429, want the one injected", n)
	}
}

func TestMediaHelpers(t *testing.T) {
	for tier, want := range map[discordgo.PremiumTier]int64{
		discordgo.PremiumTierNone: 10 << 20, discordgo.PremiumTier1: 10 << 20,
		discordgo.PremiumTier2: 50 << 20, discordgo.PremiumTier3: 100 << 20,
	} {
		if got := uploadLimitFor(tier); got != want {
			t.Errorf("uploadLimitFor(%d) = %d, want %d", tier, got, want)
		}
	}
	for n, want := range map[int64]string{
		-1: "size unknown", 0: "0 bytes", 1023: "1023 bytes", 1024: "1.0 KiB", 3 << 20: "3.0 MiB", 5 << 30: "5.0 GiB",
	} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
	for in, want := range map[string]string{
		"(pig)": "emoticon-pig", ":-)": "emoticon", "[a_b-c]": "emoticon-a_b-c", strings.Repeat("x", 50): "emoticon-" + strings.Repeat("x", 32),
	} {
		if got := emoticonName(in); got != want {
			t.Errorf("emoticonName(%q) = %q, want %q", in, got, want)
		}
	}
	for _, tc := range []struct {
		reason bridge.SendFailure
		err    error
		want   string
	}{
		{bridge.FailureDeclined, nil, "the contact declined it"},
		{bridge.FailureCanceled, nil, "the transfer was cancelled"},
		{bridge.FailureTooLarge, nil, "it is larger than the bridge takes"},
		{bridge.FailureOther, errors.New("**boom** @everyone"), `\*\*boom\*\* \@everyone`},
	} {
		if got := fileFailureText(tc.reason, tc.err); got != tc.want {
			t.Errorf("fileFailureText(%s, %v) = %q, want %q", tc.reason, tc.err, got, tc.want)
		}
	}
	if got := imageType([]byte("RIFF\x00\x00\x00\x00WEBPVP8 ")); got != "image/webp" {
		t.Errorf("imageType(webp) = %q", got)
	}
	if got := imageType([]byte("<svg xmlns='http://www.w3.org/2000/svg'/>")); got != "" {
		t.Errorf("imageType(svg) = %q, want none", got)
	}
}
