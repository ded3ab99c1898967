package matrix

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"github.com/msn-bridge/msn-bridge/internal/testenv/gated"
	"image"
	"image/png"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/internal/testenv/dendrite"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// TestEndToEndMediaRealDendrite runs media through the whole bridge: msntest's bot bob speaks
// MSNP2P with the core's msn client, the core (no fakes) feeds the Matrix frontend, which talks
// to a real Dendrite. bob's display picture becomes his ghost's avatar, his files arrive as
// m.file and m.image with the same bytes, the owner's m.file reaches bob byte for byte with a
// success status (and a failed status saying so when bob declines, or when the file is over the
// core's cap), bob's files that cannot be carried (over the cap, cancelled or stopped half way)
// are notices saying so, his wink and custom emoticon are images, and the owner's Matrix avatar becomes their MSN display picture, a
// 96×96 PNG bob fetches.
func TestEndToEndMediaRealDendrite(t *testing.T) {
	hs := dendrite.New(t, dendrite.Options{})
	reg := dendrite.NewRegistration(dendrite.RegistrationOptions{URL: hs.ASURL})
	hs.Start(t, dendrite.RegistrationYAML(t, reg))

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)

	srv := msntest.New(msntest.Options{})
	must(t, srv.Start())
	t.Cleanup(srv.Close)
	inbox := &botInbox{ch: make(chan struct{})}
	must(t, srv.AddAccount(alice, alicePW, "Alice"))
	must(t, srv.AddBot(bob, "x", "Bobby", inbox.fn))
	must(t, srv.AddFriends(alice, bob))
	must(t, srv.SetPresence(bob, "NLN", ""))
	bobPic := noisyPNG(t, 40, 30)
	_, err := srv.SetBotDisplayPicture(bob, bobPic)
	must(t, err)

	db := pgtest.Open(t, pgtest.SQLiteDriver, pgtest.SQLiteDSN(t))
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := DefaultConfig()
	cfg.IgnoreUnsupportedServer = true
	spool := t.TempDir()
	core := newTestCoreWith(t, ctx, srv, db, key, log, func(c *bridge.Config) {
		c.Media.MaxFileSize = 4 << 20
		c.Media.SpoolDir = spool
		c.MSN.P2PIdleTimeout = 2 * time.Second // a peer that stops half way
	})
	fe, err := New(core, hs.BridgeConfig(reg), cfg, db, log)
	must(t, err)
	must(t, fe.Start(ctx))
	must(t, core.Start(ctx))
	b := &e2eBridge{core: core, fe: fe}
	defer b.stop()

	cli, err := hs.RegisterUser(ctx, "alice", "alice-matrix-password")
	must(t, err)
	user := &dendrite.User{T: t, Cli: cli}
	botMXID := id.NewUserID(reg.SenderLocalpart, hs.ServerName)
	ownPic := noisyPNG(t, 200, 120)
	up, err := cli.UploadBytes(ctx, ownPic, "image/png")
	must(t, err)
	must(t, cli.SetAvatarURL(ctx, up.ContentURI))

	created, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{botMXID}, IsDirect: true, Preset: "trusted_private_chat"})
	must(t, err)
	mgmt := created.RoomID
	user.WaitMessage(ctx, mgmt, botMXID, "", e2eWait)
	for _, step := range []struct{ send, want string }{{"login password", "E-mail address"}, {alice, "Password"}, {alicePW, "Logged in to MSN as " + alice}} {
		_, err = cli.SendText(ctx, mgmt, step.send)
		must(t, err)
		user.WaitMessage(ctx, mgmt, botMXID, step.want, e2eWait)
	}
	poll := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(e2eWait); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never happened", what)
			}
		}
	}

	// The owner's Matrix avatar is alice's display picture: announced on MSN, bob fetches it.
	var own msn.MSNObject
	poll("alice's display picture announced", func() bool {
		own = announcedPicture(t, srv, alice)
		return own.SHA1D != ""
	})
	pic, err := srv.BotFetchObject(ctx, bob, own)
	must(t, err)
	if got := msn.NewMSNObject(alice, msn.ObjectDisplayPicture, "0", "", pic); got.SHA1D != own.SHA1D {
		t.Fatalf("bob fetched a picture with SHA1D %s, alice announced %s", got.SHA1D, own.SHA1D)
	}
	if c, format, err := image.DecodeConfig(bytes.NewReader(pic)); err != nil || format != "png" || c.Width != 96 || c.Height != 96 {
		t.Fatalf("alice's display picture is %s %dx%d (%v), want a 96x96 PNG", format, c.Width, c.Height, err)
	}

	// Without a double puppet, the owner's ghost sends their messages and shows their avatar.
	// (Waited for before a portal uses that ghost: bridgev2 reads a ghost's state unlocked while
	// a portal is created, so an update racing with it is a data race inside bridgev2.)
	ownGhost := id.NewUserID("msn_"+id.EncodeUserLocalpart(alice), hs.ServerName)
	poll("the owner's ghost avatar", func() bool {
		av, err := cli.GetAvatarURL(ctx, ownGhost)
		return err == nil && av.CUString() == up.ContentURI.CUString()
	})

	// bob's display picture is his ghost's avatar.
	bobGhost := id.NewUserID("msn_"+id.EncodeUserLocalpart(bob), hs.ServerName)
	must(t, srv.BotSay(bob, alice, "hello from msn"))
	portal := user.JoinInvite(ctx, map[id.RoomID]bool{mgmt: true}, e2eWait)
	user.WaitMessage(ctx, portal, bobGhost, "hello from msn", e2eWait)
	var avatar id.ContentURI
	poll("bob's ghost avatar", func() bool {
		avatar, err = cli.GetAvatarURL(ctx, bobGhost)
		return err == nil && !avatar.IsEmpty()
	})
	if got, err := cli.DownloadBytes(ctx, avatar); err != nil || !bytes.Equal(got, bobPic) {
		t.Fatalf("bob's ghost avatar downloads as %d bytes (%v), want his %d-byte display picture", len(got), err, len(bobPic))
	}

	// bob's files: m.file and m.image, downloadable with the same bytes.
	for _, f := range []struct {
		name string
		data []byte
		typ  event.MessageType
	}{{"notes.bin", randomData(t, 200_000), event.MsgFile}, {"photo.png", noisyPNG(t, 64, 64), event.MsgImage}} {
		must(t, srv.BotSendFile(ctx, bob, alice, f.name, f.data))
		evt := user.WaitMessage(ctx, portal, bobGhost, f.name, e2eWait)
		msg := evt.Content.AsMessage()
		if msg.MsgType != f.typ || msg.Info == nil || msg.Info.Size != len(f.data) {
			t.Fatalf("%s shown as %s %+v, want %s", f.name, msg.MsgType, msg.Info, f.typ)
		}
		got, err := cli.DownloadBytes(ctx, msg.URL.ParseOrIgnore())
		if err != nil || sha256.Sum256(got) != sha256.Sum256(f.data) {
			t.Fatalf("%s downloads as %d bytes (%v), not the %d bob sent", f.name, len(got), err, len(f.data))
		}
	}

	// The owner's file reaches bob byte for byte, with a success status.
	must(t, srv.SetBotAcceptFiles(bob, true))
	data := randomData(t, 150_000)
	upFile, err := cli.UploadBytes(ctx, data, "application/octet-stream")
	must(t, err)
	sent, err := cli.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgFile, Body: "report.bin", FileName: "report.bin", URL: upFile.ContentURI.CUString(),
		Info: &event.FileInfo{MimeType: "application/octet-stream", Size: len(data)},
	})
	must(t, err)
	bf, err := srv.WaitBotFile(ctx, bob, 1)
	must(t, err)
	if bf.Err != nil || bf.Name != "report.bin" || !bytes.Equal(bf.Data, data) {
		t.Fatalf("bob got %q, %d bytes (%v)", bf.Name, len(bf.Data), bf.Err)
	}
	if st := waitSendStatus(ctx, t, cli, portal, sent.EventID); st.Status != event.MessageStatusSuccess {
		t.Fatalf("status of the delivered file: %s %q", st.Status, st.Message)
	}

	// bob declines: a failed status that says so.
	must(t, srv.SetBotAcceptFiles(bob, false))
	sent, err = cli.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgFile, Body: "unwanted.bin", FileName: "unwanted.bin", URL: upFile.ContentURI.CUString(),
		Info: &event.FileInfo{MimeType: "application/octet-stream", Size: len(data)},
	})
	must(t, err)
	st := waitSendStatus(ctx, t, cli, portal, sent.EventID)
	if st.Status == event.MessageStatusSuccess || !bytes.Contains([]byte(st.Message), []byte("declined")) {
		t.Fatalf("status of the declined file: %s %q", st.Status, st.Message)
	}
	if bf, err := srv.WaitBotFile(ctx, bob, 2); err != nil || bf.Accepted || bf.Name != "unwanted.bin" {
		t.Fatalf("bob's record of the declined file: %+v, %v", bf, err)
	}

	// Over the core's 4 MiB cap (announced in the room's capabilities): refused, never offered.
	sent, err = cli.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgFile, Body: "huge.iso", FileName: "huge.iso", URL: upFile.ContentURI.CUString(),
		Info: &event.FileInfo{MimeType: "application/octet-stream", Size: 5 << 20},
	})
	must(t, err)
	st = waitSendStatus(ctx, t, cli, portal, sent.EventID)
	if st.Status == event.MessageStatusSuccess || !strings.Contains(st.Message+st.Error, "too large") && !strings.Contains(st.Message+st.Error, "larger") {
		t.Fatalf("status of the oversize file: %s %q %q", st.Status, st.Message, st.Error)
	}
	if n := len(srv.BotFiles(bob)); n != 2 {
		t.Fatalf("bob was offered %d files, want 2", n)
	}

	// bob stops reading half way, without a word: a failed status saying the transfer stalled.
	must(t, srv.SetBotAcceptFiles(bob, true))
	release, err := srv.SetBotStallFiles(bob, 100_000)
	must(t, err)
	big := randomData(t, 1<<20)
	upBig, err := cli.UploadBytes(ctx, big, "application/octet-stream")
	must(t, err)
	sent, err = cli.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgFile, Body: "stuck.bin", FileName: "stuck.bin", URL: upBig.ContentURI.CUString(),
		Info: &event.FileInfo{MimeType: "application/octet-stream", Size: len(big)},
	})
	must(t, err)
	st = waitSendStatus(ctx, t, cli, portal, sent.EventID)
	release()
	if st.Status == event.MessageStatusSuccess || !strings.Contains(st.Message, "stalled") {
		t.Fatalf("status of the file to a bot that stopped: %s %q", st.Status, st.Message)
	}
	_, err = srv.SetBotStallFiles(bob, 0)
	must(t, err)

	// bob's files the bridge cannot carry are notices saying why.
	if err := srv.BotSendFile(ctx, bob, alice, "big.iso", randomData(t, 5<<20)); !errors.Is(err, msn.ErrTransferDeclined) {
		t.Fatalf("bob's oversize file: %v, want declined", err)
	}
	user.WaitMessage(ctx, portal, bobGhost, "Bobby tried to send big.iso (5 MiB): too large (MSN files reach the bridge up to 4 MiB)", e2eWait)
	halfWay := func(name string, then func(context.CancelFunc)) {
		t.Helper()
		r := &gated.Reader{Data: randomData(t, 1<<20), Gate: 100_000, Release: make(chan struct{})}
		sctx, stop := context.WithCancel(ctx)
		defer stop()
		errc := make(chan error, 1)
		go func() { errc <- srv.BotSendFileFrom(sctx, bob, alice, name, 1<<20, r) }()
		poll(name+" half way in the spool", func() bool {
			ents, _ := os.ReadDir(spool)
			for _, e := range ents {
				if info, err := e.Info(); err == nil && info.Size() >= 50_000 {
					return true
				}
			}
			return false
		})
		then(stop)
		close(r.Release)
		<-errc
	}
	halfWay("cancelled.bin", func(stop context.CancelFunc) { stop() })
	user.WaitMessage(ctx, portal, bobGhost, "Bobby tried to send cancelled.bin (1 MiB): cancelled before it arrived", e2eWait)
	halfWay("stalled.bin", func(stop context.CancelFunc) {
		user.WaitMessage(ctx, portal, bobGhost, "Bobby tried to send stalled.bin (1 MiB): the transfer stalled", e2eWait)
		stop()
	})

	// bob's wink (a real cabinet) is its thumbnail; his custom emoticon an inline image.
	thumb := noisyPNG(t, 50, 50)
	wink, err := srv.BotPublishObject(bob, msn.ObjectWink, "Kiss", msntest.WinkCAB("Kiss", thumb, randomData(t, 10_000)))
	must(t, err)
	must(t, srv.BotWink(bob, alice, wink))
	msg := user.WaitMessage(ctx, portal, bobGhost, "Kiss", e2eWait).Content.AsMessage()
	if msg.MsgType != event.MsgImage {
		t.Fatalf("wink shown as %s %q", msg.MsgType, msg.Body)
	}
	if got, err := cli.DownloadBytes(ctx, msg.URL.ParseOrIgnore()); err != nil || !bytes.Equal(got, thumb) {
		t.Fatalf("wink image downloads as %d bytes (%v), want its %d-byte thumbnail", len(got), err, len(thumb))
	}
	emoPic := noisyPNG(t, 19, 19)
	emo, err := srv.BotPublishObject(bob, msn.ObjectEmoticon, "", emoPic)
	must(t, err)
	must(t, srv.BotSayWithEmoticons(bob, alice, "look (cat)!", []msn.Emoticon{{Shortcut: "(cat)", Object: emo}}))
	msg = user.WaitMessage(ctx, portal, bobGhost, "look (cat)!", e2eWait).Content.AsMessage()
	m := regexp.MustCompile(`<img data-mx-emoticon src="(mxc://[^"]+)"`).FindStringSubmatch(msg.FormattedBody)
	if m == nil {
		t.Fatalf("emoticon not inline: %q", msg.FormattedBody)
	}
	if got, err := cli.DownloadBytes(ctx, id.ContentURIString(m[1]).ParseOrIgnore()); err != nil || !bytes.Equal(got, emoPic) {
		t.Fatalf("emoticon downloads as %d bytes (%v)", len(got), err)
	}

	poll("the spool emptied", func() bool {
		ents, err := os.ReadDir(spool)
		return err == nil && len(ents) == 0
	})
}

// waitSendStatus polls room's timeline for the bridge's final status (not pending) of evtID.
func waitSendStatus(ctx context.Context, t *testing.T, cli *mautrix.Client, room id.RoomID, evtID id.EventID) *event.BeeperMessageStatusEventContent {
	t.Helper()
	for deadline := time.Now().Add(e2eWait); ; time.Sleep(100 * time.Millisecond) {
		resp, err := cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
		if err == nil {
			for _, evt := range resp.Chunk {
				if evt.Type != event.BeeperMessageStatus {
					continue
				}
				_ = evt.Content.ParseRaw(evt.Type)
				if c, ok := evt.Content.Parsed.(*event.BeeperMessageStatusEventContent); ok && c.RelatesTo.EventID == evtID &&
					c.Status != event.MessageStatusPending {
					return c
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no final status for %s (last error %v)", evtID, err)
		}
	}
}

// announcedPicture returns the msnobj handle's latest CHG announced on srv (zero when none).
func announcedPicture(t *testing.T, srv *msntest.Server, handle string) msn.MSNObject {
	t.Helper()
	var enc string
	for _, ev := range srv.EventsFor(handle) {
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
	must(t, err)
	obj, err := msn.ParseMSNObject(xml)
	must(t, err)
	return obj
}

func randomData(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	must(t, err)
	return b
}

// noisyPNG is a w×h PNG of random opaque pixels.
func noisyPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	copy(img.Pix, randomData(t, len(img.Pix)))
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	var buf bytes.Buffer
	must(t, png.Encode(&buf, img))
	return buf.Bytes()
}
