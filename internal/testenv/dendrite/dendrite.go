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
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/internal/dendrite"
)

// Version is the Dendrite release this package is written and tested against.
const Version = dendrite.Version

// EnvBinDir names the environment variable that overrides the directory holding
// the dendrite and generate-keys binaries.
const EnvBinDir = dendrite.EnvBinDir

// ServerName is the server name every homeserver started here uses, so user
// IDs look like @alice:localhost.
const ServerName = dendrite.ServerName

// DefaultSharedSecret is the registration shared secret used when
// Options.SharedSecret is empty.
const DefaultSharedSecret = "msn-bridge-test-shared-secret"

const logTailBytes = 8 << 10

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

	srv *dendrite.Server
}

// BinDir returns the directory the Dendrite binaries are expected in:
// $DENDRITE_BIN if set, else $HOME/.cache/dendrite-v0.13.8/bin.
func BinDir() string { return dendrite.BinDir() }

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
	missing := dendrite.MissingBinaries(dir)
	if len(missing) == 0 {
		return dir
	}
	msg := fmt.Sprintf("Dendrite %s binaries %v not found in %s; set %s to their directory or install them with: %s",
		Version, missing, dir, EnvBinDir, dendrite.InstallHint(dir))
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

	ports, err := dendrite.FreePorts(2)
	if err != nil {
		t.Fatalf("failed to pick loopback ports: %v", err)
	}
	if opts.SharedSecret == "" {
		opts.SharedSecret = DefaultSharedSecret
	}
	dir := t.TempDir()
	srv, err := dendrite.New(dendrite.Options{
		BinDir:       binDir,
		Dir:          dir,
		Port:         ports[0],
		SharedSecret: opts.SharedSecret,
		LogLevel:     opts.LogLevel,
		ReadyTimeout: opts.ReadyTimeout,
	})
	if err != nil {
		t.Fatalf("failed to prepare dendrite: %v", err)
	}
	hs := &Homeserver{
		URL:          srv.URL,
		Port:         ports[0],
		ServerName:   srv.ServerName,
		ASPort:       ports[1],
		ASURL:        "http://127.0.0.1:" + strconv.Itoa(ports[1]),
		SharedSecret: opts.SharedSecret,
		Dir:          dir,
		LogPath:      srv.LogPath,
		srv:          srv,
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
	if err := hs.srv.Start(registrations...); err != nil {
		t.Fatalf("failed to start dendrite: %v\n%s", err, hs.LogTail(logTailBytes))
	}
}

// Restart stops Dendrite (gracefully, then by force) and starts it again on the
// same port with the same data directory, waiting until it answers. Users,
// rooms and access tokens survive; queued appservice transactions do not. It
// may also be used after Stop. It fails t on any error.
func (hs *Homeserver) Restart(t testing.TB) {
	t.Helper()
	if err := hs.srv.Restart(); err != nil {
		t.Fatalf("failed to restart dendrite: %v\n%s", err, hs.LogTail(logTailBytes))
	}
}

// Stop ends the Dendrite process: SIGTERM, then SIGKILL if it has not exited
// within 10 s. It blocks until the process is gone, is a no-op when nothing
// runs, and never removes the data directory.
func (hs *Homeserver) Stop() error { return hs.srv.Stop() }

// Running reports whether the Dendrite process is alive.
func (hs *Homeserver) Running() bool { return hs.srv.Running() }

// LogTail returns at most n bytes from the end of Dendrite's log, or a note
// saying why it cannot be read.
func (hs *Homeserver) LogTail(n int) string { return hs.srv.LogTail(n) }
