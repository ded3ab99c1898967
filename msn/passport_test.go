package msn

import (
	"context"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

func TestPassport(t *testing.T) {
	const challenge = "lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,ct=1062764229,kpp=1,kv=5,ver=2.1.0173.1,tpf=43f8a4c8ed940c04e3740be46c4d1619"
	wantAuth := "Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,sign-in=alice%40example.com,pwd=s3cr3t%2Cpass%20word," + challenge
	tests := []struct {
		name       string
		nexusValue func(base string) string // PassportURLs header; "" = use LoginURL directly
		login      func(w http.ResponseWriter, r *http.Request, hops *atomic.Int32)
		want       string
		wantErr    func(error) bool
	}{
		{
			name:       "escargot full url",
			nexusValue: func(base string) string { return "DALogin=" + base + "/login" },
			login: func(w http.ResponseWriter, r *http.Request, _ *atomic.Int32) {
				w.Header().Set("Authentication-Info", "Passport1.4 da-status=success,from-PP='"+testTicket+"'")
			},
			want: testTicket,
		},
		{
			name: "login url direct, microsoft ticket",
			login: func(w http.ResponseWriter, r *http.Request, _ *atomic.Int32) {
				w.Header().Set("Authentication-Info", "Passport1.4 da-status=success,tname=MSPAuth,tname=MSPProf,tname=MSPSec,from-PP='t=abc,def&p=xyz',ru=http://messenger.msn.com")
			},
			want: "t=abc,def&p=xyz",
		},
		{
			name: "redirects replay authorization",
			login: func(w http.ResponseWriter, r *http.Request, hops *atomic.Int32) {
				if hops.Add(1) <= 3 {
					w.Header().Set("Authentication-Info", "Passport1.4 da-status=redir")
					w.Header().Set("Location", "/login?hop")
					w.WriteHeader(http.StatusFound)
					return
				}
				w.Header().Set("Authentication-Info", "Passport1.4 da-status=success,from-PP='t=r2m'")
			},
			want: "t=r2m",
		},
		{
			name: "redirect loop",
			login: func(w http.ResponseWriter, r *http.Request, _ *atomic.Int32) {
				w.Header().Set("Location", "/login")
				w.WriteHeader(http.StatusFound)
			},
			wantErr: func(err error) bool {
				var pe *PassportError
				return errors.As(err, &pe) && !errors.Is(err, ErrBadCredentials)
			},
		},
		{
			name: "401 with cbtxt",
			login: func(w http.ResponseWriter, r *http.Request, _ *atomic.Int32) {
				w.Header().Set("WWW-Authenticate", "Passport1.4 da-status=failed,srealm=Passport.NET,ts=-3,prompt,cburl=http://x,cbtxt=Wrong%20password")
				w.WriteHeader(http.StatusUnauthorized)
			},
			wantErr: func(err error) bool {
				var ce *CredentialsError
				return errors.Is(err, ErrBadCredentials) && errors.As(err, &ce) && ce.Reason == "Wrong password" && !Retryable(err)
			},
		},
		{
			name: "503 is server trouble",
			login: func(w http.ResponseWriter, r *http.Request, _ *atomic.Int32) {
				w.WriteHeader(http.StatusServiceUnavailable)
			},
			wantErr: func(err error) bool {
				var pe *PassportError
				return errors.As(err, &pe) && pe.StatusCode == 503 && Retryable(err) && !errors.Is(err, ErrBadCredentials)
			},
		},
		{
			name: "200 without ticket",
			login: func(w http.ResponseWriter, r *http.Request, _ *atomic.Int32) {
				w.Header().Set("Authentication-Info", "Passport1.4 da-status=success")
			},
			wantErr: func(err error) bool { var pe *PassportError; return errors.As(err, &pe) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hops atomic.Int32
			var srv *httptest.Server
			srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/rdr/pprdr.asp":
					w.Header().Set("PassportURLs", tt.nexusValue(srv.URL))
				case "/login":
					if got := r.Header.Get("Authorization"); got != wantAuth {
						t.Errorf("Authorization = %q", got)
					}
					tt.login(w, r, &hops)
				}
			}))
			defer srv.Close()
			p := testPassport(t, srv, Config{}, tt.nexusValue != nil)
			got, err := p.login(context.Background(), testHandle, testPassword, challenge)
			if tt.wantErr != nil {
				if err == nil || !tt.wantErr(err) {
					t.Fatalf("err = %v (%T)", err, err)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Errorf("password in error: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("login = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestPassportTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Authentication-Info", "Passport1.4 da-status=success,from-PP='tok'")
	}))
	defer srv.Close()
	ctx := context.Background()

	// Default: verified against the system roots, so the test certificate is refused.
	p, err := newPassport(Config{LoginURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.login(ctx, testHandle, testPassword, "ct=1"); err == nil || errors.Is(err, ErrBadCredentials) {
		t.Fatalf("untrusted certificate accepted or misclassified: %v", err)
	}
	// CAFile trusts it.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err = newPassport(Config{LoginURL: srv.URL, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := p.login(ctx, testHandle, testPassword, "ct=1"); err != nil || tok != "tok" {
		t.Fatalf("with CAFile: %q %v", tok, err)
	}
	// The explicit insecure switch.
	p, _ = newPassport(Config{LoginURL: srv.URL, InsecureSkipVerify: true})
	if tok, err := p.login(ctx, testHandle, testPassword, "ct=1"); err != nil || tok != "tok" {
		t.Fatalf("insecure: %q %v", tok, err)
	}
	if _, err := newPassport(Config{LoginURL: srv.URL, CAFile: filepath.Join(t.TempDir(), "missing.pem")}); err == nil {
		t.Error("missing CA file accepted")
	}
}

func TestParseDALogin(t *testing.T) {
	tests := map[string]string{
		"DARealm=Passport.Net,DALogin=login.passport.com/login2.srf,DAReg=x,ConfigVersion=15": "login.passport.com/login2.srf",
		"DALogin=https://127.0.0.1:8443/login":                                                "https://127.0.0.1:8443/login",
		"dalogin=x/y":                                                                         "x/y",
		"DARealm=none":                                                                        "",
		"":                                                                                    "",
	}
	for in, want := range tests {
		if got := parseDALogin(in); got != want {
			t.Errorf("parseDALogin(%q) = %q, want %q", in, got, want)
		}
	}
}

// credentialTrap is a Passport server an attacker holds: it counts the requests it gets and
// those that carry the password.
type credentialTrap struct {
	srv      *httptest.Server
	requests atomic.Int32
	leaked   atomic.Int32
}

func newCredentialTrap(t *testing.T, tls bool) *credentialTrap {
	t.Helper()
	trap := &credentialTrap{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trap.requests.Add(1)
		if strings.Contains(r.Header.Get("Authorization"), "pwd=") {
			trap.leaked.Add(1)
		}
		w.Header().Set("Authentication-Info", "Passport1.4 da-status=success,from-PP='stolen'")
	})
	if tls {
		trap.srv = httptest.NewTLSServer(h)
	} else {
		trap.srv = httptest.NewServer(h)
	}
	t.Cleanup(trap.srv.Close)
	return trap
}

// TestPassportCredentialsStayWithTheLoginServer is a hostile or compromised login server (or
// nexus) that points the client elsewhere: another port, another host name, plain http. The
// password must never reach that place, and the login must fail with ErrInsecurePassport,
// not be retried. The plain-http opt-in of a test server changes none of it.
func TestPassportCredentialsStayWithTheLoginServer(t *testing.T) {
	tlsTrap := newCredentialTrap(t, true)
	httpTrap := newCredentialTrap(t, false)
	httpsPort := tlsTrap.srv.Listener.Addr().(*net.TCPAddr).Port
	tests := []struct {
		name     string
		insecure bool
		// location is where the login server redirects, nexus what the nexus names as
		// DALogin ("" = the login server itself).
		location func(self string) string
		nexus    func(self string) string
		trap     *credentialTrap
	}{
		{name: "redirect to another https port", location: func(string) string { return tlsTrap.srv.URL + "/login" }, trap: tlsTrap},
		{name: "redirect to plain http", location: func(string) string { return httpTrap.srv.URL + "/login" }, trap: httpTrap},
		{name: "redirect to plain http with the opt-in", insecure: true, location: func(string) string { return httpTrap.srv.URL + "/login" }, trap: httpTrap},
		{name: "redirect to another host name", location: func(string) string { return "https://localhost:" + strconv.Itoa(httpsPort) + "/login" }, trap: tlsTrap},
		{name: "redirect to the same host over http", location: func(self string) string { return "http" + strings.TrimPrefix(self, "https") + "/login?hop" }, trap: tlsTrap},
		{name: "nexus names a plain http login", nexus: func(string) string { return "DALogin=" + httpTrap.srv.URL + "/login" }, trap: httpTrap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tlsTrap.requests.Store(0)
			tlsTrap.leaked.Store(0)
			httpTrap.requests.Store(0)
			httpTrap.leaked.Store(0)
			var srv *httptest.Server
			srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/rdr/pprdr.asp":
					w.Header().Set("PassportURLs", tt.nexus(srv.URL))
				case "/login":
					w.Header().Set("Authentication-Info", "Passport1.4 da-status=redir")
					w.Header().Set("Location", tt.location(srv.URL))
					w.WriteHeader(http.StatusFound)
				}
			}))
			defer srv.Close()
			p := testPassport(t, srv, Config{AllowInsecurePassport: tt.insecure}, tt.nexus != nil)
			tok, err := p.login(context.Background(), testHandle, testPassword, "ct=1")
			if !errors.Is(err, ErrInsecurePassport) || Retryable(err) {
				t.Fatalf("login = %q, %v; want a lasting ErrInsecurePassport", tok, err)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("password in error: %v", err)
			}
			if n := tt.trap.leaked.Load(); n != 0 {
				t.Fatalf("the password reached the other server %d times", n)
			}
			if n := tt.trap.requests.Load(); n != 0 {
				t.Errorf("the other server got %d requests", n)
			}
		})
	}
}

// TestPassportRefusesPlainHTTP checks the configured URLs: https only, plain http only with the
// explicit opt-in, anything else never.
func TestPassportRefusesPlainHTTP(t *testing.T) {
	trap := newCredentialTrap(t, false)
	for _, cfg := range []Config{
		{LoginURL: trap.srv.URL + "/login"},
		{NexusURL: trap.srv.URL + "/rdr/pprdr.asp"},
		{LoginURL: "ftp://127.0.0.1/login", AllowInsecurePassport: true},
		{LoginURL: "127.0.0.1/login"},
	} {
		if _, err := newPassport(cfg); !errors.Is(err, ErrInvalidArgument) || !errors.Is(err, ErrInsecurePassport) {
			t.Errorf("newPassport(%q, %q, insecure %v) = %v", cfg.LoginURL, cfg.NexusURL, cfg.AllowInsecurePassport, err)
		}
	}
	if _, err := NewClient(Config{Server: "127.0.0.1:1", LoginURL: trap.srv.URL + "/login"}, testHandle, testPassword, nil); !errors.Is(err, ErrInsecurePassport) {
		t.Errorf("NewClient with a plain http login url: %v", err)
	}
	if n := trap.requests.Load(); n != 0 {
		t.Fatalf("the plain http server got %d requests", n)
	}
	p, err := newPassport(Config{LoginURL: trap.srv.URL + "/login", AllowInsecurePassport: true})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := p.login(context.Background(), testHandle, testPassword, "ct=1"); err != nil || tok != "stolen" {
		t.Fatalf("with the opt-in: %q %v", tok, err)
	}
}

// testPassport returns a Passport client of srv, through its nexus or straight to its login URL.
func testPassport(t *testing.T, srv *httptest.Server, cfg Config, viaNexus bool) *passport {
	t.Helper()
	cfg.HTTPClient = srv.Client()
	if viaNexus {
		cfg.NexusURL = srv.URL + "/rdr/pprdr.asp"
	} else {
		cfg.LoginURL = srv.URL + "/login"
	}
	p, err := newPassport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
