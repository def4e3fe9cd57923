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

// pruneTLSRegistry forgets what the registry learnt longer than retention
// ago, at start and then every interval, until ctx is done. Every node
// runs it: the deletes are idempotent, so nodes pruning at once only
// repeat each other's work.
func pruneTLSRegistry(ctx context.Context, store sealpost.TLSRegistryStore, retention, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := store.PruneTLSRegistry(ctx, time.Now().Add(-retention)); err != nil && ctx.Err() == nil {
			log.Warn("pruning the TLS registry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
