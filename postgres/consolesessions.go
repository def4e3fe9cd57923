package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost"
)

func (db *DB) CreateConsoleSession(ctx context.Context, s sealpost.ConsoleSession, now time.Time) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= $1`, now.UnixNano()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO console_sessions (id, sealed_key, expires_at) VALUES ($1, $2, $3)`,
			s.ID, s.SealedKey, s.ExpiresAt.UnixNano())
		return err
	})
	return storeErr(err, "console session")
}

func (db *DB) ConsoleSession(ctx context.Context, id []byte, now time.Time) (sealpost.ConsoleSession, error) {
	s := sealpost.ConsoleSession{ID: id}
	var expires int64
	err := db.pool.QueryRow(ctx, `SELECT sealed_key, expires_at FROM console_sessions WHERE id = $1 AND expires_at > $2`,
		id, now.UnixNano()).Scan(&s.SealedKey, &expires)
	if err != nil {
		return sealpost.ConsoleSession{}, storeErr(err, "console session")
	}
	s.ExpiresAt = time.Unix(0, expires)
	return s, nil
}

func (db *DB) DeleteConsoleSession(ctx context.Context, id []byte) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM console_sessions WHERE id = $1`, id)
	return storeErr(err, "console session")
}
