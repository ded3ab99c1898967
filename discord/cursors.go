package discord

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/msn-bridge/msn-bridge/discord/upgrades"
)

// cursorStore keeps each mirrored channel's catch-up cursor in the bridge's database, under the
// frontend's own version table, so that a restart catches up with what was written while the
// bridge was stopped. Safe for concurrent use; every method does I/O and honours ctx.
type cursorStore struct {
	db *dbutil.Database
}

func newCursorStore(parent *dbutil.Database, log zerolog.Logger) *cursorStore {
	child := parent.Child(upgrades.VersionTable, upgrades.Table,
		dbutil.ZeroLogger(log.With().Str("db_section", "msnbridge_discord").Logger()))
	return &cursorStore{db: child}
}

// upgrade creates or upgrades the frontend's tables.
func (s *cursorStore) upgrade(ctx context.Context) error {
	if err := s.db.Upgrade(ctx); err != nil {
		return fmt.Errorf("failed to upgrade discord tables: %w", err)
	}
	return nil
}

// load returns every stored cursor by channel id.
func (s *cursorStore) load(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.Query(ctx, `SELECT channel_id, message_id FROM msn_discord_cursor`)
	if err != nil {
		return nil, fmt.Errorf("failed to load catch-up cursors: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var ch, msg string
		if err := rows.Scan(&ch, &msg); err != nil {
			return nil, fmt.Errorf("failed to read a catch-up cursor: %w", err)
		}
		out[ch] = msg
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("failed to load catch-up cursors: %w", err)
	}
	return out, nil
}

// save stores cursors in one transaction; an empty message id deletes the channel's.
func (s *cursorStore) save(ctx context.Context, cursors map[string]string) error {
	err := s.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		for ch, msg := range cursors {
			var err error
			if msg == "" {
				_, err = s.db.Exec(ctx, `DELETE FROM msn_discord_cursor WHERE channel_id=$1`, ch)
			} else {
				_, err = s.db.Exec(ctx, `INSERT INTO msn_discord_cursor (channel_id, message_id) VALUES ($1, $2)
					ON CONFLICT (channel_id) DO UPDATE SET message_id=excluded.message_id`, ch, msg)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to save catch-up cursors: %w", err)
	}
	return nil
}
