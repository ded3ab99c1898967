package msn_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// wirePacket is one P2P packet a client sent, as the server received it.
type wirePacket struct {
	mode string
	dest string
	p    msn.P2PPacket
	slp  *msn.SLPMessage // set for a complete single-packet SLP message
}

func (w wirePacket) String() string {
	h := w.p.Header
	kind := fmt.Sprintf("%d bytes", len(w.p.Data))
	if w.slp != nil {
		kind = w.slp.Method + strconv.Itoa(w.slp.Code)
	}
	return fmt.Sprintf("sid=%d id=%d off=%d total=%d flags=%#x ackid=%d ackuid=%d acksize=%d footer=%d %s",
		h.SessionID, h.Identifier, h.Offset, h.TotalSize, h.Flags, h.AckID, h.AckUID, h.AckSize, w.p.Footer, kind)
}

// sentP2P returns the P2P packets handle sent on switchboards, in order.
func sentP2P(t *testing.T, srv *msntest.Server, handle string) []wirePacket {
	t.Helper()
	var out []wirePacket
	for _, e := range srv.EventsFor(handle) {
		if e.Server != "SB" || e.Name != "MSG" {
			continue
		}
		m, err := msn.ParseMIME(e.Payload)
		if err != nil || m.ContentType() != "application/x-msnmsgrp2p" {
			continue
		}
		// The header block exactly as the reference gives it.
		head, _, _ := bytes.Cut(e.Payload, []byte("\r\n\r\n"))
		want := "MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: " + m.Get("P2P-Dest")
		if string(head) != want {
			t.Fatalf("MIME header %q", head)
		}
		p, err := msn.ParseP2PBinary(m.Body)
		if err != nil {
			t.Fatalf("sent a malformed packet: %v", err)
		}
		w := wirePacket{mode: e.Args[1], dest: m.Get("P2P-Dest"), p: p}
		if p.Header.SessionID == 0 && p.Header.Flags != msn.P2PFlagAck && p.Header.Offset == 0 && uint64(len(p.Data)) == p.Header.TotalSize {
			if w.slp, err = msn.ParseSLP(p.Data); err != nil {
				t.Fatalf("sent malformed SLP: %v", err)
			}
		}
		out = append(out, w)
	}
	return out
}

// checkCommon checks what holds for every packet: mode D, the peer as P2P-Dest, at most 1202
// data bytes, ACK fields zero on non-ACKs, no data and footer 0 on ACKs, fresh identifiers,
// SLP text ending in exactly one NUL counted by Content-Length.
func checkCommon(t *testing.T, pkts []wirePacket, peer string) {
	t.Helper()
	ids := map[uint32]bool{}
	for _, w := range pkts {
		h := w.p.Header
		if w.mode != "D" || w.dest != peer || len(w.p.Data) > msn.P2PMaxChunk {
			t.Errorf("packet %v: mode %s, dest %s", w, w.mode, w.dest)
		}
		if h.Flags == msn.P2PFlagAck {
			if len(w.p.Data) != 0 || w.p.Footer != 0 || h.Offset != 0 || h.AckSize != h.TotalSize {
				t.Errorf("bad ACK %v", w)
			}
		} else if h.AckUID != 0 || h.AckSize != 0 {
			t.Errorf("non-ACK with ACK fields %v", w)
		}
		if h.Offset == 0 {
			if ids[h.Identifier] {
				t.Errorf("identifier %d reused: %v", h.Identifier, w)
			}
			ids[h.Identifier] = true
		}
		if w.slp != nil {
			d := w.p.Data
			if d[len(d)-1] != 0 || d[len(d)-2] == 0 || w.p.Footer != 0 || h.Flags != 0 {
				t.Errorf("SLP %v: NUL, footer or flags", w)
			}
			_, body, _ := strings.Cut(string(d), "\r\n\r\n")
			if !strings.Contains(string(d), "Content-Length: "+strconv.Itoa(len(body))+"\r\n") {
				t.Errorf("SLP %v: Content-Length is not %d", w, len(body))
			}
		}
	}
}

// TestP2PWireObjectFlow checks every packet alice sends when she fetches bob's picture (steps
// 1, 4, 6, 8, 9 of the object flow) and when she serves hers to bob (2, 3, 5, 7, 10).
func TestP2PWireObjectFlow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := startAliceAndBob(t)
	bobPic, alicePic := randomBytes(3000), randomBytes(2500)
	bobObj, _ := srv.SetBotDisplayPicture("bob@example.com", bobPic)
	alice := loginPeer(t, ctx, srv, "alice@example.com", "alicepw", msn.Config{DisplayPicture: alicePic})
	if _, err := alice.c.FetchObject(ctx, bobObj); err != nil {
		t.Fatal(err)
	}
	aliceObj := msn.NewMSNObject("alice@example.com", msn.ObjectDisplayPicture, "0", "", alicePic)
	if _, err := srv.BotFetchObject(ctx, "bob@example.com", aliceObj); err != nil {
		t.Fatal(err)
	}
	// Alice's ACK of bob's BYE (step 10) is sent asynchronously: wait for it, bounded.
	var pkts []wirePacket
	for i := 0; i < 400; i++ {
		if pkts = sentP2P(t, srv, "alice@example.com"); len(pkts) >= 12 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	checkCommon(t, pkts, "bob@example.com")
	if len(pkts) != 12 { // the 2500-byte picture is three packets
		t.Fatalf("%d packets:\n%v", len(pkts), pkts)
	}
	// Requester: INVITE, ACK(200), ACK(data-prep), ACK(data), BYE.
	inv := pkts[0]
	if inv.slp == nil || inv.slp.Method != "INVITE" || inv.slp.BodyValue("EUF-GUID") != msn.EUFObject || inv.slp.BodyValue("AppID") != "1" || inv.slp.CSeq != 0 {
		t.Fatalf("INVITE %v", inv)
	}
	sid64, _ := strconv.ParseUint(inv.slp.BodyValue("SessionID"), 10, 32)
	sid := uint32(sid64)
	if sid == 0 {
		t.Fatal("INVITE without session id")
	}
	want := []struct {
		sid   uint32
		flags uint32
		total uint64
	}{{0, msn.P2PFlagAck, 0}, {sid, msn.P2PFlagAck, 4}, {sid, msn.P2PFlagAck, uint64(len(bobPic))}}
	for i, w := range want {
		h := pkts[1+i].p.Header
		if h.SessionID != w.sid || h.Flags != w.flags || (w.total != 0 && h.TotalSize != w.total) {
			t.Errorf("step %d: %v", 4+2*i, pkts[1+i])
		}
	}
	if bye := pkts[4]; bye.slp == nil || bye.slp.Method != "BYE" || bye.slp.CallID != inv.slp.CallID || bye.slp.ContentType != "application/x-msnmsgr-sessionclosebody" {
		t.Errorf("BYE %v", bye)
	}
	// Creator: ACK(INVITE), 200 OK, data-prep, data, ACK(BYE).
	if h := pkts[5].p.Header; h.Flags != msn.P2PFlagAck || h.SessionID != 0 {
		t.Errorf("step 2: %v", pkts[5])
	}
	ok := pkts[6]
	if ok.slp == nil || ok.slp.Code != 200 || ok.slp.CSeq != 1 || ok.slp.BodyValue("SessionID") == "" {
		t.Fatalf("step 3: %v", ok)
	}
	bsid64, _ := strconv.ParseUint(ok.slp.BodyValue("SessionID"), 10, 32)
	prep := pkts[7]
	if h := prep.p.Header; h.SessionID != uint32(bsid64) || h.Flags != 0 || h.TotalSize != 4 || !bytes.Equal(prep.p.Data, []byte{0, 0, 0, 0}) || prep.p.Footer != 1 {
		t.Errorf("step 5: %v", prep)
	}
	data := pkts[8]
	if h := data.p.Header; h.SessionID != uint32(bsid64) || h.Flags != msn.P2PFlagData || h.TotalSize != uint64(len(alicePic)) || data.p.Footer != 1 ||
		!bytes.Equal(data.p.Data, alicePic[:msn.P2PMaxChunk]) {
		t.Errorf("step 7: %v", data)
	}
	for i, off := range []uint64{msn.P2PMaxChunk, 2 * msn.P2PMaxChunk} {
		h := pkts[9+i].p.Header
		if h.Identifier != data.p.Header.Identifier || h.Offset != off || h.AckID != data.p.Header.AckID || h.Flags != msn.P2PFlagData || pkts[9+i].p.Footer != 1 {
			t.Errorf("step 7, packet %d: %v", 2+i, pkts[9+i])
		}
	}
	if h := pkts[11].p.Header; h.Flags != msn.P2PFlagAck || h.SessionID != 0 {
		t.Errorf("step 10: %v", pkts[11])
	}
}

// TestP2PWireFileFlow checks every packet alice sends when she receives a file from bob (ACK,
// 200 OK, the data's ACK, BYE) and when she sends one (INVITE with a version-2 Context, ACK of
// the 200 OK, the data, ACK of bob's BYE).
func TestP2PWireFileFlow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := startAliceAndBob(t)
	alice := loginPeer(t, ctx, srv, "alice@example.com", "alicepw", msn.Config{})
	in := randomBytes(1500)
	errc := make(chan error, 1)
	go func() { errc <- srv.BotSendFile(ctx, "bob@example.com", "alice@example.com", "in.bin", in) }()
	off := next[*msn.FileOffered](t, ctx, alice, nil)
	if err := off.Offer.Accept(ctx, &bytes.Buffer{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	_ = srv.SetBotAcceptFiles("bob@example.com", true)
	out := randomBytes(1300)
	if err := alice.c.SendFile(ctx, "bob@example.com", msn.OutgoingFile{Name: "out.bin", Size: int64(len(out)), Data: bytes.NewReader(out)}); err != nil {
		t.Fatal(err)
	}
	var pkts []wirePacket
	for i := 0; i < 400; i++ {
		if pkts = sentP2P(t, srv, "alice@example.com"); len(pkts) >= 9 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	checkCommon(t, pkts, "bob@example.com")
	if len(pkts) != 9 {
		t.Fatalf("%d packets:\n%v", len(pkts), pkts)
	}
	// Receiver.
	ok := pkts[1]
	if h := pkts[0].p.Header; h.Flags != msn.P2PFlagAck || h.SessionID != 0 || ok.slp == nil || ok.slp.Code != 200 || ok.slp.CSeq != 1 {
		t.Fatalf("steps 2-3: %v %v", pkts[0], ok)
	}
	sid64, _ := strconv.ParseUint(ok.slp.BodyValue("SessionID"), 10, 32)
	if h := pkts[2].p.Header; h.Flags != msn.P2PFlagAck || h.SessionID != uint32(sid64) || h.TotalSize != uint64(len(in)) {
		t.Errorf("step 7: %v", pkts[2])
	}
	if bye := pkts[3]; bye.slp == nil || bye.slp.Method != "BYE" || bye.slp.CallID != ok.slp.CallID {
		t.Errorf("step 8: %v", bye)
	}
	// Sender.
	inv := pkts[4]
	if inv.slp == nil || inv.slp.Method != "INVITE" || inv.slp.BodyValue("EUF-GUID") != msn.EUFFile || inv.slp.BodyValue("AppID") != "2" {
		t.Fatalf("step 1: %v", inv)
	}
	fc, err := msn.ParseFileContext(mustBase64(t, inv.slp.BodyValue("Context")))
	if err != nil || fc.Size != int64(len(out)) || fc.Name != "out.bin" || len(mustBase64(t, inv.slp.BodyValue("Context"))) != 574 {
		t.Fatalf("Context %+v %v", fc, err)
	}
	sid64, _ = strconv.ParseUint(inv.slp.BodyValue("SessionID"), 10, 32)
	if h := pkts[5].p.Header; h.Flags != msn.P2PFlagAck || h.SessionID != 0 {
		t.Errorf("step 4: %v", pkts[5])
	}
	for i := 6; i <= 7; i++ {
		h := pkts[i].p.Header
		if h.SessionID != uint32(sid64) || h.Flags != msn.P2PFlagFileData || pkts[i].p.Footer != 2 || h.TotalSize != uint64(len(out)) {
			t.Errorf("step 6: %v", pkts[i])
		}
	}
	if h := pkts[8].p.Header; h.Flags != msn.P2PFlagAck || h.SessionID != 0 {
		t.Errorf("step 9: %v", pkts[8])
	}
}

func mustBase64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
