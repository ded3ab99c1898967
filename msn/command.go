package msn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strconv"
	"unsafe"

	"github.com/msn-bridge/msn-bridge/internal/text"
)

// Limits on what a Reader accepts. docs/protocol.md §1.3 asks for at least 8 KiB lines and 1 MiB
// payloads; anything above is treated as a broken or hostile peer.
const (
	MaxLineLength  = 16 * 1024
	MaxPayloadSize = 1 << 20
)

// Framing errors. They are fatal for the connection they came from: after one of them the byte
// stream can no longer be split into commands reliably.
var (
	ErrLineTooLong     = errors.New("command line too long")
	ErrPayloadTooLarge = errors.New("payload too large")
	ErrBadPayloadSize  = errors.New("invalid payload length")
)

// Command is one MSNP command as it travels on the wire: a name (three upper-case letters or a
// three-digit error code), its space-separated arguments and, for payload commands, the raw payload.
//
// Args holds every token after the name, the transaction id included when the command has one,
// and never the payload length: a Reader strips it, Marshal writes it from len(Payload). A nil
// Payload means "not a payload command"; an empty non-nil one is a payload of zero bytes
// (Escargot's "UUX 8 0").
//
// A Command from a Reader is the Reader's own, valid until its next ReadCommand (see Reader);
// Clone makes one that stays. Its strings may be kept: they share their memory with the lines
// read in the same burst, so keeping any token keeps them all (a few KiB), and code that stores
// a token for long (a contact's name) keeps a strings.Clone of it. Args and Payload have no
// spare capacity, so appending to them never reaches another command's memory.
type Command struct {
	Name    string
	Args    []string
	Payload []byte
}

// noTrID reports whether name is a command whose first argument is never a transaction id,
// whatever it looks like (R2M's switchboard session ids in RNG are all digits). A switch, as
// the reader goroutine asks it of every command. docs/protocol.md §1.4.
func noTrID(name string) bool {
	switch name {
	case "NLN", "FLN", "UBX", "NOT", "RNG", "BPR", "QNG", "OUT", "JOI", "BYE", "IPG", "LSG", "LST", "PNG":
		return true
	}
	return false
}

// TrID returns the command's transaction id and whether it has one. Commands that never carry one
// (NLN, RNG, JOI, …) report false; for the rest the first argument counts when it is all digits,
// which also tells a SYN-time "GTC A" apart from a reply "GTC 9 A". A server "MSG" has the sender
// handle there and reports false too.
func (c *Command) TrID() (uint32, bool) {
	if noTrID(c.Name) || len(c.Args) == 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(c.Args[0], 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(n), true
}

// IsError reports whether the command is a numeric error reply ("911 7").
func (c *Command) IsError() bool {
	return len(c.Name) == 3 && isDigit(c.Name[0]) && isDigit(c.Name[1]) && isDigit(c.Name[2])
}

// Arg returns argument i, or "" when there are fewer arguments.
func (c *Command) Arg(i int) string {
	if i < 0 || i >= len(c.Args) {
		return ""
	}
	return c.Args[i]
}

// String renders the command line without its payload, for logs and errors. It carries no payload
// bytes, but callers must still keep lines with secrets (USR TWN S) out of logs.
func (c *Command) String() string {
	b := c.AppendLine(nil)
	return string(bytes.TrimSuffix(b, []byte("\r\n")))
}

// AppendLine appends the command line, with the payload length when Payload is non-nil, and CRLF.
func (c *Command) AppendLine(dst []byte) []byte {
	dst = append(dst, c.Name...)
	for _, a := range c.Args {
		dst = append(dst, ' ')
		dst = append(dst, a...)
	}
	if c.Payload != nil {
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(len(c.Payload)), 10)
	}
	return append(dst, '\r', '\n')
}

// Marshal returns the command's wire form: the line, then the payload with no trailing CRLF.
func (c *Command) Marshal() []byte {
	return c.AppendTo(make([]byte, 0, 64+len(c.Payload)))
}

// AppendTo appends the command's wire form to dst.
func (c *Command) AppendTo(dst []byte) []byte {
	dst = c.AppendLine(dst)
	return append(dst, c.Payload...)
}

// PayloadRule tells a Reader which command lines announce a payload: for a command name, the
// fewest tokens after the name with which that command carries one (the last of them its
// length), or -1 when it never does. A Reader asks it before it looks at the rest of the line,
// so that most lines are framed without counting their tokens. name is valid only during the
// call.
type PayloadRule func(name string) (minArgs int)

// ClientPayloads frames what a notification or switchboard server sends to a client
// (docs/protocol.md §1.3): MSG, UBX, NOT, GCF, IPG, and UUX only when it has a length.
func ClientPayloads(name string) int {
	switch name {
	case "MSG", "UBX", "NOT", "IPG":
		return 1
	case "GCF", "UUX":
		return 2
	}
	return -1
}

// ServerPayloads frames what a client sends to a server: UUX, QRY and MSG.
func ServerPayloads(name string) int {
	switch name {
	case "UUX", "QRY", "MSG":
		return 2
	}
	return -1
}

// Reader splits a byte stream into Commands. It is not safe for concurrent use.
//
// ReadCommand returns the same Command each time, overwritten by the next call, as
// bufio.Scanner does with its token: a command costs no allocation of its own, only its share
// of the burst's text (below). The Command, its
// Args slice and its Payload bytes are valid until the next call; the strings in it (Name and
// each argument) are immutable as any Go string and may be kept. Code that keeps more than the
// strings past the next call (a reply handed to another goroutine, a test collecting commands)
// keeps a Command.Clone, which copies the slice and the payload.
//
// The arguments of the lines of one burst (what a single read of the connection brought: the
// SYN, the ILN flood) are copied one after the other into one buffer, the text, sized by what
// is still buffered, and the strings are sliced from it; the Reader never writes that buffer
// again. A known command's name is a constant and is not copied. A token kept for
// long therefore keeps its neighbours' memory too (a few KiB at most); code that stores a token
// keeps a strings.Clone of it. A payload is left in the read buffer, up to that buffer's size,
// and copied only by Clone or by whoever parses it (ParseMIME, parseUBX copy what they keep).
// When the read buffer is drained the Reader lets go of the lines' buffer, and before it waits
// for more bytes it clears its Command, so that an idle connection holds nothing it read.
type Reader struct {
	rule     PayloadRule
	maxLine  int
	maxBytes int
	buf      readBuffer

	cmd   Command                // what ReadCommand returns
	args  [inlineArgs - 1]string // cmd.Args when they fit
	nargs int                    // how many of args are set
	// text holds the current burst's lines; text[:used] is written once and never again, so
	// that strings of it are immutable as Go requires.
	text []byte
	used int
}

// inlineArgs is how many tokens (the name included) a Reader keeps in itself: enough for
// every command of docs/protocol.md but a long LST or a client-capability MSG; a line with more
// gets a slice of its own.
const inlineArgs = 8

// NewReader returns a Reader that frames payloads with rule and the default limits.
func NewReader(r io.Reader, rule PayloadRule) *Reader {
	rd := &Reader{rule: rule, maxLine: MaxLineLength, maxBytes: MaxPayloadSize}
	rd.buf.init(r)
	return rd
}

// SetLimits changes the longest line and the largest payload the Reader accepts.
func (r *Reader) SetLimits(maxLine, maxPayload int) {
	r.maxLine, r.maxBytes = maxLine, maxPayload
}

// ReadCommand reads the next command. The Command is valid until the next call (see Reader).
// Empty lines are skipped. Runs of spaces separate tokens and trailing spaces are ignored
// (Escargot's "LST N=a@b F=a 8 "). A line ended by a bare LF is accepted. It returns io.EOF at
// a clean end of stream, io.ErrUnexpectedEOF inside a command, and a wrapped ErrLineTooLong,
// ErrPayloadTooLarge or ErrBadPayloadSize when the stream cannot be framed any more.
func (r *Reader) ReadCommand() (*Command, error) {
	if r.buf.r == r.buf.w {
		r.clearCommand() // the read may block for long
	}
	var f frame
	line, name, err := r.readFrame(&f)
	if err != nil {
		r.release()
		return nil, err
	}
	cmd := r.newCommand(line, name, &f)
	if f.size >= 0 {
		p, err := r.readPayload(f.size)
		if err != nil {
			err = fmt.Errorf("failed to read %s payload: %w", cmd.Name, err)
			r.release() // clears cmd
			return nil, err
		}
		cmd.Payload = p
	} else if cmd.Payload != nil {
		cmd.Payload = nil
	}
	if r.buf.r == r.buf.w {
		r.text, r.used = nil, 0
	}
	return cmd, nil
}

// Clone returns a copy of c that stays valid whatever the Reader it came from reads next: a
// Command, an argument slice and a payload of its own. The strings are shared.
func (c *Command) Clone() *Command {
	return &Command{Name: c.Name, Args: slices.Clip(slices.Clone(c.Args)), Payload: bytes.Clone(c.Payload)}
}

// frame is what framing learns of a line beyond its bytes. It holds no pointer, so that
// filling it costs no write barrier.
type frame struct {
	size int // the announced payload length, or -1 for none
	ntok int // how many tokens the line has, the payload length included
	// bounds holds where the first inlineArgs tokens of the line start and end.
	bounds [2 * inlineArgs]int32
}

// readFrame reads the next non-blank line, without its line end, and fills f with where its
// tokens are and, when the rule says it announces a payload, checks the length against the
// limits; the payload itself is left in the stream. The line aliases the read buffer until the
// next read. name is the line's first token as one of commandNames or an error code, or ""
// (it is looked up only to ask the rule). It does not allocate for a line that fits the read
// buffer and names a known command or an error code.
func (r *Reader) readFrame(f *frame) (line []byte, name string, err error) {
	for {
		line, err = r.readLine()
		if err != nil {
			return nil, "", err
		}
		ntok := tokenBounds(line, f.bounds[:])
		if ntok == 0 {
			continue // blank
		}
		f.size, f.ntok = -1, ntok
		if r.rule == nil || ntok == 1 {
			return line, "", nil
		}
		nameb := line[f.bounds[0]:f.bounds[1]]
		name = knownName(nameb)
		asked := name
		if asked == "" {
			asked = string(nameb)
		}
		if least := r.rule(asked); least < 0 || ntok-1 < least {
			return line, name, nil
		}
		var last []byte
		if ntok <= inlineArgs {
			last = line[f.bounds[2*ntok-2]:f.bounds[2*ntok-1]]
		} else {
			last = lastToken(line)
		}
		n, ok := parseSize(last)
		if !ok {
			return nil, "", fmt.Errorf("%w %q in %s", ErrBadPayloadSize, truncate(string(last), 32), asked)
		}
		if n > r.maxBytes {
			return nil, "", fmt.Errorf("%w: %s announces %d bytes (limit %d)", ErrPayloadTooLarge, asked, n, r.maxBytes)
		}
		f.size = n
		return line, name, nil
	}
}

// payloadChunk is the most a Reader allocates for a payload before its bytes arrive: a peer
// that announces a large payload and sends nothing costs no more than this.
const payloadChunk = 4096

// readPayload reads exactly n bytes. Up to the size of the read buffer they are waited for
// there and returned in place, valid until the next read; above, they get a slice of their own
// that grows as the bytes come in, by at most payloadChunk ahead of them.
func (r *Reader) readPayload(n int) ([]byte, error) {
	if n <= largeReadBuffer {
		v, err := r.buf.peek(n)
		if err != nil {
			return nil, err
		}
		r.buf.r += n
		return v[:n:n], nil
	}
	p := make([]byte, 0, payloadChunk)
	for len(p) < n {
		if len(p) == cap(p) {
			p = slices.Grow(p, min(n-len(p), cap(p)))
		}
		k, err := r.buf.read(p[len(p):min(n, cap(p))])
		p = p[:len(p)+k]
		if err != nil && len(p) < n {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return p, nil
}

// newCommand copies the tokens of line into the burst's text and returns the Reader's Command
// with them sliced from the copy, the payload length left out. name, when not "", is the first
// token as a constant: then only the arguments are copied, and the collector has one pointer
// into the text less to follow.
func (r *Reader) newCommand(line []byte, name string, f *frame) *Command {
	n := f.ntok
	if f.size >= 0 {
		n--
	}
	cmd := &r.cmd
	if n > inlineArgs {
		s := r.keep(line, f.size)
		toks := make([]string, f.ntok)
		splitInto(toks, s)
		cmd.Name, cmd.Args = toks[0], toks[1:n:n]
		return cmd
	}
	// The copy runs from the first token copied to the end of the last one kept.
	from := 0
	if name != "" {
		from = 2
	}
	if from < 2*n {
		b := &f.bounds
		start := b[from]
		s := r.keep(line[start:b[2*n-1]], f.size)
		if name == "" {
			name = s[:b[1]-start]
		}
		args := r.args[: n-1 : n-1]
		for i := range args {
			args[i] = s[b[2*i+2]-start : b[2*i+3]-start]
		}
		r.nargs = max(r.nargs, n-1)
		cmd.Args = args
	} else {
		cmd.Args = r.args[:0:0]
	}
	cmd.Name = name
	return cmd
}

// keep copies b into the burst's text and returns the copy as a string. The text is
// replaced, not reused, when b does not fit: a new one has room for what is still buffered,
// the rest of the burst, less the payload that follows b (payload bytes, or -1), which is not
// copied: a switchboard message costs a text the size of its arguments, not of its body.
func (r *Reader) keep(b []byte, payload int) string {
	if len(r.text)-r.used < len(b) {
		r.text, r.used = make([]byte, len(b)+max(0, r.buf.w-r.buf.r-payload)), 0
	}
	k := r.used
	r.used += copy(r.text[k:], b)
	return unsafe.String(&r.text[k], len(b))
}

// clearCommand empties the Command and the argument slots, so that they keep no burst alive.
func (r *Reader) clearCommand() {
	r.cmd = Command{}
	clear(r.args[:r.nargs])
	r.nargs = 0
}

// release lets go of the burst's text and of the Command.
func (r *Reader) release() {
	r.text, r.used = nil, 0
	r.clearCommand()
}

// Token scanning works on eight bytes at a time: hiBits marks, in the high bit of each byte,
// where a word holds a given byte value.
const (
	lo7    = 0x7f7f7f7f7f7f7f7f
	hi1    = 0x8080808080808080
	spaces = 0x2020202020202020
	tabs8  = 0x0909090909090909
)

// zeroBytes returns the high bit of each byte of x that is zero, exactly.
func zeroBytes(x uint64) uint64 { return ^((x & lo7) + lo7 | x | lo7) }

// countTokens counts the runs of bytes other than space and tab in line, eight bytes at a
// time.
func countTokens(line []byte) int {
	n := 0
	if len(line) < 8 {
		wasSep := true
		for _, c := range line {
			sep := isSpace(c)
			if wasSep && !sep {
				n++
			}
			wasSep = sep
		}
		return n
	}
	prevSep := uint64(0x80) // the high bit of a separator before the word
	i := 0
	for ; i+8 <= len(line); i += 8 {
		sep := separators(binary.LittleEndian.Uint64(line[i:]))
		// A token starts at a byte that is no separator, after one that is.
		n += bits.OnesCount64(^sep & hi1 & (sep<<8 | prevSep))
		prevSep = sep >> 56
	}
	if i < len(line) {
		// The last eight bytes, of which the first 8-(len-i) were counted already.
		done := uint(8 - (len(line) - i))
		sep := separators(binary.LittleEndian.Uint64(line[len(line)-8:]))
		n += bits.OnesCount64((^sep & hi1 & (sep<<8 | 0x80)) >> (8 * done))
	}
	return n
}

// separators returns the high bit of each byte of w that is a space or a tab.
func separators(w uint64) uint64 { return zeroBytes(w^spaces) | zeroBytes(w^tabs8) }

// tokenBounds writes the start and end offsets of the tokens of line into b, one pair per
// token, and returns how many tokens line has; those that do not fit are counted and dropped.
// It works on 64 bytes at a time: a mask of the bytes that are no separator, whose changes are
// the tokens' starts and ends, taken two at a time.
func tokenBounds(line []byte, b []int32) int {
	k := 0             // tokens found
	start := -1        // where a token that runs past the last chunk started
	carry := uint64(0) // 1 when the byte before the chunk is inside a token
	for base := 0; base < len(line); base += 64 {
		// tok's bit i is set when chunk[i] is no separator. Eight bytes at a time, the last
		// eight again when the length is not a multiple of eight.
		chunk := line[base:min(base+64, len(line))]
		var tok uint64
		if len(chunk) >= 8 {
			i := 0
			for ; i+8 <= len(chunk); i += 8 {
				tok |= tokenBits(binary.LittleEndian.Uint64(chunk[i:])) << (i & 63)
			}
			if rest := len(chunk) - i; rest > 0 {
				last := tokenBits(binary.LittleEndian.Uint64(chunk[len(chunk)-8:]))
				tok |= last >> (8 - rest) << (i & 63)
			}
		} else {
			for i, c := range chunk {
				if !isSpace(c) {
					tok |= 1 << i
				}
			}
		}
		// A start is a token byte after a separator, an end a separator (or the end of a short
		// last chunk) after a token byte; they alternate, a start first.
		marks := tok ^ (tok<<1 | carry)
		carry = tok >> 63
		if start >= 0 {
			if marks == 0 {
				continue // the token spans this whole chunk
			}
			k = putBounds(b, k, start, base+bits.TrailingZeros64(marks))
			marks &= marks - 1
			start = -1
		}
		for marks != 0 {
			from := base + bits.TrailingZeros64(marks)
			marks &= marks - 1
			if marks == 0 { // it runs into the next chunk
				start = from
				break
			}
			k = putBounds(b, k, from, base+bits.TrailingZeros64(marks))
			marks &= marks - 1
		}
	}
	if start >= 0 {
		k = putBounds(b, k, start, len(line))
	}
	return k
}

// putBounds stores token k's offsets in b if they fit and returns k+1.
func putBounds(b []int32, k, start, end int) int {
	if 2*k+1 < len(b) {
		b[2*k], b[2*k+1] = int32(start), int32(end)
	}
	return k + 1
}

// tokenBits returns a mask of eight bits for the eight bytes of w: bit i is set when byte i is
// neither a space nor a tab. The high bit of each byte of (y&lo7)+lo7 | y is set when that byte
// of y is not zero (no carry crosses bytes); the multiplication gathers the high bits of the
// eight bytes into the top byte.
func tokenBits(w uint64) uint64 {
	s, t := w^spaces, w^tabs8
	nonSep := ((s & lo7) + lo7 | s) & ((t & lo7) + lo7 | t) & hi1
	return nonSep * (0x0102040810204080 >> 7) >> 56
}

// splitInto fills toks with the tokens of s and returns how many s has; those that do not fit
// are counted and dropped. It finds token boundaries eight bytes at a time, as countTokens
// counts them.
func splitInto(toks []string, s string) int {
	k, start := 0, 0
	open := false // inside a token
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		sep := separators(w)
		tok := ^sep & hi1
		prevSep := uint64(0x80) // the high bit of a separator before the word
		if open {
			prevSep = 0
		}
		// Boundaries: a token byte after a separator starts a token, a separator after a
		// token byte ends one. They alternate, a start first.
		for marks := tok&(sep<<8|prevSep) | sep&(tok<<8|(prevSep^0x80)); marks != 0; marks &= marks - 1 {
			at := i + bits.TrailingZeros64(marks)/8
			if !open {
				start = at
			} else {
				if k < len(toks) {
					toks[k] = s[start:at]
				}
				k++
			}
			open = !open
		}
	}
	for ; i < len(s); i++ {
		sep := isSpace(s[i])
		if !sep && !open {
			start = i
		} else if sep && open {
			if k < len(toks) {
				toks[k] = s[start:i]
			}
			k++
		}
		open = !sep
	}
	if open {
		if k < len(toks) {
			toks[k] = s[start:]
		}
		k++
	}
	return k
}

// lastToken returns the last token of a line that has one.
func lastToken(line []byte) []byte {
	j := len(line)
	for j > 0 && isSpace(line[j-1]) {
		j--
	}
	i := j
	for i > 0 && !isSpace(line[i-1]) {
		i--
	}
	return line[i:j]
}

// parseSize parses a payload length as strconv.Atoi does, and reports whether it is a valid one
// (a number, not negative: "+5" and "-0" are).
func parseSize(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 18 {
		n, err := strconv.Atoi(string(b))
		return n, err == nil && n >= 0
	}
	s, neg := b, false
	if s[0] == '+' || s[0] == '-' {
		s, neg = s[1:], s[0] == '-'
		if len(s) == 0 {
			return 0, false
		}
	}
	n := 0
	for _, c := range s {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, !neg || n == 0
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' }

// readLine returns one line without its line end, never longer than maxLine.
func (r *Reader) readLine() ([]byte, error) {
	frag, err := r.buf.readSlice()
	if err != nil || len(frag) > r.maxLine+2 {
		return r.readLineSlow(frag, err)
	}
	frag = frag[:len(frag)-1]
	if n := len(frag); n > 0 && frag[n-1] == '\r' {
		frag = frag[:n-1]
	}
	return frag, nil
}

// readLineSlow is readLine for a line that is too long, spans more than the read buffer or
// meets a read error: frag and err are what readSlice returned first.
func (r *Reader) readLineSlow(frag []byte, err error) ([]byte, error) {
	var buf []byte
	for first := true; ; first = false {
		if !first {
			frag, err = r.buf.readSlice()
		}
		if len(buf)+len(frag) > r.maxLine+2 {
			return nil, fmt.Errorf("%w (over %d bytes)", ErrLineTooLong, r.maxLine)
		}
		switch {
		case err == nil:
			if buf == nil {
				buf = frag
			} else {
				buf = append(buf, frag...)
			}
			buf = buf[:len(buf)-1]
			if n := len(buf); n > 0 && buf[n-1] == '\r' {
				buf = buf[:n-1]
			}
			return buf, nil
		case err == errBufferFull:
			buf = append(buf, frag...)
		default:
			if errors.Is(err, io.EOF) && len(buf)+len(frag) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// splitTokens splits on runs of spaces (and tabs), dropping empty tokens.
func splitTokens(line []byte) []string {
	n := countTokens(line)
	if n == 0 {
		return nil
	}
	toks := make([]string, n)
	splitInto(toks, string(line))
	return toks
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// truncate cuts remote text quoted in an error or a log line to at most n characters, never
// inside one.
func truncate(s string, n int) string { return text.Truncate(s, n) }

// commandNames are the commands a Reader names without allocating when it asks its
// PayloadRule about them: every command of docs/protocol.md either side sends.
var commandNames = [...]string{
	"ACK", "ADC", "ADG", "ADL", "ANS", "BLP", "BPR", "BYE", "CAL", "CHG", "CHL", "CVR", "FLN",
	"FQY", "GCF", "GTC", "ILN", "IPG", "IRO", "JOI", "LSG", "LST", "MSG", "NAK", "NLN", "NOT",
	"OUT", "PNG", "PRP", "QNG", "QRY", "REG", "REM", "RMG", "RML", "RNG", "SBP", "SBS", "SDC",
	"SYN", "UBN", "UBX", "URL", "USR", "UUN", "UUX", "VER", "XFR",
}

// nameTable is commandNames as an open-addressed table of nameTableSize slots, indexed by
// nameHash.
var (
	nameTable [nameTableSize]string
	nameKeys  [nameTableSize]uint32
	nameMult  uint32
)

const nameTableBits = 8
const nameTableSize = 1 << nameTableBits

func nameKey(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }

func nameHash(k uint32) uint32 { return (k * nameMult) >> (32 - nameTableBits) }

// init picks the first odd multiplier that gives every name a slot of its own.
func init() {
	for m := uint32(0x9e3779b1); ; m += 2 {
		nameMult = m
		clear(nameTable[:])
		ok := true
		for _, n := range commandNames {
			h := nameHash(nameKey([]byte(n)))
			if nameTable[h] != "" {
				ok = false
				break
			}
			nameTable[h], nameKeys[h] = n, nameKey([]byte(n))
		}
		if ok {
			return
		}
	}
}

// errorCodes holds every three-digit number, "000" to "999", one after the other.
var errorCodes = func() string {
	b := make([]byte, 0, 3000)
	for i := range 1000 {
		b = append(b, byte('0'+i/100), byte('0'+i/10%10), byte('0'+i%10))
	}
	return string(b)
}()

// knownName returns b as one of commandNames or a three-digit error code, or "" when it is
// none of them.
func knownName(b []byte) string {
	if len(b) != 3 {
		return ""
	}
	if isDigit(b[0]) && isDigit(b[1]) && isDigit(b[2]) {
		i := 3 * (int(b[0]-'0')*100 + int(b[1]-'0')*10 + int(b[2]-'0'))
		return errorCodes[i : i+3]
	}
	k := nameKey(b)
	h := nameHash(k)
	if nameKeys[h] != k {
		return ""
	}
	return nameTable[h]
}
