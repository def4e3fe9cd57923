package ratelimit

import (
	"sync"
	"testing"
	"time"
)

func TestTake(t *testing.T) {
	t.Parallel()
	start := time.Unix(1_700_000_040, 0) // on a minute boundary
	tests := []struct {
		name      string
		limit     int
		at        []time.Duration // offsets from start, one Take each, key "k"
		allowed   []bool
		remaining []int
	}{
		{"within limit", 3, []time.Duration{0, time.Second, 2 * time.Second}, []bool{true, true, true}, []int{2, 1, 0}},
		{"over limit", 2, []time.Duration{0, 0, 0}, []bool{true, true, false}, []int{1, 0, 0}},
		{"new window resets", 1, []time.Duration{0, 30 * time.Second, time.Minute}, []bool{true, false, true}, []int{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := New(tt.limit, time.Minute)
			for i, off := range tt.at {
				got := l.Take("k", start.Add(off))
				if got.Allowed != tt.allowed[i] || got.Remaining != tt.remaining[i] || got.Limit != tt.limit {
					t.Fatalf("take %d at +%v: got %+v, want allowed=%v remaining=%d", i, off, got, tt.allowed[i], tt.remaining[i])
				}
				wantReset := start.Add(off).Truncate(time.Minute).Add(time.Minute)
				if !got.Reset.Equal(wantReset) {
					t.Fatalf("take %d: reset %v, want %v", i, got.Reset, wantReset)
				}
			}
		})
	}
}

func TestKeysAreIndependent(t *testing.T) {
	t.Parallel()
	l := New(1, time.Minute)
	now := time.Unix(1_700_000_000, 0)
	if !l.Take("a", now).Allowed || !l.Take("b", now).Allowed {
		t.Fatal("first request of each key must be allowed")
	}
	if l.Take("a", now).Allowed {
		t.Fatal("second request of key a must be refused")
	}
}

// Concurrent takes must never allow more than the limit in one window.
func TestConcurrentTakesNeverExceedLimit(t *testing.T) {
	t.Parallel()
	const limit = 500
	l := New(limit, time.Hour)
	now := time.Unix(1_700_000_000, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := 0; i < 100; i++ {
				if l.Take("k", now).Allowed {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if allowed != limit {
		t.Fatalf("allowed %d requests, want exactly %d", allowed, limit)
	}
}

func BenchmarkTake(b *testing.B) {
	l := New(1<<30, time.Minute)
	now := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Take("SG-key-id-0123456789ab", now)
		}
	})
}
