package bridge

import (
	"context"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/msn-bridge/msn-bridge/msn"
)

// maxWinkName bounds a wink's name, in bytes.
const maxWinkName = 128

// receiveWink fetches a contact's wink (bounded by MediaConfig.MaxObjectSize and FetchTimeout,
// holding one of the bridge's fetch slots), extracts its thumbnail and emits Wink, with Image
// nil when either failed. It runs on its own goroutine.
func (a *Account) receiveWink(e *msn.WinkReceived, chat ChatID, senderName string) {
	from := NormalizeHandle(e.From)
	obj := e.Object
	name := cleanText(obj.Friendly, maxWinkName)
	var image []byte
	var mime string
	// One wink fetched at a time per account: a flood of winks is shown by name, and cannot
	// take the bridge's fetch slots from display pictures.
	a.mu.Lock()
	fetch := a.winking == 0
	if fetch {
		a.winking++
	}
	a.mu.Unlock()
	if fetch {
		defer func() {
			a.mu.Lock()
			a.winking--
			a.mu.Unlock()
		}()
	}
	if fetch && obj.Type == msn.ObjectWink && obj.SHA1D != "" && len(obj.SHA1D) <= 64 && NormalizeHandle(obj.Creator) == from &&
		obj.Size > 0 && obj.Size <= a.core.cfg.Media.MaxObjectSize {
		ctx, cancel := a.fetchContext()
		image, mime, _ = a.winkImage(ctx, obj)
		cancel()
	}
	if image != nil {
		a.core.metrics.mediaResult("wink", "thumbnail")
	} else {
		a.core.metrics.mediaResult("wink", "name_only")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	t := a.core.clock.Now()
	a.emitLocked(Wink{ID: messageID(from, t, a.seq), Chat: chat, Sender: from, SenderName: senderName, Name: name,
		Image: image, MIME: mime, Time: t}, "")
}

// winkImage fetches a wink's cabinet and returns its thumbnail. The cabinet is not cached;
// only thumbnails extracted are, under the cabinet's SHA1D prefixed "wink:".
func (a *Account) winkImage(ctx context.Context, obj msn.MSNObject) ([]byte, string, error) {
	key := "wink:" + obj.SHA1D
	if data, mime, err := a.core.store.Object(ctx, key); err == nil {
		return data, mime, nil
	}
	m := a.core.media
	select {
	case m.fetches <- struct{}{}:
		defer func() { <-m.fetches }()
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	sess, err := a.connected()
	if err != nil {
		return nil, "", err
	}
	cab, err := sess.FetchObject(ctx, obj)
	if err == nil {
		err = checkObject(obj, cab, a.core.cfg.Media.MaxObjectSize)
	}
	if err != nil {
		a.log.Debug().Err(ScrubError(err)).Str("contact", obj.Creator).Msg("Failed to fetch wink")
		return nil, "", err
	}
	image, mime, err := winkThumbnail(cab, int(a.core.cfg.Media.MaxObjectSize))
	if err != nil {
		a.log.Debug().Err(err).Msg("No thumbnail in wink")
		return nil, "", err
	}
	if err = a.core.store.PutObject(ctx, key, mime, image, a.core.clock.Now()); err != nil {
		a.log.Debug().Err(err).Msg("Failed to cache wink thumbnail")
	} else {
		m.cached(int64(len(image)))
	}
	return image, mime, nil
}

// cleanText returns remote text without control or format characters and invalid UTF-8,
// trimmed, at most max bytes.
func cleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	for len(s) > max {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}
