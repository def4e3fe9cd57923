package delivery_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// outageQueue is a queue whose database is away for the next few
// completions, answering EUNAVAILABLE as the stores do.
type outageQueue struct {
	delivery.Queue
	failing atomic.Int64
}

func (q *outageQueue) CompleteDelivery(ctx context.Context, owner string, c sealpost.DeliveryCompletion) error {
	if q.failing.Add(-1) >= 0 {
		return sealpost.Errorf(sealpost.EUNAVAILABLE, "database unavailable")
	}
	return q.Queue.CompleteDelivery(ctx, owner, c)
}

// TestRunnerRecordsAttemptAfterShortOutage: the database is away when a
// delivered message's outcome is to be recorded. The runner must record it
// once the database is back, while it holds the lease, rather than leave
// the delivery leased until the lease runs out and then deliver it again.
func TestRunnerRecordsAttemptAfterShortOutage(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	mx := w.h.AddMX("outage.test", 10, mxtest.Behavior{})
	q := &outageQueue{Queue: w.store}
	q.failing.Store(3)
	w.runner.Queue = q
	w.runner.Lease = time.Minute
	w.runner.Poll = 10 * time.Millisecond
	xid := w.send(mailTo("ann@outage.test"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.runner.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for w.states(xid)["ann@outage.test"] != sealpost.StateDelivered && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := w.states(xid)["ann@outage.test"]; st != sealpost.StateDelivered {
		t.Fatalf("recipient is %s after the database came back, want delivered: the attempt's outcome was dropped", st)
	}
	if n := mx.AcceptedCount(); n != 1 {
		t.Fatalf("the MX accepted %d copies, want 1", n)
	}
}

// downQueue is a queue whose database is down: every claim fails as
// PostgreSQL's do, with pgx's multi-line message.
type downQueue struct {
	delivery.Queue
	claims atomic.Int64
}

func (q *downQueue) ClaimDeliveries(context.Context, string, time.Time, time.Duration, int) ([]*sealpost.Delivery, error) {
	q.claims.Add(1)
	return nil, &sealpost.Error{Code: sealpost.EUNAVAILABLE, Message: "database unavailable",
		Err: errors.New("failed to connect to `user=postgres`:\n\t127.0.0.1:5432: dial error: connection refused")}
}

// TestRunnerLogsAnOutageOnce: polling a down database every millisecond
// logs the outage once, not once per poll.
func TestRunnerLogsAnOutageOnce(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	q := &downQueue{Queue: w.store}
	var logs syncBuffer
	w.runner.Queue = q
	w.runner.Poll = time.Millisecond
	w.runner.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.runner.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for q.claims.Load() < 50 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if n := strings.Count(out, "\n"); n != 1 || !strings.Contains(out, "database unavailable") {
		t.Fatalf("%d failed claims logged %d lines, want 1:\n%s", q.claims.Load(), n, out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
