package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/sealpost/sealpost"
)

// upsertHostSQL keeps the latest facts of a host, to
// sealpost.RegistryTimeResolution (?15). A partial observation
// (HostObservation.Partial) keeps the host's versions as they were, and
// its certificate verdict too unless the attempt saw the certificate fail.
const upsertHostSQL = `INSERT INTO tls_registry_hosts AS h (account_id, domain, mx_host, observed_at, mx_ip,
		tls, tls_version, tls_cipher, cert_verified, cert_error, cert_result, result_type, partial, mta_sts_testing_result)
	VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
	ON CONFLICT (account_id, domain, mx_host) DO UPDATE SET
		observed_at = excluded.observed_at, mx_ip = excluded.mx_ip, result_type = excluded.result_type,
		mta_sts_testing_result = excluded.mta_sts_testing_result,
		tls = CASE WHEN excluded.partial THEN h.tls ELSE excluded.tls END,
		tls_version = CASE WHEN excluded.partial THEN h.tls_version ELSE excluded.tls_version END,
		tls_cipher = CASE WHEN excluded.partial THEN h.tls_cipher ELSE excluded.tls_cipher END,
		cert_verified = CASE WHEN excluded.partial AND excluded.cert_error = '' THEN h.cert_verified ELSE excluded.cert_verified END,
		cert_error = CASE WHEN excluded.partial AND excluded.cert_error = '' THEN h.cert_error ELSE excluded.cert_error END,
		cert_result = CASE WHEN excluded.partial AND excluded.cert_error = '' THEN h.cert_result ELSE excluded.cert_result END,
		partial = excluded.partial
	WHERE excluded.observed_at >= h.observed_at AND (excluded.observed_at >= h.observed_at + ?15
		OR (excluded.mx_ip, excluded.tls, excluded.tls_version, excluded.tls_cipher, excluded.cert_verified, excluded.cert_error,
			excluded.cert_result, excluded.result_type, excluded.partial, excluded.mta_sts_testing_result)
		<> (h.mx_ip, h.tls, h.tls_version, h.tls_cipher, h.cert_verified, h.cert_error,
			h.cert_result, h.result_type, h.partial, h.mta_sts_testing_result))`

const upsertDomainSQL = `INSERT INTO tls_registry_domains AS d (account_id, domain, highest_version, valid_cert_seen, last_attempt)
	VALUES (?1, ?2, ?3, ?4, ?5)
	ON CONFLICT (account_id, domain) DO UPDATE SET
		highest_version = max(d.highest_version, excluded.highest_version),
		valid_cert_seen = d.valid_cert_seen OR excluded.valid_cert_seen,
		last_attempt = max(d.last_attempt, excluded.last_attempt)
	WHERE excluded.last_attempt >= d.last_attempt + ?6 OR excluded.highest_version > d.highest_version
		OR (excluded.valid_cert_seen AND NOT d.valid_cert_seen)`

const countRecipientsSQL = `INSERT INTO tls_registry_days AS c (account_id, domain, day, recipients) VALUES (?1, ?2, ?3, ?4)
	ON CONFLICT (account_id, domain, day) DO UPDATE SET recipients = c.recipients + excluded.recipients`

// RecordObservations stores a probe's observations in one transaction.
func (db *DB) RecordObservations(ctx context.Context, obs []sealpost.HostObservation) error {
	obs, err := sealpost.CleanObservations(obs)
	if err != nil || len(obs) == 0 {
		return err
	}
	err = db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error { return db.recordObservations(ctx, tx, obs) })
	return domainError("recording TLS observations", err, "account not found", "")
}

// recordObservations writes obs, already cleaned, in tx.
func (db *DB) recordObservations(ctx context.Context, tx *sql.Tx, obs []sealpost.HostObservation) error {
	host := tx.StmtContext(ctx, db.stmts.upsertHost)
	domain := tx.StmtContext(ctx, db.stmts.upsertDomain)
	for _, o := range obs {
		f := o.Facts
		if _, err := host.ExecContext(ctx, o.AccountID, o.Domain, o.MXHost, o.At.UnixNano(), f.MXIP,
			f.TLS, f.Version, f.Cipher, f.Verified, f.VerifyError, o.CertResultOf(), f.ResultType, o.Partial(), f.MTASTSTestingResult,
			int64(sealpost.RegistryTimeResolution)); err != nil {
			return err
		}
		if _, err := domain.ExecContext(ctx, o.AccountID, o.Domain, o.SeenVersion(), o.SeenValidCert(), o.At.UnixNano(),
			int64(sealpost.RegistryTimeResolution)); err != nil {
			return err
		}
	}
	count := tx.StmtContext(ctx, db.stmts.countTLSRPT)
	for _, c := range sealpost.FoldTLSRPTCounts(obs) {
		if _, err := count.ExecContext(ctx, countTLSRPTArgs(c)...); err != nil {
			return err
		}
	}
	return nil
}

// countRecipients adds msgs' recipients to the per-day counters.
func (db *DB) countRecipients(ctx context.Context, tx *sql.Tx, msgs []*sealpost.Message, at time.Time) error {
	st := tx.StmtContext(ctx, db.stmts.countRecipients)
	for _, c := range sealpost.DomainRecipients(msgs, at) {
		if _, err := st.ExecContext(ctx, c.AccountID, c.Domain, c.Day, c.Recipients); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) TLSRegistry(ctx context.Context, accountID int64, sinceDay int64) ([]sealpost.RegistryDomain, error) {
	out, err := db.tlsRegistry(ctx, accountID, sinceDay)
	if err != nil {
		return nil, mapError("reading the TLS registry", err, "account not found", "")
	}
	return out, nil
}

func (db *DB) tlsRegistry(ctx context.Context, accountID int64, sinceDay int64) ([]sealpost.RegistryDomain, error) {
	// One read transaction: the three reads see one state.
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT c.domain, sum(c.recipients), coalesce(d.highest_version, ''), coalesce(d.valid_cert_seen, 0), coalesce(d.last_attempt, 0)
		FROM tls_registry_days c LEFT JOIN tls_registry_domains d ON d.account_id = c.account_id AND d.domain = c.domain
		WHERE c.account_id = ? AND c.day >= ?
		GROUP BY c.domain ORDER BY c.domain`, accountID, sinceDay)
	if err != nil {
		return nil, err
	}
	var out []sealpost.RegistryDomain
	index := map[string]int{}
	for rows.Next() {
		var d sealpost.RegistryDomain
		var last int64
		if err := rows.Scan(&d.Domain, &d.Recipients, &d.HighestVersion, &d.ValidCertSeen, &last); err != nil {
			rows.Close()
			return nil, err
		}
		if last != 0 {
			d.LastAttempt = time.Unix(0, last).UTC()
		}
		index[d.Domain] = len(out)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT domain, mx_host, observed_at, mx_ip, tls, tls_version, tls_cipher,
			cert_verified, cert_error, cert_result, result_type, mta_sts_testing_result
		FROM tls_registry_hosts WHERE account_id = ? ORDER BY domain, mx_host`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var domain string
		var h sealpost.HostFacts
		var at int64
		f := &h.Facts
		if err := rows.Scan(&domain, &h.MXHost, &at, &f.MXIP, &f.TLS, &f.Version, &f.Cipher,
			&f.Verified, &f.VerifyError, &h.CertResult, &f.ResultType, &f.MTASTSTestingResult); err != nil {
			return nil, err
		}
		k, ok := index[domain]
		if !ok {
			continue
		}
		h.At = time.Unix(0, at).UTC()
		f.MXHost = h.MXHost
		out[k].Hosts = append(out[k].Hosts, h)
	}
	return out, rows.Err()
}

// PruneTLSRegistry deletes what is older than before.
func (db *DB) PruneTLSRegistry(ctx context.Context, before time.Time) error {
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, q := range []struct {
			sql string
			arg int64
		}{
			{`DELETE FROM tls_registry_hosts WHERE observed_at < ?`, before.UnixNano()},
			{`DELETE FROM tls_registry_domains WHERE last_attempt < ?`, before.UnixNano()},
			{`DELETE FROM tls_registry_days WHERE day < ?`, sealpost.RegistryDay(before)},
			{`DELETE FROM tlsrpt_counts WHERE day < ?`, sealpost.RegistryDay(before)},
			{`DELETE FROM tlsrpt_runs WHERE day < ?`, sealpost.RegistryDay(before)},
			{`DELETE FROM tlsrpt_sends WHERE day < ?`, sealpost.RegistryDay(before)},
		} {
			if _, err := tx.ExecContext(ctx, q.sql, q.arg); err != nil {
				return err
			}
		}
		return nil
	})
	return domainError("pruning the TLS registry", err, "", "")
}
