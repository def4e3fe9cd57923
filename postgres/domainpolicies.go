package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost"
)

const domainPolicyColumns = `domain, require_tls, require_valid_cert, version, created_at, updated_at`

func scanDomainPolicy(row pgx.Row) (sealpost.DomainTLSPolicy, error) {
	var p sealpost.DomainTLSPolicy
	var version int32
	if err := row.Scan(&p.Domain, &p.Policy.RequireTLS, &p.Policy.RequireValidCert, &version, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return sealpost.DomainTLSPolicy{}, err
	}
	p.Policy.Version = sealpost.TLSVersion(version)
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return p, nil
}

// PutDomainTLSPolicy creates or replaces the policy. The account's row is
// locked while its policies are counted, so creations on any number of
// nodes pass the cap one at a time. A replacement that changes nothing
// keeps updated_at.
func (db *DB) PutDomainTLSPolicy(ctx context.Context, accountID int64, p sealpost.DomainTLSPolicy) (sealpost.DomainTLSPolicy, bool, error) {
	if err := p.Check(); err != nil {
		return sealpost.DomainTLSPolicy{}, false, err
	}
	var stored sealpost.DomainTLSPolicy
	var created bool
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := lockAccount(ctx, tx, accountID); err != nil {
			return err
		}
		var n int
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(bool_or(domain = $2), false) FROM domain_tls_policies WHERE account_id = $1`,
			accountID, p.Domain).Scan(&n, &exists); err != nil {
			return err
		}
		if err := sealpost.CheckDomainTLSPolicyPut(exists, n); err != nil {
			return err
		}
		created = !exists
		var err error
		stored, err = scanDomainPolicy(tx.QueryRow(ctx, `
			INSERT INTO domain_tls_policies (account_id, domain, require_tls, require_valid_cert, version)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (account_id, domain) DO UPDATE SET
				require_tls = excluded.require_tls,
				require_valid_cert = excluded.require_valid_cert,
				version = excluded.version,
				updated_at = CASE WHEN (domain_tls_policies.require_tls, domain_tls_policies.require_valid_cert, domain_tls_policies.version) =
					(excluded.require_tls, excluded.require_valid_cert, excluded.version)
					THEN domain_tls_policies.updated_at ELSE now() END
			RETURNING `+domainPolicyColumns,
			accountID, p.Domain, p.Policy.RequireTLS, p.Policy.RequireValidCert, int32(p.Policy.Version)))
		return err
	})
	if err != nil {
		return sealpost.DomainTLSPolicy{}, false, storeErr(err, "domain TLS policy")
	}
	return stored, created, nil
}

// DomainTLSPolicy returns the account's policy for domain.
func (db *DB) DomainTLSPolicy(ctx context.Context, accountID int64, domain string) (*sealpost.DomainTLSPolicy, error) {
	p, err := scanDomainPolicy(db.pool.QueryRow(ctx,
		`SELECT `+domainPolicyColumns+` FROM domain_tls_policies WHERE account_id = $1 AND domain = $2`, accountID, domain))
	if err != nil {
		return nil, storeErr(err, "domain TLS policy")
	}
	return &p, nil
}

// DomainTLSPolicies lists the account's policies by domain.
func (db *DB) DomainTLSPolicies(ctx context.Context, accountID int64) ([]sealpost.DomainTLSPolicy, error) {
	rows, err := db.pool.Query(ctx,
		`SELECT `+domainPolicyColumns+` FROM domain_tls_policies WHERE account_id = $1 ORDER BY domain`, accountID)
	if err != nil {
		return nil, storeErr(err, "domain TLS policy")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (sealpost.DomainTLSPolicy, error) {
		return scanDomainPolicy(row)
	})
	if err != nil {
		return nil, storeErr(err, "domain TLS policy")
	}
	if out == nil {
		out = []sealpost.DomainTLSPolicy{}
	}
	return out, nil
}

// DeleteDomainTLSPolicy removes the account's policy for domain.
func (db *DB) DeleteDomainTLSPolicy(ctx context.Context, accountID int64, domain string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM domain_tls_policies WHERE account_id = $1 AND domain = $2`, accountID, domain)
	if err != nil {
		return storeErr(err, "domain TLS policy")
	}
	if tag.RowsAffected() == 0 {
		return sealpost.Errorf(sealpost.ENOTFOUND, "domain TLS policy not found")
	}
	return nil
}
