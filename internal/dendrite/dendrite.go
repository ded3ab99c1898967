// Package dendrite runs a real Matrix homeserver (Dendrite v0.13.8) on loopback: for the
// end-to-end tests (through internal/testenv/dendrite) and for the demo mode of the bridge.
//
// Dendrite is never a Go dependency of the project: its binaries are installed with
// `go install …@v0.13.8` into a cache folder (BinDir) and run as a child process in its own data
// directory, which is also its working directory (Dendrite resolves relative paths against it).
//
// Appservice back-off: when a transaction to the appservice URL is refused or fails, Dendrite
// sleeps 2, 4, 8, … up to 64 s before retrying the same events. The appservice must therefore
// listen before anything produces events for it. Queued transactions are lost on Restart (the
// event stream lives in memory).
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
	"text/template"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"
)

// Version is the Dendrite release this package is written and tested against.
const Version = "v0.13.8"

// EnvBinDir names the environment variable that overrides the directory holding the dendrite
// and generate-keys binaries.
const EnvBinDir = "DENDRITE_BIN"

// ServerName is the server name every homeserver started here uses (@alice:localhost).
const ServerName = "localhost"

const (
	defaultReadyTimeout = 60 * time.Second
	stopTimeout         = 10 * time.Second
	configFile          = "dendrite.yaml"
	logFile             = "dendrite.log"
	keyFile             = "matrix_key.pem"
)

//go:embed dendrite.yaml.tmpl
var configTemplateText string

var configTemplate = template.Must(template.New(configFile).Parse(configTemplateText))

// BinDir returns the directory the Dendrite binaries are expected in: $DENDRITE_BIN if set,
// else $HOME/.cache/dendrite-v0.13.8/bin.
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

// MissingBinaries lists which of the dendrite and generate-keys binaries are not executable
// files in dir.
func MissingBinaries(dir string) []string {
	var missing []string
	for _, name := range []string{"dendrite", "generate-keys"} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			missing = append(missing, name)
		}
	}
	return missing
}

// InstallHint is the command that installs the binaries into dir.
func InstallHint(dir string) string {
	return fmt.Sprintf("GOBIN=%s go install github.com/matrix-org/dendrite/cmd/dendrite@%s github.com/matrix-org/dendrite/cmd/generate-keys@%s",
		dir, Version, Version)
}

// Options describes a homeserver. Dir and Port are required.
type Options struct {
	// BinDir holds the dendrite and generate-keys binaries. Empty means BinDir().
	BinDir string
	// Dir is the data and working directory. It is created when missing and never removed.
	Dir string
	// Port is the loopback port of the client API.
	Port int
	// SharedSecret is the shared-secret registration key.
	SharedSecret string
	// LogLevel is Dendrite's log level (trace, debug, info, warn, error). Empty means info.
	LogLevel string
	// ReadyTimeout bounds how long Start and Restart wait for the client API. Zero means 60 s.
	ReadyTimeout time.Duration
}

// Server is one Dendrite process bound to loopback. Its methods are safe for concurrent use.
type Server struct {
	// URL is the client-server API base URL, e.g. http://127.0.0.1:40123.
	URL string
	// ServerName is the Matrix server name (always ServerName).
	ServerName string
	// LogPath receives Dendrite's stdout and stderr, across restarts.
	LogPath string

	opts Options

	mu         sync.Mutex
	configured bool
	proc       *process
}

type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // valid once exited is closed
}

// New checks the binaries and the options. Nothing runs until Start.
func New(opts Options) (*Server, error) {
	if opts.BinDir == "" {
		opts.BinDir = BinDir()
	}
	if missing := MissingBinaries(opts.BinDir); len(missing) > 0 {
		return nil, fmt.Errorf("dendrite %s binaries %v not found in %s; install them with: %s",
			Version, missing, opts.BinDir, InstallHint(opts.BinDir))
	}
	if opts.Dir == "" || opts.Port <= 0 {
		return nil, errors.New("dendrite needs a data directory and a port")
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = defaultReadyTimeout
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create the dendrite directory: %w", err)
	}
	return &Server{
		URL:        "http://127.0.0.1:" + strconv.Itoa(opts.Port),
		ServerName: ServerName,
		LogPath:    filepath.Join(opts.Dir, logFile),
		opts:       opts,
	}, nil
}

// Start writes the configuration with the given appservice registrations (YAML documents,
// written unchanged as registration-N.yaml), generates the signing key unless one exists,
// starts Dendrite and waits until its client API answers. A second Start fails; use Restart.
func (s *Server) Start(registrations ...[]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.configured {
		return errors.New("dendrite was already started; use Restart")
	}
	if err := s.writeConfig(registrations); err != nil {
		return fmt.Errorf("failed to configure dendrite: %w", err)
	}
	s.configured = true
	return s.launchLocked()
}

// Restart stops Dendrite and starts it again on the same port and data. Users, rooms and
// access tokens survive; queued appservice transactions do not.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.configured {
		return errors.New("dendrite was never started")
	}
	if err := s.stopLocked(); err != nil {
		return err
	}
	return s.launchLocked()
}

// Stop ends the process: SIGTERM, then SIGKILL after 10 s. It blocks until the process is gone
// and is a no-op when nothing runs.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.exited:
		return false
	default:
		return true
	}
}

// LogTail returns at most n bytes from the end of Dendrite's log, or why it cannot be read.
func (s *Server) LogTail(n int) string {
	data, err := os.ReadFile(s.LogPath)
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

// UserID returns the full Matrix ID of localpart on this homeserver.
func (s *Server) UserID(localpart string) id.UserID {
	return id.NewUserID(localpart, s.ServerName)
}

// RegisterUser creates a normal user through shared-secret registration. It returns
// mautrix.MUserInUse (wrapped) when the user exists.
func (s *Server) RegisterUser(ctx context.Context, localpart, password string) error {
	cli, err := mautrix.NewClient(s.URL, "", "")
	if err != nil {
		return fmt.Errorf("failed to create client: %w", err)
	}
	admin := synapseadmin.Client{Client: cli}
	_, err = admin.SharedSecretRegister(ctx, s.opts.SharedSecret, synapseadmin.ReqSharedSecretRegister{
		Username:     localpart,
		Password:     password,
		InhibitLogin: true,
	})
	if err != nil {
		return fmt.Errorf("failed to register %s: %w", localpart, err)
	}
	return nil
}

// Login logs an existing user in with a password and returns a client holding the new access
// token.
func (s *Server) Login(ctx context.Context, localpart, password, device string) (*mautrix.Client, error) {
	cli, err := mautrix.NewClient(s.URL, "", "")
	if err != nil {
		return nil, fmt.Errorf("failed to create client: %w", err)
	}
	_, err = cli.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:                 password,
		InitialDeviceDisplayName: device,
		StoreCredentials:         true,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to log in as %s: %w", localpart, err)
	}
	return cli, nil
}

func (s *Server) writeConfig(registrations [][]byte) error {
	files := make([]string, 0, len(registrations))
	for i, reg := range registrations {
		name := fmt.Sprintf("registration-%d.yaml", i)
		if err := os.WriteFile(filepath.Join(s.opts.Dir, name), reg, 0o600); err != nil {
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
	}{s.ServerName, s.opts.SharedSecret, s.opts.LogLevel, files})
	if err != nil {
		return fmt.Errorf("failed to render %s: %w", configFile, err)
	}
	if err := os.WriteFile(filepath.Join(s.opts.Dir, configFile), buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("failed to write %s: %w", configFile, err)
	}
	if _, err := os.Stat(filepath.Join(s.opts.Dir, keyFile)); err == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.opts.BinDir, "generate-keys"), "--private-key", keyFile)
	cmd.Dir = s.opts.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("failed to generate signing key: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func (s *Server) launchLocked() error {
	logOut, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("failed to open log: %w", err)
	}
	fmt.Fprintf(logOut, "=== dendrite starting on 127.0.0.1:%d at %s ===\n", s.opts.Port, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(filepath.Join(s.opts.BinDir, "dendrite"),
		"-config", configFile,
		"-http-bind-address", "127.0.0.1:"+strconv.Itoa(s.opts.Port))
	cmd.Dir = s.opts.Dir
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
	s.proc = p
	if err := s.waitReady(p); err != nil {
		_ = s.stopLocked()
		return err
	}
	return nil
}

// waitReady polls /_matrix/client/versions until it answers 200, the process exits or the ready
// timeout passes.
func (s *Server) waitReady(p *process) error {
	client := &http.Client{Timeout: 2 * time.Second}
	url := s.URL + "/_matrix/client/versions"
	deadline := time.Now().Add(s.opts.ReadyTimeout)
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
	return fmt.Errorf("dendrite was not ready within %s: %w", s.opts.ReadyTimeout, lastErr)
}

func (s *Server) stopLocked() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
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

// FreePorts returns n distinct loopback TCP ports that were free when picked (not held).
func FreePorts(n int) ([]int, error) {
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
