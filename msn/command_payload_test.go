package msn

import (
	"bytes"
	"errors"
	"io"
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
