package bridge

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// parseMSNObject parses an msnobj; a variable so that unit tests need no P2P layer.
var parseMSNObject = msn.ParseMSNObject

// avatarQueue is an account's display pictures waiting to be fetched. Guarded by Account.mu.
type avatarQueue struct {
	pending map[string]msn.MSNObject // by contact: the latest announced, not yet fetched
	order   []string                 // contacts of pending, first come first served
	queued  map[string]bool          // the contacts in order
	running int                      // fetches under way
	// fetching are the contacts whose picture is being fetched: one fetch per contact at a
	// time, a newer picture waits in pending.
	fetching map[string]bool
	// last is when each contact's picture was last fetched over MSN (see
	// MediaConfig.AvatarInterval); failed are the contacts whose fetch failed, retried later.
	last   map[string]time.Time
	failed map[string]*avatarFailure
	// tries counts the failed fetches of each contact's current picture, for the backoff.
	tries map[string]avatarTries
}

type avatarTries struct {
	sha1d string
	n     int
}

// avatarFailure is a picture waiting for its retry timer: after a failed fetch, or (wait) for
// the end of MediaConfig.AvatarInterval, in which case a newer announcement replaces obj.
type avatarFailure struct {
	obj  msn.MSNObject
	wait bool
}

// maxAvatarRetry caps the wait before a failed fetch is tried again.
const maxAvatarRetry = time.Hour

// announceAvatarLocked takes the msnobj a contact announced in its presence (decoded XML, ""
// for none) into the model: a new picture is queued for fetching, none removes the picture
// shown unless the contact is offline (offline contacts announce nothing). a.mu must be held.
func (a *Account) announceAvatarLocked(c contactRef, xml string) {
	h := c.Handle()
	sha := ""
	var obj msn.MSNObject
	if xml != "" {
		var err error
		obj, err = parseMSNObject(xml)
		if err != nil || obj.Type != msn.ObjectDisplayPicture || obj.SHA1D == "" || len(obj.SHA1D) > 64 ||
			NormalizeHandle(obj.Creator) != h || obj.Size <= 0 || obj.Size > a.core.cfg.Media.MaxObjectSize {
			a.log.Debug().Err(err).Str("contact", h).Msg("Ignoring an unusable display picture announcement")
			return
		}
		sha = obj.SHA1D
	} else if c.Status() == msn.StatusOffline || a.carriedStatus[h] {
		return // offline, or not reported by this session yet: the picture stays
	}
	if sha == c.field(fieldAnnounced) {
		return
	}
	c.set(fieldAnnounced, sha)
	if sha == "" {
		a.avatars.forget(h)
		if c.field(fieldAvatar) != "" {
			c.set(fieldAvatar, "")
			a.emitLocked(ContactAvatar{Handle: h}, "")
		}
		return
	}
	if sha == c.field(fieldAvatar) {
		a.avatars.forget(h)
		return
	}
	a.queueAvatarLocked(h, obj)
}

func (q *avatarQueue) forget(h string) {
	delete(q.pending, h)
	delete(q.failed, h)
	delete(q.tries, h)
}

// queueAvatarLocked queues obj, the picture h announced, replacing one h announced before.
func (a *Account) queueAvatarLocked(h string, obj msn.MSNObject) {
	q := &a.avatars
	if q.pending == nil {
		q.pending, q.last, q.failed = map[string]msn.MSNObject{}, map[string]time.Time{}, map[string]*avatarFailure{}
		q.tries, q.queued, q.fetching = map[string]avatarTries{}, map[string]bool{}, map[string]bool{}
	}
	if f := q.failed[h]; f != nil {
		if f.wait {
			f.obj = obj // the latest is fetched when the wait ends
			return
		}
		if f.obj.SHA1D == obj.SHA1D {
			return // its retry is scheduled
		}
		delete(q.failed, h)
	}
	q.pending[h] = obj
	if !q.queued[h] && !q.fetching[h] {
		q.queued[h] = true
		q.order = append(q.order, h)
	}
	a.kickAvatarsLocked()
}

// kickAvatarsLocked starts fetches while the account has slots and pictures waiting, and is
// online with a live session (as connected requires): contacts announce their pictures (ILN)
// while the session logs in, and those wait for connect to kick them.
func (a *Account) kickAvatarsLocked() {
	if a.live == nil || a.state.State != StateOnline {
		return
	}
	q := &a.avatars
	for q.running < a.core.cfg.Media.AvatarFetchesPerAccount && len(q.order) > 0 {
		h := q.order[0]
		q.order[0] = ""
		q.order = q.order[1:]
		if len(q.order) == 0 {
			q.order = nil
		}
		delete(q.queued, h)
		obj, ok := q.pending[h]
		if !ok {
			continue // forgotten meanwhile
		}
		delete(q.pending, h)
		now := a.core.clock.Now()
		if next := q.last[h].Add(a.core.cfg.Media.AvatarInterval); now.Before(next) {
			// Too soon after the last fetch: the picture waits, as a failure does, and
			// whatever the contact announces meanwhile replaces it.
			f := &avatarFailure{obj: obj, wait: true}
			q.failed[h] = f
			a.scheduleAvatarRetryLocked(h, f, next.Sub(now))
			continue
		}
		q.running++
		q.fetching[h] = true
		a.core.media.spawn(func() { a.fetchAvatar(h, obj) })
	}
}

// scheduleAvatarRetryLocked queues f's picture again after d, if f is still h's entry and h
// still announces that picture.
func (a *Account) scheduleAvatarRetryLocked(h string, f *avatarFailure, d time.Duration) {
	a.core.clock.AfterFunc(d, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.avatars.failed[h] != f {
			return
		}
		delete(a.avatars.failed, h)
		sha := f.obj.SHA1D
		if c := a.contacts.get(h); c.ok() && c.field(fieldAnnounced) == sha && c.field(fieldAvatar) != sha {
			a.queueAvatarLocked(h, f.obj)
		}
	})
}

// fetchAvatar gets h's picture obj, from the cache or over MSN, and shows it if h still
// announces it. It runs on its own goroutine, holding one of the account's fetch slots.
func (a *Account) fetchAvatar(h string, obj msn.MSNObject) {
	ctx, cancel := a.fetchContext()
	defer cancel()
	_, _, fetched, err := a.core.media.obtain(ctx, a, obj, true)
	a.mu.Lock()
	defer a.mu.Unlock()
	q := &a.avatars
	q.running--
	delete(q.fetching, h)
	if _, ok := q.pending[h]; ok && !q.queued[h] {
		// Announced again during the fetch: its turn comes after the others'.
		q.queued[h] = true
		q.order = append(q.order, h)
	}
	defer a.kickAvatarsLocked()
	now := a.core.clock.Now()
	if fetched {
		q.last[h] = now
	}
	c := a.contacts.get(h)
	a.core.metrics.mediaResult("avatar", fetchResult(fetched, err))
	if err != nil {
		if a.core.bgCtx.Err() != nil {
			return
		}
		if errors.Is(err, ErrNotConnected) {
			// The session went away (or was not online yet): the picture waits for the account
			// to be online, unless the contact announced another meanwhile.
			if _, newer := q.pending[h]; !newer && c.ok() && c.field(fieldAnnounced) == obj.SHA1D {
				q.pending[h] = obj
				if !q.queued[h] {
					q.queued[h] = true
					q.order = append(q.order, h)
				}
			}
			return
		}
		if !c.ok() || c.field(fieldAnnounced) != obj.SHA1D {
			return
		}
		if q.failed[h] != nil {
			return // a newer picture waits already
		}
		t := q.tries[h]
		if t.sha1d != obj.SHA1D {
			t = avatarTries{sha1d: obj.SHA1D}
		}
		t.n++
		q.tries[h] = t
		attempts := t.n
		f := &avatarFailure{obj: obj}
		q.failed[h] = f
		d := min(a.core.cfg.Media.AvatarRetry<<min(attempts-1, 10), maxAvatarRetry)
		a.log.Debug().Err(ScrubError(err)).Str("contact", h).Int("attempt", attempts).Dur("retry_in", d).Msg("Failed to fetch display picture")
		a.scheduleAvatarRetryLocked(h, f, d)
		return
	}
	if q.tries[h].sha1d == obj.SHA1D {
		delete(q.tries, h)
	}
	if !c.ok() || c.field(fieldAnnounced) != obj.SHA1D || c.field(fieldAvatar) == obj.SHA1D {
		return
	}
	c.set(fieldAvatar, obj.SHA1D)
	// Queued without its data, which is read from the cache when it is delivered: at a restart
	// every contact of every account is shown its cached picture again, and queues of slow
	// frontends must not hold them all.
	a.emitLocked(ContactAvatar{Handle: h, Avatar: obj.SHA1D, lazy: true}, "")
}

// errBadObject means fetched data does not match its msnobj.
var errBadObject = errors.New("object data does not match its msnobj")

// obtain returns obj's data from the cache, or fetches it from obj's creator through a's
// session (one fetch per SHA1D at a time over the whole bridge; with slot, holding one of the
// bridge's fetch slots) and caches it. fetched reports whether it went over MSN.
func (m *mediaCore) obtain(ctx context.Context, a *Account, obj msn.MSNObject, slot bool) (data []byte, mime string, fetched bool, err error) {
	sha := obj.SHA1D
	if data, mime, err = m.core.store.Object(ctx, sha); err == nil {
		return data, mime, false, nil
	} else if !errors.Is(err, ErrObjectNotCached) {
		return nil, "", false, err
	}
	m.mu.Lock()
	if f := m.inflight[sha]; f != nil {
		m.mu.Unlock()
		select {
		case <-f.done:
			return f.data, f.mime, false, f.err
		case <-ctx.Done():
			return nil, "", false, ctx.Err()
		}
	}
	f := &inflightFetch{done: make(chan struct{})}
	m.inflight[sha] = f
	m.mu.Unlock()
	defer func() {
		f.data, f.mime, f.err = data, mime, err
		m.mu.Lock()
		delete(m.inflight, sha)
		m.mu.Unlock()
		close(f.done)
	}()
	// A fetch that ended between the look-up above and this one's start cached it.
	if data, mime, err = m.core.store.Object(ctx, sha); err == nil {
		return data, mime, false, nil
	}
	if slot {
		select {
		case m.fetches <- struct{}{}:
			defer func() { <-m.fetches }()
		case <-ctx.Done():
			return nil, "", false, ctx.Err()
		}
	}
	sess, err := a.connected()
	if err != nil {
		return nil, "", false, err
	}
	data, err = sess.FetchObject(ctx, obj)
	if err != nil {
		return nil, "", true, fmt.Errorf("failed to fetch object: %w", err)
	}
	if err = checkObject(obj, data, m.core.cfg.Media.MaxObjectSize); err != nil {
		return nil, "", true, err
	}
	mime = http.DetectContentType(data)
	if err = m.core.store.PutObject(ctx, sha, mime, data, m.core.clock.Now()); err != nil {
		return nil, "", true, err
	}
	m.cached(int64(len(data)))
	return data, mime, true, nil
}

// checkObject checks data against its msnobj (package msn does too; the cache must never hold
// data under another picture's name).
func checkObject(obj msn.MSNObject, data []byte, maxSize int64) error {
	if int64(len(data)) > maxSize {
		return fmt.Errorf("%w: %d bytes, at most %d", msn.ErrTransferTooLarge, len(data), maxSize)
	}
	sum := sha1.Sum(data)
	if base64.StdEncoding.EncodeToString(sum[:]) != obj.SHA1D {
		return errBadObject
	}
	return nil
}

// cached counts n bytes added to the object cache and trims it, in the background, once
// enough were added since the last trim that it may be over MediaConfig.CacheSize.
func (m *mediaCore) cached(n int64) {
	m.mu.Lock()
	m.added += n
	start := !m.trimming && m.added >= m.core.cfg.Media.CacheSize/16
	if start {
		m.trimming, m.added = true, 0
	}
	m.mu.Unlock()
	if start && !m.spawn(m.trim) {
		m.trimDone()
	}
}

// startTrim trims the cache in the background unless a trim runs.
func (m *mediaCore) startTrim() {
	m.mu.Lock()
	start := !m.trimming
	m.trimming = true
	m.mu.Unlock()
	if start && !m.spawn(m.trim) {
		m.trimDone()
	}
}

func (m *mediaCore) trimDone() {
	m.mu.Lock()
	m.trimming = false
	m.mu.Unlock()
}

// trim deletes the oldest cached objects beyond MediaConfig.CacheSize.
func (m *mediaCore) trim() {
	defer m.trimDone()
	ctx, cancel := context.WithTimeout(m.core.bgCtx, time.Minute)
	defer cancel()
	n, err := m.core.store.TrimObjects(ctx, m.core.cfg.Media.CacheSize)
	if err != nil {
		m.core.log.Warn().Err(err).Msg("Failed to trim the picture cache")
	} else if n > 0 {
		m.core.log.Info().Int("deleted", n).Msg("Picture cache full, deleted the oldest")
	}
}

// forgetAvatar makes h's picture sha1d, which could not be read, unknown again, so that h's
// next announcement of it fetches it.
func (a *Account) forgetAvatar(h, sha1d string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.contacts.get(h); c.ok() && c.field(fieldAvatar) == sha1d {
		c.set(fieldAnnounced, "")
		c.set(fieldAvatar, "")
	}
}

// fetchResult is the metrics label of an obtain.
func fetchResult(fetched bool, err error) string {
	switch {
	case err != nil:
		return "failed"
	case fetched:
		return "fetched"
	}
	return "cached"
}
