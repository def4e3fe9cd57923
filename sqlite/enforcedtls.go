package sqlite

import (
	"context"

	"github.com/sealpost/sealpost"
)

const enforcedTLSSQL = `SELECT require_tls, require_valid_cert, version FROM enforced_tls WHERE account_id = ?`

func scanSetting(row scanner) (sealpost.EnforcedTLS, error) {
	var s sealpost.EnforcedTLS
	var version int64
	if err := row.Scan(&s.RequireTLS, &s.RequireValidCert, &version); err != nil {
		return sealpost.EnforcedTLS{}, err
	}
	s.Version = sealpost.TLSVersion(version)
	return s, nil
}

// EnforcedTLS reads an account's setting; it runs on every request that
// reads or applies the setting, so it is answered from the cache when no
// write has happened since the cached read.
func (db *DB) EnforcedTLS(ctx context.Context, accountID int64) (sealpost.EnforcedTLS, error) {
	return memoized(&db.cache, &db.cache.settings, accountID, false,
		func(s sealpost.EnforcedTLS) sealpost.EnforcedTLS { return s },
		func() (sealpost.EnforcedTLS, error) { return db.enforcedTLS(ctx, accountID) })
}

func (db *DB) enforcedTLS(ctx context.Context, accountID int64) (sealpost.EnforcedTLS, error) {
	s, err := scanSetting(db.settingsStmt.QueryRowContext(ctx, accountID))
	if err != nil {
		return sealpost.EnforcedTLS{}, mapError("reading Enforced TLS setting", err, "account not found", "")
	}
	return s, nil
}

// UpdateEnforcedTLS applies patch in one statement: SQLite runs it under the
// write lock, so concurrent patches each see the one before and no field of
// any is lost or mixed with another's.
func (db *DB) UpdateEnforcedTLS(ctx context.Context, accountID int64, patch sealpost.EnforcedTLSPatch) (sealpost.EnforcedTLS, error) {
	defer db.cache.bump()
	var requireTLS, requireValidCert, version any // NULL keeps the column
	if patch.RequireTLS != nil {
		requireTLS = *patch.RequireTLS
	}
	if patch.RequireValidCert != nil {
		requireValidCert = *patch.RequireValidCert
	}
	if patch.Version != nil {
		if !patch.Version.Valid() {
			return sealpost.EnforcedTLS{}, sealpost.Invalid(sealpost.FieldError{Field: "version", Message: "version must be one of 1.1, 1.2, 1.3"})
		}
		version = int64(*patch.Version)
	}
	s, err := scanSetting(db.write.QueryRowContext(ctx,
		`UPDATE enforced_tls SET
			require_tls = COALESCE(?, require_tls),
			require_valid_cert = COALESCE(?, require_valid_cert),
			version = COALESCE(?, version)
		 WHERE account_id = ?
		 RETURNING require_tls, require_valid_cert, version`,
		requireTLS, requireValidCert, version, accountID))
	if err != nil {
		return sealpost.EnforcedTLS{}, mapError("updating Enforced TLS setting", err, "account not found", "")
	}
	return s, nil
}
