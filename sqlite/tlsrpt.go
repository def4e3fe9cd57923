package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"time"

	"github.com/sealpost/sealpost"
)

const countTLSRPTSQL = `INSERT INTO tlsrpt_counts AS c (account_id, policy_domain, day, policy_type, policy_key, policy_string, policy_mx,
		mx_host, result_type, receiving_ip, sending_ip, sessions)
	VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
	ON CONFLICT (day, policy_domain, policy_type, policy_key, mx_host, result_type, receiving_ip, sending_ip, account_id)
	DO UPDATE SET sessions = c.sessions + excluded.sessions`

// countTLSRPTArgs are c's values for countTLSRPTSQL.
func countTLSRPTArgs(c sealpost.TLSRPTCount) []any {
	return []any{c.AccountID, c.PolicyDomain, c.Day, c.PolicyType, c.PolicyKey(), sealpost.JoinPolicyLines(c.PolicyString), sealpost.JoinPolicyLines(c.PolicyMX),
		c.MXHost, c.ResultType, c.ReceivingIP, c.SendingIP, c.Sessions}
}

func (db *DB) TLSRPTCounts(ctx context.Context, day int64, accountID int64) ([]sealpost.TLSRPTCount, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT account_id, policy_domain, policy_type, policy_string, policy_mx, mx_host, result_type,
			receiving_ip, sending_ip, sessions
		FROM tlsrpt_counts WHERE day = ?1 AND (?2 = 0 OR account_id = ?2)
		ORDER BY policy_domain, policy_type, policy_key, mx_host, result_type, receiving_ip, sending_ip, account_id`, day, accountID)
	if err != nil {
		return nil, mapError("reading TLS report counts", err, "", "")
	}
	defer rows.Close()
	var out []sealpost.TLSRPTCount
	for rows.Next() {
		c := sealpost.TLSRPTCount{Day: day}
		var ps, mx string
		if err := rows.Scan(&c.AccountID, &c.PolicyDomain, &c.PolicyType, &ps, &mx, &c.MXHost, &c.ResultType,
			&c.ReceivingIP, &c.SendingIP, &c.Sessions); err != nil {
			return nil, mapError("reading TLS report counts", err, "", "")
		}
		c.PolicyString, c.PolicyMX = sealpost.SplitPolicyLines(ps), sealpost.SplitPolicyLines(mx)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError("reading TLS report counts", err, "", "")
	}
	return out, nil
}

func (db *DB) ClaimTLSRPTRun(ctx context.Context, day int64, node string, at time.Time, sends []sealpost.TLSRPTSend) (bool, error) {
	var claimed bool
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO tlsrpt_runs (day, node, claimed_at) VALUES (?, ?, ?) ON CONFLICT (day) DO NOTHING`,
			day, node, at.UnixNano())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if claimed = n == 1; err != nil || !claimed {
			return err
		}
		for _, s := range sends {
			if _, err := tx.ExecContext(ctx, `INSERT INTO tlsrpt_sends (day, policy_domain, rua, report, attempts, next_attempt_at,
					give_up_at, lease_owner, lease_until, last_error)
				VALUES (?, ?, ?, ?, ?, ?, ?, '', 0, ?) ON CONFLICT DO NOTHING`,
				s.Day, s.PolicyDomain, s.RUA, s.Report, s.Attempts, s.NextAttemptAt.UnixNano(), s.GiveUpAt.UnixNano(), s.LastError); err != nil {
				return err
			}
		}
		return nil
	})
	return claimed, domainError("claiming the TLS reports run", err, "", "")
}

func (db *DB) UnclaimedTLSRPTDays(ctx context.Context, first, last int64) ([]int64, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT DISTINCT c.day FROM tlsrpt_counts c
		WHERE c.day BETWEEN ? AND ? AND NOT EXISTS (SELECT 1 FROM tlsrpt_runs r WHERE r.day = c.day)
		ORDER BY c.day`, first, last)
	if err != nil {
		return nil, mapError("reading unreported days", err, "", "")
	}
	defer rows.Close()
	var days []int64
	for rows.Next() {
		var d int64
		if err := rows.Scan(&d); err != nil {
			return nil, mapError("reading unreported days", err, "", "")
		}
		days = append(days, d)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError("reading unreported days", err, "", "")
	}
	return days, nil
}

func (db *DB) ClaimTLSRPTSends(ctx context.Context, node string, now time.Time, lease time.Duration, max int) ([]sealpost.TLSRPTSend, error) {
	var out []sealpost.TLSRPTSend
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE tlsrpt_sends SET lease_owner = ?1, lease_until = ?2
			WHERE (day, policy_domain, rua) IN (SELECT day, policy_domain, rua FROM tlsrpt_sends
				WHERE next_attempt_at <= ?3 AND lease_until <= ?3 ORDER BY next_attempt_at LIMIT ?4)
			RETURNING day, policy_domain, rua, report, attempts, next_attempt_at, give_up_at, last_error`,
			node, now.Add(lease).UnixNano(), now.UnixNano(), max)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s sealpost.TLSRPTSend
			var next, giveUp int64
			if err := rows.Scan(&s.Day, &s.PolicyDomain, &s.RUA, &s.Report, &s.Attempts, &next, &giveUp, &s.LastError); err != nil {
				return err
			}
			s.NextAttemptAt, s.GiveUpAt = time.Unix(0, next).UTC(), time.Unix(0, giveUp).UTC()
			out = append(out, s)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, domainError("claiming TLS reports to send", err, "", "")
	}
	return out, nil
}

func (db *DB) FinishTLSRPTSend(ctx context.Context, node string, s sealpost.TLSRPTSend, done bool) error {
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var res sql.Result
		var err error
		if done {
			res, err = tx.ExecContext(ctx, `DELETE FROM tlsrpt_sends WHERE day = ? AND policy_domain = ? AND rua = ? AND lease_owner = ?`,
				s.Day, s.PolicyDomain, s.RUA, node)
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE tlsrpt_sends SET attempts = ?, next_attempt_at = ?, last_error = ?, lease_owner = '', lease_until = 0
				WHERE day = ? AND policy_domain = ? AND rua = ? AND lease_owner = ?`,
				s.Attempts, s.NextAttemptAt.UnixNano(), s.LastError, s.Day, s.PolicyDomain, s.RUA, node)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or[error](err, sealpost.Errorf(sealpost.ECONFLICT, "the TLS report send is not leased to this node"))
		}
		return nil
	})
	return domainError("finishing a TLS report send", err, "", "")
}
