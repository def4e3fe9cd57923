package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost"
)

const keyColumns = `k.id, k.account_id, k.name, k.scopes, k.secret_hash, k.created_at`

func scanKey(row pgx.Row, extra ...any) (*sealpost.APIKey, error) {
	var k sealpost.APIKey
	dest := append([]any{&k.ID, &k.AccountID, &k.Name, &k.Scopes, &k.SecretHash, &k.CreatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	return &k, nil
}

// CreateAPIKey stores k. A key for an account that does not exist is
// ENOTFOUND; an id already taken is ECONFLICT; an account at its cap is
// ELIMIT. The account's row is locked while its keys are counted, so
// creations on any number of nodes pass the cap one at a time.
func (db *DB) CreateAPIKey(ctx context.Context, k *sealpost.APIKey) error {
	var createdAt time.Time
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := lockAccount(ctx, tx, k.AccountID); err != nil {
			return err
		}
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM api_keys WHERE account_id = $1`, k.AccountID).Scan(&n); err != nil {
			return err
		}
		if n >= sealpost.MaxAPIKeysPerAccount {
			return &sealpost.Error{Code: sealpost.ELIMIT, Fields: []sealpost.FieldError{{Message: sealpost.APIKeyLimitMessage}}}
		}
		return tx.QueryRow(ctx, `
			INSERT INTO api_keys (id, account_id, name, scopes, secret_hash)
			VALUES ($1, $2, $3, $4, $5)
			RETURNING created_at`,
			k.ID, k.AccountID, k.Name, scopeArray(k.Scopes), k.SecretHash,
		).Scan(&createdAt)
	})
	if err != nil {
		return storeErr(err, "API key")
	}
	k.CreatedAt = createdAt.UTC()
	return nil
}

// lockAccount takes the row lock that serialises the count-then-insert of
// an account's capped children (keys, subusers). FOR NO KEY UPDATE does
// not block the foreign-key checks of inserts referring to the row.
func lockAccount(ctx context.Context, tx pgx.Tx, id int64) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return sealpost.Errorf(sealpost.ENOTFOUND, "account not found")
	}
	return err
}

// keyOutside tells, after a guarded statement matched no row, whether the
// key is missing (ENOTFOUND) or holds scopes outside the guard
// (EFORBIDDEN).
func (db *DB) keyOutside(ctx context.Context, accountID int64, id string) error {
	var exists bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1 AND account_id = $2)`, id, accountID).Scan(&exists)
	switch {
	case err != nil:
		return storeErr(err, "API key")
	case exists:
		return sealpost.Errorf(sealpost.EFORBIDDEN, "the API key holds scopes the caller lacks")
	}
	return sealpost.Errorf(sealpost.ENOTFOUND, "API key not found")
}

func (db *DB) APIKey(ctx context.Context, accountID int64, id string) (*sealpost.APIKey, error) {
	k, err := scanKey(db.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys k WHERE k.id = $1 AND k.account_id = $2`, id, accountID))
	return k, storeErr(err, "API key")
}

// APIKeys lists accountID's keys, oldest first.
func (db *DB) APIKeys(ctx context.Context, accountID int64) ([]*sealpost.APIKey, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+keyColumns+` FROM api_keys k WHERE k.account_id = $1 ORDER BY k.created_at, k.id`, accountID)
	if err != nil {
		return nil, storeErr(err, "API key")
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*sealpost.APIKey, error) {
		return scanKey(row)
	})
	if err != nil {
		return nil, storeErr(err, "API key")
	}
	return keys, nil
}

// UpdateAPIKey changes the key in one statement, so concurrent updates of
// different fields do not undo each other. The Within guard is part of the
// statement's WHERE, which PostgreSQL re-checks against the latest row
// version after waiting for a concurrent writer.
func (db *DB) UpdateAPIKey(ctx context.Context, accountID int64, id string, upd sealpost.APIKeyUpdate) (*sealpost.APIKey, error) {
	var scopes []string // NULL keeps the stored scopes
	if upd.Scopes != nil {
		scopes = scopeArray(upd.Scopes)
	}
	var within []string // NULL: no guard
	if upd.Within != nil {
		within = scopeArray(upd.Within)
	}
	k, err := scanKey(db.pool.QueryRow(ctx, `
		UPDATE api_keys k SET
			name = COALESCE($3, k.name),
			scopes = COALESCE($4, k.scopes)
		WHERE k.id = $1 AND k.account_id = $2 AND ($5::text[] IS NULL OR k.scopes <@ $5::text[])
		RETURNING `+keyColumns,
		id, accountID, upd.Name, scopes, within))
	if errors.Is(err, pgx.ErrNoRows) && upd.Within != nil {
		return nil, db.keyOutside(ctx, accountID, id)
	}
	return k, storeErr(err, "API key")
}

func (db *DB) DeleteAPIKey(ctx context.Context, accountID int64, id string, within []string) error {
	var guard []string // NULL: no guard
	if within != nil {
		guard = scopeArray(within)
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM api_keys WHERE id = $1 AND account_id = $2 AND ($3::text[] IS NULL OR scopes <@ $3::text[])`, id, accountID, guard)
	if err != nil {
		return storeErr(err, "API key")
	}
	if tag.RowsAffected() == 0 {
		return db.keyOutside(ctx, accountID, id)
	}
	return nil
}

// LookupAPIKey reads the key and its account in one query, so the pair is
// one consistent snapshot: a key is never returned with an account as it
// was before a change that committed before the call.
func (db *DB) LookupAPIKey(ctx context.Context, id string) (*sealpost.Principal, error) {
	var acct accountRow
	k, err := scanKey(db.pool.QueryRow(ctx, `
		SELECT `+keyColumns+`, `+accountColumns+`
		FROM api_keys k JOIN accounts a ON a.id = k.account_id
		WHERE k.id = $1`, id),
		acct.dest()...)
	if err != nil {
		return nil, storeErr(err, "API key")
	}
	return &sealpost.Principal{Key: k, Account: acct.account()}, nil
}

// scopeArray returns scopes as a non-nil slice: pgx sends a nil slice as
// NULL, which the NOT NULL column refuses, while a key may have no scopes.
func scopeArray(scopes []string) []string {
	if scopes == nil {
		return []string{}
	}
	return scopes
}
