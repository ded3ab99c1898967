package msn

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Login connects, authenticates through Passport, downloads the contact list and sets the
// initial status. It returns after the SYN burst is complete and the first CHG is acknowledged;
// LoggedIn is then the first event delivered. ctx bounds the whole login (each step also has
// its own timeout). Login may be called once; on failure the Client is closed, no events are
// delivered, and the error tells bad credentials (errors.Is ErrBadCredentials) from server
// trouble (*ServerError, *PassportError) and network errors; see Retryable.
func (c *Client) Login(ctx context.Context) error {
	c.mu.Lock()
	if c.state != stateNew {
		c.mu.Unlock()
		return fmt.Errorf("%w: login already attempted", ErrInvalidArgument)
	}
	c.state = stateLoggingIn
	c.mu.Unlock()

	// Stop the login when the client is closed meanwhile.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()

	err := c.login(ctx)
	c.pp = nil // a Client logs in once: its Passport client (and own transport) are garbage now
	if err != nil {
		c.mu.Lock()
		ns, out := c.ns, c.out
		c.mu.Unlock()
		if out != nil && errors.Is(err, ErrClosed) {
			err = fmt.Errorf("failed to log in: %w", out)
		}
		c.events.discard()
		c.mu.Lock()
		dropped := len(c.sb.invites)
		c.sb.invites = nil
		c.mu.Unlock()
		if dropped > 0 {
			// Not answered, so nothing was taken: the contacts' clients see no one join and
			// tell their users the messages were not delivered.
			c.log.Warn().Int("invitations", dropped).Msg("Login failed: not answering the switchboard invitations received during it")
		}
		c.shutdown(&DisconnectError{Reason: ReasonClosed, Err: err})
		if ns != nil {
			_ = ns.Close()
		}
		c.waitSessions()
		c.wg.Wait()
		if c.ctx.Err() != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return fmt.Errorf("login aborted: %w", ErrClosed)
		}
		return err
	}
	c.mu.Lock()
	if c.state != stateLoggingIn {
		c.mu.Unlock()
		return fmt.Errorf("login aborted: %w", ErrClosed)
	}
	c.state = stateOnline
	proto := c.protocol
	ns := c.ns
	c.ka.ns = ns
	c.keepaliveArmLocked(0) // the first PNG right away, to learn the server's interval
	// Released under c.mu, in the same step as stateOnline: a shutdown that follows sees the
	// session online and queues Disconnected behind LoggedIn.
	c.events.release(&LoggedIn{Self: c.self, Protocol: proto})
	invites := c.takeInvitesLocked()
	c.mu.Unlock()
	c.log.Info().Str("protocol", proto).Msg("Logged in")
	for _, inv := range invites {
		go c.answerInvite(inv)
	}
	// The connection may have died between the last reply and now.
	if err := ns.Err(); err != nil {
		c.onNSClosed(ns, err)
	}
	return nil
}

func (c *Client) login(ctx context.Context) error {
	addr := c.cfg.Server
	redone := false
	for hop := 0; ; hop++ {
		if hop > maxLoginHops {
			return fmt.Errorf("failed to log in: more than %d redirects or retries", maxLoginHops)
		}
		redirect, err := c.authenticate(ctx, addr)
		switch {
		case err == nil && redirect != "":
			c.log.Debug().Str("server", redirect).Msg("Redirected to another notification server")
			addr = redirect
			continue
		case errors.Is(err, errTicketRejected) && !redone:
			c.log.Warn().Msg("Ticket refused, repeating Passport login once")
			redone = true
			continue
		case errors.Is(err, errTicketRejected):
			return &CredentialsError{Reason: "ticket refused twice"}
		case err != nil:
			return err
		}
		break
	}
	if err := c.syncList(ctx); err != nil {
		return err
	}
	ns := c.nsConn()
	if c.Protocol() == "MSNP11" {
		if cmd, err := ns.call(ctx, c.cfg.RequestTimeout, "GCF", []string{"Shields.xml"}, nil); err != nil {
			if isFatal(err) {
				return fmt.Errorf("failed to get configuration: %w", err)
			}
			c.log.Debug().Err(err).Msg("Ignoring failed GCF")
		} else {
			c.log.Debug().Int("bytes", len(cmd.Payload)).Msg("Got Shields.xml")
		}
	}
	if err := c.changeStatus(ctx, c.cfg.InitialStatus); err != nil {
		return fmt.Errorf("failed to set initial status: %w", err)
	}
	if c.Protocol() == "MSNP11" {
		if err := c.publishPSM(ctx, c.cfg.InitialPSM, nil); err != nil {
			if isFatal(err) {
				return fmt.Errorf("failed to set personal message: %w", err)
			}
			c.log.Warn().Err(err).Msg("Failed to set initial personal message")
		}
	}
	return nil
}

// isFatal tells errors that end a login (connection gone, cancelled) from refusals of one
// optional request.
func isFatal(err error) bool {
	var se *ServerError
	return !errors.As(err, &se)
}

var errTicketRejected = errors.New("ticket rejected")

// authenticate runs VER/CVR/USR on addr. It returns a redirect address (XFR NS), or nil when
// USR OK was received, with c.ns set to the logged-in connection.
func (c *Client) authenticate(ctx context.Context, addr string) (string, error) {
	nc, err := dial(ctx, addr, c.cfg.DialTimeout)
	if err != nil {
		return "", err
	}
	cn := newConn(nc, ClientPayloads, c.log, c.cfg.RequestTimeout, c.handleNS, c.onNSClosed)
	cn.run()
	c.mu.Lock()
	old := c.ns
	c.ns = cn
	c.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	// Close the connection when ctx ends mid-step, so no read or write can hang.
	stop := context.AfterFunc(ctx, func() { cn.closeWith(ctx.Err()) })
	defer stop()
	for restart := 0; restart < maxLoginHops; restart++ {
		redirect, again, err := c.handshake(ctx, cn)
		if err != nil {
			if ctx.Err() != nil {
				return "", fmt.Errorf("failed to log in: %w", ctx.Err())
			}
			return "", err
		}
		if !again {
			if redirect != "" {
				_ = cn.Close()
			}
			return redirect, nil
		}
	}
	return "", errors.New("failed to log in: server keeps restarting the handshake")
}

// handshake is one VER/CVR/USR pass. again = "XFR NS 0": start over on the same connection.
func (c *Client) handshake(ctx context.Context, cn *conn) (redirect string, again bool, err error) {
	t := c.cfg.RequestTimeout
	ver, err := cn.call(ctx, t, "VER", append(append([]string(nil), c.cfg.Protocols...), "CVR0"), nil)
	if err != nil {
		return "", false, fmt.Errorf("failed to negotiate version: %w", err)
	}
	proto := ""
	for _, a := range ver.Args[1:] {
		if strings.HasPrefix(a, "MSNP") {
			for _, p := range c.cfg.Protocols {
				if a == p {
					proto = a
					break
				}
			}
			break
		}
	}
	if proto == "" {
		return "", false, fmt.Errorf("server offered %q: %w", strings.Join(ver.Args[1:], " "), ErrNoCommonVersion)
	}
	c.mu.Lock()
	c.protocol = proto
	c.mu.Unlock()

	if _, err := cn.call(ctx, t, "CVR", []string{"0x0409", "winnt", "5.1", "i386", "MSNMSGR", c.cfg.ClientVersion, "MSMSGS", c.handle}, nil); err != nil {
		return "", false, fmt.Errorf("failed to send client version: %w", err)
	}
	usr, err := cn.call(ctx, t, "USR", []string{"TWN", "I", c.handle}, nil, "USR", "XFR")
	if err != nil {
		return "", false, fmt.Errorf("failed to start authentication: %w", loginError(err, false))
	}
	if usr.Name == "XFR" {
		if usr.Arg(1) != "NS" || usr.Arg(2) == "" {
			return "", false, fmt.Errorf("failed to start authentication: unexpected %q", usr.String())
		}
		if usr.Arg(2) == "0" {
			return "", true, nil
		}
		return usr.Arg(2), false, nil
	}
	if usr.Arg(1) != "TWN" || usr.Arg(2) != "S" || len(usr.Args) < 4 {
		return "", false, fmt.Errorf("failed to start authentication: unexpected reply %s %s", usr.Name, truncate(usr.Arg(1)+" "+usr.Arg(2), 40))
	}
	challenge := strings.Join(usr.Args[3:], " ")
	ticket, err := c.pp.login(ctx, c.handle, c.password, challenge)
	if err != nil {
		return "", false, err
	}
	if c.verifyOnly {
		return "", false, nil
	}
	ok, err := cn.call(ctx, t, "USR", []string{"TWN", "S", ticket}, nil)
	if err != nil {
		return "", false, fmt.Errorf("failed to authenticate: %w", loginError(err, true))
	}
	if ok.Arg(1) != "OK" {
		return "", false, fmt.Errorf("failed to authenticate: unexpected reply %q", truncate(ok.Arg(1), 20))
	}
	// "USR t OK handle verified restricted" (some servers insert a name): flags are last.
	if n := len(ok.Args); n >= 5 && ok.Args[n-1] == "1" {
		return "", false, fmt.Errorf("failed to authenticate: %w", ErrAccountRestricted)
	}
	return "", false, nil
}

// loginError classifies USR error replies (docs/protocol.md §2.3).
func loginError(err error, ticketStep bool) error {
	var se *ServerError
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code {
	case 911:
		if ticketStep {
			return errTicketRejected
		}
		return fmt.Errorf("%w: server refused the handle: %w", ErrInvalidArgument, err)
	case 928:
		return &CredentialsError{Reason: se.Meaning()}
	}
	return err
}

// syncList sends "SYN 0 0" and waits until every announced LST and LSG line has arrived. The
// wait has no fixed deadline; it fails when the server goes silent for RequestTimeout.
func (c *Client) syncList(ctx context.Context) error {
	c.mu.Lock()
	c.syncing = true
	c.syncLST, c.syncLSG = 0, 0
	ns := c.ns
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.syncing = false
		c.mu.Unlock()
	}()
	reply, err := ns.call(ctx, c.cfg.RequestTimeout, "SYN", []string{"0", "0"}, nil)
	if err != nil {
		return fmt.Errorf("failed to sync contact list: %w", err)
	}
	wantLST, wantLSG := 0, 0
	if len(reply.Args) >= 5 {
		wantLST, _ = strconv.Atoi(reply.Args[3])
		wantLSG, _ = strconv.Atoi(reply.Args[4])
	}
	idle := time.NewTimer(c.cfg.RequestTimeout)
	defer idle.Stop()
	for {
		c.mu.Lock()
		done := c.syncLST >= wantLST && c.syncLSG >= wantLSG
		c.mu.Unlock()
		if done {
			break
		}
		select {
		case <-c.syncSignal:
			idle.Reset(c.cfg.RequestTimeout)
		case <-idle.C:
			return fmt.Errorf("failed to sync contact list: list stalled: %w", ErrTimeout)
		case <-ns.Closed():
			return fmt.Errorf("failed to sync contact list: %w: %w", ErrClosed, ns.Err())
		case <-ctx.Done():
			return fmt.Errorf("failed to sync contact list: %w", ctx.Err())
		}
	}
	contacts, groups := c.Contacts(), c.Groups()
	c.emit(&ContactListSynced{Contacts: contacts, Groups: groups})
	for _, ct := range contacts {
		if ct.Lists&ListPending != 0 {
			c.emit(&ContactRequest{Handle: ct.Handle, Name: ct.StoredName})
		}
	}
	c.log.Debug().Int("contacts", len(contacts)).Int("groups", len(groups)).Msg("Contact list synced")
	return nil
}
