package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost"
)

const authDomainColumns = `id, account_id, domain, subdomain, is_default, custom_spf, valid, return_path_valid, selector, key_algorithm, private_key, created_at`

func scanAuthDomain(row pgx.Row) (sealpost.AuthenticatedDomain, error) {
	var d sealpost.AuthenticatedDomain
	if err := row.Scan(&d.ID, &d.AccountID, &d.Domain, &d.Subdomain, &d.Default, &d.CustomSPF, &d.Valid, &d.ReturnPathValid, &d.Selector, &d.KeyAlgorithm, &d.PrivateKey, &d.CreatedAt); err != nil {
		return sealpost.AuthenticatedDomain{}, err
	}
	d.CreatedAt = d.CreatedAt.UTC()
	return d, nil
}

// CreateAuthenticatedDomain clears the account's other default in the same
// transaction, under the account's row lock, so that nodes creating
// defaults at once leave one.
func (db *DB) CreateAuthenticatedDomain(ctx context.Context, accountID int64, d sealpost.AuthenticatedDomain) (sealpost.AuthenticatedDomain, error) {
	var stored sealpost.AuthenticatedDomain
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := lockAccount(ctx, tx, accountID); err != nil {
			return err
		}
		if d.Default {
			if _, err := tx.Exec(ctx, `UPDATE authenticated_domains SET is_default = false WHERE account_id = $1`, accountID); err != nil {
				return err
			}
		}
		var err error
		stored, err = scanAuthDomain(tx.QueryRow(ctx, `
			INSERT INTO authenticated_domains (account_id, domain, subdomain, is_default, custom_spf, valid, selector, key_algorithm, private_key)
			VALUES ($1, $2, $3, $4, $5, false, $6, $7, $8)
			RETURNING `+authDomainColumns,
			accountID, d.Domain, d.Subdomain, d.Default, d.CustomSPF, d.Selector, d.KeyAlgorithm, d.PrivateKey))
		return err
	})
	if err != nil {
		return sealpost.AuthenticatedDomain{}, storeErr(err, "authenticated domain")
	}
	return stored, nil
}

// AuthenticatedDomain returns one of the account's domains.
func (db *DB) AuthenticatedDomain(ctx context.Context, accountID, id int64) (*sealpost.AuthenticatedDomain, error) {
	d, err := scanAuthDomain(db.pool.QueryRow(ctx,
		`SELECT `+authDomainColumns+` FROM authenticated_domains WHERE account_id = $1 AND id = $2`, accountID, id))
	if err != nil {
		return nil, storeErr(err, "authenticated domain")
	}
	return &d, nil
}

// AuthenticatedDomains lists the account's domains by id.
func (db *DB) AuthenticatedDomains(ctx context.Context, accountID int64) ([]sealpost.AuthenticatedDomain, error) {
	rows, err := db.pool.Query(ctx,
		`SELECT `+authDomainColumns+` FROM authenticated_domains WHERE account_id = $1 ORDER BY id`, accountID)
	if err != nil {
		return nil, storeErr(err, "authenticated domain")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (sealpost.AuthenticatedDomain, error) {
		return scanAuthDomain(row)
	})
	if err != nil {
		return nil, storeErr(err, "authenticated domain")
	}
	if out == nil {
		out = []sealpost.AuthenticatedDomain{}
	}
	return out, nil
}

// DeleteAuthenticatedDomain removes one of the account's domains.
func (db *DB) DeleteAuthenticatedDomain(ctx context.Context, accountID, id int64) error {
	return db.updateAuthDomain(ctx, `DELETE FROM authenticated_domains WHERE account_id = $1 AND id = $2`, accountID, id)
}

// SetAuthenticatedDomainValid records a validation's result.
func (db *DB) SetAuthenticatedDomainValid(ctx context.Context, accountID, id int64, valid bool) error {
	return db.updateAuthDomain(ctx, `UPDATE authenticated_domains SET valid = $3 WHERE account_id = $1 AND id = $2`, accountID, id, valid)
}

// SetReturnPathValid records whether the return path's records were found.
func (db *DB) SetReturnPathValid(ctx context.Context, accountID, id int64, valid bool) error {
	return db.updateAuthDomain(ctx, `UPDATE authenticated_domains SET return_path_valid = $3 WHERE account_id = $1 AND id = $2`, accountID, id, valid)
}

// UpdateAuthenticatedDomain clears the account's other default in the same
// transaction, under the account's row lock, as CreateAuthenticatedDomain.
// A change of custom_spf changes the return path's SPF record, which is
// then to be validated again.
func (db *DB) UpdateAuthenticatedDomain(ctx context.Context, accountID, id int64, u sealpost.AuthenticatedDomainUpdate) (*sealpost.AuthenticatedDomain, error) {
	var stored sealpost.AuthenticatedDomain
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := lockAccount(ctx, tx, accountID); err != nil {
			return err
		}
		if u.Default != nil && *u.Default {
			if _, err := tx.Exec(ctx, `UPDATE authenticated_domains SET is_default = false WHERE account_id = $1 AND id <> $2`, accountID, id); err != nil {
				return err
			}
		}
		var err error
		stored, err = scanAuthDomain(tx.QueryRow(ctx, `
			UPDATE authenticated_domains SET is_default = coalesce($3, is_default), custom_spf = coalesce($4, custom_spf),
				return_path_valid = return_path_valid AND custom_spf = coalesce($4, custom_spf)
			WHERE account_id = $1 AND id = $2
			RETURNING `+authDomainColumns, accountID, id, u.Default, u.CustomSPF))
		return err
	})
	if err != nil {
		return nil, storeErr(err, "authenticated domain")
	}
	return &stored, nil
}

func (db *DB) updateAuthDomain(ctx context.Context, query string, args ...any) error {
	tag, err := db.pool.Exec(ctx, query, args...)
	if err != nil {
		return storeErr(err, "authenticated domain")
	}
	if tag.RowsAffected() == 0 {
		return sealpost.Errorf(sealpost.ENOTFOUND, "authenticated domain not found")
	}
	return nil
}

// AssociateAuthenticatedDomain assigns the domain only when the domain is
// the parent's and the subuser its child, checked in the statement itself.
func (db *DB) AssociateAuthenticatedDomain(ctx context.Context, parentID, domainID, subuserID int64) (*sealpost.AuthenticatedDomain, error) {
	tag, err := db.pool.Exec(ctx, `
		INSERT INTO authenticated_domain_subusers (subuser_id, domain_id)
		SELECT s.id, d.id FROM accounts s, authenticated_domains d
		WHERE s.id = $1 AND s.parent_id = $2 AND s.kind = 'subuser' AND d.id = $3 AND d.account_id = $2
		ON CONFLICT (subuser_id) DO UPDATE SET domain_id = excluded.domain_id`,
		subuserID, parentID, domainID)
	if err != nil {
		return nil, storeErr(err, "authenticated domain")
	}
	if tag.RowsAffected() == 0 {
		return nil, sealpost.Errorf(sealpost.ENOTFOUND, "authenticated domain or subuser not found")
	}
	return db.AssociatedAuthenticatedDomain(ctx, subuserID)
}

// AssociatedAuthenticatedDomain is the domain assigned to the subuser.
func (db *DB) AssociatedAuthenticatedDomain(ctx context.Context, subuserID int64) (*sealpost.AuthenticatedDomain, error) {
	d, err := scanAuthDomain(db.pool.QueryRow(ctx, `
		SELECT `+authDomainColumns+` FROM authenticated_domains
		WHERE id = (SELECT domain_id FROM authenticated_domain_subusers WHERE subuser_id = $1)`, subuserID))
	if err != nil {
		return nil, storeErr(err, "assigned authenticated domain")
	}
	return &d, nil
}

// DisassociateAuthenticatedDomain takes the subuser's assigned domain away.
func (db *DB) DisassociateAuthenticatedDomain(ctx context.Context, subuserID int64) error {
	return db.updateAuthDomain(ctx, `DELETE FROM authenticated_domain_subusers WHERE subuser_id = $1`, subuserID)
}
