package discord

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// Contacts' faces.
//
// A webhook's avatar_url must be a link Discord itself can fetch, which an MSN display picture
// (fetched over MSN P2P) does not have. So each contact channel's webhook carries the
// contact's picture as its own avatar, set with a data URI (PATCH /webhooks/{id}), and
// messages are posted without avatar_url: every message in a one-to-one channel shows the
// contact's face, and Discord keeps the face a message was posted with. Group channels share
// one webhook among their participants; it carries no picture, so no message there shows
// someone else's face (names tell them apart). The owner's own messages sent from another
// frontend go, in a one-to-one channel, through a second webhook without a picture.
//
// The webhook's name records which picture it carries ("MSN Bridge" and a digest of the
// picture's SHA1D), so a picture is sent only when it changed, and a restart, which finds the
// webhook again, knows it without a table of its own. A picture is applied before the
// contact's next post; otherwise the presence loop applies it, paced per account
// (avatarEditInterval). Each edit goes under its webhook's own rate-limit bucket and is never
// retried on 429 in place: a picture that must wait is applied by the presence loop later.

// webhookBaseName is the name of the bridge's webhooks; ownHookName that of a one-to-one
// channel's second webhook, which posts the owner's messages from other frontends without the
// contact's face.
const (
	webhookBaseName = "MSN Bridge"
	ownHookName     = "MSN Bridge (you)"
)

const (
	// maxAvatarImage caps a contact's picture: MSN's are 96×96 PNGs of a few kilobytes, and
	// the msn package fetches objects of up to 1 MiB.
	maxAvatarImage = 1 << 20
	// avatarEditInterval is the least time between two webhook avatar edits of an account.
	avatarEditInterval = 2 * time.Second
	// avatarFetchBackoff is how long a picture that could not be had waits before it is asked
	// for again.
	avatarFetchBackoff = 5 * time.Minute
)

// avatarImage is a contact's picture ready for Discord.
type avatarImage struct {
	data []byte
	mime string
}

// webhookNameFor is the name of a contact channel's webhook that carries the picture of SHA1D
// sha1d ("" for none). The digest holds only hex digits, which Discord's name rules never
// refuse.
func webhookNameFor(sha1d string) string {
	if sha1d == "" {
		return webhookBaseName
	}
	sum := sha256.Sum256([]byte(sha1d))
	return webhookBaseName + " " + hex.EncodeToString(sum[:8])
}

// noteAvatar records a contact's new picture (keeping its image for the webhook edit) and has
// the presence loop put it on the contact's webhook when the channel exists.
func (p *portal) noteAvatar(e bridge.ContactAvatar) {
	if e.Avatar != "" && len(e.Data) <= maxAvatarImage {
		if mime := imageType(e.Data); mime != "" {
			p.f.avatars.put(e.Avatar, avatarImage{data: e.Data, mime: mime})
		}
	}
	p.mu.Lock()
	if c, ok := p.contacts[e.Handle]; ok {
		c.Avatar = e.Avatar
		p.contacts[e.Handle] = c
	}
	if ch := p.chats[bridge.DirectChat(e.Handle)]; ch != nil {
		ch.avatarRetry = time.Time{}
	}
	p.mu.Unlock()
	p.kick()
}

// avatarPendingLocked reports whether ch's webhook must change picture, and to which SHA1D.
// A channel whose webhook is not known yet is pending when the contact has a picture; one of a
// contact not (yet) on the list never is. p.mu is held.
func (p *portal) avatarPendingLocked(ch *chatChannel) (want string, pending bool) {
	if ch.id == "" || ch.chat.IsGroup() {
		return "", false
	}
	c, known := p.contacts[ch.chat.Contact()]
	if !known {
		return "", false // not a contact, or not known yet: its picture is left as it is
	}
	want = c.Avatar
	if want != "" && want == ch.avatarRefused {
		return want, false
	}
	if ch.webhook != nil {
		return want, ch.webhook.Name != webhookNameFor(want)
	}
	return want, want != ""
}

// avatarDueLocked returns when ch's pending picture may be applied. p.mu is held.
func (p *portal) avatarDueLocked(ch *chatChannel) time.Time {
	return later(ch.avatarRetry, p.avatarLast.Add(p.f.avatarEvery))
}

// avatarBeforePost applies ch's pending picture before a message is posted in the channel, so
// that even the first message shows the face: a post is worth its face, and each contact's
// picture is sent once per change, so this needs no pacing beyond a retry delay after a 429 or
// failure (then the presence loop does it later). It returns the webhook to post through.
func (p *portal) avatarBeforePost(ctx context.Context, ch *chatChannel, wh *discordgo.Webhook) *discordgo.Webhook {
	p.mu.Lock()
	_, pending := p.avatarPendingLocked(ch)
	due := !p.f.now().Before(ch.avatarRetry)
	p.mu.Unlock()
	if !pending {
		return wh
	}
	if !due {
		p.kick()
		return wh
	}
	if err := p.applyAvatar(ctx, ch); err != nil && ctx.Err() == nil {
		p.log.Warn().Err(bridge.ScrubError(err)).Str("chat", string(ch.chat)).Msg("Failed to set a contact's picture on the webhook")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch.webhook != nil {
		return ch.webhook
	}
	return wh
}

// applyAvatar puts the contact's current picture (or none) on ch's webhook with one PATCH,
// not retried on 429: the failure or the wait is recorded on ch for the presence loop. It
// returns the errors the caller should act on (a refusal, a failure); a wait is not one.
func (p *portal) applyAvatar(ctx context.Context, ch *chatChannel) error {
	p.avatarMu.Lock()
	defer p.avatarMu.Unlock()
	p.mu.Lock()
	if ch.webhook == nil {
		p.avatarLast = p.f.now() // the lookup is paced too: a start finds many channels
	}
	p.mu.Unlock()
	wh, chID, err := p.ensureWebhook(ctx, ch, false)
	if err != nil {
		if isUnknown(err, discordgo.ErrCodeUnknownChannel) {
			p.forgetChannel(chID)
			return nil
		}
		p.avatarRetryAfter(ch, failureBackoff)
		return err
	}
	p.mu.Lock()
	want, pending := p.avatarPendingLocked(ch)
	p.mu.Unlock()
	if !pending {
		return nil
	}
	body := map[string]any{"name": webhookNameFor(want), "avatar": nil} // null removes the picture
	if want != "" {
		img, err := p.f.avatarImage(ctx, want)
		if err != nil {
			p.avatarRetryAfter(ch, avatarFetchBackoff)
			p.log.Debug().Err(bridge.ScrubError(err)).Str("chat", string(ch.chat)).Msg("No image yet for a contact's picture")
			return nil
		}
		body["avatar"] = "data:" + img.mime + ";base64," + base64.StdEncoding.EncodeToString(img.data)
	}
	p.mu.Lock()
	p.avatarLast = p.f.now()
	p.mu.Unlock()
	resp, err := p.f.s.RequestWithBucketID("PATCH", discordgo.EndpointWebhook(wh.ID), body, discordgo.EndpointWebhook(wh.ID),
		discordgo.WithRetryOnRatelimit(false), discordgo.WithContext(ctx))
	var rl *discordgo.RateLimitError
	switch {
	case err == nil:
		next := *wh
		var got discordgo.Webhook
		if json.Unmarshal(resp, &got) == nil {
			next.Avatar = got.Avatar
		}
		next.Name = webhookNameFor(want)
		p.mu.Lock()
		if ch.webhook == wh {
			ch.webhook = &next
		}
		p.mu.Unlock()
		p.log.Debug().Str("chat", string(ch.chat)).Bool("picture", want != "").Msg("Contact's picture set on the webhook")
		return nil
	case errors.As(err, &rl):
		p.avatarRetryAfter(ch, rl.RetryAfter+100*time.Millisecond)
		return nil
	case isUnknown(err, discordgo.ErrCodeUnknownWebhook):
		p.mu.Lock()
		if ch.webhook == wh {
			ch.webhook = nil // recreated by the next post or edit
		}
		p.mu.Unlock()
		return nil
	case isUnknown(err, discordgo.ErrCodeInvalidFormBody):
		// Discord does not take this picture: the contact keeps the webhook's present one
		// until they change it.
		p.mu.Lock()
		ch.avatarRefused = want
		p.mu.Unlock()
		p.log.Warn().Err(bridge.ScrubError(err)).Str("chat", string(ch.chat)).Msg("Discord refused a contact's picture")
		return nil
	}
	p.avatarRetryAfter(ch, failureBackoff)
	return fmt.Errorf("failed to set a contact's picture: %w", err)
}

func (p *portal) avatarRetryAfter(ch *chatChannel, d time.Duration) {
	p.mu.Lock()
	ch.avatarRetry = p.f.now().Add(d)
	p.mu.Unlock()
}

// avatarImage returns a contact's picture by SHA1D: as its ContactAvatar event brought it, or
// from the core's cache; only a PNG, JPEG, GIF or WebP image of at most maxAvatarImage.
func (f *Frontend) avatarImage(ctx context.Context, sha1d string) (avatarImage, error) {
	if img, ok := f.avatars.get(sha1d); ok {
		return img, nil
	}
	data, _, err := f.core.Avatar(ctx, sha1d)
	if err != nil {
		return avatarImage{}, fmt.Errorf("failed to get a contact's picture: %w", err)
	}
	if len(data) > maxAvatarImage {
		return avatarImage{}, fmt.Errorf("contact's picture too large (%d bytes)", len(data))
	}
	mime := imageType(data)
	if mime == "" {
		return avatarImage{}, errors.New("contact's picture is not an image Discord shows")
	}
	img := avatarImage{data: data, mime: mime}
	f.avatars.put(sha1d, img)
	return img, nil
}
