package msn

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// fakeServer is a small scripted MSNP server on loopback. Each handler gets the connection and
// the client's command and writes whatever lines it wants; unhandled commands are ignored.
type fakeServer struct {
	t        *testing.T
	ln       net.Listener
	mu       sync.Mutex
	handlers map[string]func(*fakeConn, *Command)
	received []string // command names as received, across connections
	conns    []*fakeConn
	wg       sync.WaitGroup
}

type fakeConn struct {
	srv *fakeServer
	nc  net.Conn
	wmu sync.Mutex
	// state for the default handlers
	chgDone bool
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, handlers: make(map[string]func(*fakeConn, *Command))}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) handle(name string, fn func(*fakeConn, *Command)) {
	s.mu.Lock()
	s.handlers[name] = fn
	s.mu.Unlock()
}

func (s *fakeServer) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		fc := &fakeConn{srv: s, nc: nc}
		s.mu.Lock()
		s.conns = append(s.conns, fc)
		s.mu.Unlock()
		s.wg.Add(1)
		go fc.serve()
	}
}

func (s *fakeServer) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *fakeServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.received...)
}

func (fc *fakeConn) serve() {
	defer fc.srv.wg.Done()
	defer fc.nc.Close()
	r := NewReader(fc.nc, ServerPayloads)
	for {
		cmd, err := r.ReadCommand()
		if err != nil {
			return
		}
		fc.srv.mu.Lock()
		fc.srv.received = append(fc.srv.received, cmd.Name)
		h := fc.srv.handlers[cmd.Name]
		fc.srv.mu.Unlock()
		if h != nil {
			h(fc, cmd.Clone()) // some handlers hand the command to the test's goroutine
		}
	}
}

// send writes lines, each followed by CRLF.
func (fc *fakeConn) send(lines ...string) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	_, _ = fc.nc.Write(b.Bytes())
}

// sendPayload writes "line <len>\r\n" + payload.
func (fc *fakeConn) sendPayload(line, payload string) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_, _ = fmt.Fprintf(fc.nc, "%s %d\r\n%s", line, len(payload), payload)
}

func (fc *fakeConn) close() { _ = fc.nc.Close() }

const (
	testHandle   = "alice@example.com"
	testPassword = "s3cr3t,pass word"
	testTicket   = "fab497272625f3f82582"
	profileMsg   = "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\nLoginTime: 1795542436\r\nMSPAuth: " + testTicket + "Y6+H31&p=\r\nClientIP: 127.0.0.1\r\nABCHMigrated: 1\r\n\r\n"
	mailMsg      = "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinitialmdatanotification; charset=UTF-8\r\n\r\nMail-Data: <MD><E><I>3</I><IU>1</IU><O>0</O><OU>0</OU></E><Q><QTM>409600</QTM><QNM>204800</QNM></Q><M><T>11</T></M></MD>\r\n\r\n"
	shieldsXML   = "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\r\n<config>\r\n\t<shield><cli maj=\"7\" min=\"0\" minbld=\"0\" maxbld=\"9999\" deny=\" \" /></shield>\r\n\t<block></block>\r\n</config>"
)

// escargotNS installs Escargot-like login handlers (as in the captures) with the given SYN
// burst lines (after the SYN reply) and ILN/UBX lines sent after the first CHG.
func (s *fakeServer) escargotNS(syn []string, online func(fc *fakeConn, trid string)) {
	s.handle("VER", func(fc *fakeConn, c *Command) { fc.send("VER " + c.Arg(0) + " MSNP11") })
	s.handle("CVR", func(fc *fakeConn, c *Command) {
		fc.send("CVR " + c.Arg(0) + " 7.0.0816 7.0.0816 7.0.0816 https://escargot.log1p.xyz https://escargot.log1p.xyz")
	})
	s.handle("USR", func(fc *fakeConn, c *Command) {
		t := c.Arg(0)
		switch {
		case c.Arg(1) == "TWN" && c.Arg(2) == "I":
			fc.send("USR " + t + " TWN S ct=1,rver=1,wp=FS_40SEC_0_COMPACT,lc=1,id=1")
		case c.Arg(1) == "TWN" && c.Arg(2) == "S" && c.Arg(3) == testTicket:
			fc.send("USR "+t+" OK "+testHandle+" 1 0", "SBS 0 null")
			fc.sendPayload("MSG Hotmail Hotmail", profileMsg)
		default:
			fc.send("911 " + t)
			fc.close()
		}
	})
	s.handle("SYN", func(fc *fakeConn, c *Command) {
		nLST, nLSG := 0, 0
		for _, l := range syn {
			if strings.HasPrefix(l, "LST ") {
				nLST++
			}
			if strings.HasPrefix(l, "LSG ") {
				nLSG++
			}
		}
		fc.send(append([]string{fmt.Sprintf("SYN %s 2000-01-01T00:00:00.0-00:00 2000-01-01T00:00:00.0-00:00 %d %d", c.Arg(0), nLST, nLSG)}, syn...)...)
	})
	s.handle("GCF", func(fc *fakeConn, c *Command) { fc.sendPayload("GCF "+c.Arg(0)+" Shields.xml", shieldsXML) })
	s.handle("CHG", func(fc *fakeConn, c *Command) {
		if len(c.Args) < 3 {
			return // Escargot ignores CHG without capabilities
		}
		fc.send("CHG " + strings.Join(c.Args, " "))
		if !fc.chgDone {
			fc.chgDone = true
			if online != nil {
				online(fc, c.Arg(0))
			}
			fc.sendPayload("MSG Hotmail Hotmail", mailMsg)
		}
	})
	s.handle("UUX", func(fc *fakeConn, c *Command) { fc.send("UUX " + c.Arg(0) + " 0") })
	s.handle("PNG", func(fc *fakeConn, c *Command) { fc.send("QNG 60") })
	s.handle("OUT", func(fc *fakeConn, c *Command) { fc.close() })
}

// passportServer is a plain-HTTP Passport nexus + login answering with testTicket.
func passportServer(t *testing.T) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/rdr/pprdr.asp":
			w.Header().Set("Passporturls", "DALogin="+srv.URL+"/login")
		case "/login":
			if !strings.Contains(r.Header.Get("Authorization"), "pwd="+passportEscape(testPassword)+",") {
				w.Header().Set("WWW-Authenticate", "Passport1.4 da-status=failed")
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.Header().Set("Authentication-Info", "Passport1.4 da-status=success,from-PP='"+testTicket+"'")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// eventLog collects events for assertions.
type eventLog struct {
	mu     sync.Mutex
	events []Event
	notify chan struct{}
}

func newEventLog() *eventLog { return &eventLog{notify: make(chan struct{}, 1)} }

func (l *eventLog) handler(ev Event) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// waitFor waits (bounded) until an event satisfies match and returns it.
func (l *eventLog) waitFor(t *testing.T, what string, match func(Event) bool) Event {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	seen := 0
	for {
		evs := l.all()
		for ; seen < len(evs); seen++ {
			if match(evs[seen]) {
				return evs[seen]
			}
		}
		select {
		case <-l.notify:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; got %d events", what, len(evs))
			return nil
		}
	}
}

func waitEvent[T Event](t *testing.T, l *eventLog, match func(T) bool) T {
	t.Helper()
	var zero T
	ev := l.waitFor(t, fmt.Sprintf("%T", zero), func(e Event) bool {
		v, ok := e.(T)
		return ok && (match == nil || match(v))
	})
	return ev.(T)
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testConfig(ns *fakeServer, pp *httptest.Server, logw *syncBuffer) Config {
	cfg := Config{
		Server:   ns.addr(),
		NexusURL: pp.URL + "/rdr/pprdr.asp",
		// The fake Passport is plain http on loopback.
		AllowInsecurePassport: true,
		DialTimeout:           5 * time.Second,
		RequestTimeout:        5 * time.Second,
		JoinTimeout:           5 * time.Second,
		AckTimeout:            5 * time.Second,
		PingInterval:          time.Hour,
	}
	if logw != nil {
		cfg.Log = zerolog.New(logw).Level(zerolog.TraceLevel)
	}
	return cfg
}

// login creates and logs in a client; Close is registered for cleanup.
func login(t *testing.T, cfg Config) (*Client, *eventLog) {
	t.Helper()
	l := newEventLog()
	c, err := NewClient(cfg, testHandle, testPassword, l.handler)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Login(ctx); err != nil {
		t.Fatalf("Login: %v", err)
	}
	return c, l
}
