package bridge

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
)

const secretPassword = "hunter2-very-secret-Passw0rd"

func TestStore(t *testing.T) {
	pgtest.Databases(t, func(t *testing.T, b pgtest.Backend) {
		ctx := context.Background()
		db := b.Open(t)
		s := openStore(t, db, testKey(7))

		// Our own version table; bridgev2's "version" is not created or touched.
		if ok, err := s.DB().TableExists(ctx, VersionTable); err != nil || !ok {
			t.Fatalf("version table %s missing: %v", VersionTable, err)
		}
		if ok, _ := s.DB().TableExists(ctx, "version"); ok {
			t.Fatal("core created bridgev2's version table")
		}
		// Upgrading twice is a no-op.
		if err := s.Upgrade(ctx); err != nil {
			t.Fatal(err)
		}

		owner := FrontendUser{"matrix", "@alice:example.org"}
		rec := &AccountRecord{Handle: "alice@example.com", DesiredStatus: StatusAway, PSM: "hi", LoggedIn: true, State: "online"}
		if err := s.SaveLogin(ctx, rec, secretPassword, owner); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetAccount(ctx, "alice@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if got.DesiredStatus != StatusAway || got.PSM != "hi" || !got.LoggedIn {
			t.Fatalf("account round trip: %+v", got)
		}
		pw, err := s.Credentials(ctx, "alice@example.com")
		if err != nil || pw != secretPassword {
			t.Fatalf("credentials round trip: %q, %v", pw, err)
		}

		// No plaintext password in any row.
		for _, q := range []string{"SELECT nonce, ciphertext FROM msn_credential"} {
			var n, c []byte
			if err := s.DB().QueryRow(ctx, q).Scan(&n, &c); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(c, []byte(secretPassword)) || bytes.Contains(c, []byte("hunter2")) {
				t.Fatal("ciphertext contains the password")
			}
		}

		// Links: one owner per frontend, many accounts per user.
		if err := s.AddLink(ctx, FrontendUser{"matrix", "@mallory:example.org"}, "alice@example.com"); !errors.Is(err, ErrLinkedElsewhere) {
			t.Fatalf("second matrix owner: %v", err)
		}
		discord := FrontendUser{"discord", "1234"}
		if err := s.AddLink(ctx, discord, "alice@example.com"); err != nil {
			t.Fatal(err)
		}
		if err := s.AddLink(ctx, discord, "alice@example.com"); err != nil {
			t.Fatalf("re-adding a link: %v", err)
		}
		links, err := s.LinksFor(ctx, "alice@example.com")
		if err != nil || len(links) != 2 {
			t.Fatalf("links: %v %v", links, err)
		}
		handles, err := s.HandlesFor(ctx, discord)
		if err != nil || len(handles) != 1 || handles[0] != "alice@example.com" {
			t.Fatalf("handles for discord user: %v %v", handles, err)
		}

		// Link codes are one-time and expire.
		now := time.Now()
		if err := s.PutLinkCode(ctx, "CODE1", "alice@example.com", owner, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if h, iss, err := s.TakeLinkCode(ctx, "CODE1", now); err != nil || h != "alice@example.com" || iss != owner {
			t.Fatalf("take: %q %v %v", h, iss, err)
		}
		if _, _, err := s.TakeLinkCode(ctx, "CODE1", now); !errors.Is(err, ErrInvalidLinkCode) {
			t.Fatalf("second take: %v", err)
		}
		if err := s.PutLinkCode(ctx, "CODE2", "alice@example.com", owner, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.TakeLinkCode(ctx, "CODE2", now.Add(2*time.Minute)); !errors.Is(err, ErrInvalidLinkCode) {
			t.Fatalf("expired take: %v", err)
		}
		if _, _, err := s.TakeLinkCode(ctx, "CODE2", now); !errors.Is(err, ErrInvalidLinkCode) {
			t.Fatalf("expired code must be consumed: %v", err)
		}

		// A wrong key fails clearly.
		wrong := openStore(t, db, testKey(8))
		if _, err := wrong.Credentials(ctx, "alice@example.com"); !errors.Is(err, ErrWrongKey) ||
			!strings.Contains(err.Error(), "stored credentials cannot be decrypted: wrong key?") {
			t.Fatalf("wrong key: %v", err)
		}
		// A ciphertext moved to another handle does not decrypt (handle is additional data).
		if err := s.PutAccount(ctx, &AccountRecord{Handle: "bob@example.com"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DB().Exec(ctx, `INSERT INTO msn_credential (handle, nonce, ciphertext) SELECT 'bob@example.com', nonce, ciphertext FROM msn_credential WHERE handle='alice@example.com'`); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Credentials(ctx, "bob@example.com"); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("moved ciphertext: %v", err)
		}

		// Removing links; deleting the account removes everything.
		if n, err := s.RemoveLink(ctx, discord, "alice@example.com"); err != nil || n != 1 {
			t.Fatalf("remove link: %d %v", n, err)
		}
		if _, err := s.RemoveLink(ctx, discord, "alice@example.com"); !errors.Is(err, ErrNotOwner) {
			t.Fatalf("remove missing link: %v", err)
		}
		if err := s.DeleteAccount(ctx, "alice@example.com"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Credentials(ctx, "alice@example.com"); !errors.Is(err, ErrAccountNotFound) {
			t.Fatalf("credentials after delete: %v", err)
		}
		if links, _ := s.LinksFor(ctx, "alice@example.com"); len(links) != 0 {
			t.Fatalf("links after delete: %v", links)
		}
	})
}

// TestStoreSQLiteFileHasNoPlaintext checks the database files on disk, WAL included.
func TestStoreSQLiteFileHasNoPlaintext(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.SQLiteDSN(t)
	db := pgtest.Open(t, pgtest.SQLiteDriver, dsn)
	s := openStore(t, db, testKey(3))
	if err := s.SaveLogin(ctx, &AccountRecord{Handle: "carol@example.com", LoggedIn: true}, secretPassword, FrontendUser{"discord", "1"}); err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(strings.SplitN(dsn, "?", 2)[0], "file:")
	files, _ := filepath.Glob(path + "*")
	if len(files) == 0 {
		t.Fatalf("no database files for %s", path)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(secretPassword)) {
			t.Fatalf("%s contains the plaintext password", f)
		}
	}
	if !bytes.Contains(mustRead(t, files), []byte("carol@example.com")) {
		t.Fatal("sanity check failed: the handle is not in the database files")
	}
}

func mustRead(t *testing.T, files []string) []byte {
	var all []byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, data...)
	}
	return all
}

func TestLoadKey(t *testing.T) {
	noEnv := func(string) string { return "" }
	good, _ := GenerateKey()

	t.Run("config", func(t *testing.T) {
		k, err := LoadKey(KeyConfig{Key: good}, noEnv)
		if err != nil || len(k) != KeySize {
			t.Fatalf("%v %d", err, len(k))
		}
	})
	t.Run("config invalid", func(t *testing.T) {
		if _, err := LoadKey(KeyConfig{Key: "dG9vIHNob3J0"}, noEnv); !errors.Is(err, ErrInvalidKey) {
			t.Fatal(err)
		}
	})
	t.Run("env", func(t *testing.T) {
		env := func(k string) string {
			if k == KeyEnvVar {
				return good
			}
			return ""
		}
		k, err := LoadKey(KeyConfig{KeyFile: filepath.Join(t.TempDir(), "never")}, env)
		if err != nil || len(k) != KeySize {
			t.Fatalf("%v", err)
		}
	})
	t.Run("file created 0600 and reused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "key")
		k1, err := LoadKey(KeyConfig{KeyFile: path}, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(path)
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("key file mode %v, %v", info.Mode().Perm(), err)
		}
		k2, err := LoadKey(KeyConfig{KeyFile: path}, noEnv)
		if err != nil || !bytes.Equal(k1, k2) {
			t.Fatalf("reloaded key differs: %v", err)
		}
	})
	t.Run("file with loose permissions refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(path, []byte(good+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKey(KeyConfig{KeyFile: path}, noEnv)
		if !errors.Is(err, ErrKeyFilePermissions) || !strings.Contains(err.Error(), "0600") {
			t.Fatalf("loose perms: %v", err)
		}
		if strings.Contains(err.Error(), good) {
			t.Fatal("error leaks the key")
		}
	})
	t.Run("nothing configured", func(t *testing.T) {
		if _, err := LoadKey(KeyConfig{}, noEnv); err == nil {
			t.Fatal("want error")
		}
	})
}
