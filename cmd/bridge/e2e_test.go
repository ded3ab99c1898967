package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/internal/testenv/dendrite"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// These tests run the bridge binary as a user runs it: built once with CGO_ENABLED=0 and no
// tags (the default build, end-to-bridge encryption included, whatever -tags the test run
// was given), started as a subprocess with a config file, against msntest (in this process) and a
// real Dendrite.

const (
	e2eWait = 30 * time.Second
	// stopWait bounds a SIGTERM'd bridge's exit: its shutdown timeout plus slack.
	stopWait = shutdownTimeout + 15*time.Second
	// dendriteBackoffWait covers Dendrite's appservice back-off cap (64 s): events the bridge
	// missed while it was down arrive that much later.
	dendriteBackoffWait = 90 * time.Second

	alice      = "alice@msn.test"
	alicePW    = "alice-Secret-pw-4711"
	strayPW    = "Typed-Too-Late-0815"
	echo       = "echo@msn.test"
	carol      = "carol@msn.test"
	matrixUser = "alice"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// bridgeBinary builds cmd/bridge once per test run (pure Go, bounded) and returns its path.
func bridgeBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "msn-bridge-bin-")
		if binErr != nil {
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		binPath = filepath.Join(binDir, "bridge")
		cmd := exec.CommandContext(ctx, goTool, "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// e2eEnv is one bridge installation: a directory with its config, key, database and log, an
// MSN network behind a switchable proxy, and a Dendrite.
type e2eEnv struct {
	t           *testing.T
	dir         string
	bin         string
	cfgPath     string
	regPath     string
	logPath     string
	metricsAddr string
	hs          *dendrite.Homeserver
	srv         *msntest.Server
	proxy       *tcpProxy
	reg         *appservice.Registration
}

func newE2EEnv(t *testing.T) *e2eEnv {
	t.Helper()
	return newE2EEnvWith(t, "")
}

// newE2EEnvWith is newE2EEnv with matrixYAML (keys indented by 4 spaces) added to the config's
// matrix section.
func newE2EEnvWith(t *testing.T, matrixYAML string) *e2eEnv {
	t.Helper()
	hs := dendrite.New(t, dendrite.Options{LogLevel: "warn"}) // skips (or fails under CI) without Dendrite
	e := &e2eEnv{t: t, dir: t.TempDir(), bin: bridgeBinary(t), hs: hs}
	e.cfgPath = filepath.Join(e.dir, "config.yaml")
	e.regPath = filepath.Join(e.dir, "registration.yaml")
	e.logPath = filepath.Join(e.dir, "bridge.log")

	e.srv = msntest.New(msntest.Options{})
	must(t, e.srv.Start())
	t.Cleanup(e.srv.Close)
	must(t, e.srv.AddAccount(alice, alicePW, "Alice"))
	must(t, e.srv.AddBot(echo, "x-echo-pw", "Echo Bot", msntest.EchoBot))
	must(t, e.srv.AddAccount(carol, "x-carol-pw", "Carol"))
	must(t, e.srv.AddFriends(alice, echo))
	must(t, e.srv.AddFriends(alice, carol))
	must(t, e.srv.SetPresence(echo, "NLN", "echoing"))
	caFile := filepath.Join(e.dir, "msn-ca.pem")
	must(t, os.WriteFile(caFile, e.srv.CAPEM(), 0o600))
	e.proxy = newTCPProxy(t, e.srv.NSAddr())

	e.metricsAddr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	cfg := fmt.Sprintf(`# msn-bridge end-to-end test
msn:
    server: %s
    login_url: %s
    ca_file: %s
    reconnect:
        initial: 200ms
        max: 1s
    credentials:
        key_file: %s
matrix:
    ignore_unsupported_server: true
%s    bridge:
        permissions:
            localhost: user
    homeserver:
        address: %s
        domain: %s
    appservice:
        address: %s
        hostname: 127.0.0.1
        port: %d
        as_token: ""
        hs_token: ""
database:
    uri: file:%s?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)&_txlock=immediate
logging:
    min_level: trace
    writers:
        - type: stdout
          format: json
metrics:
    listen: %s
`, e.proxy.Addr(), e.srv.HTTPSLoginURL(), caFile, filepath.Join(e.dir, "msn-bridge.key"), matrixYAML,
		hs.URL, hs.ServerName, hs.ASURL, hs.ASPort, filepath.Join(e.dir, "bridge.db"), e.metricsAddr)
	must(t, os.WriteFile(e.cfgPath, []byte(cfg), 0o600))

	// -g writes the registration and stores its tokens in the config.
	out, err := exec.Command(e.bin, "-c", e.cfgPath, "-g", "-r", e.regPath).CombinedOutput()
	if err != nil {
		t.Fatalf("bridge -g: %v\n%s", err, out)
	}
	e.reg, err = appservice.LoadRegistration(e.regPath)
	must(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge log (%s), tail:\n%s", e.logPath, tail(e.readLog(), 16<<10))
		}
	})
	return e
}

func (e *e2eEnv) startHomeserver() {
	e.t.Helper()
	regYAML, err := os.ReadFile(e.regPath)
	must(e.t, err)
	e.hs.Start(e.t, regYAML)
}

func (e *e2eEnv) readLog() string {
	data, _ := os.ReadFile(e.logPath)
	return string(data)
}

// countRows counts a table's rows in the bridge's SQLite database (read-only, beside the
// running bridge).
func (e *e2eEnv) countRows(table string) int {
	e.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dir, "bridge.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	must(e.t, err)
	defer db.Close()
	var n int
	must(e.t, db.QueryRow("SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// bridgeProc is one run of the bridge binary.
type bridgeProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	code int
}

// start runs the binary with the env's config; its output is appended to the log file. It is
// killed in cleanup if still running.
func (e *e2eEnv) start() *bridgeProc {
	e.t.Helper()
	f, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	must(e.t, err)
	defer f.Close()
	cmd := exec.Command(e.bin, "-c", e.cfgPath)
	cmd.Dir = e.dir
	cmd.Stdout, cmd.Stderr = f, f
	must(e.t, cmd.Start())
	p := &bridgeProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		if p.running() {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *bridgeProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and returns the exit code; it fails t if the process does not exit
// within stopWait.
func (p *bridgeProc) stop(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.code
	case <-time.After(stopWait):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("the bridge did not exit within %s of SIGTERM", stopWait)
		return -1
	}
}

// waitUntil polls cond until it holds, failing t after timeout or when p exits.
func waitUntil(t *testing.T, p *bridgeProc, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if p != nil && !p.running() {
			t.Fatalf("the bridge exited (code %d) while waiting for %s", p.code, what)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type healthReport struct {
	Status   string         `json:"status"`
	Accounts map[string]int `json:"accounts"`
}

func (e *e2eEnv) health() (*healthReport, error) {
	resp, err := http.Get("http://" + e.metricsAddr + "/health")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var h healthReport
	return &h, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&h)
}

func (e *e2eEnv) metrics() string {
	resp, err := http.Get("http://" + e.metricsAddr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return string(body)
}

// waitStarted waits until the bridge logged that it started.
func (e *e2eEnv) waitStarted(p *bridgeProc, since int) {
	e.t.Helper()
	waitUntil(e.t, p, 2*e2eWait, "the bridge to start", func() bool {
		return strings.Contains(e.readLog()[since:], `"message":"Bridge started"`)
	})
}

// mxUser is the Matrix user driving the bridge through Dendrite.
type mxUser struct {
	dendrite.User
	// seen collects every message body read, for the secrets check.
	seen []string
}

func newMXUser(t *testing.T, cli *mautrix.Client) *mxUser {
	u := &mxUser{User: dendrite.User{T: t, Cli: cli}}
	u.Seen = func(body string) { u.seen = append(u.seen, body) }
	return u
}

func (u *mxUser) send(ctx context.Context, room id.RoomID, text string) id.EventID {
	u.T.Helper()
	u.Since = time.Now() // WaitMessage looks only at later events: an earlier prompt does not count
	resp, err := u.Cli.SendText(ctx, room, text)
	must(u.T, err)
	return resp.EventID
}

// TestBinaryEndToEnd runs the binary through a user's whole story: registration, login through
// the bot, messages both ways, presence, a failed send, a command, metrics, SIGTERM, a restart
// that keeps the session, MSN down at start, bad appservice requests, and no secret anywhere in
// the log or the database.
func TestBinaryEndToEnd(t *testing.T) {
	e := newE2EEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	e.startHomeserver()
	p := e.start()
	e.waitStarted(p, 0)

	cli, err := e.hs.RegisterUser(ctx, matrixUser, "alice-matrix-password")
	must(t, err)
	u := newMXUser(t, cli)
	botMXID := id.NewUserID("msnbot", e.hs.ServerName)
	echoGhost := id.NewUserID("msn_"+id.EncodeUserLocalpart(echo), e.hs.ServerName)

	created, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{botMXID}, IsDirect: true, Preset: "trusted_private_chat"})
	must(t, err)
	mgmt := created.RoomID
	u.WaitMessage(ctx, mgmt, botMXID, "management room", e2eWait) // the bot joined

	// A wrong password: a clear answer, nothing stored, no account.
	u.send(ctx, mgmt, "login password")
	u.WaitMessage(ctx, mgmt, botMXID, "E-mail address", e2eWait)
	u.send(ctx, mgmt, alice)
	u.WaitMessage(ctx, mgmt, botMXID, "Password", e2eWait)
	u.send(ctx, mgmt, "wrong-Password-123")
	u.WaitMessage(ctx, mgmt, botMXID, "MSN refused the e-mail address or password", e2eWait)
	if h, err := e.health(); err != nil || len(h.Accounts) != 0 {
		t.Errorf("health after a refused login: %+v %v, want no accounts", h, err)
	}
	if e.srv.LoggedIn(alice) {
		t.Error("a refused login left a session on MSN")
	}
	for _, table := range []string{"msn_account", "msn_credential"} {
		if n := e.countRows(table); n != 0 {
			t.Errorf("%d rows in %s after a refused login", n, table)
		}
	}

	// The real login.
	u.send(ctx, mgmt, "login password")
	u.WaitMessage(ctx, mgmt, botMXID, "E-mail address", e2eWait)
	u.send(ctx, mgmt, alice)
	u.WaitMessage(ctx, mgmt, botMXID, "Password", e2eWait)
	u.send(ctx, mgmt, alicePW)
	u.WaitMessage(ctx, mgmt, botMXID, "Logged in to MSN as "+alice, e2eWait)
	waitUntil(t, p, e2eWait, "alice online on MSN", func() bool { return e.srv.LoggedIn(alice) })
	// A password typed once more after the prompt is gone is an unknown command to the bot.
	u.send(ctx, mgmt, strayPW)
	u.WaitMessage(ctx, mgmt, botMXID, "Unknown command", e2eWait)

	// The contact's message arrives in a DM portal from a ghost with the right name.
	must(t, e.srv.BotSay(echo, alice, "hello from msn"))
	portal := u.JoinInvite(ctx, map[id.RoomID]bool{mgmt: true}, e2eWait)
	u.WaitMessage(ctx, portal, echoGhost, "hello from msn", e2eWait)
	if dn, err := cli.GetDisplayName(ctx, echoGhost); err != nil || dn.DisplayName != "Echo Bot (MSN)" {
		t.Errorf("ghost display name %+v %v, want Echo Bot (MSN)", dn, err)
	}

	// Presence and PSM on the ghost.
	waitPresence := func(want event.Presence, msg string) {
		t.Helper()
		var last *mautrix.RespPresence
		waitUntil(t, p, e2eWait, fmt.Sprintf("ghost presence %s %q", want, msg), func() bool {
			last, err = cli.GetPresence(ctx, echoGhost)
			return err == nil && last.Presence == want && last.StatusMsg == msg
		})
	}
	waitPresence(event.PresenceOnline, "Online - echoing")
	must(t, e.srv.SetPresence(echo, "AWY", "bot things"))
	waitPresence(event.PresenceUnavailable, "Away - bot things")

	// The reply reaches the contact, which echoes it back.
	u.send(ctx, portal, "hello from matrix")
	u.WaitMessage(ctx, portal, echoGhost, "hello from matrix", e2eWait)

	// A message to an offline contact fails visibly.
	u.send(ctx, mgmt, "start-chat "+carol)
	carolRoom := u.JoinInvite(ctx, map[id.RoomID]bool{mgmt: true, portal: true}, e2eWait)
	u.send(ctx, carolRoom, "are you there?")
	u.WaitMessage(ctx, carolRoom, botMXID, "offline", e2eWait)

	// The psm command reaches MSN.
	u.send(ctx, mgmt, "psm on matrix now")
	waitUntil(t, p, e2eWait, "the PSM on MSN", func() bool { return e.srv.PSM(alice) == "on matrix now" })
	u.WaitMessage(ctx, mgmt, botMXID, "Personal message set", e2eWait)

	// Health and metrics show the account online and the message counters.
	h, err := e.health()
	if err != nil || h.Status != "ok" || h.Accounts["online"] != 1 {
		t.Errorf("health %+v %v, want one online account", h, err)
	}
	m := e.metrics()
	for _, want := range []string{`msnbridge_accounts{state="online"} 1`, `msnbridge_messages_total{direction="in"`, `msnbridge_messages_total{direction="out"`, `msnbridge_login_attempts_total`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Bad appservice requests get a 4xx; the bridge keeps working.
	badTransactions(t, e)
	u.send(ctx, portal, "still bridged after bad requests")
	u.WaitMessage(ctx, portal, echoGhost, "still bridged after bad requests", e2eWait)

	if n := e.countRows("msn_credential"); n != 1 {
		t.Errorf("%d stored credentials after the login, want 1", n)
	}

	// SIGTERM: an ordered shutdown, exit 0, the MSN session closed.
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(e.readLog(), `"message":"Bridge stopped"`) {
		t.Error("no ordered shutdown in the log")
	}
	waitUntil(t, nil, e2eWait, "alice's MSN session to end", func() bool { return !e.srv.LoggedIn(alice) })

	// Restart: the session comes back without a new login and messages flow both ways.
	logLen := len(e.readLog())
	p = e.start()
	e.waitStarted(p, logLen)
	waitUntil(t, p, e2eWait, "alice back on MSN", func() bool { return e.srv.LoggedIn(alice) })
	must(t, e.srv.BotSay(echo, alice, "still there?"))
	u.WaitMessage(ctx, portal, echoGhost, "still there?", e2eWait)
	u.send(ctx, portal, "yes, after a restart")
	u.WaitMessage(ctx, portal, echoGhost, "yes, after a restart", dendriteBackoffWait)

	// MSN down at start with a stored account: the bridge stays up, reports the account as
	// reconnecting, and logs in when the server is back.
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after the second SIGTERM", code)
	}
	waitUntil(t, nil, e2eWait, "alice's MSN session to end", func() bool { return !e.srv.LoggedIn(alice) })
	e.proxy.SetDown(true)
	logLen = len(e.readLog())
	p = e.start()
	e.waitStarted(p, logLen)
	waitUntil(t, p, e2eWait, "the account reported as not online", func() bool {
		h, err := e.health()
		return err == nil && h.Accounts["reconnecting"]+h.Accounts["connecting"] == 1
	})
	if e.srv.LoggedIn(alice) {
		t.Fatal("alice logged in through a proxy that is down")
	}
	e.proxy.SetDown(false)
	waitUntil(t, p, e2eWait, "alice back on MSN after the outage", func() bool { return e.srv.LoggedIn(alice) })
	waitUntil(t, p, e2eWait, "the account online in /health", func() bool {
		h, err := e.health()
		return err == nil && h.Accounts["online"] == 1
	})
	must(t, e.srv.BotSay(echo, alice, "after the outage"))
	u.WaitMessage(ctx, portal, echoGhost, "after the outage", e2eWait)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after the third SIGTERM", code)
	}

	checkNoSecrets(t, e, u)
}

// badTransactions sends the appservice endpoint what a broken or hostile peer might.
func badTransactions(t *testing.T, e *e2eEnv) {
	t.Helper()
	url := e.hs.ASURL + "/_matrix/app/v1/transactions/"
	tests := []struct {
		name  string
		token string
		body  io.Reader
	}{
		{"bad json", e.reg.ServerToken, strings.NewReader(`{"events": [`)},
		{"wrong shape", e.reg.ServerToken, strings.NewReader(`{"events": {"a": 1}}`)},
		{"empty body", e.reg.ServerToken, strings.NewReader(``)},
		{"bad token", "not-the-hs-token", strings.NewReader(`{"events": []}`)},
		{"no token", "", strings.NewReader(`{"events": []}`)},
		{"huge body", e.reg.ServerToken, io.MultiReader(strings.NewReader(`{"events": [`), &repeatReader{b: []byte(`{"type":"m.room.message"},`), n: 64 << 20})},
	}
	for i, tt := range tests {
		req, err := http.NewRequest(http.MethodPut, url+"bad-"+strconv.Itoa(i), tt.body)
		must(t, err)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// A peer cut off mid-body is an acceptable answer to a huge body.
			if tt.name != "huge body" {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		t.Logf("bad transaction %q: status %d", tt.name, resp.StatusCode)
		if resp.StatusCode < 400 || resp.StatusCode > 499 {
			t.Errorf("%s: status %d, want 4xx", tt.name, resp.StatusCode)
		}
	}
}

// repeatReader yields b over and over, n bytes in all.
type repeatReader struct {
	b   []byte
	n   int
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.n > 0 {
		c := copy(p[n:min(len(p), n+r.n)], r.b[r.off:])
		r.off = (r.off + c) % len(r.b)
		n += c
		r.n -= c
	}
	return n, nil
}

// checkNoSecrets looks for the MSN password, every Passport ticket msntest issued and the
// appservice tokens in the bridge's whole log (trace level), in every database file (each of
// which must be private to the bridge's user) and in every bot message the user saw.
func checkNoSecrets(t *testing.T, e *e2eEnv, u *mxUser) {
	t.Helper()
	secrets := map[string]string{
		"MSN password": alicePW, "wrong MSN password": "wrong-Password-123",
		"stray password": strayPW, "stray password lower-cased": strings.ToLower(strayPW),
	}
	for i, ev := range e.srv.Events() { // USR TWN S comes before the server knows the handle
		// USR <trid> TWN S <ticket>
		if ev.Name == "USR" && len(ev.Args) == 4 && ev.Args[1] == "TWN" && ev.Args[2] == "S" {
			secrets["Passport ticket "+strconv.Itoa(i)] = ev.Args[3]
		}
	}
	if len(secrets) < 5 {
		t.Fatal("no Passport ticket found in msntest's event log")
	}
	logSecrets := map[string]string{"as_token": e.reg.AppToken, "hs_token": e.reg.ServerToken}
	for k, v := range secrets {
		logSecrets[k] = v
	}
	log := e.readLog()
	if len(log) < 10_000 {
		t.Errorf("the bridge log is only %d bytes: trace logging did not work", len(log))
	}
	for name, s := range logSecrets {
		if i := strings.Index(log, s); i >= 0 {
			t.Errorf("the bridge log contains the %s: …%s…", name, log[max(0, i-300):i])
		}
	}
	files, _ := filepath.Glob(filepath.Join(e.dir, "bridge.db*"))
	if len(files) == 0 {
		t.Error("no database files found")
	}
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", filepath.Base(f), st.Mode().Perm())
		}
		data, err := os.ReadFile(f)
		must(t, err)
		for name, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s contains the %s", filepath.Base(f), name)
			}
		}
	}
	for _, msg := range u.seen {
		for name, s := range secrets {
			if strings.Contains(msg, s) {
				t.Errorf("a bot message contains the %s: %q", name, msg)
			}
		}
	}
}

// TestBinaryHomeserverDown starts the bridge before its homeserver: it keeps retrying with a
// warning naming the homeserver URL and the error (a service manager may well start the bridge
// first, and the homeserver may restart), exits 0 on SIGTERM while waiting, and starts once the
// homeserver is up (mautrix retries /versions with back-off up to 32 s).
func TestBinaryHomeserverDown(t *testing.T) {
	e := newE2EEnv(t)
	p := e.start()
	waitUntil(t, p, e2eWait, "the homeserver error in the log", func() bool {
		return hsRefused(e.readLog())
	})
	if _, err := e.health(); err != nil {
		t.Errorf("/health while waiting for the homeserver: %v", err)
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM while waiting for the homeserver, want 0", code)
	}

	logLen := len(e.readLog())
	p = e.start()
	waitUntil(t, p, e2eWait, "the homeserver error in the log", func() bool {
		return hsRefused(e.readLog()[logLen:])
	})
	e.startHomeserver()
	e.waitStarted(p, logLen)
	if code := p.stop(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

// hsRefused reports whether log shows the bridge's homeserver check being refused and retried.
func hsRefused(log string) bool {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "/_matrix/client/versions") && strings.Contains(line, "connection refused") &&
			strings.Contains(line, `"level":"warn"`) && strings.Contains(line, "retrying") {
			return true
		}
	}
	return false
}

// tcpProxy forwards connections to target; while down it accepts and closes them at once,
// like a server that is not there.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.closeAll()
	})
	return p
}

func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

// SetDown switches the proxy off (closing live connections) or back on.
func (p *tcpProxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	if down {
		p.closeAll()
	}
}

func (p *tcpProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			_ = c.Close()
			continue
		}
		go p.forward(c)
	}
}

func (p *tcpProxy) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
