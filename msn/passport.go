package msn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
)

// passport is a Passport 1.4 ("Tweener") client (docs/protocol.md §2.2).
type passport struct {
	hc       *http.Client
	nexusURL string
	loginURL string
	// insecure allows plain http:// for the nexus, the login and the DALogin the nexus names
	// (Config.AllowInsecurePassport).
	insecure bool
	// ownTransport is set when hc's transport was made for this client: login then closes its
	// idle connections, which would otherwise stay open for 90 s after every login.
	ownTransport bool
}

const (
	maxPassportRedirects = 5
	passportOrg          = "OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom"
)

var fromPPRe = regexp.MustCompile(`from-PP='([^']*)'`)

// NewPassportHTTPClient returns the Passport HTTP client a Client makes for itself when
// Config.HTTPClient is nil: a transport of its own with TLS 1.2 or later, certificates verified
// against the system roots and Config.CAFile (not verified only with InsecureSkipVerify). Pass
// it as Config.HTTPClient to share one connection pool between many Clients; a Client never
// closes the connections of a client it was given.
func NewPassportHTTPClient(cfg Config) (*http.Client, error) {
	tcfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.InsecureSkipVerify {
		tcfg.InsecureSkipVerify = true // explicitly requested by the configuration
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("failed to read passport ca file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: no certificate in passport ca file %s", ErrInvalidArgument, cfg.CAFile)
		}
		tcfg.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tcfg
	return &http.Client{Transport: tr}, nil
}

func newPassport(cfg Config) (*passport, error) {
	own := cfg.HTTPClient == nil
	shared := cfg.HTTPClient
	if own {
		var err error
		if shared, err = NewPassportHTTPClient(cfg); err != nil {
			return nil, err
		}
	}
	hc := *shared // a copy: the redirect policy below is this client's
	if hc.Timeout == 0 {
		hc.Timeout = cfg.RequestTimeout
		if hc.Timeout <= 0 {
			hc.Timeout = DefaultRequestTimeout
		}
	}
	// Redirects are followed by hand: the Authorization header must be replayed, and only to
	// where it may go (login).
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p := &passport{hc: &hc, nexusURL: cfg.NexusURL, loginURL: cfg.LoginURL, insecure: cfg.AllowInsecurePassport, ownTransport: own}
	for _, u := range []string{cfg.NexusURL, cfg.LoginURL} {
		if u == "" {
			continue
		}
		pu, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("%w: bad passport url: %w", ErrInvalidArgument, err)
		}
		if err := p.checkScheme(pu); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		}
	}
	return p, nil
}

// checkScheme refuses a Passport URL that is not https, or http without p.insecure: the login
// request carries the password, and the nexus decides where it goes.
func (p *passport) checkScheme(u *url.URL) error {
	switch {
	case u.Scheme == "https" && u.Host != "":
		return nil
	case u.Scheme == "http" && u.Host != "" && p.insecure:
		return nil
	case u.Scheme == "http" && u.Host != "":
		return fmt.Errorf("%w: plain http passport url for %s (allowed only with AllowInsecurePassport, for a local test server)", ErrInsecurePassport, truncate(u.Host, 64))
	}
	return fmt.Errorf("%w: passport url is not an absolute https url", ErrInsecurePassport)
}

// sameOrigin reports whether a and b have the same scheme, host and port (a missing port is
// the scheme's default).
func sameOrigin(a, b *url.URL) bool {
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		if u.Scheme == "https" {
			return "443"
		}
		return "80"
	}
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

// login returns the from-PP ticket for handle/password and the USR TWN S challenge. The
// password and ticket never appear in its errors. A refusal (401) is a *CredentialsError
// (errors.Is ErrBadCredentials); other failures are *PassportError or network errors.
func (p *passport) login(ctx context.Context, handle, password, challenge string) (string, error) {
	if p.ownTransport {
		defer p.hc.CloseIdleConnections()
	}
	loginURL := p.loginURL
	if loginURL == "" {
		var err error
		if loginURL, err = p.nexus(ctx); err != nil {
			return "", err
		}
	}
	origin, err := url.Parse(loginURL)
	if err != nil {
		return "", &PassportError{Reason: "bad login url"}
	}
	if err := p.checkScheme(origin); err != nil {
		return "", &PassportError{Reason: "login url refused", Err: err}
	}
	auth := "Passport1.4 " + passportOrg + ",sign-in=" + passportEscape(handle) + ",pwd=" + passportEscape(password) + "," + challenge
	target := origin
	for hop := 0; hop <= maxPassportRedirects; hop++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
		if err != nil {
			return "", &PassportError{Reason: "bad login url"}
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set("User-Agent", "MSMSGS")
		req.Header.Set("Cache-Control", "no-cache")
		resp, err := p.hc.Do(req)
		if err != nil {
			return "", fmt.Errorf("failed to reach passport login server: %w", scrubURLError(err))
		}
		drain(resp)
		switch {
		case resp.StatusCode == http.StatusOK:
			m := fromPPRe.FindStringSubmatch(resp.Header.Get("Authentication-Info"))
			if m == nil || m[1] == "" {
				return "", &PassportError{StatusCode: resp.StatusCode, Reason: "no from-PP ticket in the answer"}
			}
			return m[1], nil
		case resp.StatusCode == http.StatusUnauthorized:
			return "", &CredentialsError{Reason: cbtxt(resp.Header.Get("WWW-Authenticate"))}
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc := resp.Header.Get("Location")
			if loc == "" {
				return "", &PassportError{StatusCode: resp.StatusCode, Reason: "redirect without location"}
			}
			next, err := resp.Request.URL.Parse(loc)
			if err != nil {
				return "", &PassportError{StatusCode: resp.StatusCode, Reason: "bad redirect location"}
			}
			// The password is replayed only to the login server's own origin: a redirect to
			// another host, port or scheme (https to http) would hand it to whoever is there.
			if !sameOrigin(origin, next) {
				return "", &PassportError{StatusCode: resp.StatusCode, Reason: "redirect to another origin refused (" + truncate(next.Scheme+"://"+next.Host, 80) + ")", Err: ErrInsecurePassport}
			}
			target = next
		default:
			return "", &PassportError{StatusCode: resp.StatusCode, Reason: "unexpected answer from the login server"}
		}
	}
	return "", &PassportError{Reason: fmt.Sprintf("more than %d redirects", maxPassportRedirects)}
}

// nexus asks the nexus for the login URL (DALogin), adding https:// when it has no scheme. The
// DALogin may be on another host (that hop is the protocol's), but must be https unless
// p.insecure.
func (p *passport) nexus(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.nexusURL, nil)
	if err != nil {
		return "", &PassportError{Reason: "bad nexus url"}
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("failed to reach passport nexus: %w", scrubURLError(err))
	}
	drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", &PassportError{StatusCode: resp.StatusCode, Reason: "unexpected answer from the nexus"}
	}
	login := parseDALogin(resp.Header.Get("PassportURLs"))
	if login == "" {
		return "", &PassportError{StatusCode: resp.StatusCode, Reason: "nexus gave no DALogin"}
	}
	if !strings.Contains(login, "://") {
		login = "https://" + login
	}
	lu, err := url.Parse(login)
	if err != nil {
		return "", &PassportError{Reason: "nexus gave a bad DALogin"}
	}
	if err := p.checkScheme(lu); err != nil {
		return "", &PassportError{Reason: "nexus gave a DALogin that is refused", Err: err}
	}
	return login, nil
}

// parseDALogin extracts DALogin from a PassportURLs header value.
func parseDALogin(v string) string {
	for _, f := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(f), "=")
		if ok && strings.EqualFold(k, "DALogin") {
			return strings.TrimSpace(val)
		}
	}
	return ""
}

// cbtxt extracts the percent-decoded cbtxt reason from a WWW-Authenticate header.
func cbtxt(v string) string {
	for _, f := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(f), "=")
		if ok && strings.EqualFold(k, "cbtxt") {
			return truncate(Decode(val), 200)
		}
	}
	return ""
}

// drain reads a bounded amount of the body and closes it, so the connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// scrubURLError keeps the cause of a *url.Error but drops its URL (which could carry a query
// string). The Authorization header is never part of an error.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("%s: %w: %w", ue.Op, ErrTimeout, ue.Err)
		}
		if isCertificateError(ue.Err) {
			return fmt.Errorf("%s: %w: %w", ue.Op, ErrUnverifiedCertificate, ue.Err)
		}
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// passportEscape percent-encodes a sign-in or password value: everything except ASCII letters,
// digits and "-_.~" (so ',', '=', '%', space and non-ASCII bytes cannot break the header).
func passportEscape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) * 3)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// isCertificateError reports whether err is a failure to verify the server's certificate.
func isCertificateError(err error) bool {
	var ve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &ve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}
