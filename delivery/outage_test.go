package delivery_test

import (
	"context"
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
