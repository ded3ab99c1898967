package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/msn-bridge/msn-bridge/msn"
)

// errOverSize means a transfer delivered more bytes than announced.
var errOverSize = errors.New("more data than the announced size")

// mediaCore is the state media shares across accounts: the fetch and transfer slots, fetches
// in flight (so two accounts fetch one picture once) and the spool directory.
type mediaCore struct {
	core     *Core
	fetches  chan struct{} // a token per display picture or wink fetched at once
	spoolDir string        // guarded by mu
	ownDir   bool          // spoolDir was made by the core, removed at Stop
	closed   bool          // guarded by mu
	// work counts the media goroutines (fetches, transfers, cache trims), which Stop waits for
	// after cancelling them, so none outlives the core.
	work sync.WaitGroup

	mu        sync.Mutex
	inflight  map[string]*inflightFetch // by SHA1D
	transfers int                       // files in transit over all accounts
	perAcct   map[*Account]int
	// failedEmoticons are emoticons whose fetch failed recently, by SHA1D: they stay text
	// without a wait until their entry expires (see emoticonRetry).
	failedEmoticons map[string]int64
	// added counts the bytes cached since the cache was last trimmed (see cached).
	added    int64
	trimming bool
}

type inflightFetch struct {
	done chan struct{}
	data []byte
	mime string
	err  error
}

func newMediaCore(c *Core) (*mediaCore, error) {
	m := &mediaCore{
		core:            c,
		fetches:         make(chan struct{}, c.cfg.Media.AvatarFetches),
		inflight:        map[string]*inflightFetch{},
		perAcct:         map[*Account]int{},
		failedEmoticons: map[string]int64{},
		spoolDir:        c.cfg.Media.SpoolDir,
	}
	if m.spoolDir == "" {
		return m, nil // made by the first transfer (see dir)
	}
	if err := os.MkdirAll(m.spoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to make the file spool directory: %w", err)
	}
	if err := os.Chmod(m.spoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to restrict the file spool directory: %w", err)
	}
	// Spool files left by a crash: their transfers are gone.
	for _, pat := range []string{"in-*", "out-*"} {
		old, _ := filepath.Glob(filepath.Join(m.spoolDir, pat))
		for _, p := range old {
			_ = os.Remove(p)
		}
	}
	return m, nil
}

// dir returns the spool directory, making a private temporary one the first time when none is
// configured.
func (m *mediaCore) dir() (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", ErrStopping
	}
	if m.spoolDir == "" {
		dir, err := os.MkdirTemp("", "msn-bridge-spool-")
		if err != nil {
			return "", fmt.Errorf("failed to make the file spool directory: %w", err)
		}
		m.spoolDir, m.ownDir = dir, true
	}
	return m.spoolDir, nil
}

// spawn runs f on a goroutine of its own that close waits for; after close it runs nothing and
// returns false (the core is stopping: its sessions are gone).
func (m *mediaCore) spawn(f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.work.Add(1)
	go func() {
		defer m.work.Done()
		f()
	}()
	return true
}

// close waits for the media goroutines (cancelled by then with the core's background context)
// and removes a spool directory the core made; no spool file is made after it.
func (m *mediaCore) close() {
	m.mu.Lock()
	m.closed = true
	dir, own := m.spoolDir, m.ownDir
	m.mu.Unlock()
	m.work.Wait()
	if own {
		_ = os.RemoveAll(dir)
	}
}

// takeSlot takes a transfer slot of a, without waiting: it fails with ErrTooManyTransfers when
// the account's or the bridge's are all taken. The returned function gives it back.
func (m *mediaCore) takeSlot(a *Account) (func(), error) {
	cfg := m.core.cfg.Media
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.transfers >= cfg.MaxTransfers || m.perAcct[a] >= cfg.MaxTransfersPerAccount {
		return nil, ErrTooManyTransfers
	}
	m.transfers++
	m.perAcct[a]++
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			m.transfers--
			if m.perAcct[a]--; m.perAcct[a] <= 0 {
				delete(m.perAcct, a)
			}
			m.mu.Unlock()
		})
	}, nil
}

// spoolFile is a file in transit in the spool directory (created with mode 0600). It holds one
// reference for its maker and one per frontend queue its File was handed to, and is deleted
// when the last is released.
type spoolFile struct {
	path string
	file *os.File // open for writing until finish
	head []byte   // the first bytes, for MIME detection

	mu   sync.Mutex
	refs int
}

func (m *mediaCore) newSpool(prefix string) (*spoolFile, error) {
	dir, err := m.dir()
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return nil, fmt.Errorf("failed to create spool file: %w", err)
	}
	return &spoolFile{path: f.Name(), file: f, refs: 1}, nil
}

// Write appends to the spool file, keeping its first 512 bytes for MIME detection.
func (s *spoolFile) Write(p []byte) (int, error) {
	if n := 512 - len(s.head); n > 0 {
		s.head = append(s.head, p[:min(n, len(p))]...)
	}
	return s.file.Write(p)
}

// finish closes the file for writing and checks it holds size bytes.
func (s *spoolFile) finish(size int64) error {
	st, err := s.file.Stat()
	if cerr := s.file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("failed to write spool file: %w", err)
	}
	if st.Size() != size {
		return fmt.Errorf("%w: got %d bytes of %d", msn.ErrTransferCanceled, st.Size(), size)
	}
	return nil
}

// mime detects the file's type from its content, then its name.
func (s *spoolFile) mime(name string) string {
	t := http.DetectContentType(s.head)
	if t == "application/octet-stream" || strings.HasPrefix(t, "text/plain") {
		if byExt := mime.TypeByExtension(strings.ToLower(filepath.Ext(name))); byExt != "" {
			return byExt
		}
	}
	return t
}

// open opens the spool file for reading.
func (s *spoolFile) open() (io.ReadCloser, error) { return os.Open(s.path) }

func (s *spoolFile) retain() {
	s.mu.Lock()
	s.refs++
	s.mu.Unlock()
}

// release drops a reference, deleting the file with the last one. nil is a no-op.
func (s *spoolFile) release() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.refs--
	last := s.refs == 0
	s.mu.Unlock()
	if last {
		_ = s.file.Close()
		_ = os.Remove(s.path)
	}
}

// releasable is an event holding a resource until it was delivered (File and its spool file).
type releasable interface{ release() }

// emitFileLocked emits a File backed by sp to every attached frontend except origin, and
// drops the caller's reference to sp: the file is deleted once every delivery returned.
func (a *Account) emitFileLocked(f File, sp *spoolFile, origin string) {
	f.spool = sp
	f.Open = sp.open
	for name, q := range a.queues {
		if origin != "" && name == origin {
			continue
		}
		sp.retain()
		if !q.push(f) {
			sp.release()
		}
	}
	sp.release()
}

// limitWriter fails once more than left bytes are written.
type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, errOverSize
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	return n, err
}

// maxFileName bounds a file name, in bytes.
const maxFileName = 255

// cleanFileName returns name without any path, control or format characters, invalid UTF-8 or
// surrounding space, at most maxFileName bytes.
func cleanFileName(name string) string {
	name = strings.ToValidUTF8(name, "")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	for len(name) > maxFileName {
		_, n := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-n]
	}
	if name == "." || name == ".." {
		return ""
	}
	return name
}

// receiveFile handles a contact's file offer: it declines what it cannot take (FileFailed) and
// otherwise spools the file and emits File. It runs on its own goroutine.
func (a *Account) receiveFile(offer fileOffer, e *msn.FileOffered, chat ChatID, senderName string) {
	cfg := a.core.cfg.Media
	name := cleanFileName(e.Name)
	if name == "" {
		name = "file"
	}
	from := NormalizeHandle(e.From)
	failed := func(reason SendFailure, err error) {
		a.core.metrics.mediaResult("file_in", string(reason))
		a.log.Info().Err(err).Str("contact", from).Int64("size", e.Size).Str("reason", string(reason)).Msg("Contact's file not received")
		a.mu.Lock()
		a.emitLocked(FileFailed{Chat: chat, Sender: from, SenderName: senderName, Name: name, Size: e.Size,
			Reason: reason, Err: err, Time: a.core.clock.Now()}, "")
		a.mu.Unlock()
	}
	decline := func(reason SendFailure, err error) {
		if offer != nil {
			if derr := offer.Decline(); derr != nil {
				a.log.Debug().Err(derr).Msg("Failed to decline a file offer")
			}
		}
		failed(reason, err)
	}
	switch {
	case offer == nil:
		failed(FailureOther, errors.New("the offer cannot be answered"))
		return
	case e.Size < 0:
		decline(FailureInvalid, fmt.Errorf("%w: negative file size %d", ErrInvalidArgument, e.Size))
		return
	case e.Size > cfg.MaxFileSize:
		decline(FailureTooLarge, fmt.Errorf("%w: %d bytes, at most %d", msn.ErrTransferTooLarge, e.Size, cfg.MaxFileSize))
		return
	}
	// Not an action: Stop does not wait for a contact's transfer, it cancels it.
	slot, err := a.core.media.takeSlot(a)
	if err != nil {
		decline(FailureRateLimited, err)
		return
	}
	defer slot()
	sp, err := a.core.media.newSpool("in-")
	if err != nil {
		decline(FailureOther, err)
		return
	}
	err = offer.Accept(a.core.bgCtx, &limitWriter{w: sp, left: e.Size}, nil)
	if err == nil {
		err = sp.finish(e.Size)
	}
	if err != nil {
		sp.release()
		failed(classifyTransfer(err).Reason, err)
		return
	}
	a.core.metrics.mediaResult("file_in", "received")
	a.mu.Lock()
	a.seq++
	t := a.core.clock.Now()
	a.emitFileLocked(File{ID: messageID(from, t, a.seq), Chat: chat, Sender: from, SenderName: senderName, Name: name,
		Size: e.Size, MIME: sp.mime(name), Time: t}, sp, "")
	a.mu.Unlock()
}

// fetchTimeout returns a context for one background fetch.
func (a *Account) fetchContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(a.core.bgCtx, a.core.cfg.Media.FetchTimeout)
}
