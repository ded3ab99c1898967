package msn

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Status is a presence status code as it travels on the wire.
type Status string

// Statuses (docs/protocol.md §3.2). StatusHidden appears offline to contacts and cannot open
// switchboards; StatusOffline is never sent, it is what contacts that are not online have.
const (
	StatusOnline  Status = "NLN"
	StatusBusy    Status = "BSY"
	StatusIdle    Status = "IDL"
	StatusBRB     Status = "BRB"
	StatusAway    Status = "AWY"
	StatusPhone   Status = "PHN"
	StatusLunch   Status = "LUN"
	StatusHidden  Status = "HDN"
	StatusOffline Status = "FLN"
)

// Valid reports whether s is one of the status constants.
func (s Status) Valid() bool {
	switch s {
	case StatusOnline, StatusBusy, StatusIdle, StatusBRB, StatusAway, StatusPhone, StatusLunch, StatusHidden, StatusOffline:
		return true
	}
	return false
}

// statuses are the status constants, for interning.
var statuses = [...]Status{StatusOnline, StatusBusy, StatusIdle, StatusBRB, StatusAway, StatusPhone, StatusLunch, StatusHidden, StatusOffline}

// intern returns the constant equal to s (s itself when it is not one), so that a status kept
// per contact neither allocates nor keeps the line it was read from.
func (s Status) intern() Status {
	for _, k := range statuses {
		if s == k {
			return k
		}
	}
	return s
}

// SetStatus changes the account's status (CHG with the configured capabilities). StatusOffline
// is refused (use Close); StatusHidden works but switchboards cannot be opened while hidden
// (sends fail with ErrHidden). It blocks until the server confirms.
func (c *Client) SetStatus(ctx context.Context, status Status) error {
	if status == StatusOffline || !status.Valid() {
		return fmt.Errorf("%w: cannot set status %q", ErrInvalidArgument, truncate(string(status), 8))
	}
	if _, err := c.online(); err != nil {
		return err
	}
	return c.changeStatus(ctx, status)
}

func (c *Client) changeStatus(ctx context.Context, status Status) error {
	ns := c.nsConn()
	if ns == nil {
		return ErrNotConnected
	}
	args := []string{string(status), strconv.FormatUint(uint64(c.cfg.Capabilities), 10)}
	if obj := c.displayPictureArg(); obj != "" {
		args = append(args, obj)
	}
	reply, err := ns.call(ctx, c.cfg.RequestTimeout, "CHG", args, nil)
	if err != nil {
		return fmt.Errorf("failed to change status: %w", err)
	}
	got := Status(reply.Arg(1))
	if !got.Valid() {
		got = status
	}
	c.mu.Lock()
	c.self.Status = got
	c.mu.Unlock()
	c.emit(&OwnStatusChanged{Status: got, Requested: true})
	return nil
}

// SetPersonalMessage publishes a personal message and optionally current media (UUX, MSNP11
// only: ErrUnsupported on MSNP10). It blocks until the server replies.
func (c *Client) SetPersonalMessage(ctx context.Context, psm string, media *CurrentMedia) error {
	if _, err := c.online(); err != nil {
		return err
	}
	if c.Protocol() != "MSNP11" {
		return fmt.Errorf("failed to set personal message: %w", ErrUnsupported)
	}
	return c.publishPSM(ctx, psm, media)
}

func (c *Client) publishPSM(ctx context.Context, psm string, media *CurrentMedia) error {
	ns := c.nsConn()
	if ns == nil {
		return ErrNotConnected
	}
	payload := BuildUUX(psm, media)
	if len(payload) > 4096 {
		return fmt.Errorf("failed to set personal message: %w", ErrTooLong)
	}
	if _, err := ns.call(ctx, c.cfg.RequestTimeout, "UUX", nil, payload); err != nil {
		return fmt.Errorf("failed to set personal message: %w", err)
	}
	var m CurrentMedia
	if media != nil {
		m = *media
	}
	c.mu.Lock()
	c.self.PSM, c.self.Media = psm, m
	c.mu.Unlock()
	c.emit(&OwnPersonalMessageChanged{PSM: psm, Media: m, Requested: true})
	return nil
}

// SetFriendlyName changes the account's public friendly name (PRP MFN). Names over 387 bytes
// once encoded are refused with ErrTooLong. It blocks until the server replies.
func (c *Client) SetFriendlyName(ctx context.Context, name string) error {
	name = strings.TrimSpace(name)
	if name == "" {
		return fmt.Errorf("%w: empty friendly name", ErrInvalidArgument)
	}
	enc := Encode(name)
	if len(enc) > 387 {
		return fmt.Errorf("failed to set friendly name: %w", ErrTooLong)
	}
	if _, err := c.request(ctx, "PRP", []string{"MFN", enc}, nil); err != nil {
		return fmt.Errorf("failed to set friendly name: %w", err)
	}
	c.setOwnName(name, true)
	return nil
}

// setOwnName records the own friendly name and reports it if it changed; requested tells
// whether this client's SetFriendlyName made the change.
func (c *Client) setOwnName(name string, requested bool) {
	c.mu.Lock()
	changed := c.self.FriendlyName != name
	c.self.FriendlyName = name
	c.mu.Unlock()
	if changed {
		c.emit(&OwnNameChanged{Name: name, Requested: requested})
	}
}

// handlePRP handles "PRP MFN <name>" in the SYN burst (or late, as Escargot sends it) and other
// own properties, which are ignored.
func (c *Client) handlePRP(cmd *Command) {
	args := cmd.Args
	if _, ok := cmd.TrID(); ok {
		args = args[1:]
	}
	if len(args) >= 2 && args[0] == "MFN" {
		c.setOwnName(Decode(args[1]), false)
	}
}

// handlePresence handles "ILN <trid> <status> <handle> <name> <caps> [<msnobj>]" and
// "NLN <status> <handle> <name> <caps> [<msnobj>]". Presence of a handle on none of the lists
// is ignored: a server sending it for strangers would otherwise make each one a contact
// downstream.
func (c *Client) handlePresence(cmd *Command) {
	args := cmd.Args
	initial := cmd.Name == "ILN"
	if initial {
		if len(args) == 0 {
			return
		}
		args = args[1:]
	}
	if len(args) < 2 {
		c.log.Debug().Str("command", cmd.Name).Msg("Ignoring short presence line")
		return
	}
	h, ok := c.serverHandle(cmd.Name, args[1])
	if !ok {
		return
	}
	st := Status(args[0]).intern()
	if !st.Valid() {
		c.log.Debug().Str("status", truncate(args[0], 8)).Msg("Unknown contact status, assuming online")
		st = StatusOnline
	}
	ev := &PresenceChanged{Status: st, Initial: initial}
	if len(args) > 2 {
		ev.FriendlyName = Decode(args[2])
	}
	if len(args) > 3 {
		if n, err := strconv.ParseUint(args[3], 10, 32); err == nil {
			ev.Capabilities = uint32(n)
		}
	}
	if len(args) > 4 {
		if obj := Decode(args[4]); obj != "<msnobj/>" && obj != "0" {
			ev.MSNObject = obj
		}
	}
	c.mu.Lock()
	ct, ok := c.listedLocked(h)
	if !ok {
		c.mu.Unlock()
		c.ignoreStranger(cmd.Name, h)
		return
	}
	// A Reader's tokens share their line's memory, which whoever keeps the event's strings (the
	// bridge's model) would keep: the event carries one copy of the contact's record instead,
	// for all of them.
	ct.status, ct.caps = statusIndex(ev.Status), ev.Capabilities
	ct.setMSNObject(ev.MSNObject)
	if ev.FriendlyName != "" {
		ct.setFriendly(ev.FriendlyName)
	}
	f := ct.copyFields()
	if ev.FriendlyName != "" {
		ev.FriendlyName = f[recFriendly]
	}
	ev.Handle, ev.MSNObject = f[recHandle], f[recMSNObject]
	c.mu.Unlock()
	c.emit(ev)
}

// listedLocked returns the contact with handle h when it is on at least one list. c.mu must
// be held.
func (c *Client) listedLocked(h string) (contactRef, bool) {
	ct, ok := c.contacts.get(h)
	return ct, ok && ct.lists != 0
}

// ignoreStranger logs a presence line dropped because its handle is on none of the lists.
func (c *Client) ignoreStranger(cmd, h string) {
	c.log.Debug().Str("command", cmd).Str("contact", h).Msg("Ignoring presence of a handle on none of the lists")
}

func (c *Client) handleFLN(cmd *Command) {
	h, ok := c.serverHandle(cmd.Name, cmd.Arg(0))
	if !ok {
		return
	}
	c.mu.Lock()
	ct, ok := c.listedLocked(h)
	if ok {
		ct.status = statusIndex(StatusOffline)
		h = strings.Clone(ct.handle()) // neither the line's memory nor the store's
	}
	c.mu.Unlock()
	if !ok {
		c.ignoreStranger(cmd.Name, h)
		return
	}
	c.emit(&PresenceChanged{Handle: h, Status: StatusOffline})
}

func (c *Client) handleUBX(cmd *Command) {
	h, ok := c.serverHandle(cmd.Name, cmd.Arg(0))
	if !ok {
		return
	}
	psm, raw, err := parseUBX(cmd.Payload)
	if err != nil {
		c.log.Debug().Err(err).Str("contact", h).Msg("Ignoring malformed UBX")
		return
	}
	media := ParseCurrentMedia(raw)
	if media.IsZero() {
		raw = ""
	}
	c.mu.Lock()
	ct, ok := c.listedLocked(h)
	if ok {
		// The event carries a copy of the contact's record, as for presence.
		ct.setUBX(psm, raw)
		f := ct.copyFields()
		psm, h = f[recPSM], f[recHandle]
	}
	c.mu.Unlock()
	if !ok {
		c.ignoreStranger(cmd.Name, h)
		return
	}
	c.emit(&PersonalMessageChanged{Handle: h, PSM: psm, Media: media})
}

// handleCHGPush handles a server-initiated "CHG 0 <status> …".
func (c *Client) handleCHGPush(cmd *Command) {
	st := Status(cmd.Arg(1))
	if !st.Valid() {
		return
	}
	c.mu.Lock()
	changed := c.self.Status != st
	c.self.Status = st
	c.mu.Unlock()
	if changed {
		c.emit(&OwnStatusChanged{Status: st})
	}
}
