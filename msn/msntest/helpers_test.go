package msntest

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// ioTimeout is a safety net against hangs, not a timing assertion.
const ioTimeout = 10 * time.Second

// rawClient is a bare MSNP connection for tests.
type rawClient struct {
	t    testing.TB
	nc   net.Conn
	r    *msn.Reader
	trid int
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawClient{t: t, nc: nc, r: msn.NewReader(nc, msn.ClientPayloads)}
}

// next returns the next TrID.
func (c *rawClient) next() string {
	c.trid++
	return strconv.Itoa(c.trid)
}

// tryWrite writes without failing the test (the server may have closed already).
func (c *rawClient) tryWrite(b []byte) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, _ = c.nc.Write(b)
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send writes one line (CRLF added).
func (c *rawClient) send(line string) { c.t.Helper(); c.write([]byte(line + "\r\n")) }

// sendPayload writes "line <len>\r\n" + payload.
func (c *rawClient) sendPayload(line, payload string) {
	c.t.Helper()
	c.write([]byte(line + " " + strconv.Itoa(len(payload)) + "\r\n" + payload))
}

// read returns the next command; it fails the test on error.
func (c *rawClient) read() *msn.Command {
	c.t.Helper()
	cmd, err := c.tryRead()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return cmd
}

func (c *rawClient) tryRead() (*msn.Command, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	cmd, err := c.r.ReadCommand()
	if err != nil {
		return nil, err
	}
	return cmd.Clone(), nil // tests keep commands past the next read
}

// expect reads the next command and checks its line (payload length included).
func (c *rawClient) expect(want string) *msn.Command {
	c.t.Helper()
	cmd := c.read()
	if got := cmd.String(); got != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
	return cmd
}

// expectName reads the next command and checks its name.
func (c *rawClient) expectName(name string) *msn.Command {
	c.t.Helper()
	cmd := c.read()
	if cmd.Name != name {
		c.t.Fatalf("got %q, want a %s", cmd.String(), name)
	}
	return cmd
}

// until reads commands, skipping others, until one satisfies match (at most 200).
func (c *rawClient) until(match func(*msn.Command) bool) *msn.Command {
	c.t.Helper()
	for range 200 {
		cmd := c.read()
		if match(cmd) {
			return cmd
		}
	}
	c.t.Fatalf("no matching command in 200")
	return nil
}

// untilLine reads until a command whose line starts with prefix.
func (c *rawClient) untilLine(prefix string) *msn.Command {
	c.t.Helper()
	return c.until(func(cmd *msn.Command) bool { return strings.HasPrefix(cmd.String(), prefix) })
}

// expectClosed reads until the server closes the connection (at most 200 commands).
func (c *rawClient) expectClosed() []*msn.Command {
	c.t.Helper()
	var got []*msn.Command
	for range 200 {
		cmd, err := c.tryRead()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("connection not closed by the server; read so far: %v", got)
			}
			return got
		}
		got = append(got, cmd)
	}
	c.t.Fatalf("connection not closed after 200 commands")
	return nil
}

// httpClient returns a client trusting the server's certificate, not following redirects.
func httpClient(t testing.TB, s *Server) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: ioTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var fromPP = regexp.MustCompile(`from-PP='([^']*)'`)

// passport runs the Passport 1.4 exchange over HTTPS (nexus, then login, following at most
// five 302 hops) and returns the from-PP ticket and the last HTTP status.
func passport(t testing.TB, s *Server, handle, password, challenge string) (string, int) {
	t.Helper()
	hc := httpClient(t, s)
	resp, err := hc.Get(s.HTTPSNexusURL())
	if err != nil {
		t.Fatalf("nexus: %v", err)
	}
	_ = resp.Body.Close()
	var login string
	for _, f := range strings.Split(resp.Header.Get("PassportURLs"), ",") {
		if v, ok := strings.CutPrefix(f, "DALogin="); ok {
			login = v
		}
	}
	if login == "" {
		t.Fatalf("nexus gave no DALogin: %v", resp.Header)
	}
	if !strings.Contains(login, "://") {
		login = "https://" + login
	}
	auth := "Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,sign-in=" +
		msn.Encode(handle) + ",pwd=" + msn.Encode(password) + "," + challenge
	for range 5 {
		req, _ := http.NewRequest(http.MethodGet, login, nil)
		req.Header.Set("Authorization", auth)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusFound {
			login = resp.Header.Get("Location")
			continue
		}
		m := fromPP.FindStringSubmatch(resp.Header.Get("Authentication-Info"))
		if m == nil {
			return "", resp.StatusCode
		}
		return m[1], resp.StatusCode
	}
	t.Fatalf("too many redirects")
	return "", 0
}

// newServer starts a server and closes it at the end of the test.
func newServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s := New(opts)
	if err := s.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// login logs handle in over the NS (VER, CVR, USR, Passport, SYN), reading the whole SYN
// burst, and returns the client positioned right after it (before CHG).
func login(t testing.TB, s *Server, handle, password string) *rawClient {
	t.Helper()
	c := dialRaw(t, s.NSAddr())
	c.send("VER " + c.next() + " MSNP11 MSNP10 CVR0")
	c.expectName("VER")
	c.send("CVR " + c.next() + " 0x0409 winnt 5.1 i386 MSNMSGR 7.0.0816 MSMSGS " + handle)
	c.expectName("CVR")
	c.send("USR " + c.next() + " TWN I " + handle)
	usr := c.expectName("USR")
	tk, status := passport(t, s, handle, password, usr.Arg(3))
	if tk == "" {
		t.Fatalf("passport login of %s: HTTP %d", handle, status)
	}
	t2 := c.next()
	c.send("USR " + t2 + " TWN S " + tk)
	c.expect("USR " + t2 + " OK " + handle + " 1 0")
	c.expect("SBS 0 null")
	c.expectName("MSG")
	t3 := c.next()
	c.send("SYN " + t3 + " 0 0")
	syn := c.expectName("SYN")
	n, _ := strconv.Atoi(syn.Arg(3))
	g, _ := strconv.Atoi(syn.Arg(4))
	c.expectName("GTC")
	c.expectName("BLP")
	c.expectName("PRP")
	for range n + g {
		c.read() // LSG / LST (no BPR in SYN on this server)
	}
	return c
}

// online logs in and sends the first CHG NLN, reading its reply and the initial burst (ILN,
// UBX, up to the initial mail-data MSG).
func online(t testing.TB, s *Server, handle, password string) *rawClient {
	t.Helper()
	c := login(t, s, handle, password)
	tr := c.next()
	c.send("CHG " + tr + " NLN 1073741824")
	c.expect("CHG " + tr + " NLN 1073741824")
	c.untilLine("MSG Hotmail Hotmail")
	return c
}

// waitGoroutines waits (bounded) until the goroutine count drops to at most n.
func waitGoroutines(t testing.TB, n int) {
	t.Helper()
	for range 200 {
		if runtime.NumGoroutine() <= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	t.Fatalf("goroutines: %d > %d\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	t.Cleanup(cancel)
	return ctx
}

func runtimeGoroutines() int { return runtime.NumGoroutine() }
