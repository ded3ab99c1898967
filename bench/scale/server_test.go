package scale

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// The msntest server runs in a child process (this test binary, re-executed with
// scaleServerEnv set): the bridge's process then holds only its own sockets (the open-files
// hard limit may be too low for both sides of 10,000 sessions), and its RSS is the bridge's
// alone. The child prints "addr <ns> <login-url>", then "got <text> <unix-nanos>" for every
// text a bot contact receives; it reads "say <bot> <user> <text>" lines (BotSay) from stdin
// and exits when stdin closes.
const scaleServerEnv = "MSN_SCALE_SERVER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(scaleServerEnv); spec != "" {
		os.Exit(serveChild(spec))
	}
	os.Exit(m.Run())
}

func serveChild(spec string) int {
	var n, pool int
	if _, err := fmt.Sscanf(spec, "%d:%d", &n, &pool); err != nil {
		fmt.Fprintln(os.Stderr, "bad spec:", err)
		return 2
	}
	var outMu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	println := func(format string, args ...any) {
		outMu.Lock()
		fmt.Fprintf(out, format+"\n", args...)
		_ = out.Flush()
		outMu.Unlock()
	}
	bot := func(_ context.Context, _ *msntest.BotChat, msg msntest.BotMessage) {
		if msg.IsText() {
			println("got %s %d", strings.ReplaceAll(msg.Body, " ", "_"), time.Now().UnixNano())
		}
	}
	specs := make([]msntest.AccountSpec, 0, n+pool)
	for i := range pool {
		specs = append(specs, msntest.AccountSpec{Handle: botHandle(i), Password: "x", Name: "Bot", Status: "NLN", Bot: bot})
	}
	friends := make([][2]string, 0, n*contactsPerAccount)
	for i := range n {
		specs = append(specs, msntest.AccountSpec{Handle: userHandle(i), Password: "pw", Name: "User"})
		for k := range contactsPerAccount {
			friends = append(friends, [2]string{userHandle(i), botHandle(contactOf(i, k, pool))})
		}
	}
	srv := msntest.New(msntest.Options{Accounts: specs, Friends: friends, EventLimit: -1})
	if err := srv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		return 1
	}
	defer srv.Close()
	println("addr %s %s", srv.NSAddr(), srv.LoginURL())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 4)
		if len(f) == 4 && f[0] == "say" {
			if err := srv.BotSay(f[1], f[2], f[3]); err != nil {
				println("err %s %v", strings.ReplaceAll(f[3], " ", "_"), err)
			}
		}
	}
	return 0
}

// contactOf is the k-th contact of account i among pool bots.
func contactOf(i, k, pool int) int { return (i*31 + k) % pool }

// serverProc is the parent's handle on the child server.
type serverProc struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	inMu     sync.Mutex
	nsAddr   string
	loginURL string

	mu   sync.Mutex
	got  map[string]time.Time // text → when a bot received it
	errs []string
}

func startServer(t *testing.T, n, pool int) *serverProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), scaleServerEnv+"="+strconv.Itoa(n)+":"+strconv.Itoa(pool))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err = cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProc{cmd: cmd, stdin: stdin, got: map[string]time.Time{}}
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 3 && f[0] == "addr":
				p.nsAddr, p.loginURL = f[1], f[2]
				close(ready)
			case len(f) == 3 && f[0] == "got":
				ns, _ := strconv.ParseInt(f[2], 10, 64)
				p.mu.Lock()
				p.got[strings.ReplaceAll(f[1], "_", " ")] = time.Unix(0, ns)
				p.mu.Unlock()
			case len(f) >= 2 && f[0] == "err":
				p.mu.Lock()
				p.errs = append(p.errs, sc.Text())
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		<-done
		_ = cmd.Wait()
	})
	select {
	case <-ready:
	case <-done:
		t.Fatal("the msntest server process exited before it was ready")
	case <-time.After(5 * time.Minute):
		t.Fatal("the msntest server process did not start")
	}
	return p
}

// say makes bot send text to user (BotSay in the child).
func (p *serverProc) say(bot, user, text string) {
	p.inMu.Lock()
	defer p.inMu.Unlock()
	_, _ = fmt.Fprintf(p.stdin, "say %s %s %s\n", bot, user, text)
}

// received returns when a bot received text.
func (p *serverProc) received(text string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.got[text]
	return t, ok
}

func (p *serverProc) errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

// cpuTime is the CPU time the child has used (0 when /proc cannot tell).
func (p *serverProc) cpuTime() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command name (which ends with the last ')'): utime and stime are
	// the 12th and 13th, in clock ticks (100 per second on Linux).
	rest := string(b)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100)
}
