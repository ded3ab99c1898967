package msn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadLargePayload reads payloads around and above payloadChunk, whole and cut short,
// through readers that return few bytes at a time.
func TestReadLargePayload(t *testing.T) {
	for _, n := range []int{0, 1, payloadChunk - 1, payloadChunk, payloadChunk + 1, 3*payloadChunk + 7, MaxPayloadSize} {
		payload := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
		wire := (&Command{Name: "MSG", Args: []string{"a@b", "A"}, Payload: payload}).Marshal()
		for name, r := range map[string]io.Reader{
			"whole": bytes.NewReader(wire),
			"half":  iotest.HalfReader(bytes.NewReader(wire)),
			"data":  iotest.DataErrReader(bytes.NewReader(wire)),
		} {
			cmd, err := NewReader(r, ClientPayloads).ReadCommand()
			if err != nil {
				t.Errorf("%d bytes, %s: %v", n, name, err)
			} else if !bytes.Equal(cmd.Payload, payload) || cmd.Payload == nil {
				t.Errorf("%d bytes, %s: got %d bytes", n, name, len(cmd.Payload))
			}
		}
		if n == 0 {
			continue
		}
		_, err := NewReader(bytes.NewReader(wire[:len(wire)-1]), ClientPayloads).ReadCommand()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%d bytes cut short: %v, want io.ErrUnexpectedEOF", n, err)
		}
	}
}

// A burst of commands costs one allocation, however the payloads among them are sized (up to
// the read buffer), and framing it alone costs none; a command that arrives alone costs one.
func TestReaderAllocations(t *testing.T) {
	data := bytes.Repeat(seedStream(), 20)
	cmds := 0
	for r := NewReader(bytes.NewReader(data), ClientPayloads); ; cmds++ {
		if _, err := r.ReadCommand(); err != nil {
			break
		}
	}
	src := bytes.NewReader(nil)
	r := NewReader(src, ClientPayloads)
	decode := testing.AllocsPerRun(20, func() {
		src.Reset(data)
		r.buf.init(src)
		for {
			if _, err := r.ReadCommand(); err != nil {
				return
			}
		}
	})
	// The source gives the whole stream in reads of 4 KiB: one buffer per read, and a few
	// more where a line or payload straddles two reads.
	if bursts := float64(len(data)/largeReadBuffer + 1); decode > 2*bursts {
		t.Errorf("decoding %d commands in %.0f reads: %.0f allocations, want at most %.0f", cmds, bursts, decode, 2*bursts)
	}
	frame := testing.AllocsPerRun(20, func() {
		src.Reset(data)
		r.buf.init(src)
		for {
			var f frame
			if _, _, err := r.readFrame(&f); err != nil {
				return
			}
			if f.size >= 0 {
				if _, err := r.buf.peek(f.size); err != nil {
					return
				}
				r.buf.r += f.size
			}
		}
	})
	if frame != 0 {
		t.Errorf("framing a burst: %.0f allocations, want none", frame)
	}
	line := []byte("ILN 7 NLN bob@example.com Bob 1342177280 %3Cmsnobj%2F%3E\r\n")
	alone := testing.AllocsPerRun(20, func() {
		src.Reset(line)
		r.buf.init(src)
		if _, err := r.ReadCommand(); err != nil {
			t.Fatal(err)
		}
	})
	if alone > 1 {
		t.Errorf("a command alone: %.0f allocations, want at most 1", alone)
	}
}

// Once its read buffer is drained a Reader holds none of the memory its commands were copied
// into, and when it waits for more bytes its Command is empty too, so an idle connection costs
// no more than its buffers.
func TestReaderReleasesSlabsWhenDrained(t *testing.T) {
	data := bytes.Repeat(seedStream(), 3)
	r := NewReader(&chunkReader{data: data, n: len(data), err: errors.New("blocked")}, ClientPayloads)
	for {
		if _, err := r.ReadCommand(); err != nil {
			break
		}
		if r.buf.r == r.buf.w && r.text != nil {
			t.Fatal("the read buffer is drained and the Reader still holds its buffer")
		}
	}
	// One command per read: every read starts with nothing buffered.
	var rd *Reader
	reads, rest := 0, []byte(nil)
	src := readFunc(func(p []byte) (int, error) {
		if len(rest) == 0 {
			if rd.cmd.Name != "" || rd.cmd.Args != nil || rd.text != nil || rd.args != [inlineArgs - 1]string{} {
				t.Fatalf("read %d: waiting for bytes while holding %q", reads, rd.cmd.String())
			}
			if reads == len(seedLines) {
				return 0, io.EOF
			}
			rest = []byte(seedLines[reads] + "\r\n")
			reads++
		}
		k := copy(p, rest)
		rest = rest[k:]
		return k, nil
	})
	rd = NewReader(src, nil)
	n := 0
	for ; ; n++ {
		if _, err := rd.ReadCommand(); err != nil {
			break
		}
	}
	if n != len(seedLines) {
		t.Fatalf("%d commands from %d lines", n, len(seedLines))
	}
}

type readFunc func(p []byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

func TestCommandTrID(t *testing.T) {
	tests := []struct {
		line string
		id   uint32
		ok   bool
	}{
		{"GTC 9 A", 9, true}, {"GTC A", 0, false}, {"CHG 0 NLN 0", 0, true}, {"MSG bob@example.com Bob", 0, false},
		{"RNG 11752013 127.0.0.1:1864 CKI x a@b A", 0, false}, {"LST N=a@b 8", 0, false}, {"QNG 60", 0, false},
		{"NLN 5 a@b", 0, false}, {"911 4", 4, true}, {"ACK 4294967295", 4294967295, true}, {"ACK 4294967296", 0, false},
		{"OUT", 0, false},
	}
	for _, tt := range tests {
		toks := splitTokens([]byte(tt.line))
		cmd := &Command{Name: toks[0], Args: toks[1:]}
		if id, ok := cmd.TrID(); id != tt.id || ok != tt.ok {
			t.Errorf("%q: TrID() = %d, %v; want %d, %v", tt.line, id, ok, tt.id, tt.ok)
		}
	}
}

// tokenBounds finds the same tokens as strings.FieldsFunc splitting at spaces and tabs, in
// lines of every length around its 8- and 64-byte steps, and counts those that do not fit.
func TestTokenBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		line := make([]byte, rng.IntN(200))
		for i := range line {
			line[i] = " \tab\x00\xff"[rng.IntN(6)]
		}
		want := strings.FieldsFunc(string(line), func(r rune) bool { return r == ' ' || r == '\t' })
		var b [2 * inlineArgs]int32
		n := tokenBounds(line, b[:])
		if n != len(want) {
			t.Fatalf("%q: %d tokens, want %d", line, n, len(want))
		}
		for i := range min(n, inlineArgs) {
			if got := string(line[b[2*i]:b[2*i+1]]); got != want[i] {
				t.Fatalf("%q: token %d = %q, want %q", line, i, got, want[i])
			}
		}
	}
}

// tokenBits tells every byte value apart at every position of a word, whatever its neighbours.
func TestTokenBits(t *testing.T) {
	for pos := range 8 {
		for v := range 256 {
			for _, fill := range []byte{'a', ' ', '\t', 0xff, 0x00} {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(v)
				got := tokenBits(binary.LittleEndian.Uint64(w[:]))
				for i, c := range w {
					if want := c != ' ' && c != '\t'; (got>>i&1 == 1) != want {
						t.Fatalf("tokenBits(%q) = %08b: bit %d wrong", w, got, i)
					}
				}
				if got > 0xff {
					t.Fatalf("tokenBits(%q) = %#x: more than eight bits", w, got)
				}
			}
		}
	}
}
