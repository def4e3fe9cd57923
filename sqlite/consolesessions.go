package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/sealpost/sealpost"
)

func (db *DB) CreateConsoleSession(ctx context.Context, s sealpost.ConsoleSession, now time.Time) error {
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE expires_at <= ?`, now.UnixNano()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO console_sessions (id, sealed_key, expires_at) VALUES (?, ?, ?)`,
			s.ID, s.SealedKey, s.ExpiresAt.UnixNano())
		return err
	})
	return domainError("creating console session", err, "", "console session exists")
}

func (db *DB) ConsoleSession(ctx context.Context, id []byte, now time.Time) (sealpost.ConsoleSession, error) {
	s := sealpost.ConsoleSession{ID: id}
	var expires int64
	err := db.read.QueryRowContext(ctx, `SELECT sealed_key, expires_at FROM console_sessions WHERE id = ? AND expires_at > ?`,
		id, now.UnixNano()).Scan(&s.SealedKey, &expires)
	if err != nil {
		return sealpost.ConsoleSession{}, mapError("reading console session", err, "console session not found", "")
	}
	s.ExpiresAt = time.Unix(0, expires)
	return s, nil
}

func (db *DB) DeleteConsoleSession(ctx context.Context, id []byte) error {
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE id = ?`, id)
		return err
	})
	return domainError("deleting console session", err, "", "")
}
