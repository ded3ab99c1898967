package bridge

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// maxEmoticons bounds the custom emoticons resolved for one message (MSN clients send at most
// a handful; a hostile one may send many).
const maxEmoticons = 16

// emoticonRetry is how long an emoticon whose fetch failed stays text without a wait.
const emoticonRetry = 10 * time.Minute

// maxWaitingChat bounds the chat events waiting behind messages whose emoticons are being
// resolved; beyond it, messages are not held for their emoticons.
const maxWaitingChat = 256

// emoticonPenalty is how long a contact whose emoticon could not be fetched gets only the
// emoticons already cached: a contact that never answers cannot hold up the account's messages
// by EmoticonWait each.
const emoticonPenalty = time.Minute

// maxFailedEmoticons bounds the failed emoticons remembered; beyond it they are forgotten.
const maxFailedEmoticons = 4096

// orderedEvent is a chat event waiting its turn; emoticons, when set, are resolved into the
// Message first.
type orderedEvent struct {
	evt       Event
	emoticons []msn.Emoticon
}

// emitChatLocked emits a chat event of a contact in order with the account's other chat events:
// a Message with emoticons waits for them (see resolveEmoticons), and whatever follows it waits
// behind it. Never blocks. a.mu must be held.
func (a *Account) emitChatLocked(evt Event, emoticons []msn.Emoticon) {
	if len(a.inOrder) >= maxWaitingChat {
		// A flood: the messages keep their order, their emoticons stay text.
		emoticons = nil
	}
	if len(emoticons) == 0 && !a.ordering {
		a.emitLocked(evt, "")
		return
	}
	a.inOrder = append(a.inOrder, orderedEvent{evt: evt, emoticons: emoticons})
	if !a.ordering {
		a.ordering = true
		go a.emitInOrder()
	}
}

// emitInOrder emits the events of inOrder one after the other until none is left.
func (a *Account) emitInOrder() {
	for {
		a.mu.Lock()
		if len(a.inOrder) == 0 {
			a.inOrder, a.ordering = nil, false
			a.mu.Unlock()
			return
		}
		item := a.inOrder[0]
		a.mu.Unlock()
		if msg, ok := item.evt.(Message); ok && len(item.emoticons) > 0 {
			msg.Emoticons = a.resolveEmoticons(msg.Sender, item.emoticons)
			item.evt = msg
		}
		a.mu.Lock()
		a.inOrder[0] = orderedEvent{}
		a.inOrder = a.inOrder[1:]
		a.emitLocked(item.evt, "")
		a.mu.Unlock()
	}
}

// resolveEmoticons returns the images of a contact's custom emoticons, from the cache or
// fetched through the account's current session, within MediaConfig.EmoticonWait overall.
// Those that could not be had (unusable, failed, not in time, not an image) are left out: they
// stay text.
func (a *Account) resolveEmoticons(sender string, emoticons []msn.Emoticon) []Emoticon {
	m := a.core.media
	ctx, cancel := context.WithTimeout(a.core.bgCtx, a.core.cfg.Media.EmoticonWait)
	defer cancel()
	var want []msn.Emoticon
	seen := map[string]bool{}
	now := a.core.clock.Now().UnixNano()
	a.mu.Lock()
	cacheOnly := now < a.emoticonPenalty[sender]
	a.mu.Unlock()
	for _, e := range emoticons {
		o := e.Object
		if len(want) == maxEmoticons || e.Shortcut == "" || len(e.Shortcut) > 32 || seen[e.Shortcut] ||
			o.Type != msn.ObjectEmoticon || o.SHA1D == "" || len(o.SHA1D) > 64 || NormalizeHandle(o.Creator) != sender ||
			o.Size <= 0 || o.Size > a.core.cfg.Media.MaxObjectSize {
			continue
		}
		m.mu.Lock()
		until, failed := m.failedEmoticons[o.SHA1D]
		m.mu.Unlock()
		if failed && now < until {
			continue
		}
		seen[e.Shortcut] = true
		want = append(want, e)
	}
	out := make([]Emoticon, len(want))
	var wg sync.WaitGroup
	for i, e := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var data []byte
			var mime string
			var fetched bool
			var err error
			if cacheOnly {
				data, mime, err = a.core.store.Object(ctx, e.Object.SHA1D)
			} else {
				data, mime, fetched, err = m.obtain(ctx, a, e.Object, false)
			}
			a.core.metrics.mediaResult("emoticon", fetchResult(fetched, err))
			if err != nil {
				if fetched || (ctx.Err() != nil && !cacheOnly) {
					m.emoticonFailed(e.Object.SHA1D, a.core.clock.Now())
					a.mu.Lock()
					if a.emoticonPenalty == nil || len(a.emoticonPenalty) >= maxFailedEmoticons {
						a.emoticonPenalty = map[string]int64{}
					}
					a.emoticonPenalty[sender] = a.core.clock.Now().Add(emoticonPenalty).UnixNano()
					a.mu.Unlock()
				}
				a.log.Debug().Err(ScrubError(err)).Str("contact", sender).Msg("Custom emoticon not resolved, kept as text")
				return
			}
			if !strings.HasPrefix(mime, "image/") {
				return
			}
			out[i] = Emoticon{Shortcut: e.Shortcut, Avatar: e.Object.SHA1D, Data: data, MIME: mime}
		}()
	}
	wg.Wait()
	res := out[:0]
	for _, e := range out {
		if e.Data != nil {
			res = append(res, e)
		}
	}
	if len(res) == 0 {
		return nil
	}
	return res
}

// emoticonFailed remembers that an emoticon could not be had, so that the next messages with
// it do not wait for it again soon.
func (m *mediaCore) emoticonFailed(sha string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.failedEmoticons) >= maxFailedEmoticons {
		clear(m.failedEmoticons)
	}
	m.failedEmoticons[sha] = now.Add(emoticonRetry).UnixNano()
}
