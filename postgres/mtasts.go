package postgres

import (
	"context"
	"time"

	"github.com/sealpost/sealpost"
)

func (db *DB) CachedMTASTSPolicy(ctx context.Context, domain string) (*sealpost.CachedMTASTSPolicy, error) {
	p := sealpost.CachedMTASTSPolicy{Domain: domain}
	var fetched, expires int64
	var text string
	err := db.pool.QueryRow(ctx, `SELECT policy_id, mode, mx, max_age, fetched_at, expires_at, policy_text
		FROM mta_sts_policies WHERE domain = $1`, domain).
		Scan(&p.ID, &p.Policy.Mode, &p.Policy.MX, &p.Policy.MaxAge, &fetched, &expires, &text)
	if err != nil {
		return nil, storeErr(err, "MTA-STS policy")
	}
	if len(p.Policy.MX) == 0 {
		p.Policy.MX = nil
	}
	p.Policy.Lines = sealpost.SplitPolicyLines(text)
	p.FetchedAt, p.ExpiresAt = time.Unix(0, fetched), time.Unix(0, expires)
	return &p, nil
}

func (db *DB) PutMTASTSPolicy(ctx context.Context, p sealpost.CachedMTASTSPolicy) error {
	mx := p.Policy.MX
	if mx == nil {
		mx = []string{} // the column is NOT NULL
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO mta_sts_policies AS c
			(domain, policy_id, mode, mx, max_age, fetched_at, expires_at, policy_text)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (domain) DO UPDATE SET
			policy_id = excluded.policy_id, mode = excluded.mode, mx = excluded.mx, max_age = excluded.max_age,
			fetched_at = excluded.fetched_at, expires_at = excluded.expires_at, policy_text = excluded.policy_text
		WHERE excluded.fetched_at >= c.fetched_at`,
		p.Domain, p.ID, p.Policy.Mode, mx, p.Policy.MaxAge, p.FetchedAt.UnixNano(), p.ExpiresAt.UnixNano(), sealpost.JoinPolicyLines(p.Policy.Lines))
	return storeErr(err, "MTA-STS policy")
}
