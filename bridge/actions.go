package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/msn-bridge/msn-bridge/msn"
)

// The actions below are what frontends do on behalf of the account's owner. Each takes the
// caller's ctx (bounding the wait for MSN), the name of the acting frontend as origin (so the
// resulting event is shown on the other frontends but not echoed back to it; "" for none), and
// returns an error a frontend can show: ErrNotConnected while the session is down, *SendError for
// undelivered messages, ErrInvalidArgument/ErrInvalidHandle for bad input, or the MSN error.

// CorrectionPrefix starts the text a frontend sends for an edit of a message already delivered:
// MSN cannot change one, so the edit goes as a new message, and "* " before the new text is the
// plain-text chat convention for a correction.
const CorrectionPrefix = "* "

// SendText sends text to chat and blocks until MSN acknowledged every part or one failed. It
// returns the id of the Message event that shows the sent text on the other attached frontends.
// The error is nil only when the whole text was delivered; a *SendError otherwise (Reason says
// why: contact offline, NAK, timeout, switchboard closed, too long, not connected, rate limited).
// When some parts were delivered before the failure, the text is still shown elsewhere. The send
// first waits its turn under the account's send rate (Config.SendLimit), which ctx also bounds.
func (a *Account) SendText(ctx context.Context, origin string, chat ChatID, text string, format Format) (string, error) {
	id := a.NewMessageID()
	if err := a.SendTextAs(ctx, origin, chat, id, text, format); err != nil {
		var se *SendError
		if errors.As(err, &se) && se.Part > 0 {
			return id, err
		}
		return "", err
	}
	return id, nil
}

// NewMessageID returns a message id of the account's own, for SendTextAs: a frontend that
// stores its message before MSN has it (so that the owner can edit a message still on its
// way) names it with one.
func (a *Account) NewMessageID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	return messageID(a.handle, a.core.clock.Now(), a.seq)
}

// SendTextAs is SendText with the id of the Message event given (from NewMessageID).
func (a *Account) SendTextAs(ctx context.Context, origin string, chat ChatID, id, text string, format Format) error {
	if err := a.core.beginAction(); err != nil {
		return err
	}
	defer a.core.endAction()
	if strings.TrimSpace(text) == "" {
		return &SendError{Reason: FailureInvalid, Parts: 1, Err: fmt.Errorf("%w: empty message", ErrInvalidArgument)}
	}
	contact, sessionID, err := a.target(chat)
	if err != nil {
		return &SendError{Reason: FailureInvalid, Parts: 1, Err: err}
	}
	if _, err = a.connected(); err != nil {
		a.core.metrics.message("out", string(FailureNotConnected))
		return &SendError{Reason: FailureNotConnected, Parts: 1, Err: err}
	}
	f := msnFormat(format)
	if err = a.gate().wait(ctx, textCost(text, f)); err != nil {
		a.core.metrics.message("out", string(FailureRateLimited))
		return &SendError{Reason: FailureRateLimited, Parts: 1, Err: err}
	}
	sess, err := a.connected() // the session may have ended while the send waited its turn
	if err != nil {
		a.core.metrics.message("out", string(FailureNotConnected))
		return &SendError{Reason: FailureNotConnected, Parts: 1, Err: err}
	}
	start := a.core.clock.Now()
	err = sess.SendText(ctx, contact, sessionID, text, f)
	a.core.metrics.sendDuration(a.core.clock.Now().Sub(start).Seconds())
	var sendErr *SendError
	if err != nil {
		sendErr = classifySend(err)
		a.core.metrics.message("out", string(sendErr.Reason))
	} else {
		a.core.metrics.message("out", "delivered")
	}
	if err != nil && sendErr.Part == 0 {
		return sendErr
	}
	a.mu.Lock()
	a.emitLocked(Message{ID: id, Chat: chat, Sender: a.handle, SenderName: a.profile.Name, Text: text,
		Format: format, Time: a.core.clock.Now(), FromMe: true, Origin: origin}, origin)
	a.mu.Unlock()
	if sendErr != nil {
		return sendErr
	}
	return nil
}

// classifySend maps an msn send error to a *SendError.
func classifySend(err error) *SendError {
	out := &SendError{Parts: 1, Err: err}
	var me *msn.SendError
	if errors.As(err, &me) {
		out.Part, out.Parts = me.Part, me.Parts
	}
	switch {
	case errors.Is(err, ErrRateLimited):
		out.Reason = FailureRateLimited
	case errors.Is(err, msn.ErrContactOffline):
		out.Reason = FailureContactOffline
	case errors.Is(err, msn.ErrNAK):
		out.Reason = FailureNAK
	case errors.Is(err, msn.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		out.Reason = FailureTimeout
	case errors.Is(err, msn.ErrTooLong):
		out.Reason = FailureTooLong
	case errors.Is(err, msn.ErrHidden):
		out.Reason = FailureHidden
	case errors.Is(err, msn.ErrNotConnected):
		out.Reason = FailureNotConnected
	case errors.Is(err, msn.ErrClosed), errors.Is(err, msn.ErrSessionNotFound):
		out.Reason = FailureSwitchboardClosed
	case errors.Is(err, msn.ErrInvalidArgument), errors.Is(err, ErrInvalidArgument):
		out.Reason = FailureInvalid
	default:
		out.Reason = FailureOther
	}
	return out
}

// target resolves a chat to a contact or an open group session.
func (a *Account) target(chat ChatID) (contact, sessionID string, err error) {
	if !chat.IsGroup() {
		h, err := ValidateHandle(chat.Contact())
		if err != nil {
			return "", "", err
		}
		if h == a.handle {
			return "", "", fmt.Errorf("%w: cannot message yourself", ErrInvalidArgument)
		}
		return h, "", nil
	}
	id := chat.GroupID()
	a.mu.Lock()
	cs, ok := a.chats[id]
	a.mu.Unlock()
	if !ok || !cs.group {
		return "", "", ErrUnknownChat
	}
	return "", id, nil
}

// SendTyping tells the chat the owner is typing. Call it at most every few seconds while they
// type; MSN has no "stopped typing". It counts against the account's send rate, but is dropped
// (nil error) rather than queued while other sends wait their turn.
func (a *Account) SendTyping(ctx context.Context, chat ChatID) error {
	if err := a.core.beginAction(); err != nil {
		return err
	}
	defer a.core.endAction()
	contact, sessionID, err := a.target(chat)
	if err != nil {
		return err
	}
	if _, err = a.connected(); err != nil {
		return err
	}
	if ok, err := a.gate().waitTyping(ctx); !ok {
		return err
	}
	sess, err := a.connected()
	if err != nil {
		return err
	}
	return sess.SendTyping(ctx, contact, sessionID)
}

// SendNudge sends a nudge ("buzz") to a one-to-one chat and shows it on the other frontends.
// It counts against the account's send rate as SendLimitConfig.NudgeCost messages, waiting its
// turn like a message.
func (a *Account) SendNudge(ctx context.Context, origin string, chat ChatID) error {
	if err := a.core.beginAction(); err != nil {
		return err
	}
	defer a.core.endAction()
	contact, sessionID, err := a.target(chat)
	if err != nil {
		return err
	}
	if _, err = a.connected(); err != nil {
		return &SendError{Reason: FailureNotConnected, Parts: 1, Err: err}
	}
	if err = a.gate().wait(ctx, a.core.cfg.SendLimit.NudgeCost); err != nil {
		return &SendError{Reason: FailureRateLimited, Parts: 1, Err: err}
	}
	sess, err := a.connected()
	if err != nil {
		return &SendError{Reason: FailureNotConnected, Parts: 1, Err: err}
	}
	if err = sess.SendNudge(ctx, contact, sessionID); err != nil {
		return classifySend(err)
	}
	a.mu.Lock()
	a.emitLocked(Nudge{Chat: chat, Sender: a.handle, Time: a.core.clock.Now(), FromMe: true, Origin: origin}, origin)
	a.mu.Unlock()
	return nil
}

// SetStatus changes the account's own status. The choice is stored and restored after every
// reconnect; while disconnected it is only stored. StatusOffline is refused (use Logout).
func (a *Account) SetStatus(ctx context.Context, origin string, status Status) error {
	if status == StatusOffline || status < 0 || status > StatusInvisible {
		return fmt.Errorf("%w: status %d cannot be set", ErrInvalidArgument, status)
	}
	return a.updateProfile(ctx, origin, func(p *ownProfile) { p.Status = status }, func(s session) error {
		return s.SetStatus(ctx, toMSNStatus(status))
	})
}

// SetPSM changes the account's personal status message (stored and restored like SetStatus).
func (a *Account) SetPSM(ctx context.Context, origin, psm string) error {
	return a.updateProfile(ctx, origin, func(p *ownProfile) { p.PSM = psm }, func(s session) error {
		return s.SetPSM(ctx, psm)
	})
}

// SetName changes the account's friendly name (stored and restored like SetStatus).
func (a *Account) SetName(ctx context.Context, origin, name string) error {
	// MSN shows, and the msn client reports, the name trimmed.
	name = strings.TrimSpace(name)
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidArgument)
	}
	return a.updateProfile(ctx, origin, func(p *ownProfile) { p.Name = name }, func(s session) error {
		return s.SetName(ctx, name)
	})
}

// updateProfile changes the own profile, applies it to the live session and stores it. The
// session's confirmation of the change (an Own*Changed event marked Requested) is then no news.
func (a *Account) updateProfile(ctx context.Context, origin string, change func(*ownProfile), apply func(session) error) error {
	if err := a.core.beginAction(); err != nil {
		return err
	}
	defer a.core.endAction()
	a.mu.Lock()
	old := a.profile
	change(&a.profile)
	next := a.profile
	var sess session
	if a.live != nil && a.state.State == StateOnline {
		sess = a.live.sess
		a.ownCalls++
	}
	a.mu.Unlock()
	if sess != nil {
		err := apply(sess)
		a.mu.Lock()
		a.ownCalls--
		if err != nil {
			a.profile = old
		}
		a.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if err := a.core.store.SetProfile(ctx, a.handle, next.Status, next.PSM, next.Name); err != nil {
		return err
	}
	a.mu.Lock()
	a.emitLocked(OwnProfile{Status: next.Status, PSM: next.PSM, Name: next.Name, Origin: origin}, origin)
	a.mu.Unlock()
	return nil
}

// listAction runs one contact-list action with a validated handle.
func (a *Account) listAction(ctx context.Context, handle string, fn func(session, string) error) error {
	if err := a.core.beginAction(); err != nil {
		return err
	}
	defer a.core.endAction()
	h, err := ValidateHandle(handle)
	if err != nil {
		return err
	}
	if h == a.handle {
		return fmt.Errorf("%w: that is the account itself", ErrInvalidArgument)
	}
	sess, err := a.connected()
	if err != nil {
		return err
	}
	return fn(sess, h)
}

// AddContact adds handle to the contact list (and allows it unless blocked). name is the stored
// name, "" for the handle. The change arrives as a ListChange event.
func (a *Account) AddContact(ctx context.Context, handle, name string) error {
	return a.listAction(ctx, handle, func(s session, h string) error { return s.AddContact(ctx, h, name) })
}

// RemoveContact removes handle from the contact list (block/allow state is kept).
func (a *Account) RemoveContact(ctx context.Context, handle string) error {
	return a.listAction(ctx, handle, func(s session, h string) error { return s.RemoveContact(ctx, h) })
}

// Block stops handle from seeing the account or messaging it.
func (a *Account) Block(ctx context.Context, handle string) error {
	return a.listAction(ctx, handle, func(s session, h string) error { return s.BlockContact(ctx, h) })
}

// Unblock allows handle again.
func (a *Account) Unblock(ctx context.Context, handle string) error {
	return a.listAction(ctx, handle, func(s session, h string) error { return s.UnblockContact(ctx, h) })
}

// AcceptRequest approves a contact request; addBack also adds them to the contact list.
func (a *Account) AcceptRequest(ctx context.Context, handle string, addBack bool) error {
	return a.listAction(ctx, handle, func(s session, h string) error { return s.AcceptContact(ctx, h, addBack) })
}

// DeclineRequest refuses a contact request; block also blocks them.
func (a *Account) DeclineRequest(ctx context.Context, handle string, block bool) error {
	return a.listAction(ctx, handle, func(s session, h string) error { return s.DeclineContact(ctx, h, block) })
}
