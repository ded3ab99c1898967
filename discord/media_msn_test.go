package discord

import (
	"bytes"
	"context"
	"errors"
	"image/color"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/discord/discordtest"
	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// The whole path, MSN P2P to Discord and back: msntest's bots speak P2P over loopback with the
// bridge's msn.Client, the real core carries it, and the frontend talks to the fake Discord.

// botMessage returns the first message of channel whose content contains text, or nil.
func (h *harness) botMessage(channel, text string) *discordtest.Message {
	for _, m := range h.dc.Messages(channel) {
		if strings.Contains(m.Content, text) {
			return m
		}
	}
	return nil
}

// bobChannel waits for bob's channel in the fake and returns its id.
func (h *harness) bobChannel() string {
	h.t.Helper()
	var id string
	h.waitFor("bob's channel", func() bool {
		if c := h.dc.ChannelByName("bob-at-example-com"); c != nil {
			id = c.ID
		}
		return id != ""
	})
	return id
}

// TestMSNMediaOverP2PToDiscord: bob (an msntest bot) speaks P2P with the bridge's client; his
// display picture becomes his webhook's avatar, his file an attachment with the same name and
// bytes; one over the upload limit, one over the bridge's cap, one he cancels half way and one
// he goes silent in half way become lines that say so; his wink and custom emoticon come with their images.
func TestMSNMediaOverP2PToDiscord(t *testing.T) {
	const uploadLimit = 16 << 10
	h := newHarness(t, harnessOpts{
		core: func(c *bridge.Config) {
			c.Media.SpoolDir = t.TempDir()
			c.Media.MaxFileSize = 128 << 10
			c.MSN.P2PIdleTimeout = 5 * time.Second // a silent sender is given up on after it
		},
		feOpts: []Option{func(f *Frontend) { f.maxUpload = uploadLimit }},
	})
	pic := testPNG(t, color.RGBA{200, 10, 10, 255})
	if _, err := h.ms.SetBotDisplayPicture(bob, pic); err != nil {
		t.Fatal(err)
	}
	h.login()
	h.waitContacts()
	h.waitFor("bob's picture fetched over P2P", func() bool {
		c, ok := h.core.Account(alice).Contact(bob)
		return ok && c.Avatar != ""
	})
	if err := h.ms.BotSay(bob, alice, "hello with a face"); err != nil {
		t.Fatal(err)
	}
	ch := h.bobChannel()
	h.waitFor("bob's message", func() bool { return len(h.webhookMessages(ch)) > 0 })
	hook := h.channelHook(ch)
	h.waitFor("bob's picture on his webhook", func() bool {
		data, _, ok := h.dc.WebhookAvatar(hook.ID)
		return ok && bytes.Equal(data, pic)
	})

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	// A file: the bot's BotSendFile returns once the bridge has it all.
	report := bytes.Repeat([]byte("quarterly numbers 0123456789\n"), 300) // 8.7 KB, several P2P chunks
	if err := h.ms.BotSendFile(ctx, bob, alice, "report 2026.txt", report); err != nil {
		t.Fatalf("bob's file: %v", err)
	}
	h.waitFor("bob's file as an attachment", func() bool {
		for _, m := range h.webhookMessages(ch) {
			if len(m.Files) == 1 && m.Files[0].Filename == "report 2026.txt" {
				if !bytes.Equal(m.Files[0].Data, report) {
					t.Fatalf("attachment holds %d bytes, want the %d sent", len(m.Files[0].Data), len(report))
				}
				return true
			}
		}
		return false
	})

	// Over the guild's upload limit: received by the bridge, shown as a line.
	big := bytes.Repeat([]byte{0xAB}, uploadLimit+1)
	if err := h.ms.BotSendFile(ctx, bob, alice, "big.bin", big); err != nil {
		t.Fatalf("bob's big file: %v", err)
	}
	h.waitFor("the too-large line", func() bool {
		return h.botMessage(ch, "**big.bin** (16.0 KiB): too large to show here (Discord takes files of up to 16.0 KiB") != nil
	})

	// Over the bridge's cap: declined, and said.
	if err := h.ms.BotSendFile(ctx, bob, alice, "huge.iso", make([]byte, 200<<10)); !errors.Is(err, msn.ErrTransferDeclined) {
		t.Fatalf("bob's file over the bridge's cap: %v, want it declined", err)
	}
	h.waitFor("the over-the-cap line", func() bool {
		return h.botMessage(ch, "**huge.iso** (200.0 KiB), but it did not arrive: it is larger than the bridge takes.") != nil
	})

	// A peer that stops half way: the bot's transfer ends (BYE) after half of the data.
	half := bytes.Repeat([]byte("half"), 8<<10)
	broken := io.MultiReader(bytes.NewReader(half), errReader{errors.New("the sender went away")})
	err := h.ms.BotSendFileFrom(ctx, bob, alice, "holiday.jpg", int64(2*len(half)), broken)
	if err == nil {
		t.Fatal("a transfer that stopped half way reported success on the bot's side")
	}
	h.waitFor("the half-way line", func() bool {
		return h.botMessage(ch, "**holiday.jpg** (64.0 KiB), but it did not arrive: the transfer was cancelled.") != nil
	})
	// One that goes silent half way: the bridge gives up on it after the idle timeout.
	stuck := &stallReader{data: half, release: make(chan struct{})}
	stalled := make(chan error, 1)
	go func() { stalled <- h.ms.BotSendFileFrom(ctx, bob, alice, "silent.bin", int64(2*len(half)), stuck) }()
	h.waitFor("the stalled line", func() bool {
		return h.botMessage(ch, "**silent.bin** (64.0 KiB), but it did not arrive: the transfer stalled.") != nil
	})
	close(stuck.release)
	if err := <-stalled; err == nil {
		t.Fatal("a transfer that stalled half way reported success on the bot's side")
	}
	for _, m := range h.webhookMessages(ch) {
		for _, f := range m.Files {
			if f.Filename == "holiday.jpg" || f.Filename == "big.bin" || f.Filename == "silent.bin" || f.Filename == "huge.iso" {
				t.Errorf("%s was posted as an attachment", f.Filename)
			}
		}
	}

	// A wink: its thumbnail, taken out of the cabinet, attached to the line.
	thumb := testPNG(t, color.RGBA{0, 200, 0, 255})
	wink, err := h.ms.BotPublishObject(bob, msn.ObjectWink, "Kiss", msntest.WinkCAB("Kiss", thumb, []byte("FWS not really flash")))
	if err != nil {
		t.Fatal(err)
	}
	if err = h.ms.BotWink(bob, alice, wink); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the wink with its image", func() bool {
		m := h.botMessage(ch, "sent a wink: Kiss")
		return m != nil && len(m.Files) == 1 && bytes.Equal(m.Files[0].Data, thumb) && m.Files[0].Filename == "wink.png"
	})

	// A custom emoticon: its image attached to the message that uses it.
	cat := testPNG(t, color.RGBA{10, 10, 10, 255})
	emo, err := h.ms.BotPublishObject(bob, msn.ObjectEmoticon, "", cat)
	if err != nil {
		t.Fatal(err)
	}
	if err = h.ms.BotSayWithEmoticons(bob, alice, "look (kitty)", []msn.Emoticon{{Shortcut: "(kitty)", Object: emo}}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the emoticon's image", func() bool {
		for _, m := range h.webhookMessages(ch) {
			if strings.Contains(m.Content, "look (kitty)") {
				return len(m.Files) == 1 && m.Files[0].Filename == "emoticon-kitty.png" && bytes.Equal(m.Files[0].Data, cat)
			}
		}
		return false
	})
}

// stallReader gives data, then blocks until release is closed, then fails.
type stallReader struct {
	data    []byte
	release chan struct{}
}

func (r *stallReader) Read(b []byte) (int, error) {
	if len(r.data) > 0 {
		n := copy(b, r.data)
		r.data = r.data[n:]
		return n, nil
	}
	<-r.release
	return 0, errors.New("the sender went silent")
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestOwnerAttachmentsToMSN: the owner's attachments reach bob (an msntest bot, over P2P) as
// files after the message's text, byte for byte, and the message gets ✅; when bob declines,
// or stops reading half way, ❌ and a reply saying so; one over the bridge's file cap
// (Core.MaxFileSize) is refused without being downloaded.
func TestOwnerAttachmentsToMSN(t *testing.T) {
	const maxFile = 1 << 20
	h := newHarness(t, harnessOpts{core: func(c *bridge.Config) {
		c.Media.MaxFileSize = maxFile
		c.Media.SpoolDir = t.TempDir()
		// A silent receiver is given up on after these: the transfer's idle time, and the
		// switchboard's wait for the acknowledgement of what is stuck in it.
		c.MSN.P2PIdleTimeout = 5 * time.Second
		c.MSN.AckTimeout = 6 * time.Second
	}})
	if h.fe.fileToMSNLimit() != maxFile {
		t.Fatalf("the frontend's cap is %d, want the core's %d", h.fe.fileToMSNLimit(), maxFile)
	}
	if err := h.ms.SetBotAcceptFiles(bob, true); err != nil {
		t.Fatal(err)
	}
	h.login()
	owner := h.dc.OwnerID()
	bobCh := h.openChat(bob)
	reacted := func(id, emoji string) bool {
		for _, m := range h.dc.Messages(bobCh) {
			if m.ID != id {
				continue
			}
			for _, r := range m.Reactions {
				if r.Emoji != nil && r.Emoji.Name == emoji && r.Me {
					return true
				}
			}
		}
		return false
	}
	replyTo := func(id, text string) bool {
		for _, m := range h.dc.Messages(bobCh) {
			if m.MessageReference != nil && m.MessageReference.MessageID == id && strings.Contains(m.Content, text) {
				return true
			}
		}
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	// Text and two files: the text as text, the files with their names and content.
	notes := bytes.Repeat([]byte("hello file "), 1000) // 11 KB, several P2P chunks
	pic := testPNG(t, color.White)
	um := h.dc.InjectUserMessage(bobCh, owner, "see these",
		discordtest.Attachment{Filename: "notes.txt", ContentType: "text/plain", Data: notes},
		discordtest.Attachment{Filename: "pic.png", Data: pic})
	h.waitFor("✅ on the message", func() bool { return reacted(um.ID, "✅") })
	if got := h.bobRx.got(); len(got) != 1 || got[0] != "see these" {
		t.Fatalf("bob received %q", got)
	}
	for i, want := range []struct {
		name string
		data []byte
	}{{"notes.txt", notes}, {"pic.png", pic}} {
		f, err := h.ms.WaitBotFile(ctx, bob, i+1)
		if err != nil {
			t.Fatal(err)
		}
		if f.From != alice || f.Name != want.name || !f.Accepted || f.Err != nil || !bytes.Equal(f.Data, want.data) {
			t.Errorf("bob's file %d: %q from %s, accepted %v, %d bytes (want %d), %v",
				i+1, f.Name, f.From, f.Accepted, len(f.Data), len(want.data), f.Err)
		}
	}
	if reacted(um.ID, "❌") {
		t.Error("❌ on a delivered message")
	}

	// Declined: ❌ and a reply naming the file and why; no text is sent.
	if err := h.ms.SetBotAcceptFiles(bob, false); err != nil {
		t.Fatal(err)
	}
	um = h.dc.InjectUserMessage(bobCh, owner, "", discordtest.Attachment{Filename: "declined **me**.txt", Data: []byte("no")})
	h.waitFor("the declined reply", func() bool { return replyTo(um.ID, `declined \*\*me\*\*.txt: the contact declined it`) })
	h.waitFor("❌ on the message", func() bool { return reacted(um.ID, "❌") })
	if reacted(um.ID, "✅") {
		t.Error("✅ on a message whose file was declined")
	}
	if f, err := h.ms.WaitBotFile(ctx, bob, 3); err != nil || f.Accepted || f.Name != "declined __me__.txt" {
		t.Errorf("bob's third file: %+v %v, want the declined one (its name cleaned as for Discord)", f, err)
	}

	// Over the bridge's cap: refused before any download, never offered to bob.
	um = h.dc.InjectUserMessage(bobCh, owner, "", discordtest.Attachment{Filename: "big.bin", Data: make([]byte, maxFile+1)})
	h.waitFor("the too-large reply", func() bool { return replyTo(um.ID, "big.bin: too large for MSN (1.0 MiB at most)") })
	h.waitFor("❌ on the too-large message", func() bool { return reacted(um.ID, "❌") })
	for _, r := range h.dc.Requests() {
		if strings.HasSuffix(r.Path, "/big.bin") {
			t.Errorf("the too-large file was downloaded: %s", r.Path)
		}
	}
	if n := len(h.ms.BotFiles(bob)); n != 3 {
		t.Errorf("bob was offered %d files, want 3", n)
	}
	if got := h.bobRx.got(); len(got) != 1 {
		t.Errorf("bob received %q, want only the first text", got)
	}

	// A bot that stops reading half way: ❌ and a reply saying the transfer stalled.
	if err := h.ms.SetBotAcceptFiles(bob, true); err != nil {
		t.Fatal(err)
	}
	// A file that fills what the bot's engine queues unread, so that it stops acknowledging.
	release, err := h.ms.SetBotStallFiles(bob, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	um = h.dc.InjectUserMessage(bobCh, owner, "", discordtest.Attachment{Filename: "stuck.bin", Data: bytes.Repeat([]byte("s"), 768<<10)})
	h.waitFor("the stalled reply", func() bool { return replyTo(um.ID, "stuck.bin: the transfer stalled") })
	h.waitFor("❌ on the stalled message", func() bool { return reacted(um.ID, "❌") })
	if reacted(um.ID, "✅") {
		t.Error("✅ on a message whose file stalled")
	}
}
