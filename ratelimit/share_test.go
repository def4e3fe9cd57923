package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// memCounter is an in-memory RateCounter: what the PostgreSQL store does,
// for nodes in one test process.
type memCounter struct {
	mu     sync.Mutex
	counts map[time.Time]map[string]int64
	fail   bool
}

func (m *memCounter) AddRequestCounts(_ context.Context, windowStart time.Time, deltas map[string]int64) (map[string]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return nil, errors.New("database down")
	}
	if m.counts == nil {
		m.counts = map[time.Time]map[string]int64{}
	}
	w := m.counts[windowStart]
	if w == nil {
		w = map[string]int64{}
		m.counts[windowStart] = w
	}
	totals := map[string]int64{}
	for k, d := range deltas {
		w[k] += d
		totals[k] = w[k]
	}
	return totals, nil
}

func takeN(l *Limiter, key string, now time.Time, n int) (allowed int) {
	for i := 0; i < n; i++ {
		if l.Take(key, now).Allowed {
			allowed++
		}
	}
	return allowed
}

func TestSharedLimitAcrossNodes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Unix(1_700_000_040, 0)
	counter := &memCounter{}
	a, b := New(10, time.Minute), New(10, time.Minute)

	if got := takeN(a, "k", now, 6); got != 6 {
		t.Fatalf("node a allowed %d of 6", got)
	}
	for _, l := range []*Limiter{a, b} {
		if err := l.sync(ctx, counter, now); err != nil {
			t.Fatal(err)
		}
	}
	// b has not served k yet, so it learns of a's six only once it has.
	if got := takeN(b, "k", now, 1); got != 1 {
		t.Fatalf("node b allowed %d of 1", got)
	}
	for _, l := range []*Limiter{b, a} {
		if err := l.sync(ctx, counter, now); err != nil {
			t.Fatal(err)
		}
	}
	rl := b.Take("k", now)
	if !rl.Allowed || rl.Remaining != 2 {
		t.Fatalf("b after sharing: %+v, want allowed with 2 remaining (6 on a, 2 on b)", rl)
	}
	if got := takeN(b, "k", now, 5); got != 2 {
		t.Fatalf("node b allowed %d more, want the 2 left of the shared 10", got)
	}
	for _, l := range []*Limiter{b, a} {
		if err := l.sync(ctx, counter, now); err != nil {
			t.Fatal(err)
		}
	}
	if a.Take("k", now).Allowed {
		t.Fatal("node a allowed a request past the shared limit")
	}
	// Another key and the next window are untouched.
	if !a.Take("other", now).Allowed || !b.Take("k", now.Add(time.Minute)).Allowed {
		t.Fatal("the shared count leaked into another key or window")
	}
	// Nothing was reported twice: the store holds exactly what was allowed.
	if got := counter.counts[now][("k")]; got != 10 {
		t.Fatalf("shared total %d, want 10", got)
	}
}

func TestShareKeepsLimitingWhenTheCounterFails(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_040, 0)
	l := New(3, time.Minute)
	counter := &memCounter{fail: true}
	takeN(l, "k", now, 2)
	if err := l.sync(context.Background(), counter, now); err == nil {
		t.Fatal("sync reported no error from a failing counter")
	}
	if got := takeN(l, "k", now, 5); got != 1 {
		t.Fatalf("allowed %d more, want the 1 left of the local limit", got)
	}
	// Once the counter is back, the unreported requests are reported.
	counter.fail = false
	if err := l.sync(context.Background(), counter, now); err != nil {
		t.Fatal(err)
	}
	if got := counter.counts[now]["k"]; got != 3 {
		t.Fatalf("reported %d, want 3", got)
	}
}

func TestShareLoopStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	l := New(5, time.Minute)
	l.Take("k", time.Now())
	counter := &memCounter{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Share(ctx, counter, 5*time.Millisecond, slogDiscard())
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		counter.mu.Lock()
		n := len(counter.counts)
		counter.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Share never reported")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Share did not return after its context ended")
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
