package msn

import (
	"bytes"
	"errors"
	"io"
	"sync"
)

// A Reader buffers what it reads from its source like a bufio.Reader, but does not keep 4 KiB
// per connection: an idle connection blocks reading into a small buffer of the Reader's own,
// and a read that fills it (a burst: the SYN, the ILN flood, a long line or payload) moves the
// buffered bytes to a large one from a pool, which goes back to the pool once its bytes are
// consumed and the last read did not fill it (the socket was drained).
const (
	smallReadBuffer = 256
	largeReadBuffer = 4096
	// maxEmptyReads is how many reads returning nothing a Reader tolerates in a row before
	// failing with io.ErrNoProgress, as bufio does.
	maxEmptyReads = 100
)

var largeReadBuffers = sync.Pool{New: func() any { b := make([]byte, largeReadBuffer); return &b }}

// errBufferFull is returned by readSlice with the whole (large) buffer when it holds no
// delimiter.
var errBufferFull = errors.New("buffer full")

// readBuffer is the buffering of a Reader. It is not safe for concurrent use.
type readBuffer struct {
	src   io.Reader
	buf   []byte  // small[:] or *large; buf[r:w] is buffered
	large *[]byte // the pooled buffer buf is, nil while buf is small
	r, w  int
	full  bool  // the last read filled buf: more is probably waiting
	err   error // from the last read, returned once buf[r:w] is consumed
	small [smallReadBuffer]byte
}

func (b *readBuffer) init(src io.Reader) {
	b.src = src
	b.buf = b.small[:]
}

// readErr returns the pending read error and clears it.
func (b *readBuffer) readErr() error {
	err := b.err
	b.err = nil
	return err
}

// fill reads once more into the buffer (after moving the buffered bytes to its start), first
// switching buffers: to the large one when the small one is full or the last read filled it,
// back to the small one when nothing is buffered and the last read did not fill the large one.
func (b *readBuffer) fill() {
	if b.r == b.w {
		b.r, b.w = 0, 0
		if b.large != nil && !b.full {
			largeReadBuffers.Put(b.large)
			b.large, b.buf = nil, b.small[:]
		}
	} else if b.r > 0 {
		b.w = copy(b.buf, b.buf[b.r:b.w])
		b.r = 0
	}
	if b.large == nil && (b.full || b.w == len(b.buf)) {
		b.large = largeReadBuffers.Get().(*[]byte)
		b.w = copy(*b.large, b.buf[:b.w])
		b.buf = *b.large
	}
	for range maxEmptyReads {
		n, err := b.src.Read(b.buf[b.w:])
		if n < 0 || n > len(b.buf)-b.w {
			n, err = 0, errors.New("invalid read count")
		}
		room := len(b.buf) - b.w
		b.w += n
		b.full = n == room
		if err != nil {
			b.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	b.err = io.ErrNoProgress
}

// readSlice is bufio.Reader.ReadSlice('\n') with errBufferFull for ErrBufferFull: it returns
// the bytes up to and including the next '\n', valid until the next call. When the buffer
// fills without one it returns the whole buffer and errBufferFull; on a read error, what was
// buffered and the error.
func (b *readBuffer) readSlice() ([]byte, error) {
	s := 0 // bytes already searched
	for {
		if i := bytes.IndexByte(b.buf[b.r+s:b.w], '\n'); i >= 0 {
			line := b.buf[b.r : b.r+s+i+1]
			b.r += s + i + 1
			return line, nil
		}
		if b.err != nil {
			line := b.buf[b.r:b.w]
			b.r = b.w
			return line, b.readErr()
		}
		if b.large != nil && b.r == 0 && b.w == len(b.buf) {
			b.r = b.w
			return b.buf, errBufferFull
		}
		s = b.w - b.r
		b.fill()
	}
}

// peek returns the next n bytes, n at most largeReadBuffer, without consuming them; they are
// valid until the next call. It reads until they are all buffered, and returns io.ErrUnexpectedEOF
// for an end of stream before them, or the read error.
func (b *readBuffer) peek(n int) ([]byte, error) {
	for b.w-b.r < n {
		if b.err != nil {
			err := b.readErr()
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		b.fill()
	}
	return b.buf[b.r : b.r+n], nil
}

// read is bufio.Reader.Read: it returns buffered bytes, or reads once, directly into p when p
// is at least as large as the large buffer.
func (b *readBuffer) read(p []byte) (int, error) {
	if len(p) == 0 {
		if b.r < b.w {
			return 0, nil
		}
		return 0, b.readErr()
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		if len(p) >= largeReadBuffer {
			n, err := b.src.Read(p)
			if n < 0 || n > len(p) {
				return 0, errors.New("invalid read count")
			}
			return n, err
		}
		b.fill()
		if b.r == b.w {
			return 0, b.readErr()
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}
