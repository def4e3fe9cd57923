package sqlite

import (
	"bytes"
	"context"
	"database/sql"

	"slices"

	"github.com/sealpost/sealpost"
)

const authDomainColumns = `id, account_id, domain, subdomain, is_default, valid, selector, key_algorithm, private_key, created_at`

func scanAuthDomain(row scanner) (sealpost.AuthenticatedDomain, error) {
	var d sealpost.AuthenticatedDomain
	var created int64
	if err := row.Scan(&d.ID, &d.AccountID, &d.Domain, &d.Subdomain, &d.Default, &d.Valid, &d.Selector, &d.KeyAlgorithm, &d.PrivateKey, &created); err != nil {
		return sealpost.AuthenticatedDomain{}, err
	}
	d.CreatedAt = fromUnixNano(created)
	return d, nil
}

// CreateAuthenticatedDomain clears the account's other default in the same
// write transaction, so that one default at most is ever seen.
func (db *DB) CreateAuthenticatedDomain(ctx context.Context, accountID int64, d sealpost.AuthenticatedDomain) (sealpost.AuthenticatedDomain, error) {
	defer db.cache.bump()
	var stored sealpost.AuthenticatedDomain
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if d.Default {
			if _, err := tx.ExecContext(ctx, `UPDATE authenticated_domains SET is_default = 0 WHERE account_id = ?`, accountID); err != nil {
				return err
			}
		}
		var err error
		stored, err = scanAuthDomain(tx.QueryRowContext(ctx, `
			INSERT INTO authenticated_domains (account_id, domain, subdomain, is_default, valid, selector, key_algorithm, private_key, created_at)
			VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)
			RETURNING `+authDomainColumns,
			accountID, d.Domain, d.Subdomain, d.Default, d.Selector, d.KeyAlgorithm, d.PrivateKey, now().UnixNano()))
		return err
	})
	if err != nil {
		return sealpost.AuthenticatedDomain{}, domainError("storing authenticated domain", err, "account not found", "domain is already authenticated")
	}
	return stored, nil
}

// AuthenticatedDomain returns one of the account's domains.
func (db *DB) AuthenticatedDomain(ctx context.Context, accountID, id int64) (*sealpost.AuthenticatedDomain, error) {
	d, err := scanAuthDomain(db.read.QueryRowContext(ctx,
		`SELECT `+authDomainColumns+` FROM authenticated_domains WHERE account_id = ? AND id = ?`, accountID, id))
	if err != nil {
		return nil, mapError("reading authenticated domain", err, "authenticated domain not found", "")
	}
	return &d, nil
}

// AuthenticatedDomains lists the account's domains by id. The signer asks
// for every delivery attempt, so it is answered from the cache while no
// write has happened since.
func (db *DB) AuthenticatedDomains(ctx context.Context, accountID int64) ([]sealpost.AuthenticatedDomain, error) {
	return memoized(&db.cache, &db.cache.authDomains, accountID, false, cloneAuthDomains,
		func() ([]sealpost.AuthenticatedDomain, error) { return db.authenticatedDomains(ctx, accountID) })
}

func cloneAuthDomains(ds []sealpost.AuthenticatedDomain) []sealpost.AuthenticatedDomain {
	out := slices.Clone(ds)
	for i := range out {
		out[i].PrivateKey = bytes.Clone(out[i].PrivateKey)
	}
	return out
}

func (db *DB) authenticatedDomains(ctx context.Context, accountID int64) ([]sealpost.AuthenticatedDomain, error) {
	rows, err := db.read.QueryContext(ctx,
		`SELECT `+authDomainColumns+` FROM authenticated_domains WHERE account_id = ? ORDER BY id`, accountID)
	if err != nil {
		return nil, mapError("listing authenticated domains", err, "", "")
	}
	defer rows.Close()
	out := []sealpost.AuthenticatedDomain{}
	for rows.Next() {
		d, err := scanAuthDomain(rows)
		if err != nil {
			return nil, mapError("listing authenticated domains", err, "", "")
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError("listing authenticated domains", err, "", "")
	}
	return out, nil
}

// DeleteAuthenticatedDomain removes one of the account's domains.
func (db *DB) DeleteAuthenticatedDomain(ctx context.Context, accountID, id int64) error {
	return db.updateAuthDomain(ctx, "deleting authenticated domain",
		`DELETE FROM authenticated_domains WHERE account_id = ? AND id = ?`, accountID, id)
}

// SetAuthenticatedDomainValid records a validation's result.
func (db *DB) SetAuthenticatedDomainValid(ctx context.Context, accountID, id int64, valid bool) error {
	return db.updateAuthDomain(ctx, "validating authenticated domain",
		`UPDATE authenticated_domains SET valid = ? WHERE account_id = ? AND id = ?`, valid, accountID, id)
}

func (db *DB) updateAuthDomain(ctx context.Context, op, query string, args ...any) error {
	defer db.cache.bump()
	res, err := db.write.ExecContext(ctx, query, args...)
	if err != nil {
		return mapError(op, err, "", "")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return mapError(op, err, "", "")
	}
	if n == 0 {
		return sealpost.Errorf(sealpost.ENOTFOUND, "authenticated domain not found")
	}
	return nil
}
