package bridge

import (
	"context"
	"fmt"

	"github.com/msn-bridge/msn-bridge/msn"
)

// msnSession adapts *msn.Client to session.
type msnSession struct {
	*msn.Client
}

var _ session = msnSession{}

// msnDialer returns the production dialFunc: a new msn.Client from the template config.
func msnDialer(template msn.Config) dialFunc {
	return func(cfg sessionConfig) (session, error) {
		mc := template
		mc.InitialStatus = toMSNStatus(cfg.Status)
		if mc.InitialStatus == msn.StatusOffline {
			mc.InitialStatus = msn.StatusOnline
		}
		mc.InitialPSM = cfg.PSM
		mc.DisplayPicture = cfg.DisplayPicture
		client, err := msn.NewClient(mc, cfg.Handle, cfg.Password, cfg.Handler)
		if err != nil {
			return nil, err
		}
		return msnSession{client}, nil
	}
}

func toMSNStatus(s Status) msn.Status { return msn.Status(s.MSNCode()) }

func (s msnSession) SendText(ctx context.Context, contact, sessionID, text string, f *msn.TextFormat) error {
	if sessionID != "" {
		return s.Client.SendGroupText(ctx, sessionID, text, f)
	}
	return s.Client.SendText(ctx, contact, text, f)
}

func (s msnSession) SendTyping(ctx context.Context, contact, sessionID string) error {
	if sessionID != "" {
		// The library has no typing notification for multi-party sessions.
		return nil
	}
	return s.Client.SendTyping(ctx, contact)
}

func (s msnSession) SendNudge(ctx context.Context, contact, sessionID string) error {
	if sessionID != "" {
		return fmt.Errorf("%w: nudges in group chats are not supported", ErrInvalidArgument)
	}
	return s.Client.SendNudge(ctx, contact)
}

func (s msnSession) SetStatus(ctx context.Context, st msn.Status) error {
	return s.Client.SetStatus(ctx, st)
}

func (s msnSession) SetPSM(ctx context.Context, psm string) error {
	return s.Client.SetPersonalMessage(ctx, psm, nil)
}

func (s msnSession) SetName(ctx context.Context, name string) error {
	return s.Client.SetFriendlyName(ctx, name)
}

// offerOf returns the *msn.FileOffer of e (nil when the event carries none).
func (s msnSession) offerOf(e *msn.FileOffered) fileOffer {
	if e.Offer == nil {
		return nil
	}
	return e.Offer
}
