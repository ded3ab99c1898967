package msn

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestPassportClosesIdleConnections checks that a login does not leave its HTTP connection to
// the Passport server open: with one Client per account, a bridge would otherwise hold an idle
// connection (and three goroutines across both ends) per account for the transport's idle
// timeout after every login.
func TestPassportClosesIdleConnections(t *testing.T) {
	var (
		mu   sync.Mutex
		open = map[net.Conn]bool{}
		seen = make(chan struct{}, 1)
	)
	var srv *httptest.Server
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/rdr/pprdr.asp" {
			w.Header().Set("PassportURLs", "DALogin="+srv.URL+"/login")
			return
		}
		w.Header().Set("Authentication-Info", "Passport1.4 da-status=success,from-PP='"+testTicket+"'")
	}))
	srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		mu.Lock()
		switch st {
		case http.StateNew:
			open[c] = true
		case http.StateClosed, http.StateHijacked:
			delete(open, c)
		}
		mu.Unlock()
		select {
		case seen <- struct{}{}:
		default:
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	p, err := newPassport(Config{NexusURL: srv.URL + "/rdr/pprdr.asp", AllowInsecurePassport: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.login(ctx, testHandle, testPassword, "lc=1033,id=507"); err != nil {
		t.Fatal(err)
	}
	for {
		mu.Lock()
		n := len(open)
		mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-seen:
		case <-ctx.Done():
			t.Fatalf("%d passport connections still open after login", n)
		}
	}
}
