package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/internal/testenv/dendrite"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// statusRecorder records the bridge states POSTed to homeserver.status_endpoint.
type statusRecorder struct {
	mu     sync.Mutex
	bodies []string
}

func (r *statusRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	r.bodies = append(r.bodies, string(body))
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *statusRecorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.bodies, "\n")
}

// newPreviousConfigEnv is newE2EEnv with testdata/config-previous.yaml (the previous release's
// example, set up for this installation) as the config file, its tokens generated with -g as
// that release did.
func newPreviousConfigEnv(t *testing.T, statusURL string) *e2eEnv {
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
	must(t, e.srv.AddFriends(alice, echo))
	caFile := filepath.Join(e.dir, "msn-ca.pem")
	must(t, os.WriteFile(caFile, e.srv.CAPEM(), 0o600))
	e.proxy = newTCPProxy(t, e.srv.NSAddr())
	e.metricsAddr = "127.0.0.1:" + strconv.Itoa(freePort(t))

	cfg := previousConfig(t, map[string]string{
		"MSN_SERVER": e.proxy.Addr(), "LOGIN_URL": e.srv.HTTPSLoginURL(), "CA_FILE": caFile,
		"KEY_FILE": filepath.Join(e.dir, "msn-bridge.key"), "HS_DOMAIN": hs.ServerName,
		"HS_URL": hs.URL, "AS_URL": hs.ASURL, "AS_PORT": strconv.Itoa(hs.ASPort),
		"AS_TOKEN": tokenPlaceholder, "HS_TOKEN": tokenPlaceholder,
		"DB_PATH": filepath.Join(e.dir, "bridge.db"), "METRICS_ADDR": e.metricsAddr, "STATUS_URL": statusURL,
	})
	must(t, os.WriteFile(e.cfgPath, []byte(cfg), 0o600))
	out, err := exec.Command(e.bin, "-c", e.cfgPath, "-g", "-r", e.regPath).CombinedOutput()
	if err != nil {
		t.Fatalf("bridge -g on the previous release's config: %v\n%s", err, out)
	}
	if data := string(mustRead(t, e.cfgPath)); !strings.Contains(data, "enable_session_transfers") {
		t.Fatal("-g already upgraded the file; the test must start from the previous layout")
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

// provisioning calls the provisioning API over loopback as a client would: with the shared
// secret as bearer token ("" for none) and the Matrix user in user_id.
type provisioning struct {
	t    *testing.T
	base string
}

func (p provisioning) do(method, path, secret string, user id.UserID, query url.Values, body any) (int, string) {
	p.t.Helper()
	if query == nil {
		query = url.Values{}
	}
	if user != "" {
		query.Set("user_id", string(user))
	}
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		must(p.t, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, p.base+path+"?"+query.Encode(), rd)
	must(p.t, err)
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	must(p.t, err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(data)
}

func refused(code int) bool { return code == http.StatusUnauthorized || code == http.StatusForbidden }

// A config file of the previous release starts after the upgrade (the file rewritten with real
// secrets, its MSN and Discord keys kept), and the provisioning API then works for clients:
// login flows, login with e-mail and password, logins, contacts, resolve, logout. Each call is
// refused without the secret or with a wrong one, and a second user cannot use the first
// one's login process or login. The version is in the bot's version command and in bridge
// states, and Dendrite's old spec versions are one warning, not an error.
func TestBinaryPreviousConfigProvisioning(t *testing.T) {
	states := &statusRecorder{}
	statusSrv := httptest.NewServer(states)
	defer statusSrv.Close()
	e := newPreviousConfigEnv(t, statusSrv.URL+"/status")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	e.startHomeserver()
	p := e.start()
	e.waitStarted(p, 0)

	// The file was upgraded in place: real secrets, the removed key gone, the rest kept.
	got := leaves(t, mustRead(t, e.cfgPath))
	secret := got["matrix.provisioning.shared_secret"]
	if secret == "generate" || len(secret) < 16 {
		t.Fatalf("provisioning.shared_secret = %q after the upgrade", secret)
	}
	if _, ok := got["matrix.provisioning.enable_session_transfers"]; ok {
		t.Error("enable_session_transfers is still in the upgraded file")
	}
	for key, want := range map[string]string{
		"msn.server": e.proxy.Addr(), "msn.max_contacts": "777", "discord.token": "not-a-real-discord-token",
		"discord.category_name": "Messenger — {handle}", "matrix.appservice.as_token": e.reg.AppToken,
	} {
		if got[key] != want {
			t.Errorf("%s = %q after the upgrade, want %q", key, got[key], want)
		}
	}

	// ignore_unsupported_server: one warning, and bridgev2's error line is gone.
	log := e.readLog()
	if n := strings.Count(log, "older Matrix spec versions than bridgev2 requires"); n != 1 {
		t.Errorf("the outdated-homeserver warning was logged %d times, want once", n)
	}
	if strings.Contains(log, "The homeserver is outdated") {
		t.Error("bridgev2's outdated-homeserver error is still logged")
	}

	prov := provisioning{t: t, base: e.hs.ASURL + "/_matrix/provision/v3"}
	owner, other := e.hs.UserID("prov-owner"), e.hs.UserID("prov-other")
	for _, lp := range []string{"prov-owner", "prov-other"} {
		_, err := e.hs.RegisterUser(ctx, lp, lp+"-matrix-password")
		must(t, err)
	}
	echoGhost := "msn_" + id.EncodeUserLocalpart(echo)

	// No secret, a wrong secret: refused on every endpoint, nothing done.
	for _, c := range []struct{ method, path string }{
		{"GET", "/login/flows"}, {"POST", "/login/start/password"}, {"GET", "/logins"},
		{"GET", "/contacts"}, {"GET", "/resolve_identifier/" + echo}, {"POST", "/logout/all"},
	} {
		for _, s := range []string{"", "wrong-secret-of-enough-length", secret[:len(secret)-1]} {
			if code, body := prov.do(c.method, c.path, s, owner, nil, nil); !refused(code) {
				t.Errorf("%s %s with secret %q: %d %s, want 401/403", c.method, c.path, s, code, body)
			}
		}
	}

	code, body := prov.do("GET", "/login/flows", secret, owner, nil, nil)
	if code != http.StatusOK || !strings.Contains(body, `"id":"password"`) {
		t.Fatalf("login flows: %d %s", code, body)
	}
	var step struct {
		LoginID  string `json:"login_id"`
		Type     string `json:"type"`
		StepID   string `json:"step_id"`
		Complete struct {
			UserLoginID string `json:"user_login_id"`
		} `json:"complete"`
	}
	code, body = prov.do("POST", "/login/start/password", secret, owner, nil, nil)
	if code != http.StatusOK {
		t.Fatalf("login start: %d %s", code, body)
	}
	must(t, json.Unmarshal([]byte(body), &step))
	if step.Type != "user_input" || step.LoginID == "" || !strings.Contains(body, `"email"`) {
		t.Fatalf("login start: %s", body)
	}
	creds := map[string]string{"email": alice, "password": alicePW}
	stepPath := fmt.Sprintf("/login/step/%s/%s/user_input", step.LoginID, step.StepID)
	// Another Matrix user cannot continue the owner's login process, nor can a wrong secret.
	if code, body := prov.do("POST", stepPath, secret, other, nil, creds); code == http.StatusOK {
		t.Fatalf("another user submitted the owner's login step: %s", body)
	}
	if code, body := prov.do("POST", stepPath, "wrong-secret-of-enough-length", owner, nil, creds); !refused(code) {
		t.Fatalf("login step with a wrong secret: %d %s", code, body)
	}
	if e.srv.LoggedIn(alice) {
		t.Fatal("a refused login step logged in to MSN")
	}
	code, body = prov.do("POST", stepPath, secret, owner, nil, creds)
	if code != http.StatusOK {
		t.Fatalf("login step: %d %s", code, body)
	}
	must(t, json.Unmarshal([]byte(body), &step))
	loginID := step.Complete.UserLoginID
	if step.Type != "complete" || loginID == "" {
		t.Fatalf("login step: %s", body)
	}
	if strings.Contains(body, alicePW) {
		t.Error("the login answer repeats the password")
	}

	code, body = prov.do("GET", "/logins", secret, owner, nil, nil)
	if code != http.StatusOK || !strings.Contains(body, loginID) {
		t.Errorf("owner's logins: %d %s", code, body)
	}
	if code, body := prov.do("GET", "/logins", secret, other, nil, nil); code != http.StatusOK || strings.Contains(body, loginID) {
		t.Errorf("other user's logins: %d %s, want none of the owner's", code, body)
	}

	// Contacts and resolve, for the owner; the other user gets nothing of them, even naming
	// the owner's login.
	waitUntil(t, p, e2eWait, "the contact list", func() bool {
		code, body := prov.do("GET", "/contacts", secret, owner, nil, nil)
		return code == http.StatusOK && strings.Contains(body, echoGhost)
	})
	asOwner := url.Values{"login_id": {loginID}}
	for _, path := range []string{"/contacts", "/resolve_identifier/" + echo} {
		code, body := prov.do("GET", path, secret, other, asOwner, nil)
		if code == http.StatusOK || strings.Contains(body, echoGhost) {
			t.Errorf("another user read %s of the owner's login: %d %s", path, code, body)
		}
		if code, body := prov.do("GET", path, secret, other, nil, nil); code == http.StatusOK || strings.Contains(body, echoGhost) {
			t.Errorf("a user without a login read %s: %d %s", path, code, body)
		}
	}
	code, body = prov.do("GET", "/resolve_identifier/"+echo, secret, owner, nil, nil)
	if code != http.StatusOK || !strings.Contains(body, echoGhost) {
		t.Errorf("resolve %s: %d %s", echo, code, body)
	}

	// The version: in the bot's version command and in the bridge states.
	cli, err := e.hs.Login(ctx, "prov-owner", "prov-owner-matrix-password")
	must(t, err)
	u := newMXUser(t, cli)
	botMXID := id.NewUserID("msnbot", e.hs.ServerName)
	created, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{botMXID}, IsDirect: true, Preset: "trusted_private_chat"})
	must(t, err)
	u.WaitMessage(ctx, created.RoomID, botMXID, "management room", e2eWait)
	u.send(ctx, created.RoomID, "version")
	u.WaitMessage(ctx, created.RoomID, botMXID, "msn-bridge "+Version, e2eWait)
	waitUntil(t, p, e2eWait, "a bridge state with the version", func() bool {
		return strings.Contains(states.all(), `"version":{"name":"msn-bridge","version":"`+Version)
	})

	// Logout: not by another user, then by the owner.
	if code, body := prov.do("POST", "/logout/"+loginID, secret, other, nil, nil); code == http.StatusOK {
		t.Errorf("another user logged the owner out: %s", body)
	}
	if code, body := prov.do("GET", "/logins", secret, owner, nil, nil); !strings.Contains(body, loginID) {
		t.Fatalf("the owner's login is gone after another user's logout: %d %s", code, body)
	}
	if code, body := prov.do("POST", "/logout/"+loginID, secret, owner, nil, nil); code != http.StatusOK {
		t.Fatalf("logout: %d %s", code, body)
	}
	if code, body := prov.do("GET", "/logins", secret, owner, nil, nil); code != http.StatusOK || strings.Contains(body, loginID) {
		t.Errorf("logins after logout: %d %s", code, body)
	}
	waitUntil(t, p, e2eWait, "the MSN session to end", func() bool { return !e.srv.LoggedIn(alice) })
	if !p.running() {
		t.Fatal("the bridge stopped")
	}
}
