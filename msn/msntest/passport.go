package msntest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// ticket is an issued Passport ticket. Like Escargot's, it may be used more than once until it
// expires.
type ticket struct {
	handle  string
	expires time.Time
}

// passportFaults are the injected Passport failures.
type passportFaults struct {
	status     int    // answer every login with this HTTP status (0 = none)
	redirect   bool   // answer the first login request of each exchange with 302
	redirectTo string // answer every login request with 302 to this location ("" = none)
}

// initTLS creates a self-signed ECDSA certificate for 127.0.0.1 and localhost.
func (s *Server) initTLS() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("failed to generate tls key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "msntest", Organization: []string{"msntest"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("failed to create tls certificate: %w", err)
	}
	s.cert, err = x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("failed to parse tls certificate: %w", err)
	}
	s.tlsCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: s.cert}
	return nil
}

// CertPool returns a pool holding the HTTPS listener's self-signed certificate, for a client's
// tls.Config.RootCAs. It is nil before Start.
func (s *Server) CertPool() *x509.CertPool {
	if s.cert == nil {
		return nil
	}
	p := x509.NewCertPool()
	p.AddCert(s.cert)
	return p
}

// CAPEM returns the HTTPS certificate in PEM form (nil before Start).
func (s *Server) CAPEM() []byte {
	if s.cert == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.cert.Raw})
}

// startHTTP serves the Passport handlers on the plain and TLS listeners. Callers hold s.mu.
func (s *Server) startHTTP() {
	mux := http.NewServeMux()
	mux.HandleFunc("/rdr/pprdr.asp", s.handleNexus)
	mux.HandleFunc("/nexus-mock", s.handleNexus)
	mux.HandleFunc("/login2.srf", s.handleLogin)
	mux.HandleFunc("/login", s.handleLogin)
	s.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.httpsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{s.tlsCert}, MinVersion: tls.VersionTLS12}}
	httpLn, httpsLn := s.httpLn, tls.NewListener(s.httpsLn, s.httpsSrv.TLSConfig)
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = s.httpSrv.Serve(httpLn) }()
	go func() { defer s.wg.Done(); _ = s.httpsSrv.Serve(httpsLn) }()
}

// handleNexus answers the nexus request with the PassportURLs header pointing at the HTTPS
// login URL, with or without scheme (Options.NexusNoScheme), under Options.NexusHeader written
// verbatim (so "Passporturls" stays lower-case as Escargot's proxy sends it).
func (s *Server) handleNexus(w http.ResponseWriter, r *http.Request) {
	s.record("HTTP", "", "NEXUS", []string{r.URL.Path}, nil)
	login := s.HTTPSLoginURL()
	if s.opts.NexusNoScheme {
		login = strings.TrimPrefix(login, "https://")
	}
	val := "DALogin=" + login
	if s.opts.Dialect != Escargot {
		val = "DARealm=Passport.Net," + val + ",DAReg=http://register.passport.net/uixpwiz.srf,Properties=https://register.passport.net/editprof.srf,Privacy=http://www.passport.com/consumer/privacypolicy.asp,GeneralRedir=http://nexusrdr.passport.com/redir.asp,Help=http://memberservices.passport.net/memberservice.srf,ConfigVersion=11"
	}
	w.Header()[s.opts.NexusHeader] = []string{val}
	w.WriteHeader(http.StatusOK)
}

// parsePassportAuth splits a "Passport1.4 k=v,k=v" Authorization header as Escargot does: on
// ',', then on the first '=', values percent-decoded.
func parsePassportAuth(h string) map[string]string {
	const prefix = "Passport1.4 "
	if !strings.HasPrefix(h, prefix) {
		return nil
	}
	m := map[string]string{}
	for _, kv := range strings.Split(h[len(prefix):], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		m[strings.TrimSpace(k)] = msn.Decode(v)
	}
	return m
}

// handleLogin is the Passport 1.4 login: 200 with a from-PP ticket on good credentials, 401 on
// bad ones, plus the injected redirect and status faults.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	fields := parsePassportAuth(r.Header.Get("Authorization"))
	handle, _ := normHandle(fields["sign-in"])
	s.record("HTTP", handle, "LOGIN", []string{r.URL.Path}, nil)

	s.mu.Lock()
	f := s.faults
	s.mu.Unlock()
	if f.redirectTo != "" {
		w.Header().Set("Authentication-Info", "Passport1.4 da-status=redir")
		w.Header().Set("Location", f.redirectTo)
		w.WriteHeader(http.StatusFound)
		return
	}
	if f.redirect && r.URL.Query().Get("hop") == "" {
		w.Header().Set("Authentication-Info", "Passport1.4 da-status=redir")
		base := s.LoginURL()
		if r.TLS != nil {
			base = s.HTTPSLoginURL()
		}
		w.Header().Set("Location", base+"?hop=1")
		w.WriteHeader(http.StatusFound)
		return
	}
	if f.status != 0 {
		w.WriteHeader(f.status)
		return
	}

	s.mu.Lock()
	a := s.accounts[handle]
	ok := fields != nil && a != nil && a.password == fields["pwd"]
	var tok string
	if ok {
		tok = randomToken(20)
		now := time.Now()
		if len(s.tickets) > 256 {
			for k, t := range s.tickets {
				if now.After(t.expires) {
					delete(s.tickets, k)
				}
			}
		}
		s.tickets[tok] = ticket{handle: handle, expires: now.Add(s.opts.TicketTTL)}
	}
	s.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", "Passport1.4 da-status=failed")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var pp string
	switch s.opts.Dialect {
	case R2M:
		pp = "t=" + tok
	case Microsoft:
		pp = "t=" + tok + "&p=" + randomToken(20)
	default:
		pp = tok
	}
	info := "Passport1.4 da-status=success,from-PP='" + pp + "'"
	if s.opts.Dialect == Microsoft {
		info = "Passport1.4 da-status=success,tname=MSPAuth,tname=MSPProf,tname=MSPSec,from-PP='" + pp + "',ru=http://messenger.msn.com"
	}
	w.Header().Set("Authentication-Info", info)
	w.WriteHeader(http.StatusOK)
}

// checkTicket returns the handle a ticket was issued for, accepting the bare token or the
// "t=<token>&p=…" form. Expired and unknown tickets give "". Callers hold s.mu.
func (s *Server) checkTicket(raw string) string {
	tok := raw
	if strings.HasPrefix(tok, "t=") {
		tok = tok[2:]
		if i := strings.IndexByte(tok, '&'); i >= 0 {
			tok = tok[:i]
		}
	}
	t, ok := s.tickets[tok]
	if !ok {
		return ""
	}
	if time.Now().After(t.expires) {
		delete(s.tickets, tok)
		return ""
	}
	return t.handle
}

// IssueTicket returns a fresh Passport ticket for handle without the HTTP exchange, for tests
// that only exercise the NS.
func (s *Server) IssueTicket(handle string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookup(handle)
	if err != nil {
		return "", err
	}
	tok := randomToken(20)
	s.tickets[tok] = ticket{handle: a.handle, expires: time.Now().Add(s.opts.TicketTTL)}
	return tok, nil
}

// PassportFault makes every following Passport login answer the HTTP status code (500, 503…)
// until called with 0.
func (s *Server) PassportFault(status int) {
	s.mu.Lock()
	s.faults.status = status
	s.mu.Unlock()
}

// PassportRedirect makes the login answer each first request with a 302 hop to itself (which
// must be replayed with the same Authorization header) while on is true.
func (s *Server) PassportRedirect(on bool) {
	s.mu.Lock()
	s.faults.redirect = on
	s.mu.Unlock()
}

// PassportRedirectTo makes the login answer every request with a 302 to location (another
// host, plain http…), as a hostile or misconfigured Passport server might, until called with
// "".
func (s *Server) PassportRedirectTo(location string) {
	s.mu.Lock()
	s.faults.redirectTo = location
	s.mu.Unlock()
}
