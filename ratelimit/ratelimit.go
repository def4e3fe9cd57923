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

// Limiter is a lock-free fixed-window counter per key. Each count is a
// single atomic word (window number in the high half, count in the low half),
// so requests of different keys never contend and requests of one key only
// retry a compare-and-swap.
//
// On its own a Limiter counts this process's requests. Share makes it count
// every node's: see share.go.
type Limiter struct {
	limit  int
	window time.Duration
	// Only keys that authenticated reach Take, so this grows with the number
	// of live API keys, not with what clients send.
	keys sync.Map // key id -> *keyState
}

// keyState is one key's counts, each a window-tagged word.
type keyState struct {
	local   atomic.Uint64 // requests this node allowed
	flushed atomic.Uint64 // of those, how many were reported to the other nodes
	others  atomic.Uint64 // requests the other nodes allowed, as last heard
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

const countMask = 0xffffffff

// tag is the window-number half of a word for window idx.
func tag(idx int64) uint64 { return uint64(uint32(idx)) << 32 }

// countIn returns the count a word holds for the window tagged t, which is
// zero when the word belongs to another window.
func countIn(word, t uint64) uint64 {
	if word&^countMask != t {
		return 0
	}
	return word & countMask
}

func (l *Limiter) state(keyID string) *keyState {
	s, ok := l.keys.Load(keyID)
	if !ok {
		s, _ = l.keys.LoadOrStore(keyID, new(keyState))
	}
	return s.(*keyState)
}

// Take counts one request of keyID at now.
func (l *Limiter) Take(keyID string, now time.Time) sealpost.RateLimit {
	idx := now.UnixNano() / int64(l.window)
	reset := time.Unix(0, (idx+1)*int64(l.window))
	s := l.state(keyID)
	t := tag(idx)
	others := countIn(s.others.Load(), t)
	for {
		old := s.local.Load()
		used := countIn(old, t) + others
		if used >= uint64(l.limit) {
			return sealpost.RateLimit{Limit: l.limit, Remaining: 0, Reset: reset, Allowed: false}
		}
		if s.local.CompareAndSwap(old, t|(countIn(old, t)+1)) {
			return sealpost.RateLimit{Limit: l.limit, Remaining: l.limit - int(used+1), Reset: reset, Allowed: true}
		}
	}
}
