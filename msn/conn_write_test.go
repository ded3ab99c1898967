package msn

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// A write that fails because the peer went away is reported as ErrClosed, like the replies
// still pending on that connection, so callers can tell "the switchboard closed" apart from
// other failures.
func TestSendOnBrokenConnIsErrClosed(t *testing.T) {
	local, remote := net.Pipe()
	c := newConn(local, ClientPayloads, zerolog.Nop(), time.Second, func(*Command) {}, nil)
	c.run()
	defer c.Close()
	_ = remote.Close()
	err := c.send(&Command{Name: "MSG", Args: []string{"1", "A"}, Payload: []byte("x")})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("send on a broken connection: got %v, want ErrClosed", err)
	}
}
