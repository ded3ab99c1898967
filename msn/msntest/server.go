package msntest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Server is an in-process MSNP11 server: notification server (NS), optional dispatch server,
// switchboard (SB) and Passport 1.4 nexus and login over HTTP and HTTPS, all on 127.0.0.1.
//
// All methods are safe for concurrent use. Every goroutine the Server starts ends before Close
// returns.
type Server struct {
	opts Options
	log  zerolog.Logger

	mu       sync.Mutex // guards everything below that is not noted otherwise
	accounts map[string]*account
	tickets  map[string]ticket
	sbAuth   map[string]sbTicket // XFR SB cookie → who may USR with it
	sessions map[string]*sbSession
	nsConns  map[*nsSession]struct{}
	sbConns  map[*sbConn]struct{}
	nakAll   bool
	// botFiles is signalled when a bot records a file (WaitBotFile); on mu.
	botFiles *sync.Cond
	chl      []ChallengeResult
	faults   passportFaults
	delays   map[string]time.Duration
	// undelivered: bot messages dropped with an invitation nobody can answer (Undelivered).
	undelivered []Undelivered

	started bool
	closed  bool
	done    chan struct{} // closed by Close
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	nsLn, dispLn, sbLn, httpLn, httpsLn net.Listener
	httpSrv, httpsSrv                   *http.Server
	cert                                *x509.Certificate
	tlsCert                             tls.Certificate

	ev eventLog
}

// New returns a stopped Server configured by opts; call Start to listen. Accounts and friend
// pairs from opts are created at once (New panics only on a programming error in them: an
// invalid or duplicate handle).
func New(opts Options) *Server {
	opts.fill()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:     opts,
		log:      opts.Log.With().Str("component", "msntest").Logger(),
		accounts: map[string]*account{},
		tickets:  map[string]ticket{},
		sbAuth:   map[string]sbTicket{},
		sessions: map[string]*sbSession{},
		nsConns:  map[*nsSession]struct{}{},
		sbConns:  map[*sbConn]struct{}{},
		delays:   map[string]time.Duration{},
		done:     make(chan struct{}),
		ctx:      ctx,
		cancel:   cancel,
	}
	s.botFiles = sync.NewCond(&s.mu)
	s.ev.limit = opts.EventLimit
	s.ev.cursor = map[string]uint64{}
	for _, a := range opts.Accounts {
		if err := s.AddAccount(a.Handle, a.Password, a.Name); err != nil {
			panic(fmt.Sprintf("msntest: bad Options.Accounts entry: %v", err))
		}
		if a.Bot != nil {
			_ = s.setBot(a.Handle, a.Bot)
		}
		if a.Status != "" {
			if err := s.SetPresence(a.Handle, a.Status, a.PSM); err != nil {
				panic(fmt.Sprintf("msntest: bad Options.Accounts entry: %v", err))
			}
			if a.Caps != 0 {
				s.mu.Lock()
				s.accounts[mustNorm(a.Handle)].virtCaps = a.Caps
				s.mu.Unlock()
			}
		} else if a.PSM != "" {
			s.mu.Lock()
			acc := s.accounts[mustNorm(a.Handle)]
			acc.psm, acc.psmSet = a.PSM, true
			s.mu.Unlock()
		}
	}
	for _, p := range opts.Friends {
		if err := s.AddFriends(p[0], p[1]); err != nil {
			panic(fmt.Sprintf("msntest: bad Options.Friends entry: %v", err))
		}
	}
	return s
}

func mustNorm(h string) string {
	n, _ := normHandle(h)
	return n
}

// Start opens the listeners (all on 127.0.0.1 with kernel-chosen ports) and starts serving. It
// fails if called twice or after Close.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return errors.New("server already started or closed")
	}
	s.started = true
	var err error
	listen := func() net.Listener {
		if err != nil {
			return nil
		}
		var ln net.Listener
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return ln
	}
	s.nsLn = listen()
	s.sbLn = listen()
	if s.opts.Dispatch {
		s.dispLn = listen()
	}
	s.httpLn = listen()
	s.httpsLn = listen()
	if err == nil {
		err = s.initTLS()
	}
	if err != nil {
		s.closeListeners()
		return fmt.Errorf("failed to start msntest server: %w", err)
	}
	s.wg.Add(2)
	go s.acceptLoop(s.nsLn, s.serveNS, false)
	go s.acceptLoop(s.sbLn, s.serveSBConn, false)
	if s.dispLn != nil {
		s.wg.Add(1)
		go s.acceptLoop(s.dispLn, s.serveNS, true)
	}
	s.startHTTP()
	s.log.Debug().Str("ns_addr", s.nsLn.Addr().String()).Msg("Started test MSN server")
	return nil
}

func (s *Server) closeListeners() {
	for _, ln := range []net.Listener{s.nsLn, s.dispLn, s.sbLn, s.httpLn, s.httpsLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// acceptLoop accepts connections until the listener closes.
func (s *Server) acceptLoop(ln net.Listener, serve func(nc net.Conn, dispatch bool), dispatch bool) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.wg.Add(2) // reader + writer
		s.mu.Unlock()
		go serve(nc, dispatch)
	}
}

// Close stops the server: listeners and every connection are closed at once (no OUT is sent),
// and Close waits for all goroutines to end. It is idempotent and quick.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return
	}
	s.closed = true
	close(s.done)
	s.cancel()
	s.closeListeners()
	for n := range s.nsConns {
		n.kill()
	}
	for c := range s.sbConns {
		c.kill()
	}
	s.mu.Unlock()
	if s.httpSrv != nil {
		_ = s.httpSrv.Close()
		_ = s.httpsSrv.Close()
	}
	s.ev.wake()
	s.closeBotP2P()
	s.wg.Wait()
}

// NSAddr returns the notification server's host:port.
func (s *Server) NSAddr() string { return addrOf(s.nsLn) }

// DispatchAddr returns the address clients should connect to first: the dispatch server when
// Options.Dispatch is set, else the NS.
func (s *Server) DispatchAddr() string {
	if s.dispLn != nil {
		return addrOf(s.dispLn)
	}
	return s.NSAddr()
}

// SBAddr returns the switchboard server's host:port.
func (s *Server) SBAddr() string { return addrOf(s.sbLn) }

// NexusURL returns the plain-HTTP nexus URL (…/rdr/pprdr.asp).
func (s *Server) NexusURL() string { return "http://" + addrOf(s.httpLn) + "/rdr/pprdr.asp" }

// LoginURL returns the plain-HTTP Passport login URL (…/login2.srf).
func (s *Server) LoginURL() string { return "http://" + addrOf(s.httpLn) + "/login2.srf" }

// HTTPSNexusURL returns the HTTPS nexus URL; verify it with CertPool.
func (s *Server) HTTPSNexusURL() string { return "https://" + addrOf(s.httpsLn) + "/rdr/pprdr.asp" }

// HTTPSLoginURL returns the HTTPS Passport login URL.
func (s *Server) HTTPSLoginURL() string { return "https://" + addrOf(s.httpsLn) + "/login2.srf" }

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// Context returns a context cancelled when the server closes.
func (s *Server) Context() context.Context { return s.ctx }

// Options returns the effective options (defaults filled in).
func (s *Server) Options() Options { return s.opts }
