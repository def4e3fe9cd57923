package main

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// pruneRecorder is a TLSRegistryStore that records the prunes asked of it.
type pruneRecorder struct {
	sealpost.TLSRegistryStore
	mu      sync.Mutex
	befores []time.Time
}

func (p *pruneRecorder) PruneTLSRegistry(_ context.Context, before time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.befores = append(p.befores, before)
	return nil
}

func (p *pruneRecorder) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.befores)
}

func TestPruneTLSRegistry(t *testing.T) {
	t.Parallel()
	store := &pruneRecorder{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		pruneTLSRegistry(ctx, store, 720*time.Hour, 10*time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	waitFor(t, "three prunes", 10*time.Second, func() bool { return store.count() >= 3 })
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the janitor did not stop with its context")
	}
	first := store.befores[0]
	if want := start.Add(-720 * time.Hour); first.Before(want.Add(-time.Second)) || first.After(want.Add(time.Minute)) {
		t.Errorf("first prune before %v, want about %v", first, want)
	}
}

// activityPruneRecorder is an ActivityService that records the prunes
// asked of it.
type activityPruneRecorder struct {
	sealpost.ActivityService
	pruneRecorder
}

func (p *activityPruneRecorder) PruneActivity(ctx context.Context, before time.Time) (int64, error) {
	return 1, p.PruneTLSRegistry(ctx, before)
}

func TestPruneActivity(t *testing.T) {
	t.Parallel()
	store := &activityPruneRecorder{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		pruneActivity(ctx, store, 48*time.Hour, 10*time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	waitFor(t, "three prunes", 10*time.Second, func() bool { return store.count() >= 3 })
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the janitor did not stop with its context")
	}
	first := store.befores[0]
	if want := start.Add(-48 * time.Hour); first.Before(want.Add(-time.Second)) || first.After(want.Add(time.Minute)) {
		t.Errorf("first prune before %v, want about %v", first, want)
	}
}
