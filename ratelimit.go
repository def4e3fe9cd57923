package sealpost

import (
	"context"
	"time"
)

// RateLimit is the outcome of taking one request from a key's allowance,
// what the X-RateLimit-* headers report.
type RateLimit struct {
	Limit     int
	Remaining int
	// Reset is when the current window ends (X-RateLimit-Reset, Unix seconds).
	Reset   time.Time
	Allowed bool
}

// RateLimiter counts requests per API key in fixed windows.
type RateLimiter interface {
	Take(keyID string, now time.Time) RateLimit
}

// RateCounter shares request counts between nodes, so that several nodes
// on one database apply one limit per key. A store that serves several nodes
// implements it.
type RateCounter interface {
	// AddRequestCounts adds each key's new requests in the window that starts
	// at windowStart and returns each of those keys' totals across all
	// nodes. It may forget windows that ended before windowStart.
	AddRequestCounts(ctx context.Context, windowStart time.Time, deltas map[string]int64) (map[string]int64, error)
}
