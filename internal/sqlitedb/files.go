package sqlitedb

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// The modes of what PrepareFiles creates: the database holds encrypted passwords, link-code
// hashes, names and personal messages, readable by its owner alone.
const (
	FileMode fs.FileMode = 0o600
	DirMode  fs.FileMode = 0o700
)

// Exposed is an existing database file that users other than its owner can read or write.
type Exposed struct {
	Path string
	Mode fs.FileMode
}

// PrepareFiles makes the database file of a DSN private before SQLite opens it. A missing file
// is created empty with FileMode, in a directory created with DirMode when that is missing too:
// SQLite would create it 0644 (less the umask), and its -wal and -shm files take the mode of
// the database file. Both modes are set exactly, whatever the umask. Files that already exist
// are left as they are; those open to others are returned, for the caller to warn about. A DSN
// of an in-memory database, or with no file name, needs nothing.
func PrepareFiles(dsn string) ([]Exposed, error) {
	path, ok := dsnPath(dsn)
	if !ok {
		return nil, nil
	}
	dir := filepath.Dir(path)
	switch st, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		if err = os.MkdirAll(dir, DirMode); err != nil {
			return nil, fmt.Errorf("failed to create the database directory: %w", err)
		}
		if err = os.Chmod(dir, DirMode); err != nil {
			return nil, fmt.Errorf("failed to set the database directory's mode: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("failed to check the database directory: %w", err)
	case !st.IsDir():
		return nil, fmt.Errorf("the database's directory %s is not a directory", dir)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, FileMode)
	switch {
	case err == nil:
		err = f.Close()
		if err == nil {
			err = os.Chmod(path, FileMode)
		}
		if err != nil {
			return nil, fmt.Errorf("failed to create the database file: %w", err)
		}
		// Leftovers of an earlier database by that name now belong to this one.
		for _, suffix := range []string{"-wal", "-shm", "-journal"} {
			if err := os.Chmod(path+suffix, FileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("failed to set the mode of the database's %s file: %w", suffix, err)
			}
		}
		return nil, nil
	case !errors.Is(err, fs.ErrExist):
		return nil, fmt.Errorf("failed to create the database file: %w", err)
	}
	var exposed []Exposed
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			exposed = append(exposed, Exposed{Path: p, Mode: perm})
		}
	}
	return exposed, nil
}

// dsnPath returns the file a modernc.org/sqlite DSN names: "path", "path?params",
// "file:path?params" or "file:///abs/path?params", percent-decoded as SQLite decodes URIs. It
// reports false for an in-memory database.
func dsnPath(dsn string) (string, bool) {
	name, query, _ := strings.Cut(dsn, "?")
	uri := strings.HasPrefix(name, "file:")
	if uri {
		name = strings.TrimPrefix(name, "file:")
		if rest, ok := strings.CutPrefix(name, "//"); ok {
			// file://host/path: only an empty host or localhost is allowed by SQLite.
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				name = rest[i:]
			} else {
				name = ""
			}
		}
		if dec, err := url.PathUnescape(name); err == nil {
			name = dec
		}
		if q, err := url.ParseQuery(query); err == nil && (q.Get("mode") == "memory" || q.Get("vfs") == "memdb") {
			return "", false
		}
	}
	if name == "" || name == ":memory:" {
		return "", false
	}
	return name, true
}
