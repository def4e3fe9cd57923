package sealpost

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// OutageLog turns a dependency's failures into a few log lines: one when it
// becomes unavailable, a summary at most every Every while it stays so, and
// one when it answers again. Without it, every poll of every worker and
// every 503 logs its own line, tens a second for as long as the outage
// lasts. When it flaps (fails, answers, fails again), an outage that starts
// within Every of the last one announced is not announced at once: it is
// announced if it lasts until Every has passed, and otherwise counted in
// the next line. So it logs at most about two lines per Every. It is safe
// for concurrent use; one is shared by everything that uses the same
// database.
type OutageLog struct {
	Logger *slog.Logger
	What   string           // "database"
	Every  time.Duration    // 0: 30 seconds
	Now    func() time.Time // nil: time.Now

	mu        sync.Mutex
	down      bool
	announced bool      // this outage has been logged
	since     time.Time // when this outage began
	lastDown  time.Time // when an outage was last announced
	lastLine  time.Time
	failures  int // since the last line
	total     int // in this outage
	brief     int // outages that ended before being announced
	lastErr   string
}

// NewOutageLog returns an OutageLog for what, logging to logger.
func NewOutageLog(logger *slog.Logger, what string) *OutageLog {
	return &OutageLog{Logger: logger, What: what}
}

// Failed records a failure to reach the dependency; attrs describe it, in
// the line that announces the outage.
func (o *OutageLog) Failed(ctx context.Context, err error, attrs ...slog.Attr) {
	now := o.now()
	msg := flatten(err)
	o.mu.Lock()
	if !o.down {
		o.down, o.announced, o.since, o.total = true, false, now, 0
	}
	o.failures++
	o.total++
	o.lastErr = msg
	switch {
	case !o.announced && (o.lastDown.IsZero() || now.Sub(o.lastDown) >= o.every()):
		o.announced, o.lastDown, o.lastLine = true, now, now
		failures, brief := o.total, o.brief
		o.failures, o.brief = 0, 0
		o.mu.Unlock()
		args := []any{"err", msg}
		if failures > 1 || brief > 0 {
			args = append(args, "failures", failures, "brief_outages_before", brief)
		}
		for _, a := range attrs {
			args = append(args, a)
		}
		o.Logger.ErrorContext(ctx, o.What+" unavailable", args...)
	case o.announced && now.Sub(o.lastLine) >= o.every():
		failures, since := o.failures, o.since
		o.lastLine, o.failures = now, 0
		o.mu.Unlock()
		o.Logger.WarnContext(ctx, o.What+" still unavailable",
			"failures", failures, "unavailable_for", now.Sub(since).Round(time.Millisecond).String(), "err", msg)
	default:
		o.mu.Unlock()
	}
}

// Succeeded records that the dependency answered.
func (o *OutageLog) Succeeded(ctx context.Context) {
	o.mu.Lock()
	if !o.down {
		o.mu.Unlock()
		return
	}
	o.down = false
	if !o.announced {
		o.brief++
		o.mu.Unlock()
		return
	}
	now := o.now()
	downtime, total, last := now.Sub(o.since), o.total, o.lastErr
	o.failures, o.lastLine = 0, now
	o.mu.Unlock()
	o.Logger.InfoContext(ctx, o.What+" available again",
		"unavailable_for", downtime.Round(time.Millisecond).String(), "failures", total, "last_err", last)
}

// Report records err's outcome: nil is a success, an EUNAVAILABLE error a
// failure. It reports whether err was an unavailability, which the caller
// then need not log itself.
func (o *OutageLog) Report(ctx context.Context, err error) bool {
	switch {
	case err == nil:
		o.Succeeded(ctx)
	case ErrorCode(err) == EUNAVAILABLE:
		o.Failed(ctx, err)
		return true
	}
	return false
}

func (o *OutageLog) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *OutageLog) every() time.Duration {
	if o.Every > 0 {
		return o.Every
	}
	return 30 * time.Second
}

// flatten puts an error on one line: drivers' messages (pgx's among them)
// can hold newlines, which break line-based log readers.
func flatten(err error) string {
	if err == nil {
		return ""
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}
