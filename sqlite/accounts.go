package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/sealpost/sealpost"
)

const accountColumns = `id, public_id, kind, parent_id, username, email, disabled, created_at`

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// accountRow receives an accounts row; NULL columns become zero values.
type accountRow struct {
	a                  sealpost.Account
	publicID, username sql.NullString
	parentID           sql.NullInt64
	kind               string
	createdAt          int64
}

// dest lists the scan targets in accountColumns order.
func (r *accountRow) dest() []any {
	return []any{&r.a.ID, &r.publicID, &r.kind, &r.parentID, &r.username, &r.a.Email, &r.a.Disabled, &r.createdAt}
}

func (r *accountRow) account() *sealpost.Account {
	a := r.a
	a.PublicID, a.Username, a.ParentID = r.publicID.String, r.username.String, r.parentID.Int64
	a.Kind = sealpost.AccountKind(r.kind)
	a.CreatedAt = fromUnixNano(r.createdAt)
	return &a
}

func scanAccount(row scanner) (*sealpost.Account, error) {
	var r accountRow
	if err := row.Scan(r.dest()...); err != nil {
		return nil, err
	}
	return r.account(), nil
}

// nullIfZero stores the zero value as NULL: the unique columns must allow
// many accounts without a username or public id.
func nullIfZero[T comparable](v T) any {
	var zero T
	if v == zero {
		return nil
	}
	return v
}

// CreateAccount stores a with the default Enforced TLS setting.
func (db *DB) CreateAccount(ctx context.Context, a *sealpost.Account) error {
	return db.createAccount(ctx, a, -1)
}

// CreateChildAccount stores a unless its parent owns limit accounts of its
// kind already. The count and the insert share one write transaction, which
// SQLite's single writer serialises.
func (db *DB) CreateChildAccount(ctx context.Context, a *sealpost.Account, limit int) error {
	return db.createAccount(ctx, a, max(limit, 0))
}

// createAccount stores a; a limit of -1 counts nothing.
func (db *DB) createAccount(ctx context.Context, a *sealpost.Account, limit int) error {
	defer db.cache.bump()
	created := now()
	var id int64
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if limit >= 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE parent_id = ? AND kind = ?`, a.ParentID, string(a.Kind)).Scan(&n); err != nil {
				return err
			}
			if n >= limit {
				return sealpost.ChildLimit(a.Kind, limit)
			}
		}
		err := tx.QueryRowContext(ctx,
			`INSERT INTO accounts (public_id, kind, parent_id, username, email, disabled, created_at)
			 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			nullIfZero(a.PublicID), string(a.Kind), nullIfZero(a.ParentID), nullIfZero(a.Username),
			a.Email, a.Disabled, created.UnixNano(),
		).Scan(&id)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO enforced_tls (account_id, require_tls, require_valid_cert, version) VALUES (?, ?, ?, ?)`,
			id, false, false, int64(sealpost.DefaultTLSVersion))
		return err
	})
	if err != nil {
		return domainError("creating account", err, "account not found", "an account with this username or account id already exists")
	}
	a.ID, a.CreatedAt = id, created
	return nil
}

func (db *DB) queryAccount(ctx context.Context, where string, arg any) (*sealpost.Account, error) {
	a, err := scanAccount(db.read.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE `+where, arg))
	if err != nil {
		return nil, mapError("reading account", err, "account not found", "")
	}
	return a, nil
}

// Account is read for every delivery attempt (is the account disabled?), so
// it is answered from the cache while no write has happened since. A missing
// account is not remembered: sealpost account create inserts from another
// process.
func (db *DB) Account(ctx context.Context, id int64) (*sealpost.Account, error) {
	return memoized(&db.cache, &db.cache.accounts, id, false, cloneAccount, func() (*sealpost.Account, error) {
		return db.queryAccount(ctx, `id = ?`, id)
	})
}

func cloneAccount(a *sealpost.Account) *sealpost.Account { return new(*a) }

// AccountByUsername finds the account named username. The empty name finds
// nothing: it is not NULL, which is what accounts without a username hold.
func (db *DB) AccountByUsername(ctx context.Context, username string) (*sealpost.Account, error) {
	return db.queryAccount(ctx, `username = ?`, username)
}

func (db *DB) AccountByPublicID(ctx context.Context, publicID string) (*sealpost.Account, error) {
	return db.queryAccount(ctx, `public_id = ?`, publicID)
}

// ChildAccounts lists parentID's accounts of kind in creation order, which
// AUTOINCREMENT ids follow exactly.
func (db *DB) ChildAccounts(ctx context.Context, parentID int64, kind sealpost.AccountKind, f sealpost.SubuserFilter) ([]*sealpost.Account, error) {
	q := `SELECT ` + accountColumns + ` FROM accounts WHERE parent_id = ? AND kind = ?`
	args := []any{parentID, string(kind)}
	if f.Username != "" {
		q += ` AND username = ?`
		args = append(args, f.Username)
	}
	limit := int64(-1) // SQLite's "no limit"
	if f.Limit > 0 {
		limit = int64(f.Limit)
	}
	q += ` ORDER BY id LIMIT ? OFFSET ?`
	args = append(args, limit, max(f.Offset, 0))

	rows, err := db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, internal("listing accounts", err)
	}
	defer rows.Close()
	var out []*sealpost.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, internal("listing accounts", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("listing accounts", err)
	}
	return out, nil
}

func (db *DB) SetAccountDisabled(ctx context.Context, id int64, disabled bool) error {
	defer db.cache.bump()
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET disabled = ? WHERE id = ?`, disabled, id)
		if err := requireOneRow(res, err, "updating account", "account not found"); err != nil || !disabled {
			return err
		}
		_, err = tx.ExecContext(ctx, duePendingOfAccountSQL, id)
		return err
	})
	return domainError("updating account", err, "account not found", "")
}

// duePendingOfAccountSQL makes an account's pending deliveries due at
// once: a due time of zero is in the past on every clock.
const duePendingOfAccountSQL = `UPDATE deliveries SET next_attempt_at = 0
	WHERE done = 0 AND message_id IN (SELECT id FROM messages WHERE account_id = ?)`

// DeleteAccount deletes the account; the schema's cascades take its keys,
// its setting and its child accounts with it.
func (db *DB) DeleteAccount(ctx context.Context, id int64) error {
	defer db.cache.bump()
	res, err := db.write.ExecContext(ctx, `DELETE FROM accounts WHERE id = ?`, id)
	return requireOneRow(res, err, "deleting account", "account not found")
}

func (db *DB) CountAccounts(ctx context.Context) (int, error) {
	var n int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM accounts`).Scan(&n); err != nil {
		return 0, internal("counting accounts", err)
	}
	return n, nil
}

// requireOneRow turns a statement that matched nothing into ENOTFOUND.
func requireOneRow(res sql.Result, err error, op, notFound string) error {
	if err != nil {
		return mapError(op, err, notFound, "")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return internal(op, err)
	}
	if n == 0 {
		return sealpost.Errorf(sealpost.ENOTFOUND, "%s", notFound)
	}
	if n != 1 {
		return internal(op, fmt.Errorf("%d rows changed, want 1", n))
	}
	return nil
}
