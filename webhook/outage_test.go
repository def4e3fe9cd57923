package webhook

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// outageStore is a fakeStore whose database goes away for the next few
// calls of the chosen methods, answering EUNAVAILABLE as the stores do
// when the database cannot be reached.
type outageStore struct {
	*fakeStore
	mu    sync.Mutex
	fails map[string]int // method: calls left to fail
}

func (s *outageStore) down(method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails[method] > 0 {
		s.fails[method]--
		return sealpost.Errorf(sealpost.EUNAVAILABLE, "database unavailable")
	}
	return nil
}

func (s *outageStore) EventWebhookSettings(ctx context.Context, id int64) (sealpost.EventWebhookSettings, error) {
	if err := s.down("settings"); err != nil {
		return sealpost.EventWebhookSettings{}, err
	}
	return s.fakeStore.EventWebhookSettings(ctx, id)
}

func (s *outageStore) EventWebhookSigningKey(ctx context.Context, id int64) ([]byte, error) {
	if err := s.down("key"); err != nil {
		return nil, err
	}
	return s.fakeStore.EventWebhookSigningKey(ctx, id)
}

func (s *outageStore) AckEventBatch(ctx context.Context, b *sealpost.EventBatch) error {
	if err := s.down("ack"); err != nil {
		return err
	}
	return s.fakeStore.AckEventBatch(ctx, b)
}

func (s *outageStore) RetryEventBatch(ctx context.Context, b *sealpost.EventBatch, next time.Time) error {
	if err := s.down("retry"); err != nil {
		return err
	}
	return s.fakeStore.RetryEventBatch(ctx, b, next)
}

// TestClaimedBatchOutlivesShortOutage: the database goes away between the
// claim of a batch and the calls that follow it. The poster must finish the
// batch once the database is back, while it still holds the lease: post it
// once and acknowledge it, not drop it to wait out its lease (the clock
// here never moves, so a dropped batch would never be claimed again) nor
// post it twice.
func TestClaimedBatchOutlivesShortOutage(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		fails  map[string]int
		status int // the receiver's answer
	}{
		{"settings", map[string]int{"settings": 3}, 200},
		{"signing key", map[string]int{"key": 3}, 200},
		{"ack after the post", map[string]int{"ack": 3}, 200},
		{"retry after a failed post", map[string]int{"retry": 3}, 503},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClock()
			fake := newFakeStore(c)
			rcv := newReceiver(t, func(int) int { return tc.status })
			fake.setWebhook(1, allKinds(rcv.URL), nil)
			fake.add(1, sealpost.EventDelivered, payloads(sealpost.EventDelivered, 0, 3)...)
			store := &outageStore{fakeStore: fake, fails: tc.fails}
			p := newPoster(t, store, c)
			p.Interval = 5 * time.Millisecond
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			settled := func() bool {
				if tc.status == 200 {
					return len(fake.waiting(1)) == 0
				}
				attempts, _, _ := fake.state(1)
				return attempts == 1
			}
			deadline := time.Now().Add(10 * time.Second)
			for !settled() && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond) // a second post would come now
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if !settled() {
				t.Fatalf("the batch was not settled after the database came back: %d events waiting", len(fake.waiting(1)))
			}
			if n := len(rcv.received()); n != 1 {
				t.Fatalf("%d posts, want 1", n)
			}
		})
	}
}
