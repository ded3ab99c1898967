package bridge

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/msn-bridge/msn-bridge/bridge/upgrades"
)

// VersionTable is the name of the core's schema version table. bridgev2 uses "version"; the
// core's schema is upgraded independently through this one.
const VersionTable = "msnbridge_version"

// FrontendUser identifies a person on one frontend: Frontend is the frontend's Name() ("matrix",
// "discord"), UserID its own id for the person (an MXID, a Discord snowflake).
type FrontendUser struct {
	Frontend string
	UserID   string
}

func (u FrontendUser) String() string { return u.Frontend + ":" + u.UserID }

// AccountRecord is an account's stored row. The password is kept apart, encrypted (see
// Store.SaveCredentials).
type AccountRecord struct {
	Handle        string
	Created       time.Time
	DesiredStatus Status // own status to set after login
	PSM           string
	FriendlyName  string
	// LoggedIn is true while the owner wants the account connected; Core.Start logs such
	// accounts back in. It is cleared by a logout and by a stop that needs the owner (bad
	// credentials, logged in elsewhere).
	LoggedIn  bool
	State     string // last AccountState kind, for display only
	LastError string // last stop or failure reason, never containing a password
}

// Store persists accounts, encrypted credentials, frontend links and link codes in the database
// shared with bridgev2, under its own version table. It is safe for concurrent use; every method
// does I/O and honours ctx.
type Store struct {
	db     *dbutil.Database
	cipher *Cipher
}

// NewStore returns a Store on a child of parent (same connection pool, VersionTable as version
// table). Call Upgrade before anything else.
func NewStore(parent *dbutil.Database, cipher *Cipher, log zerolog.Logger) *Store {
	child := parent.Child(VersionTable, upgrades.Table, dbutil.ZeroLogger(log.With().Str("db_section", "msnbridge").Logger()))
	return &Store{db: child, cipher: cipher}
}

// DB returns the store's database handle (for tests and diagnostics).
func (s *Store) DB() *dbutil.Database { return s.db }

// Upgrade creates or upgrades the core's tables.
func (s *Store) Upgrade(ctx context.Context) error {
	if err := s.db.Upgrade(ctx); err != nil {
		return fmt.Errorf("failed to upgrade msn bridge tables: %w", err)
	}
	return nil
}

const accountColumns = `handle, created_at, desired_status, psm, friendly_name, logged_in, state, last_error`

func scanAccount(row dbutil.Scannable) (*AccountRecord, error) {
	var rec AccountRecord
	var created int64
	var status string
	err := row.Scan(&rec.Handle, &created, &status, &rec.PSM, &rec.FriendlyName, &rec.LoggedIn, &rec.State, &rec.LastError)
	if err != nil {
		return nil, err
	}
	rec.Created = time.UnixMilli(created)
	rec.DesiredStatus = StatusFromMSN(status)
	return &rec, nil
}

// GetAccount returns the stored account, or ErrAccountNotFound.
func (s *Store) GetAccount(ctx context.Context, handle string) (*AccountRecord, error) {
	rec, err := scanAccount(s.db.QueryRow(ctx, `SELECT `+accountColumns+` FROM msn_account WHERE handle=$1`, handle))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrAccountNotFound
	} else if err != nil {
		return nil, fmt.Errorf("failed to load account: %w", err)
	}
	return rec, nil
}

// ListAccounts returns every stored account, ordered by handle.
func (s *Store) ListAccounts(ctx context.Context) ([]*AccountRecord, error) {
	rows, err := s.db.Query(ctx, `SELECT `+accountColumns+` FROM msn_account ORDER BY handle`)
	if err != nil {
		return nil, fmt.Errorf("failed to list accounts: %w", err)
	}
	defer rows.Close()
	var out []*AccountRecord
	for rows.Next() {
		rec, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("failed to list accounts: %w", err)
		}
		out = append(out, rec)
	}
	if err = rows.Err(); err != nil {
		return nil, fmt.Errorf("failed to list accounts: %w", err)
	}
	return out, nil
}

// PutAccount inserts or replaces the account row (credentials and links are untouched).
func (s *Store) PutAccount(ctx context.Context, rec *AccountRecord) error {
	created := rec.Created
	if created.IsZero() {
		created = time.Now()
	}
	_, err := s.db.Exec(ctx, `
		INSERT INTO msn_account (`+accountColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (handle) DO UPDATE SET
			desired_status=excluded.desired_status, psm=excluded.psm, friendly_name=excluded.friendly_name,
			logged_in=excluded.logged_in, state=excluded.state, last_error=excluded.last_error`,
		rec.Handle, created.UnixMilli(), rec.DesiredStatus.MSNCode(), rec.PSM, rec.FriendlyName,
		rec.LoggedIn, rec.State, rec.LastError)
	if err != nil {
		return fmt.Errorf("failed to save account: %w", err)
	}
	return nil
}

// SetAccountState records whether the account should be connected at start, its last state and
// its last error.
func (s *Store) SetAccountState(ctx context.Context, handle string, loggedIn bool, state, lastError string) error {
	_, err := s.db.Exec(ctx, `UPDATE msn_account SET logged_in=$2, state=$3, last_error=$4 WHERE handle=$1`,
		handle, loggedIn, state, lastError)
	if err != nil {
		return fmt.Errorf("failed to save account state: %w", err)
	}
	return nil
}

// SetProfile records the own status, PSM and friendly name to restore after each login.
func (s *Store) SetProfile(ctx context.Context, handle string, status Status, psm, name string) error {
	_, err := s.db.Exec(ctx, `UPDATE msn_account SET desired_status=$2, psm=$3, friendly_name=$4 WHERE handle=$1`,
		handle, status.MSNCode(), psm, name)
	if err != nil {
		return fmt.Errorf("failed to save profile: %w", err)
	}
	return nil
}

// DeleteAccount removes the account with its credentials, links and link codes.
func (s *Store) DeleteAccount(ctx context.Context, handle string) error {
	// Explicit deletes rather than relying on ON DELETE CASCADE: SQLite only cascades when the
	// connection enabled foreign keys.
	return s.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		for _, q := range []string{
			`DELETE FROM msn_link_code WHERE handle=$1`,
			`DELETE FROM msn_frontend_link WHERE handle=$1`,
			`DELETE FROM msn_credential WHERE handle=$1`,
			`DELETE FROM msn_own_avatar WHERE handle=$1`,
			`DELETE FROM msn_account WHERE handle=$1`,
		} {
			if _, err := s.db.Exec(ctx, q, handle); err != nil {
				return fmt.Errorf("failed to delete account: %w", err)
			}
		}
		return nil
	})
}

// SaveCredentials encrypts password for handle and stores it, replacing any earlier one. The
// account row must exist.
func (s *Store) SaveCredentials(ctx context.Context, handle, password string) error {
	nonce, ct, err := s.cipher.Seal(handle, password)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, `
		INSERT INTO msn_credential (handle, nonce, ciphertext) VALUES ($1, $2, $3)
		ON CONFLICT (handle) DO UPDATE SET nonce=excluded.nonce, ciphertext=excluded.ciphertext`,
		handle, nonce, ct)
	if err != nil {
		return fmt.Errorf("failed to save credentials: %w", err)
	}
	return nil
}

// Credentials returns the decrypted password of handle. It fails with ErrAccountNotFound when
// none is stored and with ErrWrongKey when the stored one cannot be decrypted.
func (s *Store) Credentials(ctx context.Context, handle string) (string, error) {
	var nonce, ct []byte
	err := s.db.QueryRow(ctx, `SELECT nonce, ciphertext FROM msn_credential WHERE handle=$1`, handle).Scan(&nonce, &ct)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrAccountNotFound
	} else if err != nil {
		return "", fmt.Errorf("failed to load credentials: %w", err)
	}
	return s.cipher.Open(handle, nonce, ct)
}

// SaveLogin stores a successful login in one transaction: the account row (kept if it exists,
// with LoggedIn set), the encrypted password and the owner's link. It fails with
// ErrLinkedElsewhere when another user of owner's frontend already owns the account.
func (s *Store) SaveLogin(ctx context.Context, rec *AccountRecord, password string, owner FrontendUser) error {
	return s.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		existing, err := s.GetAccount(ctx, rec.Handle)
		if errors.Is(err, ErrAccountNotFound) {
			if err = s.PutAccount(ctx, rec); err != nil {
				return err
			}
		} else if err != nil {
			return err
		} else {
			existing.LoggedIn, existing.State, existing.LastError = true, rec.State, ""
			if err = s.PutAccount(ctx, existing); err != nil {
				return err
			}
		}
		if err = s.AddLink(ctx, owner, rec.Handle); err != nil {
			return err
		}
		return s.SaveCredentials(ctx, rec.Handle, password)
	})
}

// AddLink links a frontend user to an account. Adding an existing link is a no-op; linking an
// account that another user of the same frontend owns fails with ErrLinkedElsewhere.
func (s *Store) AddLink(ctx context.Context, user FrontendUser, handle string) error {
	return s.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		var current string
		err := s.db.QueryRow(ctx, `SELECT user_id FROM msn_frontend_link WHERE frontend=$1 AND handle=$2`,
			user.Frontend, handle).Scan(&current)
		if err == nil {
			if current == user.UserID {
				return nil
			}
			return ErrLinkedElsewhere
		} else if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("failed to check frontend link: %w", err)
		}
		_, err = s.db.Exec(ctx, `INSERT INTO msn_frontend_link (frontend, user_id, handle, created_at) VALUES ($1, $2, $3, $4)`,
			user.Frontend, user.UserID, handle, time.Now().UnixMilli())
		if err != nil {
			return fmt.Errorf("failed to save frontend link: %w", err)
		}
		return nil
	})
}

// RemoveLink unlinks a frontend user from an account and returns how many links the account
// still has. Removing a link that does not exist fails with ErrNotOwner.
func (s *Store) RemoveLink(ctx context.Context, user FrontendUser, handle string) (remaining int, err error) {
	err = s.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		res, err := s.db.Exec(ctx, `DELETE FROM msn_frontend_link WHERE frontend=$1 AND user_id=$2 AND handle=$3`,
			user.Frontend, user.UserID, handle)
		if err != nil {
			return fmt.Errorf("failed to delete frontend link: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotOwner
		}
		err = s.db.QueryRow(ctx, `SELECT COUNT(*) FROM msn_frontend_link WHERE handle=$1`, handle).Scan(&remaining)
		if err != nil {
			return fmt.Errorf("failed to count frontend links: %w", err)
		}
		return nil
	})
	return remaining, err
}

// LinksFor returns the frontend users linked to an account.
func (s *Store) LinksFor(ctx context.Context, handle string) ([]FrontendUser, error) {
	rows, err := s.db.Query(ctx, `SELECT frontend, user_id FROM msn_frontend_link WHERE handle=$1 ORDER BY frontend, user_id`, handle)
	if err != nil {
		return nil, fmt.Errorf("failed to load frontend links: %w", err)
	}
	defer rows.Close()
	var out []FrontendUser
	for rows.Next() {
		var u FrontendUser
		if err = rows.Scan(&u.Frontend, &u.UserID); err != nil {
			return nil, fmt.Errorf("failed to load frontend links: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// AllLinks returns every frontend link, grouped by account handle.
func (s *Store) AllLinks(ctx context.Context) (map[string][]FrontendUser, error) {
	rows, err := s.db.Query(ctx, `SELECT handle, frontend, user_id FROM msn_frontend_link ORDER BY handle, frontend, user_id`)
	if err != nil {
		return nil, fmt.Errorf("failed to load frontend links: %w", err)
	}
	defer rows.Close()
	out := map[string][]FrontendUser{}
	for rows.Next() {
		var h string
		var u FrontendUser
		if err = rows.Scan(&h, &u.Frontend, &u.UserID); err != nil {
			return nil, fmt.Errorf("failed to load frontend links: %w", err)
		}
		out[h] = append(out[h], u)
	}
	return out, rows.Err()
}

// HandlesFor returns the handles of the accounts a frontend user is linked to.
func (s *Store) HandlesFor(ctx context.Context, user FrontendUser) ([]string, error) {
	rows, err := s.db.Query(ctx, `SELECT handle FROM msn_frontend_link WHERE frontend=$1 AND user_id=$2 ORDER BY handle`,
		user.Frontend, user.UserID)
	if err != nil {
		return nil, fmt.Errorf("failed to load frontend links: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err = rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("failed to load frontend links: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

func hashLinkCode(code string) []byte {
	sum := sha256.Sum256([]byte("msn-bridge link code\x00" + code))
	return sum[:]
}

// PutLinkCode stores the hash of a normalised one-time link code. Expired codes of every account
// are purged on the way.
func (s *Store) PutLinkCode(ctx context.Context, code, handle string, issuer FrontendUser, expires time.Time) error {
	return s.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		if _, err := s.db.Exec(ctx, `DELETE FROM msn_link_code WHERE expires_at<$1`, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("failed to purge link codes: %w", err)
		}
		_, err := s.db.Exec(ctx, `INSERT INTO msn_link_code (code_hash, handle, issuer_frontend, issuer_user_id, expires_at) VALUES ($1, $2, $3, $4, $5)`,
			hashLinkCode(code), handle, issuer.Frontend, issuer.UserID, expires.UnixMilli())
		if err != nil {
			return fmt.Errorf("failed to save link code: %w", err)
		}
		return nil
	})
}

// TakeLinkCode consumes a normalised link code: it is deleted whether or not it has expired, so
// a code can be tried once. It returns the account handle and the issuer, or
// ErrInvalidLinkCode.
func (s *Store) TakeLinkCode(ctx context.Context, code string, now time.Time) (handle string, issuer FrontendUser, err error) {
	var expired bool
	err = s.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		h := hashLinkCode(code)
		var expires int64
		err := s.db.QueryRow(ctx, `SELECT handle, issuer_frontend, issuer_user_id, expires_at FROM msn_link_code WHERE code_hash=$1`, h).
			Scan(&handle, &issuer.Frontend, &issuer.UserID, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrInvalidLinkCode
		} else if err != nil {
			return fmt.Errorf("failed to load link code: %w", err)
		}
		if _, err = s.db.Exec(ctx, `DELETE FROM msn_link_code WHERE code_hash=$1`, h); err != nil {
			return fmt.Errorf("failed to consume link code: %w", err)
		}
		// Report expiry after the transaction commits, so the used code stays deleted.
		expired = now.UnixMilli() > expires
		return nil
	})
	if err == nil && expired {
		err = ErrInvalidLinkCode
	}
	if err != nil {
		return "", FrontendUser{}, err
	}
	return handle, issuer, nil
}
