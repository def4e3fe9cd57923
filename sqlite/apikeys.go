package sqlite

import (
	"context"
	"database/sql"
	"strings"

	"github.com/sealpost/sealpost"
)

const keyColumns = `id, account_id, name, scopes, secret_hash, created_at`

const lookupAPIKeySQL = `SELECT k.id, k.account_id, k.name, k.scopes, k.secret_hash, k.created_at,
	a.id, a.public_id, a.kind, a.parent_id, a.username, a.email, a.disabled, a.created_at
	FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.id = ?`

func scanKey(row scanner, extra ...any) (*sealpost.APIKey, error) {
	var k sealpost.APIKey
	var scopes string
	var createdAt int64
	dest := append([]any{&k.ID, &k.AccountID, &k.Name, &scopes, &k.SecretHash, &createdAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	k.Scopes = splitScopes(scopes)
	k.CreatedAt = fromUnixNano(createdAt)
	return &k, nil
}

// Scopes are stored space-separated: scope names never hold spaces, and one
// column keeps a key a single row.
func joinScopes(scopes []string) (string, error) {
	for _, s := range scopes {
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' }) {
			return "", sealpost.Invalid(sealpost.FieldError{Field: "scopes", Message: "scopes must be non-empty and hold no spaces"})
		}
	}
	return strings.Join(scopes, " "), nil
}

func splitScopes(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

// CreateAPIKey stores k and sets its CreatedAt. The count and the insert
// share one write transaction, which SQLite's single writer serialises, so
// concurrent creations cannot pass the cap together.
func (db *DB) CreateAPIKey(ctx context.Context, k *sealpost.APIKey) error {
	defer db.cache.bump()
	scopes, err := joinScopes(k.Scopes)
	if err != nil {
		return err
	}
	created := now()
	err = db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM api_keys WHERE account_id = ?`, k.AccountID).Scan(&n); err != nil {
			return err
		}
		if n >= sealpost.MaxAPIKeysPerAccount {
			return apiKeyLimit()
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO api_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
			k.ID, k.AccountID, k.Name, scopes, k.SecretHash, created.UnixNano())
		return err
	})
	if err != nil {
		return domainError("creating API key", err, "account not found", "an API key with this id already exists")
	}
	k.CreatedAt = created
	return nil
}

func apiKeyLimit() error {
	return &sealpost.Error{Code: sealpost.ELIMIT, Fields: []sealpost.FieldError{{Message: sealpost.APIKeyLimitMessage}}}
}

// keyWithin fails unless the key exists (ENOTFOUND) and its scopes are
// all in within (EFORBIDDEN); a nil within checks only existence.
func keyWithin(ctx context.Context, tx *sql.Tx, accountID int64, id string, within []string) error {
	var scopes string
	err := tx.QueryRowContext(ctx, `SELECT scopes FROM api_keys WHERE id = ? AND account_id = ?`, id, accountID).Scan(&scopes)
	if err != nil {
		return mapError("reading API key", err, "API key not found", "")
	}
	if within != nil && !sealpost.ScopesWithin(splitScopes(scopes), within) {
		return sealpost.Errorf(sealpost.EFORBIDDEN, "the API key holds scopes the caller lacks")
	}
	return nil
}

func (db *DB) APIKey(ctx context.Context, accountID int64, id string) (*sealpost.APIKey, error) {
	k, err := scanKey(db.read.QueryRowContext(ctx,
		`SELECT `+keyColumns+` FROM api_keys WHERE id = ? AND account_id = ?`, id, accountID))
	if err != nil {
		return nil, mapError("reading API key", err, "API key not found", "")
	}
	return k, nil
}

// APIKeys lists accountID's keys, oldest first.
func (db *DB) APIKeys(ctx context.Context, accountID int64) ([]*sealpost.APIKey, error) {
	rows, err := db.read.QueryContext(ctx,
		`SELECT `+keyColumns+` FROM api_keys WHERE account_id = ? ORDER BY created_at, id`, accountID)
	if err != nil {
		return nil, internal("listing API keys", err)
	}
	defer rows.Close()
	var out []*sealpost.APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, internal("listing API keys", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("listing API keys", err)
	}
	return out, nil
}

// UpdateAPIKey changes the key in one statement, so concurrent updates of
// different fields cannot undo each other; with upd.Within, the check and
// the statement share a write transaction.
func (db *DB) UpdateAPIKey(ctx context.Context, accountID int64, id string, upd sealpost.APIKeyUpdate) (*sealpost.APIKey, error) {
	defer db.cache.bump()
	var name, scopes any // NULL keeps the column
	if upd.Name != nil {
		name = *upd.Name
	}
	if upd.Scopes != nil {
		s, err := joinScopes(upd.Scopes)
		if err != nil {
			return nil, err
		}
		scopes = s
	}
	var k *sealpost.APIKey
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if upd.Within != nil {
			if err := keyWithin(ctx, tx, accountID, id, upd.Within); err != nil {
				return err
			}
		}
		var err error
		k, err = scanKey(tx.QueryRowContext(ctx,
			`UPDATE api_keys SET name = COALESCE(?, name), scopes = COALESCE(?, scopes)
			 WHERE id = ? AND account_id = ? RETURNING `+keyColumns,
			name, scopes, id, accountID))
		return err
	})
	if err != nil {
		return nil, domainError("updating API key", err, "API key not found", "")
	}
	return k, nil
}

func (db *DB) DeleteAPIKey(ctx context.Context, accountID int64, id string, within []string) error {
	defer db.cache.bump()
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := keyWithin(ctx, tx, accountID, id, within); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM api_keys WHERE id = ? AND account_id = ?`, id, accountID)
		return requireOneRow(res, err, "deleting API key", "API key not found")
	})
	return domainError("deleting API key", err, "API key not found", "")
}

// LookupAPIKey finds a key with its account. It is on every request's path,
// so it is answered from the cache when no write has happened since the
// cached read.
func (db *DB) LookupAPIKey(ctx context.Context, id string) (*sealpost.Principal, error) {
	return memoized(&db.cache, &db.cache.principals, id, false, clonePrincipal,
		func() (*sealpost.Principal, error) { return db.lookupAPIKey(ctx, id) })
}

func (db *DB) lookupAPIKey(ctx context.Context, id string) (*sealpost.Principal, error) {
	var r accountRow
	k, err := scanKey(db.lookupStmt.QueryRowContext(ctx, id), r.dest()...)
	if err != nil {
		return nil, mapError("looking up API key", err, "API key not found", "")
	}
	return &sealpost.Principal{Key: k, Account: r.account()}, nil
}
