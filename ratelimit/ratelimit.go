// Package ratelimit counts requests per API key in fixed windows aligned to
// the Unix epoch, which is what SendGrid's X-RateLimit-Reset (an absolute
// time) describes.
package ratelimit

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealpost/sealpost"
)

// Limiter is a lock-free fixed-window counter per key. Each key's state is a
// single atomic word (window number in the high half, count in the low half),
// so requests of different keys never contend and requests of one key only
// retry a compare-and-swap.
//
// The counts live in this process: with several nodes on one database each
// node applies the limit on its own.
type Limiter struct {
	limit  int
	window time.Duration
	// Only keys that authenticated reach Take, so this grows with the number
	// of live API keys, not with what clients send.
	counters sync.Map // key id -> *atomic.Uint64
}

var _ sealpost.RateLimiter = (*Limiter)(nil)

// New returns a limiter allowing limit requests per key in each window.
func New(limit int, window time.Duration) *Limiter {
	if limit < 1 {
		limit = 1
	}
	if limit > 1<<31 {
		limit = 1 << 31
	}
	if window < time.Second {
		window = time.Second
	}
	return &Limiter{limit: limit, window: window}
}

// Take counts one request of keyID at now.
func (l *Limiter) Take(keyID string, now time.Time) sealpost.RateLimit {
	idx := now.UnixNano() / int64(l.window)
	reset := time.Unix(0, (idx+1)*int64(l.window))
	c, ok := l.counters.Load(keyID)
	if !ok {
		c, _ = l.counters.LoadOrStore(keyID, new(atomic.Uint64))
	}
	counter := c.(*atomic.Uint64)
	win := uint64(uint32(idx)) << 32
	for {
		old := counter.Load()
		var used uint64
		if old&^0xffffffff == win {
			used = old & 0xffffffff
		}
		if used >= uint64(l.limit) {
			return sealpost.RateLimit{Limit: l.limit, Remaining: 0, Reset: reset, Allowed: false}
		}
		if counter.CompareAndSwap(old, win|(used+1)) {
			return sealpost.RateLimit{Limit: l.limit, Remaining: l.limit - int(used+1), Reset: reset, Allowed: true}
		}
	}
}
