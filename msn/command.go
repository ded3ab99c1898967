package msn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

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
// A Reader returns Name and Args as substrings of one string holding the whole line: keeping
// any of them keeps the line. Code that stores a token for long (a contact's name) keeps a
// strings.Clone of it.
type Command struct {
	Name    string
	Args    []string
	Payload []byte
}

// noTrID lists the commands whose first argument is never a transaction id, whatever it looks
// like (R2M's switchboard session ids in RNG are all digits). docs/protocol.md §1.4.
var noTrID = map[string]bool{
	"NLN": true, "FLN": true, "UBX": true, "NOT": true, "RNG": true, "BPR": true, "QNG": true,
	"OUT": true, "JOI": true, "BYE": true, "IPG": true, "LSG": true, "LST": true, "PNG": true,
}

// TrID returns the command's transaction id and whether it has one. Commands that never carry one
// (NLN, RNG, JOI, …) report false; for the rest the first argument counts when it is all digits,
// which also tells a SYN-time "GTC A" apart from a reply "GTC 9 A". A server "MSG" has the sender
// handle there and reports false too.
func (c *Command) TrID() (uint32, bool) {
	if noTrID[c.Name] || len(c.Args) == 0 {
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

// PayloadRule tells a Reader whether a command line announces a payload. args is every token
// after the name, the length included.
type PayloadRule func(name string, args []string) bool

// ClientPayloads frames what a notification or switchboard server sends to a client
// (docs/protocol.md §1.3): MSG, UBX, NOT, GCF, IPG, and UUX only when it has a length.
func ClientPayloads(name string, args []string) bool {
	switch name {
	case "MSG", "UBX", "NOT", "IPG":
		return len(args) >= 1
	case "GCF", "UUX":
		return len(args) >= 2
	}
	return false
}

// ServerPayloads frames what a client sends to a server: UUX, QRY and MSG.
func ServerPayloads(name string, args []string) bool {
	switch name {
	case "UUX", "QRY", "MSG":
		return len(args) >= 2
	}
	return false
}

// Reader splits a byte stream into Commands. It is not safe for concurrent use.
type Reader struct {
	rule     PayloadRule
	maxLine  int
	maxBytes int
	buf      readBuffer
}

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

// ReadCommand reads the next command. Empty lines are skipped. Runs of spaces separate tokens and
// trailing spaces are ignored (Escargot's "LST N=a@b F=a 8 "). A line ended by a bare LF is
// accepted. It returns io.EOF at a clean end of stream, io.ErrUnexpectedEOF inside a command, and
// a wrapped ErrLineTooLong, ErrPayloadTooLarge or ErrBadPayloadSize when the stream cannot be
// framed any more.
func (r *Reader) ReadCommand() (*Command, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			return nil, err
		}
		cmd := parseLine(line)
		if cmd == nil {
			continue
		}
		if r.rule == nil || !r.rule(cmd.Name, cmd.Args) {
			return cmd, nil
		}
		last := cmd.Args[len(cmd.Args)-1]
		n, perr := strconv.Atoi(last)
		if perr != nil || n < 0 {
			return nil, fmt.Errorf("%w %q in %s", ErrBadPayloadSize, truncate(last, 32), cmd.Name)
		}
		if n > r.maxBytes {
			return nil, fmt.Errorf("%w: %s announces %d bytes (limit %d)", ErrPayloadTooLarge, cmd.Name, n, r.maxBytes)
		}
		cmd.Args = cmd.Args[:len(cmd.Args)-1]
		p, err := r.readPayload(n)
		if err != nil {
			return nil, fmt.Errorf("failed to read %s payload: %w", cmd.Name, err)
		}
		cmd.Payload = p
		return cmd, nil
	}
}

// payloadChunk is the most a Reader allocates for a payload before its bytes arrive: a peer
// that announces a large payload and sends nothing costs no more than this.
const payloadChunk = 4096

// readPayload reads exactly n bytes. Up to payloadChunk it allocates them at once (every
// payload real servers send); above, the buffer grows as the bytes come in.
func (r *Reader) readPayload(n int) ([]byte, error) {
	p := make([]byte, 0, min(n, payloadChunk))
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

// A Command from a Reader shares one allocation with room for its arguments: short lines
// (FLN, CHG, ACK, …) get three slots, the usual ones (LST, ILN, NLN, RNG) seven, and longer
// lines a separate Args slice.
type (
	commandBuf3 struct {
		cmd  Command
		args [3]string
	}
	commandBuf7 struct {
		cmd  Command
		args [7]string
	}
)

// parseLine splits a line into a Command, or returns nil for a blank line. It makes one copy of
// the line as a string, and the name and arguments are substrings of it: a token kept by the
// caller keeps its whole line alive, which is at most MaxLineLength bytes. The Command and up
// to seven arguments share one allocation.
func parseLine(line []byte) *Command {
	n := countTokens(line)
	if n == 0 {
		return nil
	}
	var cmd *Command
	switch nargs := n - 1; {
	case nargs <= 3:
		b := new(commandBuf3)
		b.cmd.Args = b.args[:nargs:nargs]
		cmd = &b.cmd
	case nargs <= 7:
		b := new(commandBuf7)
		b.cmd.Args = b.args[:nargs:nargs]
		cmd = &b.cmd
	default:
		cmd = &Command{Args: make([]string, nargs)}
	}
	s := string(line)
	i, start := -1, -1
	for j := 0; j <= len(s); j++ {
		if j < len(s) && !isSpace(s[j]) {
			if start < 0 {
				start = j
			}
			continue
		}
		if start < 0 {
			continue
		}
		if i < 0 {
			cmd.Name = s[start:j]
		} else {
			cmd.Args[i] = s[start:j]
		}
		i++
		start = -1
	}
	return cmd
}

// countTokens counts the runs of non-space bytes in line.
func countTokens(line []byte) int {
	n := 0
	inTok := false
	for _, b := range line {
		if isSpace(b) {
			inTok = false
		} else if !inTok {
			inTok = true
			n++
		}
	}
	return n
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' }

// readLine returns one line without its line end, never longer than maxLine.
func (r *Reader) readLine() ([]byte, error) {
	var buf []byte
	for {
		frag, err := r.buf.readSlice()
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
	cmd := parseLine(line)
	if cmd == nil {
		return nil
	}
	return append([]string{cmd.Name}, cmd.Args...)
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// truncate cuts remote text quoted in an error or a log line to at most n characters, never
// inside one.
func truncate(s string, n int) string { return text.Truncate(s, n) }
