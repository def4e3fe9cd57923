package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost"
)

func scanEnforcedTLS(row pgx.Row) (sealpost.EnforcedTLS, error) {
	var s sealpost.EnforcedTLS
	var version int32
	if err := row.Scan(&s.RequireTLS, &s.RequireValidCert, &version); err != nil {
		return sealpost.EnforcedTLS{}, err
	}
	s.Version = sealpost.TLSVersion(version)
	return s, nil
}

func (db *DB) EnforcedTLS(ctx context.Context, accountID int64) (sealpost.EnforcedTLS, error) {
	s, err := scanEnforcedTLS(db.pool.QueryRow(ctx, `
		SELECT require_tls, require_valid_cert, version
		FROM enforced_tls WHERE account_id = $1`, accountID))
	return s, storeErr(err, "account")
}

// UpdateEnforcedTLS merges patch into the stored setting in a single UPDATE:
// the row lock it takes makes concurrent patches of different fields, from
// any node, apply one after the other instead of overwriting each other
// with stale values read beforehand.
func (db *DB) UpdateEnforcedTLS(ctx context.Context, accountID int64, patch sealpost.EnforcedTLSPatch) (sealpost.EnforcedTLS, error) {
	var version *int32 // NULL keeps the stored version
	if patch.Version != nil {
		if !patch.Version.Valid() {
			return sealpost.EnforcedTLS{}, sealpost.Invalid(sealpost.FieldError{Field: "version", Message: "version must be one of 1.1, 1.2, 1.3"})
		}
		v := int32(*patch.Version)
		version = &v
	}
	s, err := scanEnforcedTLS(db.pool.QueryRow(ctx, `
		UPDATE enforced_tls SET
			require_tls = COALESCE($2, require_tls),
			require_valid_cert = COALESCE($3, require_valid_cert),
			version = COALESCE($4, version)
		WHERE account_id = $1
		RETURNING require_tls, require_valid_cert, version`,
		accountID, patch.RequireTLS, patch.RequireValidCert, version))
	return s, storeErr(err, "account")
}
