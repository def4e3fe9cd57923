package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// The MTA-STS cache contract: one policy per domain, read back as stored
// (times to the nanosecond, patterns in order); a policy replaces the one
// cached unless that one was fetched later.

func cachedPolicy(domain, id, mode string, fetched time.Time, mx ...string) sealpost.CachedMTASTSPolicy {
	return sealpost.CachedMTASTSPolicy{Domain: domain, ID: id,
		Policy:    sealpost.MTASTSPolicy{Mode: mode, MX: mx, MaxAge: 86400},
		FetchedAt: fetched, ExpiresAt: fetched.Add(86400 * time.Second)}
}

func wantCachedPolicy(t *testing.T, s sealpost.Store, want sealpost.CachedMTASTSPolicy) {
	t.Helper()
	got, err := s.CachedMTASTSPolicy(t.Context(), want.Domain)
	if err != nil {
		t.Fatalf("CachedMTASTSPolicy(%s): %v", want.Domain, err)
	}
	if got.Domain != want.Domain || got.ID != want.ID || got.Policy.Mode != want.Policy.Mode || got.Policy.MaxAge != want.Policy.MaxAge ||
		!slices.Equal(got.Policy.MX, want.Policy.MX) || !got.FetchedAt.Equal(want.FetchedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) ||
		!slices.Equal(got.Policy.Lines, want.Policy.Lines) {
		t.Errorf("CachedMTASTSPolicy(%s) = %+v, want %+v", want.Domain, got, want)
	}
}

func testMTASTSPolicyRoundTrip(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	_, err := s.CachedMTASTSPolicy(ctx, "example.com")
	wantCode(t, err, sealpost.ENOTFOUND, "nothing cached")

	at := baseTime().Add(123456789 * time.Nanosecond)
	enforce := cachedPolicy("example.com", "20260101", "enforce", at, "mx1.example.com", "*.backup.example.net")
	other := cachedPolicy("example.org", "1", "testing", at, "mx.example.org")
	// The lines as fetched are kept for TLS reports.
	other.Policy.Lines = []string{"version: STSv1", "mode: testing", "mx: mx.example.org", "max_age:86400", "ext: kept"}
	for _, p := range []sealpost.CachedMTASTSPolicy{enforce, other} {
		if err := s.PutMTASTSPolicy(ctx, p); err != nil {
			t.Fatalf("PutMTASTSPolicy(%s): %v", p.Domain, err)
		}
	}
	wantCachedPolicy(t, s, enforce)
	wantCachedPolicy(t, s, other)

	// A domain that withdraws its policy publishes mode none, without mx.
	none := cachedPolicy("example.com", "20260102", "none", at.Add(time.Hour))
	if err := s.PutMTASTSPolicy(ctx, none); err != nil {
		t.Fatalf("PutMTASTSPolicy(none): %v", err)
	}
	wantCachedPolicy(t, s, none)
	wantCachedPolicy(t, s, other)
}

func testMTASTSPolicyNewerWins(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	at := baseTime()
	newer := cachedPolicy("example.com", "2", "enforce", at, "mx2.example.com")
	older := cachedPolicy("example.com", "1", "enforce", at.Add(-time.Minute), "mx1.example.com")
	for _, p := range []sealpost.CachedMTASTSPolicy{newer, older} {
		if err := s.PutMTASTSPolicy(ctx, p); err != nil {
			t.Fatalf("PutMTASTSPolicy(%s): %v", p.ID, err)
		}
	}
	wantCachedPolicy(t, s, newer)

	refetched := cachedPolicy("example.com", "2", "enforce", at.Add(time.Second), "mx2.example.com")
	if err := s.PutMTASTSPolicy(ctx, refetched); err != nil {
		t.Fatalf("PutMTASTSPolicy(refetched): %v", err)
	}
	wantCachedPolicy(t, s, refetched)
}
