package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost"
)

// queueTLSRPTCounts adds to b the one multi-row upsert that counts obs'
// delivery sessions for TLS reports, in key order so that concurrent
// writers lock rows in the same order.
func queueTLSRPTCounts(b *pgx.Batch, obs []sealpost.HostObservation) {
	counts := sealpost.FoldTLSRPTCounts(obs)
	if len(counts) == 0 {
		return
	}
	var c struct {
		accounts, days, sessions                              []int64
		domains, types, keys, strs, mxs, hosts, rts, ip, sips []string
	}
	for _, n := range counts {
		c.accounts = append(c.accounts, n.AccountID)
		c.domains = append(c.domains, n.PolicyDomain)
		c.days = append(c.days, n.Day)
		c.types = append(c.types, n.PolicyType)
		c.keys = append(c.keys, n.PolicyKey())
		c.strs = append(c.strs, sealpost.JoinPolicyLines(n.PolicyString))
		c.mxs = append(c.mxs, sealpost.JoinPolicyLines(n.PolicyMX))
		c.hosts = append(c.hosts, n.MXHost)
		c.rts = append(c.rts, n.ResultType)
		c.ip = append(c.ip, n.ReceivingIP)
		c.sips = append(c.sips, n.SendingIP)
		c.sessions = append(c.sessions, n.Sessions)
	}
	b.Queue(`
		INSERT INTO tlsrpt_counts AS c (account_id, policy_domain, day, policy_type, policy_key, policy_string, policy_mx,
			mx_host, result_type, receiving_ip, sending_ip, sessions)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[])
			AS o(a, dom, day, pt, pk, ps, pmx, host, rt, ip, sip, n)
		ORDER BY day, dom, pt, pk, host, rt, ip, sip, a
		ON CONFLICT (day, policy_domain, policy_type, policy_key, mx_host, result_type, receiving_ip, sending_ip, account_id)
		DO UPDATE SET sessions = c.sessions + excluded.sessions`,
		c.accounts, c.domains, c.days, c.types, c.keys, c.strs, c.mxs, c.hosts, c.rts, c.ip, c.sips, c.sessions)
}

func (db *DB) TLSRPTCounts(ctx context.Context, day int64, accountID int64) ([]sealpost.TLSRPTCount, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT account_id, policy_domain, policy_type, policy_string, policy_mx, mx_host, result_type, receiving_ip, sending_ip, sessions
		FROM tlsrpt_counts WHERE day = $1 AND ($2 = 0 OR account_id = $2)
		ORDER BY policy_domain, policy_type, policy_key, mx_host, result_type, receiving_ip, sending_ip, account_id`, day, accountID)
	if err != nil {
		return nil, storeErr(err, "TLS report counts")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sealpost.TLSRPTCount, error) {
		c := sealpost.TLSRPTCount{Day: day}
		var ps, mx string
		err := r.Scan(&c.AccountID, &c.PolicyDomain, &c.PolicyType, &ps, &mx, &c.MXHost, &c.ResultType, &c.ReceivingIP, &c.SendingIP, &c.Sessions)
		c.PolicyString, c.PolicyMX = sealpost.SplitPolicyLines(ps), sealpost.SplitPolicyLines(mx)
		return c, err
	})
	return out, storeErr(err, "TLS report counts")
}

func (db *DB) ClaimTLSRPTRun(ctx context.Context, day int64, node string, at time.Time, sends []sealpost.TLSRPTSend) (bool, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return false, storeErr(err, "TLS reports run")
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `INSERT INTO tlsrpt_runs (day, node, claimed_at) VALUES ($1, $2, $3) ON CONFLICT (day) DO NOTHING`,
		day, node, unixNanos(at))
	if err != nil {
		return false, storeErr(err, "TLS reports run")
	}
	if tag.RowsAffected() != 1 {
		return false, nil
	}
	b := &pgx.Batch{}
	for _, s := range sends {
		b.Queue(`INSERT INTO tlsrpt_sends (day, policy_domain, rua, report, attempts, next_attempt_at, give_up_at, lease_owner, lease_until, last_error)
			VALUES ($1, $2, $3, $4, $5, $6, $7, '', 0, $8) ON CONFLICT DO NOTHING`,
			s.Day, s.PolicyDomain, s.RUA, s.Report, s.Attempts, unixNanos(s.NextAttemptAt), unixNanos(s.GiveUpAt), s.LastError)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return false, storeErr(err, "TLS reports run")
	}
	if err := tx.Commit(ctx); err != nil {
		return false, storeErr(err, "TLS reports run")
	}
	return true, nil
}

func (db *DB) UnclaimedTLSRPTDays(ctx context.Context, first, last int64) ([]int64, error) {
	rows, err := db.pool.Query(ctx, `SELECT DISTINCT c.day FROM tlsrpt_counts c
		WHERE c.day BETWEEN $1 AND $2 AND NOT EXISTS (SELECT 1 FROM tlsrpt_runs r WHERE r.day = c.day)
		ORDER BY c.day`, first, last)
	if err != nil {
		return nil, storeErr(err, "unreported days")
	}
	days, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return days, storeErr(err, "unreported days")
}

func (db *DB) ClaimTLSRPTSends(ctx context.Context, node string, now time.Time, lease time.Duration, max int) ([]sealpost.TLSRPTSend, error) {
	rows, err := db.pool.Query(ctx, `UPDATE tlsrpt_sends s SET lease_owner = $1, lease_until = $2
		FROM (SELECT day, policy_domain, rua FROM tlsrpt_sends
			WHERE next_attempt_at <= $3 AND lease_until <= $3 ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) due
		WHERE s.day = due.day AND s.policy_domain = due.policy_domain AND s.rua = due.rua
		RETURNING s.day, s.policy_domain, s.rua, s.report, s.attempts, s.next_attempt_at, s.give_up_at, s.last_error`,
		node, unixNanos(now.Add(lease)), unixNanos(now), max)
	if err != nil {
		return nil, storeErr(err, "TLS reports to send")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sealpost.TLSRPTSend, error) {
		var s sealpost.TLSRPTSend
		var next, giveUp int64
		err := r.Scan(&s.Day, &s.PolicyDomain, &s.RUA, &s.Report, &s.Attempts, &next, &giveUp, &s.LastError)
		s.NextAttemptAt, s.GiveUpAt = time.Unix(0, next).UTC(), time.Unix(0, giveUp).UTC()
		return s, err
	})
	return out, storeErr(err, "TLS reports to send")
}

func (db *DB) FinishTLSRPTSend(ctx context.Context, node string, s sealpost.TLSRPTSend, done bool) error {
	var sql string
	args := []any{s.Day, s.PolicyDomain, s.RUA, node}
	if done {
		sql = `DELETE FROM tlsrpt_sends WHERE day = $1 AND policy_domain = $2 AND rua = $3 AND lease_owner = $4`
	} else {
		sql = `UPDATE tlsrpt_sends SET attempts = $5, next_attempt_at = $6, last_error = $7, lease_owner = '', lease_until = 0
			WHERE day = $1 AND policy_domain = $2 AND rua = $3 AND lease_owner = $4`
		args = append(args, s.Attempts, unixNanos(s.NextAttemptAt), s.LastError)
	}
	tag, err := db.pool.Exec(ctx, sql, args...)
	if err != nil {
		return storeErr(err, "TLS report send")
	}
	if tag.RowsAffected() == 0 {
		return sealpost.Errorf(sealpost.ECONFLICT, "the TLS report send is not leased to this node")
	}
	return nil
}
