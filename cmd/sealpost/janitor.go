package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/sealpost/sealpost"
)

// tlsRegistryPruneEvery is how often a node prunes the registry of
// recipient domains: the rows it removes are a day's worth at most, and
// nothing reads them past the retention anyway.
const tlsRegistryPruneEvery = time.Hour

// activityPruneEvery is how often a node deletes the Email Activity
// events older than the retention.
const activityPruneEvery = time.Hour

// pruneTLSRegistry forgets what the registry learnt longer than retention
// ago, at start and then every interval, until ctx is done.
func pruneTLSRegistry(ctx context.Context, store sealpost.TLSRegistryStore, retention, interval time.Duration, log *slog.Logger) {
	prunePeriodically(ctx, "pruning the TLS registry", store.PruneTLSRegistry, retention, interval, log)
}

// pruneActivity deletes the Email Activity events older than retention,
// at start and then every interval, until ctx is done. The API stops
// listing a message once its last event is that old; its queue rows stay
// (see README, "Email Activity").
func pruneActivity(ctx context.Context, store sealpost.ActivityService, retention, interval time.Duration, log *slog.Logger) {
	prune := func(ctx context.Context, before time.Time) error {
		n, err := store.PruneActivity(ctx, before)
		if n > 0 {
			log.Debug("pruned Email Activity events", "events", n)
		}
		return err
	}
	prunePeriodically(ctx, "pruning the Email Activity events", prune, retention, interval, log)
}

// prunePeriodically calls prune with the time retention ago, at start and
// then every interval, until ctx is done. Every node runs it: the deletes
// are idempotent, so nodes pruning at once only repeat each other's work.
func prunePeriodically(ctx context.Context, what string, prune func(context.Context, time.Time) error, retention, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := prune(ctx, time.Now().Add(-retention)); err != nil && ctx.Err() == nil {
			log.Warn(what, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
