package delivery

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// policyUnreadableQueue is a queue whose Enforced TLS setting cannot be
// read (the account is gone, or the database is down); it records
// completions.
type policyUnreadableQueue struct {
	Queue // nil: only the methods below are called
	mu    sync.Mutex
	done  []sealpost.DeliveryCompletion
}

func (q *policyUnreadableQueue) EnforcedTLS(context.Context, int64) (sealpost.EnforcedTLS, error) {
	return sealpost.EnforcedTLS{}, sealpost.Errorf(sealpost.ENOTFOUND, "account not found")
}

func (q *policyUnreadableQueue) CompleteDelivery(_ context.Context, _ string, c sealpost.DeliveryCompletion) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.done = append(q.done, c)
	return nil
}

type mustNotDeliver struct{ t *testing.T }

func (m mustNotDeliver) Deliver(context.Context, sealpost.EnforcedTLS, Envelope) Result {
	m.t.Error("delivered without a policy")
	return Result{}
}

// Without its policy a delivery may not be attempted, but it is still
// deferred: each time with a deferred event, and at most for MaxAge like
// any other deferral. It used to be retried silently and forever.
func TestRunnerPolicyUnreadableDefersAndExpires(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		age   time.Duration
		state sealpost.RecipientState
		event string
	}{
		{name: "young: deferred with an event", age: time.Minute, state: sealpost.StateQueued, event: "deferred"},
		{name: "older than MaxAge: bounced", age: 80 * time.Hour, state: sealpost.StateBounced, event: "bounce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := &policyUnreadableQueue{}
			r := &Runner{Queue: q, Deliverer: mustNotDeliver{t}, Owner: "n1", Now: func() time.Time { return now }}
			r.defaults()
			d := &sealpost.Delivery{ID: 7, Domain: "example.test", Attempts: 3, Message: &sealpost.Message{
				AccountID: 1, From: "a@sealpost.test", SMTPID: "<x@sealpost.test>", CreatedAt: now.Add(-tt.age),
				Recipients: []sealpost.Recipient{{ID: 11, Email: "b@example.test", Domain: "example.test", SGMessageID: "x.1"}},
			}}
			r.attempt(t.Context(), d)
			if len(q.done) != 1 {
				t.Fatalf("%d completions, want 1", len(q.done))
			}
			c := q.done[0]
			if len(c.Recipients) != 1 || c.Recipients[0].State != tt.state {
				t.Errorf("recipient updates %+v, want state %s", c.Recipients, tt.state)
			}
			if len(c.Events) != 1 {
				t.Fatalf("%d events, want 1", len(c.Events))
			}
			if c.Events[0].Kind != sealpost.EventKind(tt.event) {
				t.Errorf("event %s, want %s", c.Events[0].Kind, tt.event)
			}
			if tt.state == sealpost.StateQueued && !c.NextAttemptAt.After(now) {
				t.Errorf("next attempt at %v, want after %v", c.NextAttemptAt, now)
			}
		})
	}
}
