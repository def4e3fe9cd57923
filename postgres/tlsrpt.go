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
		accounts, days, sessions       []int64
		domains, types, hosts, rts, ip []string
	}
	for _, n := range counts {
		c.accounts = append(c.accounts, n.AccountID)
		c.domains = append(c.domains, n.PolicyDomain)
		c.days = append(c.days, n.Day)
		c.types = append(c.types, n.PolicyType)
		c.hosts = append(c.hosts, n.MXHost)
		c.rts = append(c.rts, n.ResultType)
		c.ip = append(c.ip, n.ReceivingIP)
		c.sessions = append(c.sessions, n.Sessions)
	}
	b.Queue(`
		INSERT INTO tlsrpt_counts AS c (account_id, policy_domain, day, policy_type, mx_host, result_type, receiving_ip, sessions)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])
			AS o(a, dom, day, pt, host, rt, ip, n)
		ORDER BY day, dom, pt, host, rt, ip, a
		ON CONFLICT (day, policy_domain, policy_type, mx_host, result_type, receiving_ip, account_id)
		DO UPDATE SET sessions = c.sessions + excluded.sessions`,
		c.accounts, c.domains, c.days, c.types, c.hosts, c.rts, c.ip, c.sessions)
}

func (db *DB) TLSRPTCounts(ctx context.Context, day int64, accountID int64) ([]sealpost.TLSRPTCount, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT account_id, policy_domain, policy_type, mx_host, result_type, receiving_ip, sessions
		FROM tlsrpt_counts WHERE day = $1 AND ($2 = 0 OR account_id = $2)
		ORDER BY policy_domain, policy_type, mx_host, result_type, receiving_ip, account_id`, day, accountID)
	if err != nil {
		return nil, storeErr(err, "TLS report counts")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sealpost.TLSRPTCount, error) {
		c := sealpost.TLSRPTCount{Day: day}
		err := r.Scan(&c.AccountID, &c.PolicyDomain, &c.PolicyType, &c.MXHost, &c.ResultType, &c.ReceivingIP, &c.Sessions)
		return c, err
	})
	return out, storeErr(err, "TLS report counts")
}

func (db *DB) ClaimTLSRPTRun(ctx context.Context, day int64, node string, at time.Time) (bool, error) {
	tag, err := db.pool.Exec(ctx, `INSERT INTO tlsrpt_runs (day, node, claimed_at) VALUES ($1, $2, $3) ON CONFLICT (day) DO NOTHING`,
		day, node, unixNanos(at))
	if err != nil {
		return false, storeErr(err, "TLS reports run")
	}
	return tag.RowsAffected() == 1, nil
}
