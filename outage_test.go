package sealpost_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/internal/testclock"
)

// TestOutageLogLinesPerOutage: 95 seconds of an outage in which three
// workers fail ten times a second each log the outage once, a summary
// every 30 seconds, and the recovery once: five lines, not 2,850. pgx's
// multi-line errors are flattened to one line.
func TestOutageLogLinesPerOutage(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	o := sealpost.NewOutageLog(slog.New(slog.NewJSONHandler(&buf, nil)), "database")
	o.Now = clock.Now
	pgErr := &sealpost.Error{Code: sealpost.EUNAVAILABLE, Message: "database unavailable",
		Err: errors.New("failed to connect to `user=postgres database=sealpost`:\n\t127.0.0.1:5432 (127.0.0.1): dial error: connection refused")}
	ctx := context.Background()

	o.Succeeded(ctx) // nothing to say while it is up
	failures := 0
	for range 950 { // 95 s in steps of 100 ms
		clock.Add(100 * time.Millisecond)
		for range 3 {
			if !o.Report(ctx, pgErr) {
				t.Fatal("Report did not take an EUNAVAILABLE error")
			}
			failures++
		}
	}
	o.Report(ctx, nil)
	o.Report(ctx, nil)
	if o.Report(ctx, fmt.Errorf("other: %w", sealpost.Errorf(sealpost.EINVALID, "bad"))) {
		t.Error("Report took an error that is not an unavailability")
	}

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	var msgs []string
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		msgs = append(msgs, rec["msg"].(string))
		for k, v := range rec {
			if s, ok := v.(string); ok && strings.ContainsAny(s, "\n\t") {
				t.Errorf("%s of %q holds a newline or tab: %q", k, rec["msg"], s)
			}
		}
		if rec["msg"] == "database available again" && (rec["unavailable_for"] != "1m34.9s" || rec["failures"] != float64(failures)) {
			t.Errorf("recovery line %s: want unavailable_for 1m34.9s (from the first failure) and failures %d", l, failures)
		}
	}
	want := []string{"database unavailable", "database still unavailable", "database still unavailable", "database still unavailable", "database available again"}
	if strings.Join(msgs, "|") != strings.Join(want, "|") {
		t.Errorf("%d failures logged as:\n%s\nwant %q", failures, buf.String(), want)
	}
}

// TestOutageLogFlapping: a database that fails and answers by turns, ten
// times a second for 95 seconds, logs about two lines per 30 seconds.
func TestOutageLogFlapping(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	o := sealpost.NewOutageLog(slog.New(slog.NewJSONHandler(&buf, nil)), "database")
	o.Now = clock.Now
	ctx := context.Background()
	down := sealpost.Errorf(sealpost.EUNAVAILABLE, "database busy")
	for range 950 {
		clock.Add(100 * time.Millisecond)
		o.Failed(ctx, down)
		o.Succeeded(ctx)
	}
	// Announced at 0 s, 30 s, 60 s and 90 s, each followed by its recovery.
	if n := strings.Count(buf.String(), "\n"); n != 8 {
		t.Errorf("950 flaps logged %d lines, want 8:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), `"brief_outages_before":299`) {
		t.Errorf("the second announcement does not count the brief outages before it:\n%s", buf.String())
	}
}
