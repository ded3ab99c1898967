package bridge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrObjectNotCached means no object with that SHA1D is in the cache.
var ErrObjectNotCached = errors.New("object not cached")

// PutObject caches data (a display picture or emoticon) under its SHA1D. Caching an SHA1D that
// is cached already keeps the first copy: the SHA1D names the content.
func (s *Store) PutObject(ctx context.Context, sha1d, mime string, data []byte, now time.Time) error {
	_, err := s.db.Exec(ctx, `
		INSERT INTO msn_object_cache (sha1d, mime, data, size, fetched_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (sha1d) DO NOTHING`, sha1d, mime, data, len(data), now.UnixMilli())
	if err != nil {
		return fmt.Errorf("failed to cache object: %w", err)
	}
	return nil
}

// Object returns the cached object with sha1d, or ErrObjectNotCached.
func (s *Store) Object(ctx context.Context, sha1d string) (data []byte, mime string, err error) {
	err = s.db.QueryRow(ctx, `SELECT data, mime FROM msn_object_cache WHERE sha1d=$1`, sha1d).Scan(&data, &mime)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", ErrObjectNotCached
	} else if err != nil {
		return nil, "", fmt.Errorf("failed to load cached object: %w", err)
	}
	return data, mime, nil
}

// HasObject reports whether an object with sha1d is cached, without loading it.
func (s *Store) HasObject(ctx context.Context, sha1d string) (bool, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM msn_object_cache WHERE sha1d=$1`, sha1d).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("failed to look up cached object: %w", err)
	}
	return n > 0, nil
}

// TrimObjects deletes the oldest cached objects until the cache holds at most maxBytes of data,
// and returns how many it deleted.
func (s *Store) TrimObjects(ctx context.Context, maxBytes int64) (int, error) {
	var total int64
	if err := s.db.QueryRow(ctx, `SELECT COALESCE(SUM(size), 0) FROM msn_object_cache`).Scan(&total); err != nil {
		return 0, fmt.Errorf("failed to measure the object cache: %w", err)
	}
	deleted := 0
	for total > maxBytes {
		rows, err := s.db.Query(ctx, `SELECT sha1d, size FROM msn_object_cache ORDER BY fetched_at, sha1d LIMIT 100`)
		if err != nil {
			return deleted, fmt.Errorf("failed to trim the object cache: %w", err)
		}
		var victims []string
		for rows.Next() && total > maxBytes {
			var sha string
			var size int64
			if err = rows.Scan(&sha, &size); err != nil {
				break
			}
			victims = append(victims, sha)
			total -= size
		}
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return deleted, fmt.Errorf("failed to trim the object cache: %w", err)
		}
		if len(victims) == 0 {
			break
		}
		for _, sha := range victims {
			if _, err = s.db.Exec(ctx, `DELETE FROM msn_object_cache WHERE sha1d=$1`, sha); err != nil {
				return deleted, fmt.Errorf("failed to trim the object cache: %w", err)
			}
			deleted++
		}
	}
	return deleted, nil
}

// SetOwnAvatar stores the account's own display picture (PNG), published at every login; nil
// removes it. A display picture is public, so it is stored as is, unlike the password.
func (s *Store) SetOwnAvatar(ctx context.Context, handle string, png []byte, now time.Time) error {
	var err error
	if png == nil {
		_, err = s.db.Exec(ctx, `DELETE FROM msn_own_avatar WHERE handle=$1`, handle)
	} else {
		_, err = s.db.Exec(ctx, `
			INSERT INTO msn_own_avatar (handle, data, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (handle) DO UPDATE SET data=excluded.data, updated_at=excluded.updated_at`,
			handle, png, now.UnixMilli())
	}
	if err != nil {
		return fmt.Errorf("failed to save own display picture: %w", err)
	}
	return nil
}

// OwnAvatar returns the account's own display picture, nil when it has none.
func (s *Store) OwnAvatar(ctx context.Context, handle string) ([]byte, error) {
	var data []byte
	err := s.db.QueryRow(ctx, `SELECT data FROM msn_own_avatar WHERE handle=$1`, handle).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("failed to load own display picture: %w", err)
	}
	return data, nil
}
