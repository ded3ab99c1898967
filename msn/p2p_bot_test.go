package msn_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// The client against msntest's bots (bob is a socketless account): each side of each flow.

// TestP2PBotDisplayPicture: a bot's picture is in its ILN and the client fetches it; the bot
// fetches the client's picture, published with the first CHG.
func TestP2PBotDisplayPicture(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := startAliceAndBob(t)
	bobPic, alicePic := randomBytes(4000), randomBytes(2500)
	want, err := srv.SetBotDisplayPicture("bob@example.com", bobPic)
	if err != nil {
		t.Fatal(err)
	}
	alice := loginPeer(t, ctx, srv, "alice@example.com", "alicepw", msn.Config{DisplayPicture: alicePic})
	pc := next(t, ctx, alice, func(e *msn.PresenceChanged) bool { return e.Handle == "bob@example.com" })
	if pc.MSNObject != want.XML() {
		t.Fatalf("ILN msnobj %q, want %q", pc.MSNObject, want.XML())
	}
	obj, err := msn.ParseMSNObject(pc.MSNObject)
	if err != nil {
		t.Fatal(err)
	}
	got, err := alice.c.FetchObject(ctx, obj)
	if err != nil || !bytes.Equal(got, bobPic) {
		t.Fatalf("FetchObject: %v (%d bytes)", err, len(got))
	}
	mine := msn.NewMSNObject("alice@example.com", msn.ObjectDisplayPicture, "0", "", alicePic)
	got, err = srv.BotFetchObject(ctx, "bob@example.com", mine)
	if err != nil || !bytes.Equal(got, alicePic) {
		t.Fatalf("bot's fetch of alice's picture: %v (%d bytes)", err, len(got))
	}
}

// TestP2PBotFiles: a bot sends a file the client accepts; the client sends a file the bot
// records, then one it declines.
func TestP2PBotFiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := startAliceAndBob(t)
	alice := loginPeer(t, ctx, srv, "alice@example.com", "alicepw", msn.Config{})
	data := randomBytes(200_000)
	errc := make(chan error, 1)
	go func() { errc <- srv.BotSendFile(ctx, "bob@example.com", "alice@example.com", "report.pdf", data) }()
	off := next[*msn.FileOffered](t, ctx, alice, nil)
	if off.From != "bob@example.com" || off.Name != "report.pdf" || off.Size != int64(len(data)) {
		t.Fatalf("offer %+v", off)
	}
	var buf bytes.Buffer
	if err := off.Offer.Accept(ctx, &buf, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("BotSendFile: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("received %d bytes, not the file", buf.Len())
	}

	if err := srv.SetBotAcceptFiles("bob@example.com", true); err != nil {
		t.Fatal(err)
	}
	up := randomBytes(50_000)
	if err := alice.c.SendFile(ctx, "bob@example.com", msn.OutgoingFile{Name: "up.bin", Size: int64(len(up)), Data: bytes.NewReader(up)}); err != nil {
		t.Fatal(err)
	}
	f, err := srv.WaitBotFile(ctx, "bob@example.com", 1)
	if err != nil {
		t.Fatal(err)
	}
	if f.Err != nil || !f.Accepted || f.Name != "up.bin" || !bytes.Equal(f.Data, up) {
		t.Fatalf("bot's file: %+v", f.Err)
	}
	_ = srv.SetBotAcceptFiles("bob@example.com", false)
	err = alice.c.SendFile(ctx, "bob@example.com", msn.OutgoingFile{Name: "no", Size: 5, Data: bytes.NewReader([]byte("12345"))})
	if !errors.Is(err, msn.ErrTransferDeclined) {
		t.Fatalf("SendFile to a declining bot: %v", err)
	}
}

// TestP2PWinkAndEmoticons: a bot's wink becomes WinkReceived, its emoticon definitions go with
// its next text, and their objects are fetched from the bot.
func TestP2PWinkAndEmoticons(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := startAliceAndBob(t)
	alice := loginPeer(t, ctx, srv, "alice@example.com", "alicepw", msn.Config{})
	cab := append([]byte("MSCF"), randomBytes(3000)...)
	wink, err := srv.BotPublishObject("bob@example.com", msn.ObjectWink, "Kiss", cab)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.BotWink("bob@example.com", "alice@example.com", wink); err != nil {
		t.Fatal(err)
	}
	w := next[*msn.WinkReceived](t, ctx, alice, nil)
	if w.From != "bob@example.com" || w.Object.SHA1D != wink.SHA1D || w.Object.Friendly != "Kiss" {
		t.Fatalf("wink %+v", w)
	}
	got, err := alice.c.FetchObject(ctx, w.Object)
	if err != nil || !bytes.Equal(got, cab) {
		t.Fatalf("wink fetch: %v", err)
	}
	bad := []byte("MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 2\r\nData: <msnobj Creator=\"x\"/>\r\n\r\n")
	if err := srv.BotSendRaw("bob@example.com", "alice@example.com", bad); err != nil {
		t.Fatal(err)
	}
	if w := next[*msn.WinkReceived](t, ctx, alice, nil); w.From != "bob@example.com" || w.Object != (msn.MSNObject{}) {
		t.Fatalf("wink with a bad msnobj: %+v", w)
	}
	img := randomBytes(900)
	emo, err := srv.BotPublishObject("bob@example.com", msn.ObjectEmoticon, "", img)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.BotSayWithEmoticons("bob@example.com", "alice@example.com", "look (cat)", []msn.Emoticon{{Shortcut: "(cat)", Object: emo}}); err != nil {
		t.Fatal(err)
	}
	m := next[*msn.MessageReceived](t, ctx, alice, nil)
	if m.Text != "look (cat)" || len(m.Emoticons) != 1 || m.Emoticons[0].Shortcut != "(cat)" || m.Emoticons[0].Object.SHA1D != emo.SHA1D {
		t.Fatalf("message %+v", m)
	}
	if got, err := alice.c.FetchObject(ctx, m.Emoticons[0].Object); err != nil || !bytes.Equal(got, img) {
		t.Fatalf("emoticon fetch: %v", err)
	}
	if err := srv.BotSay("bob@example.com", "alice@example.com", "plain"); err != nil {
		t.Fatal(err)
	}
	if m := next[*msn.MessageReceived](t, ctx, alice, nil); len(m.Emoticons) != 0 {
		t.Fatalf("emoticons kept for a later message: %+v", m.Emoticons)
	}
}

// TestP2PHostileBot: malformed P2P, packets for someone else, an oversized SLP message and an
// INVITE for an unknown application reach the client; none produces an event, the INVITE is
// declined, and the switchboard still carries text and a transfer afterwards.
func TestP2PHostileBot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := startAliceAndBob(t)
	alice := loginPeer(t, ctx, srv, "alice@example.com", "alicepw", msn.Config{})
	send := func(p []byte) {
		t.Helper()
		if err := srv.BotSendRaw("bob@example.com", "alice@example.com", p); err != nil {
			t.Fatal(err)
		}
	}
	send([]byte("MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: alice@example.com\r\n\r\nshort"))
	send(msn.NewP2PMessage("carol@example.com", msn.P2PHeader{TotalSize: 3}, []byte("abc"), 0))
	send(msn.NewP2PMessage("alice@example.com", msn.P2PHeader{Identifier: 5, TotalSize: 1 << 40}, []byte("INVITE"), 0))
	webcam := &msn.SLPMessage{Method: "INVITE", To: "alice@example.com", From: "bob@example.com", Branch: "{B}", CallID: "{C}",
		ContentType: "application/x-msnmsgr-sessionreqbody", Body: []msn.Header{{Name: "EUF-GUID", Value: "{4BD96FC0-AB17-4425-A14A-439185962DC8}"},
			{Name: "SessionID", Value: "77"}, {Name: "AppID", Value: "4"}, {Name: "Context", Value: "AAAA"}}}
	send(msn.NewP2PMessage("alice@example.com", msn.P2PHeader{Identifier: 6, TotalSize: uint64(len(webcam.Marshal())), AckID: 99}, webcam.Marshal(), 0))
	if err := srv.BotSay("bob@example.com", "alice@example.com", "still here"); err != nil {
		t.Fatal(err)
	}
	for {
		ev := <-alice.events
		if m, ok := ev.(*msn.MessageReceived); ok {
			if m.Text != "still here" {
				t.Fatalf("message %q", m.Text)
			}
			break
		}
		switch ev.(type) {
		case *msn.FileOffered, *msn.WinkReceived, *msn.SessionClosed:
			t.Fatalf("unexpected %T", ev)
		}
	}
	// The webcam INVITE was ACKed (AckID = its Identifier, AckUID = its AckID) and declined.
	var acked, declined bool
	for i := 0; i < 400 && !(acked && declined); i++ {
		for _, e := range srv.EventsFor("alice@example.com") {
			if e.Server != "SB" || e.Name != "MSG" {
				continue
			}
			m, err := msn.ParseMIME(e.Payload)
			if err != nil || m.ContentType() != "application/x-msnmsgrp2p" {
				continue
			}
			p, err := msn.ParseP2PBinary(m.Body)
			if err != nil {
				t.Fatalf("client sent a malformed packet: %v", err)
			}
			if p.Header.Flags == msn.P2PFlagAck && p.Header.AckID == 6 && p.Header.AckUID == 99 && p.Header.AckSize == uint64(len(webcam.Marshal())) {
				acked = true
			}
			if slp, err := msn.ParseSLP(p.Data); err == nil && slp.Code == 603 && slp.CallID == "{C}" && slp.Branch == "{B}" && slp.CSeq == 1 {
				declined = true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !acked || !declined {
		t.Fatalf("webcam INVITE acked %v, declined %v", acked, declined)
	}
	// The transfer machinery still works with the same contact.
	data := randomBytes(10_000)
	errc := make(chan error, 1)
	go func() { errc <- srv.BotSendFile(ctx, "bob@example.com", "alice@example.com", "ok.bin", data) }()
	off := next[*msn.FileOffered](t, ctx, alice, nil)
	var buf bytes.Buffer
	if err := off.Offer.Accept(ctx, &buf, nil); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("Accept: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestP2PBotChatSendFile: a BotFunc answers a text with a file, sent from its own goroutine.
func TestP2PBotChatSendFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := startAliceAndBob(t)
	data := randomBytes(7000)
	sent := make(chan error, 1)
	if err := srv.AddBot("files@example.com", "pw", "Files", func(ctx context.Context, chat *msntest.BotChat, msg msntest.BotMessage) {
		if msg.IsText() && msg.Body == "send" {
			go func() { sent <- chat.SendFile(ctx, "notes.txt", data) }()
		}
	}); err != nil {
		t.Fatal(err)
	}
	alice := loginPeer(t, ctx, srv, "alice@example.com", "alicepw", msn.Config{})
	if err := alice.c.SendText(ctx, "files@example.com", "send", nil); err != nil {
		t.Fatal(err)
	}
	off := next[*msn.FileOffered](t, ctx, alice, nil)
	var buf bytes.Buffer
	if err := off.Offer.Accept(ctx, &buf, nil); err != nil || !bytes.Equal(buf.Bytes(), data) || off.Name != "notes.txt" {
		t.Fatalf("Accept: %v, %q", err, off.Name)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

// TestP2PDestInGroupSession: in a three-party switchboard every member gets every P2P packet;
// the one it is not addressed to (carol) drops it — no event, no ACK, no answer — while alice,
// its addressee, answers.
func TestP2PDestInGroupSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := aliceAndBob("")
	opts.Accounts = append(opts.Accounts, msntest.AccountSpec{Handle: "carol@example.com", Password: "carolpw", Name: "Carol"})
	opts.Friends = append(opts.Friends, [2]string{"alice@example.com", "carol@example.com"}, [2]string{"bob@example.com", "carol@example.com"})
	srv := startServer(t, opts)
	webcam := &msn.SLPMessage{Method: "INVITE", To: "alice@example.com", From: "bot@example.com", Branch: "{B}", CallID: "{C}",
		ContentType: "application/x-msnmsgr-sessionreqbody", Body: []msn.Header{{Name: "EUF-GUID", Value: "{4BD96FC0-AB17-4425-A14A-439185962DC8}"},
			{Name: "SessionID", Value: "77"}, {Name: "AppID", Value: "4"}, {Name: "Context", Value: "AAAA"}}}
	pkt := msn.NewP2PMessage("alice@example.com", msn.P2PHeader{Identifier: 6, TotalSize: uint64(len(webcam.Marshal())), AckID: 99}, webcam.Marshal(), 0)
	if err := srv.AddBot("bot@example.com", "pw", "Bot", func(_ context.Context, chat *msntest.BotChat, m msntest.BotMessage) {
		if m.IsText() && m.Body == "go" {
			_ = chat.Send(pkt)
			_ = chat.Say("done")
		}
	}); err != nil {
		t.Fatal(err)
	}
	carol := loginPeer(t, ctx, srv, "carol@example.com", "carolpw", msn.Config{})
	alice := loginPeer(t, ctx, srv, "alice@example.com", "alicepw", msn.Config{})
	if err := alice.c.SendText(ctx, "bot@example.com", "hello", nil); err != nil {
		t.Fatal(err)
	}
	var sid string
	for id, members := range alice.c.Sessions() {
		if len(members) == 1 && members[0] == "bot@example.com" {
			sid = id
		}
	}
	if err := alice.c.InviteToSession(ctx, sid, "carol@example.com"); err != nil {
		t.Fatal(err)
	}
	next(t, ctx, alice, func(e *msn.ParticipantJoined) bool { return e.Handle == "carol@example.com" })
	if err := alice.c.SendGroupText(ctx, sid, "go", nil); err != nil {
		t.Fatal(err)
	}
	var answered bool
	for i := 0; i < 400 && !answered; i++ {
		for _, w := range sentP2P(t, srv, "alice@example.com") {
			answered = answered || w.slp != nil && w.slp.Code == 603 && w.slp.CallID == "{C}"
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !answered {
		t.Fatal("alice did not decline the INVITE addressed to her")
	}
	// Carol got "done", right behind the packet on the same switchboard, and sends no P2P: she
	// would have queued an ACK as soon as the packet arrived, so a bounded look suffices.
	next(t, ctx, carol, func(e *msn.MessageReceived) bool { return e.Text == "done" })
	for i := 0; i < 100; i++ {
		if got := sentP2P(t, srv, "carol@example.com"); len(got) != 0 {
			t.Fatalf("carol answered a packet for alice: %v", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestP2PPlainBotDeclines: a bot nobody configured for P2P still answers: a file is declined
// and an object it never published is declined, at once.
func TestP2PPlainBotDeclines(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := startAliceAndBob(t)
	if err := srv.AddBot("echo@example.com", "pw", "Echo", msntest.EchoBot); err != nil {
		t.Fatal(err)
	}
	alice := loginPeer(t, ctx, srv, "alice@example.com", "alicepw", msn.Config{})
	err := alice.c.SendFile(ctx, "echo@example.com", msn.OutgoingFile{Name: "x", Size: 1, Data: bytes.NewReader([]byte("x"))})
	if !errors.Is(err, msn.ErrTransferDeclined) {
		t.Fatalf("SendFile: %v", err)
	}
	obj := msn.NewMSNObject("echo@example.com", msn.ObjectDisplayPicture, "0", "", []byte("none"))
	if _, err := alice.c.FetchObject(ctx, obj); !errors.Is(err, msn.ErrTransferDeclined) {
		t.Fatalf("FetchObject: %v", err)
	}
	if files := srv.BotFiles("echo@example.com"); len(files) != 1 || files[0].Accepted || files[0].Name != "x" {
		t.Fatalf("bot's record: %+v", files)
	}
}
