package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/rs/zerolog"
)

// lockedBuffer is a goroutine-safe log sink.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// withUmask runs the test under umask, the usual 022 that makes files 0644 by default.
func withUmask(t *testing.T, umask int) {
	old := syscall.Umask(umask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// The bridge's SQLite database, its -wal and -shm files and the directory it makes for them are
// private to the bridge's user under the usual umask 022; a database left open to others by an
// earlier version is reported at start.
func TestDatabaseFilesPrivate(t *testing.T) {
	withUmask(t, 0o022)
	ctx := context.Background()
	cfg := loadValid(t)
	dir := filepath.Join(t.TempDir(), "data")
	dbPath := filepath.Join(dir, "msn-bridge.db")
	cfg.Database.URI = "file:" + dbPath + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)&_txlock=immediate"
	logs := &lockedBuffer{}
	app, err := newAppWithLogger(cfg, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	// A write with the database open: the -wal and -shm files exist now.
	if _, err = app.db.Exec(ctx, "CREATE TABLE IF NOT EXISTS mode_probe (x TEXT)"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dbPath, dbPath + "-wal", dbPath + "-shm"} {
		if m := mode(t, p); m != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", filepath.Base(p), m)
		}
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("the database directory has mode %#o, want 0700", m)
	}
	if strings.Contains(logs.String(), "open to other users") {
		t.Errorf("a warning about files the bridge made itself: %s", logs.String())
	}
	app.db.Close()

	// An existing database readable by others: the bridge says so (and leaves the mode alone).
	if err = os.Chmod(dbPath, 0o644); err != nil {
		t.Fatal(err)
	}
	logs = &lockedBuffer{}
	app, err = newAppWithLogger(cfg, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	app.db.Close()
	if out := logs.String(); !strings.Contains(out, "Database file is open to other users") || !strings.Contains(out, dbPath) {
		t.Errorf("no warning about the 0644 database: %s", out)
	}
}

// A registration written over an existing world-readable file is private afterwards: it holds
// the appservice tokens.
func TestGenerateRegistrationOverExistingFileIsPrivate(t *testing.T) {
	withUmask(t, 0o022)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	regPath := filepath.Join(dir, "registration.yaml")
	if err := os.WriteFile(cfgPath, []byte(exampleFor("localhost")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(regPath, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCmd(t, "-c", cfgPath, "-g", "-r", regPath); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if m := mode(t, regPath); m != 0o600 {
		t.Errorf("registration mode %#o, want 0600", m)
	}
}

// A config file or data directory open to others is reported; a private one is not.
func TestWarnIfExposed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	log := zerolog.New(logs)
	warnIfExposed(log, "config file", path)
	warnIfExposed(log, "config file", filepath.Join(dir, "missing"))
	if logs.String() != "" {
		t.Fatalf("warned about a private or missing file: %s", logs.String())
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	warnIfExposed(log, "config file", path)
	if out := logs.String(); !strings.Contains(out, "config file holds secrets") || !strings.Contains(out, "chmod 600") {
		t.Errorf("no warning about a 0644 config: %s", out)
	}
}

// TestGitignoreCoversWhatTheBridgeWrites: the files a bridge run with the defaults writes into a
// clone (config, registration, key, database, demo folder) are ignored by git, so none of their
// secrets is committed by accident.
func TestGitignoreCoversWhatTheBridgeWrites(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns := strings.Fields(string(data))
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	dbFile, _, _ := strings.Cut(strings.TrimPrefix(cfg.Database.URI, "file:"), "?")
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	written := []string{o.configPath, o.registrationPath, cfg.MSN.Credentials.KeyFile, dbFile,
		dbFile + "-wal", dbFile + "-shm", o.demoDir + "/msn-bridge.db"}
	for _, name := range written {
		ignored := false
		for _, p := range patterns {
			if strings.HasPrefix(p, "#") {
				continue
			}
			p = strings.TrimPrefix(p, "/")
			if ok, _ := filepath.Match(strings.TrimSuffix(p, "/"), name); ok ||
				strings.HasSuffix(p, "/") && strings.HasPrefix(name, p) {
				ignored = true
				break
			}
		}
		if !ignored {
			t.Errorf(".gitignore does not cover %s, which the bridge writes", name)
		}
	}
}
