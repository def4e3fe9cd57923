package sqlite

import (
	"context"
	"slices"
	"time"

	"github.com/sealpost/sealpost"
)

// CachedMTASTSPolicy is read for every delivery attempt, so it is answered
// from the in-process cache, "none" included, while no write has happened
// since.
func (db *DB) CachedMTASTSPolicy(ctx context.Context, domain string) (*sealpost.CachedMTASTSPolicy, error) {
	return memoized(&db.cache, &db.cache.mtastsPolicies, domain, true, cloneMTASTSPolicy,
		func() (*sealpost.CachedMTASTSPolicy, error) { return db.cachedMTASTSPolicy(ctx, domain) })
}

func cloneMTASTSPolicy(p *sealpost.CachedMTASTSPolicy) *sealpost.CachedMTASTSPolicy {
	c := *p
	c.Policy.MX = slices.Clone(p.Policy.MX)
	c.Policy.Lines = slices.Clone(p.Policy.Lines)
	return &c
}

func (db *DB) cachedMTASTSPolicy(ctx context.Context, domain string) (*sealpost.CachedMTASTSPolicy, error) {
	p := sealpost.CachedMTASTSPolicy{Domain: domain}
	var mx, text string
	var fetched, expires int64
	err := db.read.QueryRowContext(ctx, `SELECT policy_id, mode, mx, max_age, fetched_at, expires_at, policy_text
		FROM mta_sts_policies WHERE domain = ?`, domain).
		Scan(&p.ID, &p.Policy.Mode, &mx, &p.Policy.MaxAge, &fetched, &expires, &text)
	if err != nil {
		return nil, mapError("reading the cached MTA-STS policy", err, "no MTA-STS policy cached for "+domain, "")
	}
	p.Policy.MX = sealpost.SplitPolicyLines(mx)
	p.Policy.Lines = sealpost.SplitPolicyLines(text)
	p.FetchedAt, p.ExpiresAt = time.Unix(0, fetched), time.Unix(0, expires)
	return &p, nil
}

func (db *DB) PutMTASTSPolicy(ctx context.Context, p sealpost.CachedMTASTSPolicy) error {
	defer db.cache.bump()
	_, err := db.write.ExecContext(ctx, `INSERT INTO mta_sts_policies AS c
			(domain, policy_id, mode, mx, max_age, fetched_at, expires_at, policy_text)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
		ON CONFLICT (domain) DO UPDATE SET
			policy_id = excluded.policy_id, mode = excluded.mode, mx = excluded.mx, max_age = excluded.max_age,
			fetched_at = excluded.fetched_at, expires_at = excluded.expires_at, policy_text = excluded.policy_text
		WHERE excluded.fetched_at >= c.fetched_at`,
		p.Domain, p.ID, p.Policy.Mode, sealpost.JoinPolicyLines(p.Policy.MX), p.Policy.MaxAge, p.FetchedAt.UnixNano(), p.ExpiresAt.UnixNano(),
		sealpost.JoinPolicyLines(p.Policy.Lines))
	if err != nil {
		return internal("caching the MTA-STS policy", err)
	}
	return nil
}
