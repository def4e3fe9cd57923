package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/sealpost/sealpost"
)

const countTLSRPTSQL = `INSERT INTO tlsrpt_counts AS c (account_id, policy_domain, day, policy_type, mx_host, result_type, receiving_ip, sessions)
	VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
	ON CONFLICT (day, policy_domain, policy_type, mx_host, result_type, receiving_ip, account_id) DO UPDATE SET sessions = c.sessions + excluded.sessions`

func (db *DB) TLSRPTCounts(ctx context.Context, day int64, accountID int64) ([]sealpost.TLSRPTCount, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT account_id, policy_domain, policy_type, mx_host, result_type, receiving_ip, sessions
		FROM tlsrpt_counts WHERE day = ?1 AND (?2 = 0 OR account_id = ?2)
		ORDER BY policy_domain, policy_type, mx_host, result_type, receiving_ip, account_id`, day, accountID)
	if err != nil {
		return nil, mapError("reading TLS report counts", err, "", "")
	}
	defer rows.Close()
	var out []sealpost.TLSRPTCount
	for rows.Next() {
		c := sealpost.TLSRPTCount{Day: day}
		if err := rows.Scan(&c.AccountID, &c.PolicyDomain, &c.PolicyType, &c.MXHost, &c.ResultType, &c.ReceivingIP, &c.Sessions); err != nil {
			return nil, mapError("reading TLS report counts", err, "", "")
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError("reading TLS report counts", err, "", "")
	}
	return out, nil
}

func (db *DB) ClaimTLSRPTRun(ctx context.Context, day int64, node string, at time.Time) (bool, error) {
	var claimed bool
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO tlsrpt_runs (day, node, claimed_at) VALUES (?, ?, ?) ON CONFLICT (day) DO NOTHING`,
			day, node, at.UnixNano())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		claimed = n == 1
		return err
	})
	return claimed, domainError("claiming the TLS reports run", err, "", "")
}
