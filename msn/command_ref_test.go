package msn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"testing"
)

// refReader is the command decoder Reader replaced: a string per line, tokens counted and
// then sliced from it, a Command per line sharing an allocation with up to seven arguments,
// and a payload read into its own slice. FuzzReaderDifferential holds Reader to its results, errors included.
type refReader struct {
	rule     func(name string, args []string) bool
	maxLine  int
	maxBytes int
	buf      readBuffer
}

func newRefReader(r io.Reader, rule PayloadRule) *refReader {
	rd := &refReader{
		rule:     func(name string, args []string) bool { least := rule(name); return least >= 0 && len(args) >= least },
		maxLine:  MaxLineLength,
		maxBytes: MaxPayloadSize,
	}
	rd.buf.init(r)
	return rd
}

func (r *refReader) ReadCommand() (*Command, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			return nil, err
		}
		cmd := refParseLine(line)
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

func (r *refReader) readPayload(n int) ([]byte, error) {
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

// refParseLine gives a Command and up to seven arguments one allocation, and the line's text
// another.
type (
	refCommandBuf3 struct {
		cmd  Command
		args [3]string
	}
	refCommandBuf7 struct {
		cmd  Command
		args [7]string
	}
)

func refParseLine(line []byte) *Command {
	n := refCountTokens(line)
	if n == 0 {
		return nil
	}
	var cmd *Command
	switch nargs := n - 1; {
	case nargs <= 3:
		b := new(refCommandBuf3)
		b.cmd.Args = b.args[:nargs:nargs]
		cmd = &b.cmd
	case nargs <= 7:
		b := new(refCommandBuf7)
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

func refCountTokens(line []byte) int {
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

func (r *refReader) readLine() ([]byte, error) {
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

// FuzzReaderDifferential frames arbitrary bytes with Reader and with refReader, under both
// payload rules, the default and small limits, and reads of a size taken from the input, and
// requires the same commands (payloads, nil or not, included) and the same error. It also
// checks that appending to a command's arguments or payload leaves the next commands intact,
// and that reading on changes neither the strings of a command nor its Clone.
func FuzzReaderDifferential(f *testing.F) {
	for _, l := range seedLines {
		f.Add(byte(0), []byte(l+"\r\n"))
	}
	for _, p := range seedPayloads {
		f.Add(byte(3), []byte(p.line+" "+itoa(len(p.payload))+"\r\n"+p.payload))
	}
	f.Add(byte(7), seedStream()[:400])
	f.Add(byte(1), []byte("\t LST\tN=a@b  F=x\t8 \r\n  \r\n\nMSG a b +3\r\nabcUUX 1 -0\r\nMSG a b -1\r\n"))
	f.Add(byte(2), []byte("MSG a b 99999999999999999999\r\nUBX a 5\r\nab"))
	f.Add(byte(0), []byte("QRY 1 a 2\r\nxyMSG 1 N 0\r\nUUX 2\r\nNLN NLN a@b a 0 \t\t\r\n"))
	f.Fuzz(func(t *testing.T, chunk byte, data []byte) {
		if len(data) > maxHandleNSInput {
			return
		}
		for _, rule := range []PayloadRule{ClientPayloads, ServerPayloads} {
			for _, lim := range [][2]int{{MaxLineLength, MaxPayloadSize}, {24, 64}} {
				n := int(chunk)%64 + 1
				if chunk >= 192 {
					n = len(data) + 1
				}
				got := NewReader(&chunkReader{data: data, n: n, err: io.EOF}, rule)
				got.SetLimits(lim[0], lim[1])
				want := newRefReader(&chunkReader{data: data, n: n, err: io.EOF}, rule)
				want.maxLine, want.maxBytes = lim[0], lim[1]
				var prev *Command
				var prevWant *Command
				for i := range 1000 {
					g, gerr := got.ReadCommand()
					w, werr := want.ReadCommand()
					if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
						t.Fatalf("command %d: error %v, want %v", i, gerr, werr)
					}
					if gerr != nil {
						break
					}
					if g.Name != w.Name || !slices.Equal(g.Args, w.Args) || !bytes.Equal(g.Payload, w.Payload) || (g.Payload == nil) != (w.Payload == nil) {
						t.Fatalf("command %d = %q %q %q, want %q %q %q", i, g.Name, g.Args, g.Payload, w.Name, w.Args, w.Payload)
					}
					// prev is a Clone of the command before, sharing its strings: reading on
					// must change neither them nor the Clone.
					if prev != nil && (prev.Name != prevWant.Name || !slices.Equal(prev.Args, prevWant.Args) || !bytes.Equal(prev.Payload, prevWant.Payload)) {
						t.Fatalf("command %d changed after the next was read: %q, want %q", i-1, prev.String(), prevWant.String())
					}
					// A caller appending to what it was given must not write into what follows.
					_ = append(g.Args, "appended", "appended")
					_ = append(g.Payload, "appended"...)
					prev, prevWant = g.Clone(), w
				}
			}
		}
	})
}
