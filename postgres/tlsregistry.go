package postgres

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost"
)

// queueObservations adds to b the statements that record obs, already
// cleaned: two multi-row upserts, so that a completion's observations
// cost no round trip of their own. A statement may not update one row
// twice, so the observations are first folded per host and per domain;
// rows are written in key order, so that concurrent writers lock them in
// the same order.
//
// A partial observation (HostObservation.Partial) keeps the host's
// versions as they were, and its certificate verdict too unless the
// attempt saw the certificate fail.
func queueObservations(b *pgx.Batch, obs []sealpost.HostObservation) {
	if len(obs) == 0 {
		return
	}
	obs = slices.Clone(obs)
	slices.SortStableFunc(obs, func(a, b sealpost.HostObservation) int {
		return cmp.Or(cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.Domain, b.Domain), cmp.Compare(a.MXHost, b.MXHost), a.At.Compare(b.At))
	})
	var h struct {
		accounts, at                                                      []int64
		domains, hosts, ips, versions, ciphers, errs, certs, rts, testing []string
		tls, verified, partial                                            []bool
	}
	var d struct {
		accounts, last    []int64
		domains, versions []string
		valid             []bool
	}
	for i, o := range obs {
		f := o.Facts
		// Sorted by time within a host: its last observation is its latest,
		// and the earlier ones count in the domain's summary only.
		if i+1 == len(obs) || obs[i+1].AccountID != o.AccountID || obs[i+1].Domain != o.Domain || obs[i+1].MXHost != o.MXHost {
			h.accounts = append(h.accounts, o.AccountID)
			h.domains = append(h.domains, o.Domain)
			h.hosts = append(h.hosts, o.MXHost)
			h.at = append(h.at, o.At.UnixNano())
			h.ips = append(h.ips, f.MXIP)
			h.tls = append(h.tls, f.TLS)
			h.versions = append(h.versions, f.Version)
			h.ciphers = append(h.ciphers, f.Cipher)
			h.verified = append(h.verified, f.Verified)
			h.errs = append(h.errs, f.VerifyError)
			h.certs = append(h.certs, o.CertResultOf())
			h.rts = append(h.rts, f.ResultType)
			h.testing = append(h.testing, f.MTASTSTestingResult)
			h.partial = append(h.partial, o.Partial())
		}
		n := len(d.accounts)
		if n == 0 || d.accounts[n-1] != o.AccountID || d.domains[n-1] != o.Domain {
			d.accounts = append(d.accounts, o.AccountID)
			d.domains = append(d.domains, o.Domain)
			d.versions = append(d.versions, o.SeenVersion())
			d.valid = append(d.valid, o.SeenValidCert())
			d.last = append(d.last, o.At.UnixNano())
			continue
		}
		d.versions[n-1] = max(d.versions[n-1], o.SeenVersion())
		d.valid[n-1] = d.valid[n-1] || o.SeenValidCert()
		d.last[n-1] = max(d.last[n-1], o.At.UnixNano())
	}
	b.Queue(`
		INSERT INTO tls_registry_hosts AS h (account_id, domain, mx_host, observed_at, mx_ip,
			tls, tls_version, tls_cipher, cert_verified, cert_error, cert_result, result_type, partial, mta_sts_testing_result)
		SELECT *
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bool[], $7::text[], $8::text[],
			$9::bool[], $10::text[], $11::text[], $12::text[], $13::bool[], $14::text[]) AS o(a, dom, host, at, ip, t, v, c, ok, e, cr, rt, p, mt)
		ORDER BY a, dom, host
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
		WHERE excluded.observed_at >= h.observed_at AND (excluded.observed_at >= h.observed_at + $15
			OR (excluded.mx_ip, excluded.tls, excluded.tls_version, excluded.tls_cipher, excluded.cert_verified, excluded.cert_error,
				excluded.cert_result, excluded.result_type, excluded.partial, excluded.mta_sts_testing_result)
			IS DISTINCT FROM (h.mx_ip, h.tls, h.tls_version, h.tls_cipher, h.cert_verified, h.cert_error,
				h.cert_result, h.result_type, h.partial, h.mta_sts_testing_result))`,
		h.accounts, h.domains, h.hosts, h.at, h.ips, h.tls, h.versions, h.ciphers, h.verified, h.errs, h.certs, h.rts, h.partial, h.testing,
		int64(sealpost.RegistryTimeResolution))
	b.Queue(`
		INSERT INTO tls_registry_domains AS d (account_id, domain, highest_version, valid_cert_seen, last_attempt)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bool[], $5::bigint[]) AS o(a, dom, v, ok, at)
		ORDER BY a, dom
		ON CONFLICT (account_id, domain) DO UPDATE SET
			highest_version = GREATEST(d.highest_version, excluded.highest_version),
			valid_cert_seen = d.valid_cert_seen OR excluded.valid_cert_seen,
			last_attempt = GREATEST(d.last_attempt, excluded.last_attempt)
		WHERE excluded.last_attempt >= d.last_attempt + $6 OR excluded.highest_version > d.highest_version
			OR (excluded.valid_cert_seen AND NOT d.valid_cert_seen)`,
		d.accounts, d.domains, d.versions, d.valid, d.last, int64(sealpost.RegistryTimeResolution))
	queueTLSRPTCounts(b, obs)
}

// queueRecipientCounts adds to b the statement that counts msgs'
// recipients per domain and day.
func queueRecipientCounts(b *pgx.Batch, msgs []*sealpost.Message, at time.Time) {
	counts := sealpost.DomainRecipients(msgs, at)
	if len(counts) == 0 {
		return
	}
	accounts := make([]int64, len(counts))
	domains := make([]string, len(counts))
	days := make([]int64, len(counts))
	n := make([]int64, len(counts))
	for i, c := range counts {
		accounts[i], domains[i], days[i], n[i] = c.AccountID, c.Domain, c.Day, c.Recipients
	}
	b.Queue(`
		INSERT INTO tls_registry_days AS c (account_id, domain, day, recipients)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) AS o(a, dom, day, n)
		ORDER BY a, dom, day
		ON CONFLICT (account_id, domain, day) DO UPDATE SET recipients = c.recipients + excluded.recipients`,
		accounts, domains, days, n)
}

// RecordObservations stores a probe's observations in one round trip.
func (db *DB) RecordObservations(ctx context.Context, obs []sealpost.HostObservation) error {
	obs, err := sealpost.CleanObservations(obs)
	if err != nil || len(obs) == 0 {
		return err
	}
	b := &pgx.Batch{}
	queueObservations(b, obs)
	return storeErr(sendBatch(ctx, db.pool, b), "account")
}

func (db *DB) TLSRegistry(ctx context.Context, accountID int64, sinceDay int64) ([]sealpost.RegistryDomain, error) {
	var out []sealpost.RegistryDomain
	// Repeatable read: the two reads see one state.
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT c.domain, sum(c.recipients)::bigint, coalesce(d.highest_version, ''), coalesce(d.valid_cert_seen, false), coalesce(d.last_attempt, 0)
			FROM tls_registry_days c LEFT JOIN tls_registry_domains d ON d.account_id = c.account_id AND d.domain = c.domain
			WHERE c.account_id = $1 AND c.day >= $2
			GROUP BY c.domain, d.highest_version, d.valid_cert_seen, d.last_attempt ORDER BY c.domain`, accountID, sinceDay)
		if err != nil {
			return err
		}
		index := map[string]int{}
		for rows.Next() {
			var d sealpost.RegistryDomain
			var last int64
			if err := rows.Scan(&d.Domain, &d.Recipients, &d.HighestVersion, &d.ValidCertSeen, &last); err != nil {
				rows.Close()
				return err
			}
			if last != 0 {
				d.LastAttempt = fromUnixNanos(last)
			}
			index[d.Domain] = len(out)
			out = append(out, d)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `
			SELECT domain, mx_host, observed_at, mx_ip, tls, tls_version, tls_cipher, cert_verified, cert_error, cert_result, result_type,
				mta_sts_testing_result
			FROM tls_registry_hosts WHERE account_id = $1 ORDER BY domain, mx_host`, accountID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var domain string
			var h sealpost.HostFacts
			var at int64
			f := &h.Facts
			if err := rows.Scan(&domain, &h.MXHost, &at, &f.MXIP, &f.TLS, &f.Version, &f.Cipher,
				&f.Verified, &f.VerifyError, &h.CertResult, &f.ResultType, &f.MTASTSTestingResult); err != nil {
				return err
			}
			k, ok := index[domain]
			if !ok {
				continue
			}
			h.At = fromUnixNanos(at)
			f.MXHost = h.MXHost
			out[k].Hosts = append(out[k].Hosts, h)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, storeErr(err, "account")
	}
	return out, nil
}

// PruneTLSRegistry deletes what is older than before. Nodes running it at
// once delete the same rows; the later ones find nothing left.
func (db *DB) PruneTLSRegistry(ctx context.Context, before time.Time) error {
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM tls_registry_hosts WHERE observed_at < $1`, unixNanos(before))
	b.Queue(`DELETE FROM tls_registry_domains WHERE last_attempt < $1`, unixNanos(before))
	b.Queue(`DELETE FROM tls_registry_days WHERE day < $1`, sealpost.RegistryDay(before))
	b.Queue(`DELETE FROM tlsrpt_counts WHERE day < $1`, sealpost.RegistryDay(before))
	b.Queue(`DELETE FROM tlsrpt_runs WHERE day < $1`, sealpost.RegistryDay(before))
	b.Queue(`DELETE FROM tlsrpt_sends WHERE day < $1`, sealpost.RegistryDay(before))
	return storeErr(sendBatch(ctx, db.pool, b), "TLS registry")
}
