package sqlite

import (
	"bytes"
	"context"
	"database/sql"

	"slices"

	"github.com/sealpost/sealpost"
)

const authDomainColumns = `id, account_id, domain, subdomain, is_default, custom_spf, valid, return_path_valid, selector, key_algorithm, private_key, created_at`

func scanAuthDomain(row scanner) (sealpost.AuthenticatedDomain, error) {
	var d sealpost.AuthenticatedDomain
	var created int64
	if err := row.Scan(&d.ID, &d.AccountID, &d.Domain, &d.Subdomain, &d.Default, &d.CustomSPF, &d.Valid, &d.ReturnPathValid, &d.Selector, &d.KeyAlgorithm, &d.PrivateKey, &created); err != nil {
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
			INSERT INTO authenticated_domains (account_id, domain, subdomain, is_default, custom_spf, valid, selector, key_algorithm, private_key, created_at)
			VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?)
			RETURNING `+authDomainColumns,
			accountID, d.Domain, d.Subdomain, d.Default, d.CustomSPF, d.Selector, d.KeyAlgorithm, d.PrivateKey, now().UnixNano()))
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

// SetReturnPathValid records whether the return path's records were found.
func (db *DB) SetReturnPathValid(ctx context.Context, accountID, id int64, valid bool) error {
	return db.updateAuthDomain(ctx, "validating authenticated domain",
		`UPDATE authenticated_domains SET return_path_valid = ? WHERE account_id = ? AND id = ?`, valid, accountID, id)
}

// UpdateAuthenticatedDomain clears the account's other default in the same
// write transaction, as CreateAuthenticatedDomain. A change of custom_spf
// changes the return path's SPF record, which is then to be validated
// again.
func (db *DB) UpdateAuthenticatedDomain(ctx context.Context, accountID, id int64, u sealpost.AuthenticatedDomainUpdate) (*sealpost.AuthenticatedDomain, error) {
	defer db.cache.bump()
	var stored sealpost.AuthenticatedDomain
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if u.Default != nil && *u.Default {
			if _, err := tx.ExecContext(ctx, `UPDATE authenticated_domains SET is_default = 0 WHERE account_id = ? AND id <> ?`, accountID, id); err != nil {
				return err
			}
		}
		var err error
		stored, err = scanAuthDomain(tx.QueryRowContext(ctx, `
			UPDATE authenticated_domains SET is_default = coalesce(?1, is_default), custom_spf = coalesce(?2, custom_spf),
				return_path_valid = return_path_valid AND custom_spf = coalesce(?2, custom_spf)
			WHERE account_id = ?3 AND id = ?4
			RETURNING `+authDomainColumns, u.Default, u.CustomSPF, accountID, id))
		return err
	})
	if err != nil {
		return nil, mapError("updating authenticated domain", err, "authenticated domain not found", "")
	}
	return &stored, nil
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

// AssociateAuthenticatedDomain assigns the domain only when the domain is
// the parent's and the subuser its child, checked in the statement itself.
func (db *DB) AssociateAuthenticatedDomain(ctx context.Context, parentID, domainID, subuserID int64) (*sealpost.AuthenticatedDomain, error) {
	defer db.cache.bump()
	res, err := db.write.ExecContext(ctx, `
		INSERT INTO authenticated_domain_subusers (subuser_id, domain_id)
		SELECT s.id, d.id FROM accounts s, authenticated_domains d
		WHERE s.id = ? AND s.parent_id = ? AND s.kind = 'subuser' AND d.id = ? AND d.account_id = ?
		ON CONFLICT (subuser_id) DO UPDATE SET domain_id = excluded.domain_id`,
		subuserID, parentID, domainID, parentID)
	if err != nil {
		return nil, mapError("assigning authenticated domain", err, "", "")
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, mapError("assigning authenticated domain", err, "", "")
	} else if n == 0 {
		return nil, sealpost.Errorf(sealpost.ENOTFOUND, "authenticated domain or subuser not found")
	}
	// Past the cache: it is bumped only once this write returns.
	return db.associatedAuthenticatedDomain(ctx, subuserID)
}

// AssociatedAuthenticatedDomain is the domain assigned to the subuser. The
// signer asks for every delivery attempt, so it is answered from the cache,
// "none" included, while no write has happened since.
func (db *DB) AssociatedAuthenticatedDomain(ctx context.Context, subuserID int64) (*sealpost.AuthenticatedDomain, error) {
	return memoized(&db.cache, &db.cache.assignedDomains, subuserID, true, cloneAuthDomain,
		func() (*sealpost.AuthenticatedDomain, error) { return db.associatedAuthenticatedDomain(ctx, subuserID) })
}

func cloneAuthDomain(d *sealpost.AuthenticatedDomain) *sealpost.AuthenticatedDomain {
	c := *d
	c.PrivateKey = bytes.Clone(d.PrivateKey)
	return &c
}

func (db *DB) associatedAuthenticatedDomain(ctx context.Context, subuserID int64) (*sealpost.AuthenticatedDomain, error) {
	d, err := scanAuthDomain(db.read.QueryRowContext(ctx, `
		SELECT `+authDomainColumns+` FROM authenticated_domains
		WHERE id = (SELECT domain_id FROM authenticated_domain_subusers WHERE subuser_id = ?)`, subuserID))
	if err != nil {
		return nil, mapError("reading assigned authenticated domain", err, "no authenticated domain is assigned to the subuser", "")
	}
	return &d, nil
}

// DisassociateAuthenticatedDomain takes the subuser's assigned domain away.
func (db *DB) DisassociateAuthenticatedDomain(ctx context.Context, subuserID int64) error {
	return db.updateAuthDomain(ctx, "unassigning authenticated domain",
		`DELETE FROM authenticated_domain_subusers WHERE subuser_id = ?`, subuserID)
}
