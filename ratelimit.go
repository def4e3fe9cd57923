package sealpost

import "time"

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
