package msn

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Chunk assembler defaults and limits.
const (
	chunkDefaultMax = 1024 // libpurple accepts fewer than 1024 chunks
	chunkDefaultTTL = time.Minute
	chunkMaxPending = 64      // incomplete messages held at once
	chunkMaxMessage = 1 << 20 // body bytes of one message
	chunkMaxTotal   = 4 << 20 // body bytes held over all incomplete messages
)

// ChunkAssembler reassembles multi-part messages (docs/protocol.md §4.8): the first part carries
// "Message-ID: {GUID}" and "Chunks: N" with all the normal headers; the other N-1 carry the same
// Message-ID and "Chunk: k" (1 ≤ k < N) and only continue the body. Parts may arrive in any
// order; they are grouped by sender and Message-ID.
//
// Memory is bounded: at most maxChunks parts per message, 1 MiB of body per message, 64
// incomplete messages and 4 MiB over all of them (the oldest incomplete message is evicted to
// make room), and an incomplete message is discarded ttl after its first part arrived. A
// discarded message is reported to the OnDrop callback, if set. Safe for concurrent use.
type ChunkAssembler struct {
	mu        sync.Mutex
	maxChunks int
	ttl       time.Duration
	now       func() time.Time
	onDrop    func(from, messageID string)
	pending   map[chunkKey]*chunkEntry
	total     int
}

type chunkKey struct{ from, id string }

type chunkEntry struct {
	first   *MIMEMessage
	n       int // Chunks: from the first part, 0 until it arrives
	parts   map[int][]byte
	size    int
	created time.Time
}

// NewChunkAssembler returns an assembler that accepts at most maxChunks parts per message
// (1024 when ≤ 0) and discards incomplete messages after ttl (one minute when ≤ 0).
func NewChunkAssembler(maxChunks int, ttl time.Duration) *ChunkAssembler {
	if maxChunks <= 0 {
		maxChunks = chunkDefaultMax
	}
	if ttl <= 0 {
		ttl = chunkDefaultTTL
	}
	return &ChunkAssembler{
		maxChunks: maxChunks,
		ttl:       ttl,
		now:       time.Now,
		pending:   make(map[chunkKey]*chunkEntry),
	}
}

// OnDrop sets fn to be called, outside the assembler's lock, with the sender and Message-ID of
// every incomplete message the assembler discards (expired, evicted, over a limit, or
// inconsistent), so the loss can be reported. fn must not block for long.
func (a *ChunkAssembler) OnDrop(fn func(from, messageID string)) {
	a.mu.Lock()
	a.onDrop = fn
	a.mu.Unlock()
}

// Pending returns the number of incomplete messages held.
func (a *ChunkAssembler) Pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pending)
}

// Add feeds one received message from sender from. A message without Message-ID, or without
// Chunks and Chunk, is not chunked: Add returns m itself and true. So is a first part whose
// Chunks value is not a number from 1 to maxChunks (its body alone is the best there is).
// Otherwise Add keeps the part and returns nil and false, until the last missing part arrives:
// then it returns a new message with the first part's headers (Message-ID and Chunks removed)
// and the bodies of all parts in Chunk order, and true. Duplicate parts are ignored; a
// continuation part that can never fit (k out of range) is dropped. The assembler keeps a
// reference to a held first part: do not modify m after passing it in.
func (a *ChunkAssembler) Add(from string, m *MIMEMessage) (*MIMEMessage, bool) {
	if m == nil {
		return nil, false
	}
	id := m.Get("Message-ID")
	chunksV, chunkV := m.Get("Chunks"), m.Get("Chunk")
	isFirst, isCont := m.Has("Chunks"), m.Has("Chunk") && !m.Has("Chunks")
	if id == "" || !isFirst && !isCont {
		return m, true
	}
	var dropped []chunkKey
	defer func() { a.reportDrops(dropped) }()

	a.mu.Lock()
	defer a.mu.Unlock()
	dropped = a.expireLocked(dropped)

	key := chunkKey{from, id}
	var index int
	if isFirst {
		n, err := strconv.Atoi(strings.TrimSpace(chunksV))
		if err != nil || n < 1 || n > a.maxChunks {
			if e := a.pending[key]; e != nil {
				a.removeLocked(key, e)
				dropped = append(dropped, key)
			}
			return m, true
		}
		index = 0
		e := a.pending[key]
		if e == nil && n == 1 {
			return chunkJoin(m, nil, 1), true
		}
		if e != nil && e.first != nil {
			return nil, false // duplicate first part
		}
		if e == nil {
			e, dropped = a.newEntryLocked(key, dropped)
		}
		for k, p := range e.parts {
			if k >= n { // buffered continuation that cannot belong to this message
				delete(e.parts, k)
				e.size -= len(p)
				a.total -= len(p)
			}
		}
		e.first, e.n = m, n
		if !a.growLocked(key, e, len(m.Body), &dropped) {
			return nil, false
		}
		return a.completeLocked(key, e)
	}

	k, err := strconv.Atoi(strings.TrimSpace(chunkV))
	if err != nil || k < 1 || k >= a.maxChunks {
		return nil, false
	}
	index = k
	e := a.pending[key]
	if e == nil {
		e, dropped = a.newEntryLocked(key, dropped)
	}
	if e.n != 0 && index >= e.n {
		return nil, false
	}
	if _, dup := e.parts[index]; dup {
		return nil, false
	}
	e.parts[index] = bytes.Clone(m.Body)
	if !a.growLocked(key, e, len(m.Body), &dropped) {
		return nil, false
	}
	return a.completeLocked(key, e)
}

// newEntryLocked adds an entry for key, evicting the oldest one when the table is full.
func (a *ChunkAssembler) newEntryLocked(key chunkKey, dropped []chunkKey) (*chunkEntry, []chunkKey) {
	for len(a.pending) >= chunkMaxPending {
		dropped = append(dropped, a.evictOldestLocked(key))
	}
	e := &chunkEntry{parts: make(map[int][]byte), created: a.now()}
	a.pending[key] = e
	return e, dropped
}

// growLocked accounts n more bytes to e. Over the per-message limit, e is discarded; over the
// global limit, the oldest other messages are evicted. It reports whether e is still held.
func (a *ChunkAssembler) growLocked(key chunkKey, e *chunkEntry, n int, dropped *[]chunkKey) bool {
	e.size += n
	a.total += n
	if e.size > chunkMaxMessage {
		a.removeLocked(key, e)
		*dropped = append(*dropped, key)
		return false
	}
	for a.total > chunkMaxTotal && len(a.pending) > 1 {
		*dropped = append(*dropped, a.evictOldestLocked(key))
	}
	return true
}

// evictOldestLocked removes the oldest entry other than keep and returns its key.
func (a *ChunkAssembler) evictOldestLocked(keep chunkKey) chunkKey {
	var oldest chunkKey
	var oe *chunkEntry
	for k, e := range a.pending {
		if k == keep {
			continue
		}
		if oe == nil || e.created.Before(oe.created) {
			oldest, oe = k, e
		}
	}
	if oe != nil {
		a.removeLocked(oldest, oe)
	}
	return oldest
}

func (a *ChunkAssembler) removeLocked(key chunkKey, e *chunkEntry) {
	if a.pending[key] == e {
		delete(a.pending, key)
		a.total -= e.size
	}
}

// expireLocked discards entries older than the ttl.
func (a *ChunkAssembler) expireLocked(dropped []chunkKey) []chunkKey {
	cutoff := a.now().Add(-a.ttl)
	for k, e := range a.pending {
		if e.created.Before(cutoff) {
			a.removeLocked(k, e)
			dropped = append(dropped, k)
		}
	}
	return dropped
}

// completeLocked returns the assembled message when e has every part.
func (a *ChunkAssembler) completeLocked(key chunkKey, e *chunkEntry) (*MIMEMessage, bool) {
	if e.first == nil || len(e.parts) != e.n-1 {
		return nil, false
	}
	a.removeLocked(key, e)
	return chunkJoin(e.first, e.parts, e.n), true
}

func (a *ChunkAssembler) reportDrops(keys []chunkKey) {
	if len(keys) == 0 {
		return
	}
	a.mu.Lock()
	fn := a.onDrop
	a.mu.Unlock()
	if fn == nil {
		return
	}
	for _, k := range keys {
		fn(k.from, k.id)
	}
}

// chunkJoin builds the whole message from the first part and parts 1…n-1.
func chunkJoin(first *MIMEMessage, parts map[int][]byte, n int) *MIMEMessage {
	m := &MIMEMessage{Headers: make([]Header, 0, len(first.Headers))}
	for _, h := range first.Headers {
		if strings.EqualFold(h.Name, "Message-ID") || strings.EqualFold(h.Name, "Chunks") {
			continue
		}
		m.Headers = append(m.Headers, h)
	}
	size := len(first.Body)
	for _, p := range parts {
		size += len(p)
	}
	m.Body = make([]byte, 0, size)
	m.Body = append(m.Body, first.Body...)
	for k := 1; k < n; k++ {
		m.Body = append(m.Body, parts[k]...)
	}
	return m
}
