package discordtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/bwmarrin/discordgo"
)

// Media: webhook avatars set from data URIs, as Discord validates them. Uploads (multipart
// message creates and webhook executes, capped per file by Options.MaxFileBytes) and the signed
// attachment URLs that serve them live with the messages (messages.go, rest.go).

// maxAvatarBytes is Discord's cap on an avatar image (10240 KB, decoded).
const maxAvatarBytes = 10 << 20

// avatarTypes are the image types Discord takes as an avatar.
var avatarTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true}

// avatarImage is a webhook's avatar as the fake decoded it.
type avatarImage struct {
	data []byte
	mime string
}

// checkAvatar validates the avatar field of a webhook create or edit as Discord does: absent
// (set false), null (removes the avatar: set true, image nil), or a data URI
// "data:image/{png,jpeg,gif,webp};base64,…" whose content is such an image of at most 10 MiB.
// Anything else fails with 50035 on field and ok false, the request answered.
func (c *call) checkAvatar(field string, raw json.RawMessage) (img *avatarImage, set, ok bool) {
	if len(raw) == 0 {
		return nil, false, true
	}
	if string(raw) == "null" {
		return nil, true, true
	}
	var uri string
	if err := json.Unmarshal(raw, &uri); err != nil {
		c.formError(field, "IMAGE_INVALID", "Invalid image data")
		return nil, false, false
	}
	head, b64, found := strings.Cut(uri, ",")
	mime, isBase64 := strings.CutSuffix(strings.TrimPrefix(head, "data:"), ";base64")
	if !found || !strings.HasPrefix(head, "data:") || !isBase64 || !avatarTypes[mime] {
		c.formError(field, "IMAGE_INVALID", "Invalid image data")
		return nil, false, false
	}
	if base64.StdEncoding.DecodedLen(len(b64)) > maxAvatarBytes+3 {
		c.formError(field, "BINARY_TYPE_MAX_SIZE", "File cannot be larger than 10240.0 kb.")
		return nil, false, false
	}
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(data) == 0 {
		c.formError(field, "IMAGE_INVALID", "Invalid image data")
		return nil, false, false
	}
	if len(data) > maxAvatarBytes {
		c.formError(field, "BINARY_TYPE_MAX_SIZE", "File cannot be larger than 10240.0 kb.")
		return nil, false, false
	}
	if !sniffedAs(data, mime) {
		c.formError(field, "IMAGE_INVALID", "Invalid image data")
		return nil, false, false
	}
	return &avatarImage{data: data, mime: mime}, true, true
}

// sniffedAs reports whether data's content is of the image type mime.
func sniffedAs(data []byte, mime string) bool {
	if mime == "image/webp" {
		return len(data) >= 12 && bytes.Equal(data[:4], []byte("RIFF")) && bytes.Equal(data[8:12], []byte("WEBP"))
	}
	return http.DetectContentType(data) == mime
}

// WebhookAvatar returns the image last set as a webhook's avatar (with a data URI), its type,
// and whether it has one.
func (s *Server) WebhookAvatar(id string) (data []byte, mime string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, found := s.webhooks[id]
	if !found || w.avatar == nil {
		return nil, "", false
	}
	return bytes.Clone(w.avatar.data), w.avatar.mime, true
}

// hash is the avatar hash Discord would store for the image; "" for none.
func (img *avatarImage) hash() string {
	if img == nil {
		return ""
	}
	sum := sha256.Sum256(img.data)
	return hex.EncodeToString(sum[:16])
}

// mayAttach applies Discord's rule that a bot's message with files needs Attach Files in the
// channel, answering 403 with 50013 otherwise. The caller holds s.mu.
func (s *Server) mayAttach(c *call, cs *channelState) bool {
	if s.channelPerms(cs)&discordgo.PermissionAttachFiles == 0 {
		c.fail(http.StatusForbidden, discordgo.ErrCodeMissingPermissions, "Missing Permissions")
		return false
	}
	return true
}

// mayManageWebhook applies Discord's rule that editing a webhook with the bot's token needs
// Manage Webhooks in its channel, answering 403 with 50013 otherwise. The caller holds s.mu.
func (s *Server) mayManageWebhook(c *call, w *webhookState) bool {
	cs, ok := s.channels[w.wh.ChannelID]
	if ok && s.channelPerms(cs)&discordgo.PermissionManageWebhooks == 0 {
		c.fail(http.StatusForbidden, discordgo.ErrCodeMissingPermissions, "Missing Permissions")
		return false
	}
	return true
}
