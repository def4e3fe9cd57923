package ratelimit

import (
	"context"
	"log/slog"
	"time"

	"github.com/sealpost/sealpost"
)

// Share makes l apply one limit across every node that shares counter. Every
// interval it reports the requests this node allowed since the last report,
// for each key active in the current window, and learns the other nodes'
// totals. Until it returns, it keeps doing so; it returns when ctx ends.
//
// The limit stays off the request path: Take never waits for the database.
// The price is that nodes learn of each other's requests up to one interval
// late, so a burst spread over N nodes can overshoot the limit by what N-1
// nodes allow in one interval. If the database cannot be reached, each node
// goes on limiting with what it knows, and says so in the log.
func (l *Limiter) Share(ctx context.Context, counter sealpost.RateCounter, interval time.Duration, log *slog.Logger) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		err := l.sync(ctx, counter, time.Now())
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			failing = true
			log.Warn("rate limit counts cannot be shared with other nodes; limiting per node until they can", "err", err)
		case err == nil && failing:
			failing = false
			log.Info("rate limit counts are shared with other nodes again")
		}
	}
}

// sync reports and learns once, for the window holding now.
func (l *Limiter) sync(ctx context.Context, counter sealpost.RateCounter, now time.Time) error {
	idx := now.UnixNano() / int64(l.window)
	t := tag(idx)
	deltas := map[string]int64{}
	locals := map[string]uint64{}
	l.keys.Range(func(k, v any) bool {
		s := v.(*keyState)
		local := countIn(s.local.Load(), t)
		if local == 0 && countIn(s.others.Load(), t) == 0 {
			return true // not active in this window
		}
		deltas[k.(string)] = int64(local - countIn(s.flushed.Load(), t))
		locals[k.(string)] = local
		return true
	})
	if len(deltas) == 0 {
		return nil
	}
	totals, err := counter.AddRequestCounts(ctx, time.Unix(0, idx*int64(l.window)), deltas)
	if err != nil {
		return err
	}
	for k, local := range locals {
		s := l.state(k)
		s.flushed.Store(t | local)
		others := uint64(0)
		if total := totals[k]; total > int64(local) {
			others = uint64(total) - local
		}
		s.others.Store(t | min(others, countMask))
	}
	return nil
}
