package matrix

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// --- Contacts' display pictures ---

// contactAvatar is the bridgev2 avatar of a display picture: data when given, else the core's
// cached copy of sha1d. It is nil when the picture is not known (not fetched yet): the
// ContactAvatar event that follows its fetch sets it.
func (mc *MSNConnector) contactAvatar(ctx context.Context, sha1d string, data []byte) *bridgev2.Avatar {
	if sha1d == "" {
		return nil
	}
	if len(data) == 0 {
		d, _, err := mc.media.Avatar(ctx, sha1d)
		if err != nil || len(d) == 0 {
			zerolog.Ctx(ctx).Debug().Err(err).Str("avatar", sha1d).Msg("Display picture not cached yet")
			return nil
		}
		data = d
	}
	return &bridgev2.Avatar{ID: networkid.AvatarID(sha1d), Get: func(context.Context) ([]byte, error) { return data, nil }}
}

// updateGhostAvatar gives a contact's ghost the display picture sha1d ("" removes it). A ghost
// that already has the picture is left alone: an unchanged SHA1D is never fetched or uploaded
// again.
func (c *MSNClient) updateGhostAvatar(ctx context.Context, handle, sha1d string, data []byte) {
	if handle == "" || handle == c.handle {
		return
	}
	ghost, err := c.main.Bridge.GetGhostByID(ctx, makeUserID(handle))
	if err != nil {
		c.log.Warn().Err(err).Str("contact", handle).Msg("Failed to get ghost")
		return
	}
	unlock := c.main.lockGhost(handle)
	defer unlock()
	if sha1d == "" {
		if ghost.AvatarMXC == "" && ghost.AvatarID == "" {
			return
		}
		ghost.UpdateInfo(ctx, &bridgev2.UserInfo{Avatar: &bridgev2.Avatar{Remove: true}})
		c.main.publishGhost(ctx, ghost)
		return
	}
	if ghost.AvatarID == networkid.AvatarID(sha1d) && ghost.AvatarMXC != "" && ghost.AvatarSet {
		return
	}
	if av := c.main.contactAvatar(ctx, sha1d, data); av != nil {
		ghost.UpdateInfo(ctx, &bridgev2.UserInfo{Avatar: av})
		c.main.publishGhost(ctx, ghost)
	}
}

// knownAvatar sets the ghost avatar of a contact whose display picture the contact list names,
// when the core has it cached; removals come only as ContactAvatar events.
func (c *MSNClient) knownAvatar(ctx context.Context, acc *bridge.Account, handle, sha1d string) {
	if sha1d == "" && acc != nil {
		if ct, ok := acc.Contact(handle); ok {
			sha1d = ct.Avatar
		}
	}
	if sha1d != "" {
		c.updateGhostAvatar(ctx, handle, sha1d, nil)
	}
}

// --- The owner's avatar ---

// ProfileReader is implemented by intents that can read a user's profile. The appservice
// intent (*matrix.ASIntent) is adapted to it; test intents implement it directly.
type ProfileReader interface {
	GetProfile(ctx context.Context, userID id.UserID) (*mautrix.RespUserProfile, error)
}

type asProfile struct{ intent *matrix.ASIntent }

func (a asProfile) GetProfile(ctx context.Context, userID id.UserID) (*mautrix.RespUserProfile, error) {
	return a.intent.Matrix().GetProfile(ctx, userID)
}

func profileReader(intent bridgev2.MatrixAPI) ProfileReader {
	switch in := intent.(type) {
	case *matrix.ASIntent:
		return asProfile{in}
	case ProfileReader:
		return in
	}
	return nil
}

// ownAvatar is the owner's Matrix avatar last made the account's display picture, and the one
// to make it next. One worker at a time applies them, the latest wanted winning, so that the
// repeats of one change from several portals apply it once and an older one never comes last.
type ownAvatar struct {
	mu      sync.Mutex
	applied id.ContentURIString
	known   bool                 // applied is set
	want    *id.ContentURIString // the avatar to apply next, nil when none
	running bool                 // a worker is applying
}

// readOwnAvatar reads the owner's Matrix avatar at login and makes it the display picture.
// An owner without an avatar leaves the display picture as it is (another frontend may have
// set it); only a change on Matrix removes it. It runs off the caller's goroutine.
func (c *MSNClient) readOwnAvatar() {
	reader := profileReader(c.main.Bridge.Bot)
	if reader == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(c.log.WithContext(c.main.Bridge.BackgroundCtx), avatarTimeout)
		defer cancel()
		prof, err := reader.GetProfile(ctx, c.login.UserMXID)
		if err != nil {
			c.log.Debug().Err(bridge.ScrubError(err)).Msg("Failed to read the owner's Matrix profile")
			return
		}
		if prof.AvatarURL.IsEmpty() {
			return
		}
		c.wantOwnAvatar(prof.AvatarURL.CUString())
	}()
}

// ownMember handles the owner's own join event in a portal: the homeserver updates the owner's
// member events in every room when their profile changes, which is how an appservice learns of
// it. Each avatar is applied once, however many portals repeat it. Dendrite sends these events
// without their previous content, so a join carrying an avatar is taken as the current one; an
// avatar removed is acted on only when the previous content shows one was there, so that a
// join without an avatar never removes a display picture set elsewhere.
func (c *MSNClient) ownMember(msg *bridgev2.MatrixMembershipChange) {
	if msg.Content == nil || msg.Content.Membership != event.MembershipJoin {
		return
	}
	uri := msg.Content.AvatarURL
	if uri == "" && (msg.PrevContent == nil || msg.PrevContent.Membership != event.MembershipJoin || msg.PrevContent.AvatarURL == "") {
		return
	}
	c.wantOwnAvatar(uri)
}

// wantOwnAvatar asks for the image at uri ("" for none) to become the display picture, and
// starts the worker that applies it unless one runs. It never blocks.
func (c *MSNClient) wantOwnAvatar(uri id.ContentURIString) {
	st := &c.ownAvatar
	st.mu.Lock()
	defer st.mu.Unlock()
	st.want = &uri
	if st.running {
		return
	}
	st.running = true
	go c.applyOwnAvatars()
}

// applyOwnAvatars applies the wanted avatars until none is left, skipping the one applied
// already. Each change is tried once: a failure is told, not retried for every portal's repeat.
func (c *MSNClient) applyOwnAvatars() {
	st := &c.ownAvatar
	for {
		st.mu.Lock()
		if st.want == nil {
			st.running = false
			st.mu.Unlock()
			return
		}
		uri := *st.want
		st.want = nil
		skip := st.known && st.applied == uri
		st.known, st.applied = true, uri
		st.mu.Unlock()
		if !skip {
			ctx, cancel := context.WithTimeout(c.log.WithContext(c.main.Bridge.BackgroundCtx), avatarTimeout)
			c.syncOwnAvatar(ctx, uri)
			cancel()
		}
	}
}

// syncOwnAvatar makes the image at uri ("" removes it) the account's display picture. MSN never
// changes the owner's Matrix avatar, so nothing echoes back. A failure is told to the owner in
// the management room.
func (c *MSNClient) syncOwnAvatar(ctx context.Context, uri id.ContentURIString) {
	acc := c.account()
	if acc == nil {
		return
	}
	var data []byte
	if uri != "" {
		var err error
		data, err = c.downloadAvatar(ctx, uri)
		if err != nil {
			c.log.Debug().Err(bridge.ScrubError(err)).Msg("Failed to download the owner's avatar")
			c.notice(ctx, new(notice).text("Your Matrix avatar could not be made your MSN display picture: ").
				remote(bridge.UserMessage(err), maxErrorShown).text("."))
			return
		}
	}
	if err := c.main.media.SetAvatar(ctx, acc, data); err != nil {
		c.log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to set the display picture")
		c.notice(ctx, new(notice).text("Your Matrix avatar could not be made your MSN display picture: ").
			remote(bridge.UserMessage(err), maxErrorShown).text("."))
		return
	}
	c.setOwnGhostAvatar(ctx, uri, data)
}

// setOwnGhostAvatar shows the owner's display picture on the ghost of their handle, which sends
// their messages when they have no double puppet. A double-puppeted owner has no such ghost.
func (c *MSNClient) setOwnGhostAvatar(ctx context.Context, uri id.ContentURIString, data []byte) {
	if c.doublePuppeted() {
		return
	}
	ghost, err := c.main.Bridge.GetGhostByID(ctx, makeUserID(c.handle))
	if err != nil {
		c.log.Warn().Err(err).Msg("Failed to get the owner's ghost")
		return
	}
	av := &bridgev2.Avatar{Remove: true}
	if uri != "" {
		av = &bridgev2.Avatar{ID: networkid.AvatarID("mxc:" + string(uri)), MXC: uri, Hash: sha256.Sum256(data)}
	}
	unlock := c.main.lockGhost(c.handle)
	defer unlock()
	ghost.UpdateInfo(ctx, &bridgev2.UserInfo{Avatar: av})
	c.main.publishGhost(ctx, ghost)
}

// publishGhost follows an update of ghost made off its portals' goroutines: bridgev2 reads some
// of a ghost's fields without the ghost's lock (UpdateInfoIfNecessary) after taking its ghost
// cache lock, which this takes once more, so that those reads come after the update.
func (mc *MSNConnector) publishGhost(ctx context.Context, ghost *bridgev2.Ghost) {
	_, _ = mc.Bridge.GetGhostByID(ctx, ghost.ID)
}

// errNotImage is the failure of an avatar that is not a PNG, JPEG or GIF image.
var errNotImage = errors.New("MSN display pictures must be PNG, JPEG or GIF images")

// downloadAvatar downloads the owner's avatar, at most maxAvatarDownload bytes, and checks it is
// an image MSN can show.
func (c *MSNClient) downloadAvatar(ctx context.Context, uri id.ContentURIString) ([]byte, error) {
	var data []byte
	err := downloadCapped(ctx, c.main.Bridge.Bot, uri, nil, maxAvatarDownload, func(f *os.File, size int64) error {
		var err error
		data, err = io.ReadAll(io.LimitReader(f, size))
		return err
	})
	if err != nil {
		return nil, err
	}
	switch http.DetectContentType(data) {
	case "image/png", "image/jpeg", "image/gif":
		return data, nil
	}
	return nil, errNotImage
}
