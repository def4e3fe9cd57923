package sqlite

import (
	"context"
	"database/sql"

	"github.com/sealpost/sealpost"
)

const domainPolicyColumns = `domain, require_tls, require_valid_cert, version, created_at, updated_at`

func scanDomainPolicy(row scanner) (sealpost.DomainTLSPolicy, error) {
	var p sealpost.DomainTLSPolicy
	var version, created, updated int64
	if err := row.Scan(&p.Domain, &p.Policy.RequireTLS, &p.Policy.RequireValidCert, &version, &created, &updated); err != nil {
		return sealpost.DomainTLSPolicy{}, err
	}
	p.Policy.Version = sealpost.TLSVersion(version)
	p.CreatedAt, p.UpdatedAt = fromUnixNano(created), fromUnixNano(updated)
	return p, nil
}

// PutDomainTLSPolicy creates or replaces the policy in one write
// transaction, which SQLite's single writer serialises: the count against
// the cap and the insert cannot interleave with another creation. A
// replacement that changes nothing keeps updated_at.
func (db *DB) PutDomainTLSPolicy(ctx context.Context, accountID int64, p sealpost.DomainTLSPolicy) (sealpost.DomainTLSPolicy, bool, error) {
	defer db.cache.bump()
	if err := p.Check(); err != nil {
		return sealpost.DomainTLSPolicy{}, false, err
	}
	var stored sealpost.DomainTLSPolicy
	var created bool
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var n, exists int
		if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(domain = ?), 0) FROM domain_tls_policies WHERE account_id = ?`,
			p.Domain, accountID).Scan(&n, &exists); err != nil {
			return err
		}
		if err := sealpost.CheckDomainTLSPolicyPut(exists > 0, n); err != nil {
			return err
		}
		created = exists == 0
		at := now().UnixNano()
		var err error
		stored, err = scanDomainPolicy(tx.QueryRowContext(ctx, `
			INSERT INTO domain_tls_policies (account_id, `+domainPolicyColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (account_id, domain) DO UPDATE SET
				require_tls = excluded.require_tls,
				require_valid_cert = excluded.require_valid_cert,
				version = excluded.version,
				updated_at = CASE WHEN (require_tls, require_valid_cert, version) =
					(excluded.require_tls, excluded.require_valid_cert, excluded.version)
					THEN updated_at ELSE excluded.updated_at END
			RETURNING `+domainPolicyColumns,
			accountID, p.Domain, p.Policy.RequireTLS, p.Policy.RequireValidCert, int64(p.Policy.Version), at, at))
		return err
	})
	if err != nil {
		return sealpost.DomainTLSPolicy{}, false, domainError("storing domain TLS policy", err, "account not found", "")
	}
	return stored, created, nil
}

// DomainTLSPolicy returns the account's policy for domain.
// It is read for every delivery attempt, so it is answered from the cache,
// "none" included, while no write has happened since.
func (db *DB) DomainTLSPolicy(ctx context.Context, accountID int64, domain string) (*sealpost.DomainTLSPolicy, error) {
	return memoized(&db.cache, &db.cache.domainPolicies, domainPolicyKey{accountID, domain}, true,
		func(p *sealpost.DomainTLSPolicy) *sealpost.DomainTLSPolicy { return new(*p) },
		func() (*sealpost.DomainTLSPolicy, error) { return db.domainTLSPolicy(ctx, accountID, domain) })
}

func (db *DB) domainTLSPolicy(ctx context.Context, accountID int64, domain string) (*sealpost.DomainTLSPolicy, error) {
	p, err := scanDomainPolicy(db.read.QueryRowContext(ctx,
		`SELECT `+domainPolicyColumns+` FROM domain_tls_policies WHERE account_id = ? AND domain = ?`, accountID, domain))
	if err != nil {
		return nil, mapError("reading domain TLS policy", err, "domain TLS policy not found", "")
	}
	return &p, nil
}

// DomainTLSPolicies lists the account's policies by domain.
func (db *DB) DomainTLSPolicies(ctx context.Context, accountID int64) ([]sealpost.DomainTLSPolicy, error) {
	rows, err := db.read.QueryContext(ctx,
		`SELECT `+domainPolicyColumns+` FROM domain_tls_policies WHERE account_id = ? ORDER BY domain`, accountID)
	if err != nil {
		return nil, mapError("listing domain TLS policies", err, "", "")
	}
	defer rows.Close()
	out := []sealpost.DomainTLSPolicy{}
	for rows.Next() {
		p, err := scanDomainPolicy(rows)
		if err != nil {
			return nil, mapError("listing domain TLS policies", err, "", "")
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError("listing domain TLS policies", err, "", "")
	}
	return out, nil
}

// DeleteDomainTLSPolicy removes the account's policy for domain.
func (db *DB) DeleteDomainTLSPolicy(ctx context.Context, accountID int64, domain string) error {
	defer db.cache.bump()
	res, err := db.write.ExecContext(ctx, `DELETE FROM domain_tls_policies WHERE account_id = ? AND domain = ?`, accountID, domain)
	if err != nil {
		return mapError("deleting domain TLS policy", err, "", "")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return mapError("deleting domain TLS policy", err, "", "")
	}
	if n == 0 {
		return sealpost.Errorf(sealpost.ENOTFOUND, "domain TLS policy not found")
	}
	return nil
}
