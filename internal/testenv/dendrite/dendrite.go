// Package dendrite runs a real Matrix homeserver (Dendrite v0.13.8) on
// loopback for end-to-end tests.
//
// A test prepares a homeserver with New, which picks free loopback ports for
// the homeserver (URL) and for the appservice (ASURL) before anything runs,
// so the bridge's registration can name them. It then calls Start with the
// appservice registrations (as the bridge generated them, or built with
// NewRegistration), and drives the server with RegisterUser, Restart, Stop
// and InjectEphemeral. Everything the server writes lives in its own
// temporary directory, which is also its working directory; the process is
// killed in t.Cleanup, and the tail of its log is printed when the test
// failed.
//
// The binaries are looked up in $DENDRITE_BIN, else in
// $HOME/.cache/dendrite-v0.13.8/bin (see BinDir). When they are missing the
// test fails if $CI is set and is skipped otherwise.
//
// Appservice back-off: when a transaction to the appservice URL is refused or
// fails, Dendrite sleeps 2, 4, 8, … up to 64 s before retrying the same events.
// The bridge (or the test's listener) must therefore already listen on ASURL
// before anything produces events for it (creating rooms, inviting ghosts,
// sending messages), or those events arrive up to a minute later. Queued
// transactions are lost on Restart (the event stream lives in memory).
//
// Dendrite does not send MSC2409 ephemeral events (typing, receipts,
// presence) to appservices; InjectEphemeral plays the homeserver for those.
package dendrite

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"text/template"
	"time"
)

// Version is the Dendrite release this package is written and tested against.
const Version = "v0.13.8"

// EnvBinDir names the environment variable that overrides the directory holding
// the dendrite and generate-keys binaries.
const EnvBinDir = "DENDRITE_BIN"

// ServerName is the server name every homeserver started here uses, so user
// IDs look like @alice:localhost.
const ServerName = "localhost"

// DefaultSharedSecret is the registration shared secret used when
// Options.SharedSecret is empty.
const DefaultSharedSecret = "msn-bridge-test-shared-secret"

const (
	defaultReadyTimeout = 60 * time.Second
	stopTimeout         = 10 * time.Second
	logTailBytes        = 8 << 10
	configFile          = "dendrite.yaml"
	logFile             = "dendrite.log"
	keyFile             = "matrix_key.pem"
)

//go:embed dendrite.yaml.tmpl
var configTemplateText string

var configTemplate = template.Must(template.New(configFile).Parse(configTemplateText))

// Options tunes a homeserver. The zero value is ready to use.
type Options struct {
	// BinDir overrides the directory holding the dendrite and generate-keys
	// binaries. Empty means BinDir().
	BinDir string
	// SharedSecret is the shared-secret registration key. Empty means
	// DefaultSharedSecret.
	SharedSecret string
	// LogLevel is Dendrite's log level (trace, debug, info, warn, error).
	// Empty means info.
	LogLevel string
	// ReadyTimeout bounds how long Start and Restart wait for the client API
	// to answer. Zero means 60 s.
	ReadyTimeout time.Duration
}

// Homeserver is one Dendrite process bound to loopback, with its data
// directory. Its exported fields are set by New and never change; the methods
// are safe for concurrent use.
type Homeserver struct {
	// URL is the client-server API base URL, e.g. http://127.0.0.1:40123.
	URL string
	// Port is the homeserver's loopback port.
	Port int
	// ServerName is the Matrix server name (always ServerName).
	ServerName string
	// ASPort is a free loopback port reserved for the appservice. Nothing
	// listens on it until the test (or the bridge) does.
	ASPort int
	// ASURL is http://127.0.0.1:ASPort, the URL registrations should name.
	ASURL string
	// SharedSecret is the registration shared secret configured in Dendrite.
	SharedSecret string
	// Dir is the homeserver's data and working directory.
	Dir string
	// LogPath is the file that receives Dendrite's stdout and stderr, across
	// restarts.
	LogPath string

	binDir       string
	logLevel     string
	readyTimeout time.Duration

	mu         sync.Mutex
	configured bool
	proc       *process
}

// process is one running dendrite and the result of waiting for it.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // valid once exited is closed
}

// BinDir returns the directory the Dendrite binaries are expected in:
// $DENDRITE_BIN if set, else $HOME/.cache/dendrite-v0.13.8/bin.
func BinDir() string {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		return dir
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "dendrite-"+Version, "bin")
}

// InCI reports whether $CI asks for missing test dependencies to be failures
// instead of skips (set, and not "0" or "false").
func InCI() bool {
	switch os.Getenv("CI") {
	case "", "0", "false", "FALSE", "False":
		return false
	}
	return true
}

// RequireBinaries returns dir if it holds executable dendrite and
// generate-keys binaries. Otherwise it fails t when InCI and skips t when not;
// either way it does not return.
func RequireBinaries(t testing.TB, dir string) string {
	t.Helper()
	var missing []string
	for _, name := range []string{"dendrite", "generate-keys"} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return dir
	}
	msg := fmt.Sprintf("Dendrite %s binaries %v not found in %s; set %s to their directory or install them with: "+
		"GOBIN=%s go install github.com/matrix-org/dendrite/cmd/dendrite@%s github.com/matrix-org/dendrite/cmd/generate-keys@%s",
		Version, missing, dir, EnvBinDir, dir, Version, Version)
	if InCI() {
		t.Fatal(msg + " (CI is set, so this is a failure)")
	}
	t.Skip(msg)
	return ""
}

// New prepares a homeserver for t: it finds the binaries (skipping or failing
// t as RequireBinaries does), makes a data directory under t.TempDir and
// picks free loopback ports for the homeserver and the appservice. Nothing
// runs until Start. The process, if any, is stopped in t.Cleanup, and the tail
// of its log is written to t's log if t failed.
//
// The ports are free when picked but not held; another process could take
// one before it is used, in which case Start fails with Dendrite's log.
func New(t testing.TB, opts Options) *Homeserver {
	t.Helper()
	binDir := opts.BinDir
	if binDir == "" {
		binDir = BinDir()
	}
	RequireBinaries(t, binDir)

	ports, err := freePorts(2)
	if err != nil {
		t.Fatalf("failed to pick loopback ports: %v", err)
	}
	dir := t.TempDir()
	hs := &Homeserver{
		URL:          "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		Port:         ports[0],
		ServerName:   ServerName,
		ASPort:       ports[1],
		ASURL:        "http://127.0.0.1:" + strconv.Itoa(ports[1]),
		SharedSecret: opts.SharedSecret,
		Dir:          dir,
		LogPath:      filepath.Join(dir, logFile),
		binDir:       binDir,
		logLevel:     opts.LogLevel,
		readyTimeout: opts.ReadyTimeout,
	}
	if hs.SharedSecret == "" {
		hs.SharedSecret = DefaultSharedSecret
	}
	if hs.logLevel == "" {
		hs.logLevel = "info"
	}
	if hs.readyTimeout <= 0 {
		hs.readyTimeout = defaultReadyTimeout
	}
	t.Cleanup(func() {
		if err := hs.Stop(); err != nil {
			t.Errorf("failed to stop dendrite: %v", err)
		}
		if t.Failed() {
			t.Logf("dendrite log (%s), last %d bytes:\n%s", hs.LogPath, logTailBytes, hs.LogTail(logTailBytes))
		}
	})
	return hs
}

// Start writes the configuration with the given appservice registrations (YAML
// documents, written unchanged as registration-N.yaml), generates the signing
// key, starts Dendrite and waits until its client API answers. It fails t on
// any error, including a second call; use Restart to start again.
//
// Listen on ASURL before calling Start if the appservice must see every event
// (see the package doc on back-off).
func (hs *Homeserver) Start(t testing.TB, registrations ...[]byte) {
	t.Helper()
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.configured {
		t.Fatal("dendrite was already started; use Restart")
	}
	if err := hs.writeConfig(registrations); err != nil {
		t.Fatalf("failed to configure dendrite: %v", err)
	}
	hs.configured = true
	if err := hs.launchLocked(); err != nil {
		t.Fatalf("failed to start dendrite: %v\n%s", err, hs.LogTail(logTailBytes))
	}
}

// Restart stops Dendrite (gracefully, then by force) and starts it again on the
// same port with the same data directory, waiting until it answers. Users,
// rooms and access tokens survive; queued appservice transactions do not. It
// may also be used after Stop. It fails t on any error.
func (hs *Homeserver) Restart(t testing.TB) {
	t.Helper()
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if !hs.configured {
		t.Fatal("dendrite was never started; use Start first")
	}
	if err := hs.stopLocked(); err != nil {
		t.Fatalf("failed to stop dendrite: %v", err)
	}
	if err := hs.launchLocked(); err != nil {
		t.Fatalf("failed to restart dendrite: %v\n%s", err, hs.LogTail(logTailBytes))
	}
}

// Stop ends the Dendrite process: SIGTERM, then SIGKILL if it has not exited
// within 10 s. It blocks until the process is gone, is a no-op when nothing
// runs, and never removes the data directory.
func (hs *Homeserver) Stop() error {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.stopLocked()
}

// Running reports whether the Dendrite process is alive.
func (hs *Homeserver) Running() bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.proc == nil {
		return false
	}
	select {
	case <-hs.proc.exited:
		return false
	default:
		return true
	}
}

// LogTail returns at most n bytes from the end of Dendrite's log, or a note
// saying why it cannot be read.
func (hs *Homeserver) LogTail(n int) string {
	data, err := os.ReadFile(hs.LogPath)
	if err != nil {
		return fmt.Sprintf("(no dendrite log: %v)", err)
	}
	if len(data) > n {
		data = data[len(data)-n:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return string(data)
}

// writeConfig writes the registrations, dendrite.yaml and the signing key
// into hs.Dir.
func (hs *Homeserver) writeConfig(registrations [][]byte) error {
	files := make([]string, 0, len(registrations))
	for i, reg := range registrations {
		name := fmt.Sprintf("registration-%d.yaml", i)
		if err := os.WriteFile(filepath.Join(hs.Dir, name), reg, 0o600); err != nil {
			return fmt.Errorf("failed to write %s: %w", name, err)
		}
		files = append(files, name)
	}
	var buf bytes.Buffer
	err := configTemplate.Execute(&buf, struct {
		ServerName        string
		SharedSecret      string
		LogLevel          string
		RegistrationFiles []string
	}{hs.ServerName, hs.SharedSecret, hs.logLevel, files})
	if err != nil {
		return fmt.Errorf("failed to render %s: %w", configFile, err)
	}
	if err := os.WriteFile(filepath.Join(hs.Dir, configFile), buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("failed to write %s: %w", configFile, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(hs.binDir, "generate-keys"), "--private-key", keyFile)
	cmd.Dir = hs.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("failed to generate signing key: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// launchLocked starts dendrite and waits for its client API. hs.mu is held.
func (hs *Homeserver) launchLocked() error {
	logOut, err := os.OpenFile(hs.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("failed to open log: %w", err)
	}
	fmt.Fprintf(logOut, "=== dendrite starting on 127.0.0.1:%d at %s ===\n", hs.Port, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(filepath.Join(hs.binDir, "dendrite"),
		"-config", configFile,
		"-http-bind-address", "127.0.0.1:"+strconv.Itoa(hs.Port))
	cmd.Dir = hs.Dir
	cmd.Stdout = logOut
	cmd.Stderr = logOut
	setProcAttr(cmd)
	if err := startCmd(cmd); err != nil {
		_ = logOut.Close()
		return fmt.Errorf("failed to run dendrite: %w", err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logOut.Close()
		close(p.exited)
	}()
	hs.proc = p
	if err := hs.waitReady(p); err != nil {
		_ = hs.stopLocked()
		return err
	}
	return nil
}

// waitReady polls /_matrix/client/versions until it answers 200, the process
// exits or the ready timeout passes.
func (hs *Homeserver) waitReady(p *process) error {
	client := &http.Client{Timeout: 2 * time.Second}
	url := hs.URL + "/_matrix/client/versions"
	deadline := time.Now().Add(hs.readyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("dendrite exited before it was ready: %v", p.err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("unexpected status %s", resp.Status)
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("dendrite was not ready within %s: %w", hs.readyTimeout, lastErr)
}

// stopLocked terminates the current process, if any. hs.mu is held.
func (hs *Homeserver) stopLocked() error {
	p := hs.proc
	if p == nil {
		return nil
	}
	hs.proc = nil
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = terminate(p.cmd)
	select {
	case <-p.exited:
		return nil
	case <-time.After(stopTimeout):
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("failed to kill dendrite (pid %d): %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(stopTimeout):
		return fmt.Errorf("dendrite (pid %d) did not exit after SIGKILL", p.cmd.Process.Pid)
	}
}

// freePorts returns n distinct loopback TCP ports that were free when picked.
func freePorts(n int) ([]int, error) {
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
