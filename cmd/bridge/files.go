package main

import (
	"fmt"
	"os"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/msn-bridge/msn-bridge/internal/sqlitedb"
)

// prepareDatabase makes a SQLite database's files private before they are opened (see
// sqlitedb.PrepareFiles) and warns about existing ones that other users can read. PostgreSQL
// needs nothing.
func prepareDatabase(cfg dbutil.Config, log zerolog.Logger) error {
	if cfg.Type != "sqlite" {
		return nil
	}
	exposed, err := sqlitedb.PrepareFiles(cfg.URI)
	if err != nil {
		return err
	}
	for _, e := range exposed {
		log.Warn().Str("path", e.Path).Str("mode", fmt.Sprintf("%#o", e.Mode)).
			Msg("Database file is open to other users (it holds encrypted passwords, names and messages): chmod 600 it")
	}
	return nil
}

// warnIfExposed warns when a file or directory holding secrets is open to other users: a
// file readable or writable by them, a directory they can enter. A missing path is no concern.
func warnIfExposed(log zerolog.Logger, what, path string) {
	st, err := os.Stat(path)
	if err != nil {
		return
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		want := "600"
		if st.IsDir() {
			want = "700"
		}
		log.Warn().Str("path", path).Str("mode", fmt.Sprintf("%#o", perm)).
			Msg("The " + what + " holds secrets and is open to other users: chmod " + want + " it")
	}
}

// saveRegistrationMode sets a registration file's mode to 0600: it holds the appservice
// tokens, and saving over an existing file keeps that file's mode.
func saveRegistrationMode(path string) error {
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("failed to set the mode of %s: %w", path, err)
	}
	return nil
}
