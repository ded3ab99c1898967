package sqlitedb

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

func TestDSNPath(t *testing.T) {
	tests := []struct {
		dsn  string
		path string
		ok   bool
	}{
		{"file:msn-bridge.db?_pragma=foreign_keys(1)&_txlock=immediate", "msn-bridge.db", true},
		{"/var/lib/msn/bridge.db", "/var/lib/msn/bridge.db", true},
		{"bridge.db?_pragma=journal_mode(WAL)", "bridge.db", true},
		{"file:///var/lib/msn/bridge.db?mode=rwc", "/var/lib/msn/bridge.db", true},
		{"file://localhost/var/lib/msn/bridge.db", "/var/lib/msn/bridge.db", true},
		{"file:my%20data/bridge.db", "my data/bridge.db", true},
		{":memory:", "", false},
		{"file::memory:?cache=shared", "", false},
		{"file:memdb1?mode=memory&cache=shared", "", false},
		{"file:/x.db?vfs=memdb", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		path, ok := dsnPath(tt.dsn)
		if path != tt.path || ok != tt.ok {
			t.Errorf("dsnPath(%q) = %q, %v; want %q, %v", tt.dsn, path, ok, tt.path, tt.ok)
		}
	}
}

// Under the usual umask 022, SQLite would make the database and its -wal and -shm files 0644;
// after PrepareFiles they are 0600, and a directory it makes is 0700.
func TestPrepareFilesPrivateUnderUmask(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	ctx := context.Background()
	for _, sub := range []string{"", "new-dir"} {
		dir := filepath.Join(t.TempDir(), sub)
		path := filepath.Join(dir, "bridge.db")
		dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
		exposed, err := PrepareFiles(dsn)
		if err != nil || len(exposed) != 0 {
			t.Fatalf("PrepareFiles: %v %v", exposed, err)
		}
		db, err := Open(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err = db.ExecContext(ctx, "CREATE TABLE t (x TEXT)"); err != nil {
			t.Fatal(err)
		}
		if _, err = db.ExecContext(ctx, "INSERT INTO t VALUES ('secret')"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if m := st.Mode().Perm(); m != FileMode {
				t.Errorf("%s: %s has mode %#o, want 0600", sub, filepath.Base(p), m)
			}
		}
		if sub != "" {
			if st, _ := os.Stat(dir); st.Mode().Perm() != DirMode {
				t.Errorf("the made directory has mode %#o, want 0700", st.Mode().Perm())
			}
		}

		// The same files found open to others are reported, and left alone.
		for _, p := range []string{path, path + "-wal"} {
			if err = os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		exposed, err = PrepareFiles(dsn)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]string, 0, len(exposed))
		for _, e := range exposed {
			got = append(got, e.Path)
		}
		if !slices.Equal(got, []string{path, path + "-wal"}) {
			t.Errorf("exposed %q, want the database and its -wal file", got)
		}
		_ = db.Close()
	}
}
