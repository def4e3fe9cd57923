package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost"
)

// accountColumns reads NULLs back as the zero values the domain uses for
// "none", so no nullable types are needed to scan them. Queries name the
// accounts table a.
const accountColumns = `a.id, COALESCE(a.public_id, ''), a.kind, COALESCE(a.parent_id, 0), COALESCE(a.username, ''), a.email, a.disabled, a.created_at`

// accountRow receives one row of accountColumns.
type accountRow struct {
	a    sealpost.Account
	kind string
}

func (r *accountRow) dest() []any {
	return []any{&r.a.ID, &r.a.PublicID, &r.kind, &r.a.ParentID, &r.a.Username, &r.a.Email, &r.a.Disabled, &r.a.CreatedAt}
}

func (r *accountRow) account() *sealpost.Account {
	a := r.a
	a.Kind = sealpost.AccountKind(r.kind)
	a.CreatedAt = a.CreatedAt.UTC()
	return &a
}

func scanAccount(row pgx.Row) (*sealpost.Account, error) {
	var r accountRow
	if err := row.Scan(r.dest()...); err != nil {
		return nil, err
	}
	return r.account(), nil
}

func validKind(k sealpost.AccountKind) bool {
	return k == sealpost.KindUser || k == sealpost.KindSubuser || k == sealpost.KindCustomer
}

// CreateAccount stores a and its default Enforced TLS setting in one
// transaction, so no account is ever seen without a setting.
func (db *DB) CreateAccount(ctx context.Context, a *sealpost.Account) error {
	return db.createAccount(ctx, a, -1)
}

// CreateChildAccount stores a unless its parent owns limit accounts of its
// kind already. The parent's row stays locked from the count to the commit,
// so creations on any number of nodes pass the cap one at a time.
func (db *DB) CreateChildAccount(ctx context.Context, a *sealpost.Account, limit int) error {
	return db.createAccount(ctx, a, max(limit, 0))
}

// createAccount stores a; a limit of -1 counts nothing.
func (db *DB) createAccount(ctx context.Context, a *sealpost.Account, limit int) error {
	if !validKind(a.Kind) {
		return sealpost.Invalid(sealpost.FieldError{Field: "kind", Message: "unknown account kind " + string(a.Kind)})
	}
	def := sealpost.DefaultEnforcedTLS()
	var id int64
	var createdAt time.Time
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if limit >= 0 {
			if err := lockAccount(ctx, tx, a.ParentID); err != nil {
				return err
			}
			var n int64
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE parent_id = $1 AND kind = $2`, a.ParentID, string(a.Kind)).Scan(&n); err != nil {
				return err
			}
			if n >= int64(limit) {
				return sealpost.ChildLimit(a.Kind, limit)
			}
		}
		err := tx.QueryRow(ctx, `
			INSERT INTO accounts (public_id, kind, parent_id, username, email, disabled)
			VALUES ($1, $2, $3, $4, $5, $6)
			RETURNING id, created_at`,
			nullString(a.PublicID), string(a.Kind), nullID(a.ParentID), nullString(a.Username), a.Email, a.Disabled,
		).Scan(&id, &createdAt)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO enforced_tls (account_id, require_tls, require_valid_cert, version)
			VALUES ($1, $2, $3, $4)`,
			id, def.RequireTLS, def.RequireValidCert, int32(def.Version))
		return err
	})
	if err != nil {
		return storeErr(err, "account")
	}
	a.ID = id
	a.CreatedAt = createdAt.UTC()
	return nil
}

func (db *DB) Account(ctx context.Context, id int64) (*sealpost.Account, error) {
	a, err := scanAccount(db.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts a WHERE a.id = $1`, id))
	return a, storeErr(err, "account")
}

func (db *DB) AccountByUsername(ctx context.Context, username string) (*sealpost.Account, error) {
	a, err := scanAccount(db.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts a WHERE a.username = $1`, username))
	return a, storeErr(err, "account")
}

func (db *DB) AccountByPublicID(ctx context.Context, publicID string) (*sealpost.Account, error) {
	a, err := scanAccount(db.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts a WHERE a.public_id = $1`, publicID))
	return a, storeErr(err, "account")
}

// ChildAccounts lists parentID's accounts of kind in creation order (ids
// only grow).
func (db *DB) ChildAccounts(ctx context.Context, parentID int64, kind sealpost.AccountKind, f sealpost.SubuserFilter) ([]*sealpost.Account, error) {
	if f.Limit < 0 || f.Offset < 0 {
		return nil, sealpost.Invalid(sealpost.FieldError{Message: "limit and offset must not be negative"})
	}
	var limit *int64 // NULL is no limit
	if f.Limit > 0 {
		l := int64(f.Limit)
		limit = &l
	}
	rows, err := db.pool.Query(ctx, `
		SELECT `+accountColumns+` FROM accounts a
		WHERE a.parent_id = $1 AND a.kind = $2 AND ($3 = '' OR a.username = $3)
		ORDER BY a.id
		LIMIT $4 OFFSET $5`,
		parentID, string(kind), f.Username, limit, int64(f.Offset))
	if err != nil {
		return nil, storeErr(err, "account")
	}
	accounts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*sealpost.Account, error) {
		return scanAccount(row)
	})
	if err != nil {
		return nil, storeErr(err, "account")
	}
	return accounts, nil
}

func (db *DB) SetAccountDisabled(ctx context.Context, id int64, disabled bool) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE accounts SET disabled = $2 WHERE id = $1`, id, disabled)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return sealpost.Errorf(sealpost.ENOTFOUND, "account not found")
		}
		if !disabled {
			return nil
		}
		// Due at once (zero is in the past on every node's clock), so that
		// delivery workers drop them now rather than at their next retry.
		_, err = tx.Exec(ctx, `UPDATE deliveries SET next_attempt_at = 0
			WHERE NOT done AND message_id IN (SELECT id FROM messages WHERE account_id = $1)`, id)
		return err
	})
	return storeErr(err, "account")
}

// DeleteAccount deletes the account; ON DELETE CASCADE removes its keys,
// its setting and its child accounts with theirs.
func (db *DB) DeleteAccount(ctx context.Context, id int64) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM accounts a WHERE a.id = $1`, id)
	if err != nil {
		return storeErr(err, "account")
	}
	if tag.RowsAffected() == 0 {
		return sealpost.Errorf(sealpost.ENOTFOUND, "account not found")
	}
	return nil
}

func (db *DB) CountAccounts(ctx context.Context) (int, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM accounts`).Scan(&n); err != nil {
		return 0, storeErr(err, "account")
	}
	return int(n), nil
}

// nullString stores the domain's "none" (empty) as NULL, which UNIQUE
// columns need so that many accounts can have none.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}
