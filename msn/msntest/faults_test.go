package msntest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

func TestKickShutdownRCTDrop(t *testing.T) {
	tests := []struct {
		name   string
		fault  func(s *Server) error
		expect string // last line before close, "" for none
	}{
		{"kick", func(s *Server) error { return s.Kick("bob@example.com") }, "OUT OTH"},
		{"shutdown one", func(s *Server) error { s.Shutdown("bob@example.com"); return nil }, "OUT SSD"},
		{"rct", func(s *Server) error { return s.RCT("bob@example.com", 5) }, "OUT RCT 5"},
		{"drop", func(s *Server) error { return s.DropConnection("bob@example.com") }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := twoFriends(t, Options{})
			a := online(t, s, "alice@example.com", "alicepw")
			b := online(t, s, "bob@example.com", "bobpw")
			a.expect("NLN NLN bob@example.com Bob 1073741824 %3Cmsnobj%2F%3E")
			if err := tt.fault(s); err != nil {
				t.Fatal(err)
			}
			got := b.expectClosed()
			var lines []string
			for _, c := range got {
				lines = append(lines, c.String())
			}
			if tt.expect != "" && (len(lines) == 0 || lines[len(lines)-1] != tt.expect) {
				t.Fatalf("got %v before close, want %q last", lines, tt.expect)
			}
			if tt.expect == "" && len(lines) != 0 {
				t.Fatalf("got %v before an abrupt close", lines)
			}
			a.expect("FLN bob@example.com")
			if s.LoggedIn("bob@example.com") || s.Online("bob@example.com") {
				t.Fatal("bob still logged in")
			}
		})
	}
}

func TestShutdownAll(t *testing.T) {
	s := twoFriends(t, Options{})
	a := online(t, s, "alice@example.com", "alicepw")
	b := online(t, s, "bob@example.com", "bobpw")
	if n := s.Shutdown(""); n != 2 {
		t.Fatalf("Shutdown ended %d sessions", n)
	}
	for _, c := range []*rawClient{a, b} {
		got := c.expectClosed()
		if len(got) == 0 || got[len(got)-1].String() != "OUT SSD" {
			t.Fatalf("got %v", got)
		}
	}
}

func TestSecondLoginKicksFirst(t *testing.T) {
	s := twoFriends(t, Options{})
	first := online(t, s, "alice@example.com", "alicepw")
	second := login(t, s, "alice@example.com", "alicepw")
	got := first.expectClosed()
	if len(got) == 0 || got[len(got)-1].String() != "OUT OTH" {
		t.Fatalf("first session got %v", got)
	}
	second.send("PNG")
	second.expect("QNG 60")
}

func TestNAK(t *testing.T) {
	s := twoFriends(t, Options{})
	a := online(t, s, "alice@example.com", "alicepw")
	b := online(t, s, "bob@example.com", "bobpw")
	as := openSB(t, s, a, "alice@example.com", "Alice")
	as.send("CAL 2 bob@example.com")
	as.expectName("CAL")
	bs, _ := answer(t, b, "bob@example.com")
	bs.expectName("IRO")
	bs.expect("ANS 1 OK")
	as.expectName("JOI")

	if err := s.NAKNext("alice@example.com"); err != nil {
		t.Fatal(err)
	}
	as.sendPayload("MSG 3 A", helloMsg)
	as.expect("NAK 3")
	as.sendPayload("MSG 4 A", helloMsg)
	as.expect("ACK 4")
	bs.expectName("MSG") // only the second one was delivered
	s.NAKAll(true)
	as.sendPayload("MSG 5 A", helloMsg)
	as.expect("NAK 5")
	s.NAKAll(false)
	as.sendPayload("MSG 6 A", helloMsg)
	as.expect("ACK 6")
	bs.expectName("MSG")

	// CloseSwitchboards: Bob's SB socket closes, Alice sees BYE bob 1.
	if n := s.CloseSwitchboards("bob@example.com"); n != 1 {
		t.Fatalf("closed %d", n)
	}
	bs.expectClosed()
	as.expect("BYE bob@example.com 1")
}

func TestInjectLineAndSetOffline(t *testing.T) {
	s := twoFriends(t, Options{})
	a := online(t, s, "alice@example.com", "alicepw")
	b := online(t, s, "bob@example.com", "bobpw")
	a.expectName("NLN")
	if err := s.InjectLine("bob@example.com", []byte("ZZZ garbage\r\n")); err != nil {
		t.Fatal(err)
	}
	b.expect("ZZZ garbage")
	if err := s.SetOffline("bob@example.com"); err != nil {
		t.Fatal(err)
	}
	b.expect("CHG 0 FLN")
	a.expect("FLN bob@example.com")
	b.send("XFR 20 SB")
	b.expect("913 20")
	b.send("CHG 21 NLN 1")
	b.expect("CHG 21 NLN 1")
	a.expect("NLN NLN bob@example.com Bob 1 %3Cmsnobj%2F%3E")
}

func TestSetDelayAndWaitFor(t *testing.T) {
	s := twoFriends(t, Options{})
	a := online(t, s, "alice@example.com", "alicepw")
	s.SetDelay("PNG", 50*time.Millisecond)
	a.send("PNG")
	ev, err := s.WaitFor(ctxT(t), "alice@example.com", "PNG")
	if err != nil || ev.Server != "NS" {
		t.Fatalf("WaitFor: %+v %v", ev, err)
	}
	a.expect("QNG 60")
	s.SetDelay("PNG", 0)
	if _, err := s.WaitFor(ctxT(t), "alice@example.com", "CHG"); err != nil {
		t.Fatal(err)
	}
	// Close while a delayed command waits: Close stays quick and the delay ends.
	s.SetDelay("PNG", time.Hour)
	a.send("PNG")
	if _, err := s.WaitFor(ctxT(t), "alice@example.com", "PNG"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	a.expectClosed()
}

func TestPassport(t *testing.T) {
	s := twoFriends(t, Options{})
	hc := httpClient(t, s)
	resp, err := hc.Get(s.NexusURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, ok := resp.Header["Passporturls"]; !ok {
		t.Fatalf("nexus header not sent as Passporturls: %v", resp.Header)
	}
	if got := resp.Header.Get("PassportURLs"); got != "DALogin="+s.HTTPSLoginURL() {
		t.Fatalf("nexus = %q", got)
	}

	login := func(url, auth string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", auth)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// A comma in the password arrives percent-encoded.
	_ = s.SetPassword("bob@example.com", "p@ss,word")
	auth := "Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,sign-in=bob%40example.com,pwd=p%40ss%2Cword,ct=1"
	if r := login(s.LoginURL(), auth); r.StatusCode != 200 || !strings.Contains(r.Header.Get("Authentication-Info"), "from-PP='") {
		t.Fatalf("login: %d %v", r.StatusCode, r.Header)
	}
	if r := login(s.HTTPSLoginURL(), strings.Replace(auth, "word", "wrong", 1)); r.StatusCode != 401 ||
		r.Header.Get("WWW-Authenticate") != "Passport1.4 da-status=failed" {
		t.Fatalf("bad password: %d %v", r.StatusCode, r.Header)
	}
	s.PassportRedirect(true)
	r := login(s.HTTPSLoginURL(), auth)
	if r.StatusCode != 302 || !strings.HasPrefix(r.Header.Get("Location"), s.HTTPSLoginURL()) {
		t.Fatalf("redirect: %d %v", r.StatusCode, r.Header)
	}
	if r := login(r.Header.Get("Location"), auth); r.StatusCode != 200 {
		t.Fatalf("after redirect: %d", r.StatusCode)
	}
	s.PassportRedirect(false)
	s.PassportFault(503)
	if r := login(s.HTTPSLoginURL(), auth); r.StatusCode != 503 {
		t.Fatalf("fault: %d", r.StatusCode)
	}
	s.PassportFault(0)
	if len(s.CAPEM()) == 0 {
		t.Fatal("no CA PEM")
	}
}

func TestNexusNoScheme(t *testing.T) {
	s := newServer(t, Options{Dialect: Microsoft, NexusNoScheme: true})
	resp, err := httpClient(t, s).Get(s.HTTPSNexusURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	v := resp.Header.Get("PassportURLs")
	if !strings.Contains(v, ",DALogin="+strings.TrimPrefix(s.HTTPSLoginURL(), "https://")+",") {
		t.Fatalf("nexus = %q", v)
	}
}

func TestTicketExpiry(t *testing.T) {
	s := newServer(t, Options{TicketTTL: time.Millisecond})
	escargotAccounts(t, s)
	tk, _ := s.IssueTicket("alice@example.com")
	time.Sleep(20 * time.Millisecond) // well past the TTL
	c := dialRaw(t, s.NSAddr())
	c.send("VER 1 MSNP11 CVR0")
	c.expectName("VER")
	c.send("USR 2 TWN I alice@example.com")
	c.expectName("USR")
	c.send("USR 3 TWN S " + tk)
	c.expect("911 3")
	c.expectClosed()
}

// TestLSTTrailingSpace checks the raw bytes of an LST without groups: Escargot ends it with a
// space (the empty group list).
func TestLSTTrailingSpace(t *testing.T) {
	s := twoFriends(t, Options{})
	tk, _ := s.IssueTicket("alice@example.com")
	c := dialRaw(t, s.NSAddr())
	c.write([]byte("VER 1 MSNP11 CVR0\r\nUSR 2 TWN I alice@example.com\r\nUSR 3 TWN S " + tk + "\r\nSYN 4 0 0\r\nOUT\r\n"))
	var all []byte
	buf := make([]byte, 4096)
	for range 100 {
		_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
		n, err := c.nc.Read(buf)
		all = append(all, buf[:n]...)
		if err != nil {
			break
		}
	}
	id := s.ContactID("alice@example.com", "bob@example.com")
	if want := "\r\nLST N=bob@example.com F=Bob C=" + id + " 11 \r\n"; !strings.Contains(string(all), want) {
		t.Fatalf("no %q in %q", want, all)
	}
}

func TestGroupsDialects(t *testing.T) {
	tests := []struct {
		dialect       Dialect
		adg, rmg, reg string
	}{
		{Escargot, "ADG 10 Friends {g} 0", "RMG 12 1 {g}", "REG 11 1 Mates {g} 0"},
		{R2M, "ADG 10 1 Friends {g}", "RMG 12 1 {g}", "REG 11 {g} Mates"},
		{Microsoft, "ADG 10 Friends {g}", "RMG 12 {g}", "REG 11 {g} Mates"},
	}
	for _, tt := range tests {
		t.Run(tt.dialect.String(), func(t *testing.T) {
			s := twoFriends(t, Options{Dialect: tt.dialect})
			a := online(t, s, "alice@example.com", "alicepw")
			vars := map[string]string{}
			a.send("ADG 10 Friends")
			if got := a.read().String(); !matchPattern(tt.adg, got, vars) || !isGUID(vars["g"]) {
				t.Fatalf("ADG: %q", got)
			}
			id := s.ContactID("alice@example.com", "bob@example.com")
			a.send("ADC 13 FL C=" + id + " " + vars["g"])
			a.expect("ADC 13 FL C=" + id + " " + vars["g"])
			a.send("ADG 14 Friends")
			a.expect("228 14")
			a.send("REG 11 " + vars["g"] + " Mates")
			if got := a.read().String(); !matchPattern(tt.reg, got, vars) {
				t.Fatalf("REG: %q", got)
			}
			a.send("REM 15 FL " + id + " " + vars["g"])
			a.expect("REM 15 FL " + id + " " + vars["g"])
			a.send("RMG 12 " + vars["g"])
			if got := a.read().String(); !matchPattern(tt.rmg, got, vars) {
				t.Fatalf("RMG: %q", got)
			}
			a.send("RMG 16 " + vars["g"])
			a.expect("224 16")
		})
	}
}

func TestListManagement(t *testing.T) {
	s := twoFriends(t, Options{})
	if err := s.AddAccount("carol@example.com", "carolpw", "Carol"); err != nil {
		t.Fatal(err)
	}
	a := online(t, s, "alice@example.com", "alicepw")
	c := online(t, s, "carol@example.com", "carolpw")
	a.send("ADC 20 FL N=carol@example.com F=carol@example.com")
	c.expect("ADC 0 RL N=alice@example.com F=Alice")
	c.expectName("NOT")
	a.expect("ADC 20 FL N=carol@example.com F=Carol C=" + s.ContactID("alice@example.com", "carol@example.com"))
	if got := s.Lists("carol@example.com", "alice@example.com"); got != RL|PL {
		t.Fatalf("carol's lists for alice = %d", got)
	}
	a.send("ADC 21 AL N=carol@example.com")
	a.expect("ADC 21 AL N=carol@example.com")
	a.send("ADC 22 AL N=carol@example.com")
	a.expect("215 22")
	a.send("ADC 23 BL N=carol@example.com")
	a.expect("219 23")
	a.send("ADC 24 FL N=not-an-address F=x")
	a.expect("201 24")
	a.send("REM 25 PL carol@example.com")
	a.expect("216 25")
	// Carol accepts: AL + REM PL → Alice now sees her.
	c.send("ADC 30 AL N=alice@example.com")
	c.expect("ADC 30 AL N=alice@example.com")
	a.expect("NLN NLN carol@example.com Carol 1073741824 %3Cmsnobj%2F%3E")
	c.send("REM 31 PL alice@example.com")
	c.expect("REM 31 PL alice@example.com")
	// Alice removes Carol from FL by GUID: Carol gets REM 0 RL.
	id := s.ContactID("alice@example.com", "carol@example.com")
	a.send("REM 26 FL " + id)
	a.expect("REM 26 FL " + id)
	c.expect("REM 0 RL N=alice@example.com")
	c.expectName("NOT")
	a.send("REM 27 FL " + id)
	a.expect("216 27")
	// ADC RL for a contact that is not pending disconnects, as on Escargot.
	c.send("ADC 32 RL N=alice@example.com")
	c.expectClosed()
}

// TestGarbage feeds malformed input to every listener: the server answers with an error or
// closes the connection, and keeps serving others.
func TestGarbage(t *testing.T) {
	s := twoFriends(t, Options{})
	inputs := []string{
		"\r\n\r\n",
		"HELLO\r\n",
		"VER\r\n",
		"VER x\r\n",
		"USR 1 TWN S\r\n",
		"VER 1 MSNP11 CVR0\r\nSYN 2 0 0\r\n",
		"VER 1 MSNP11 CVR0\r\nUUX 2 -5\r\n",
		"VER 1 MSNP11 CVR0\r\nUUX 2 99999999999\r\n",
		"VER 1 MSNP11 CVR0\r\nQRY 2 x 4\r\nab",
		strings.Repeat("A", 70000) + "\r\n",
		"\x00\x01\x02\xff\xfe\r\n",
		"MSG 1 A 5\r\nhello",
		"ANS 1 a@b c d\r\n",
		"USR 1 alice@example.com\r\n",
		"CAL 1 bob@example.com\r\n",
	}
	for _, in := range inputs {
		for _, addr := range []string{s.NSAddr(), s.SBAddr()} {
			c := dialRaw(t, addr)
			c.tryWrite([]byte(in))
			_ = c.nc.(interface{ CloseWrite() error }).CloseWrite()
			c.expectClosed()
		}
	}
	// Logged-in garbage.
	a := online(t, s, "alice@example.com", "alicepw")
	for _, line := range []string{
		"CHG 5 XYZ 0", "ADC", "ADC 6", "ADC 7 XL N=x", "REM 8 FL", "PRP 9", "SBP 10", "ADG 11",
		"REG 12", "RMG 13", "GCF 14", "BLP 15", "URL 16", "XFR 17", "CHG 18 NLN abc",
	} {
		a.tryWrite([]byte(line + "\r\n"))
	}
	a.tryWrite([]byte("PNG\r\n"))
	// Some of these close the connection (unknown status); that is allowed. The server lives on.
	b := online(t, s, "bob@example.com", "bobpw")
	b.send("PNG")
	b.expect("QNG 60")
	a.nc.Close()
	// Malformed UUX: no reply, connection kept.
	b.sendPayload("UUX 40", "<Data><PSM>unclosed</Data>")
	b.sendPayload("UUX 41", "<PSM>x</PSM><CurrentMedia></CurrentMedia>")
	b.send("PNG")
	b.expect("QNG 60")
	// Payload limits of the reader.
	b.write([]byte("UUX 42 " + "70000\r\n"))
	b.expectClosed()
	_ = msn.MaxLineLength
}

// TestCloseLeavesNoGoroutines starts a busy server, closes it and checks the goroutine count
// returns to where it was.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	waitGoroutines(t, 1<<20) // settle
	before := runtimeGoroutines()
	s := New(Options{})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	_ = s.AddAccount("alice@example.com", "alicepw", "Alice")
	_ = s.AddAccount("bob@example.com", "bobpw", "Bob")
	_ = s.AddFriends("alice@example.com", "bob@example.com")
	_ = s.AddBot("echo@example.com", "x", "Echo", EchoBot)
	_ = s.AddFriends("alice@example.com", "echo@example.com")
	a := online(t, s, "alice@example.com", "alicepw")
	b := online(t, s, "bob@example.com", "bobpw")
	as := openSB(t, s, a, "alice@example.com", "Alice")
	as.send("CAL 2 bob@example.com")
	as.expectName("CAL")
	bs, _ := answer(t, b, "bob@example.com")
	bs.expect("IRO 1 1 1 alice@example.com Alice")
	idle := dialRaw(t, s.SBAddr()) // unauthenticated SB socket
	_ = idle
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(ioTimeout):
		t.Fatal("Close hangs")
	}
	s.Close() // idempotent
	for _, c := range []*rawClient{a, b, as, bs, idle} {
		c.nc.Close()
	}
	waitGoroutines(t, before)
}
