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
	if !db.cache.enabled.Load() {
		return db.enforcedTLS(ctx, accountID)
	}
	g := db.cache.gen.Load()
	if s, ok := db.cache.setting(accountID, g); ok {
		return s, nil
	}
	s, err := db.enforcedTLS(ctx, accountID)
	if db.cache.afterMiss != nil {
		db.cache.afterMiss()
	}
	if err != nil {
		if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
			db.cache.forgetSetting(accountID)
		}
		return sealpost.EnforcedTLS{}, err
	}
	db.cache.storeSetting(accountID, g, s)
	return s, nil
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
