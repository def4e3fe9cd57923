package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// TestConcurrentWorkersKeepPerAccountOrder runs Run with several workers
// over several accounts whose receivers fail now and then: every account
// must get each of its events once, in order, while posts of different
// accounts overlap.
func TestConcurrentWorkersKeepPerAccountOrder(t *testing.T) {
	t.Parallel()
	const (
		accounts = 8
		perAcct  = 120
	)
	c := &clock{} // real time
	store := newFakeStore(c)
	receivers := make([]*receiver, accounts)
	for i := range receivers {
		// Every third post fails: the batch is retried, and nothing after
		// it may overtake it.
		receivers[i] = newReceiver(t, func(n int) int {
			if n%3 == 1 {
				return http.StatusBadGateway
			}
			return http.StatusNoContent
		})
		receivers[i].delay = 2 * time.Millisecond
		store.setWebhook(int64(i+1), allKinds(receivers[i].URL), nil)
	}
	// Interleave the accounts' events, as traffic would.
	for n := range perAcct {
		for i := range accounts {
			store.add(int64(i+1), sealpost.EventDelivered, payload(sealpost.EventDelivered, n))
		}
	}
	var overlap overlapCounter
	p := &Poster{
		Store:        &trackingStore{fakeStore: store, overlap: &overlap},
		Owner:        "node-a",
		Destinations: loopback(),
		MaxBatch:     7,
		Workers:      4,
		Interval:     time.Millisecond,
		Backoff:      func(int) time.Duration { return time.Millisecond },
		Logger:       testLogger(t),
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		left := 0
		for i := range accounts {
			left += len(store.waiting(int64(i + 1)))
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("%d events still waiting after 20s", left)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v on cancellation, want nil", err)
	}

	for i, rcv := range receivers {
		var got []int
		for _, e := range rcv.accepted(t) {
			got = append(got, seqOf(t, e))
		}
		if len(got) != perAcct {
			t.Errorf("account %d: %d events accepted, want %d", i+1, len(got), perAcct)
		}
		for n, seq := range got {
			if seq != n {
				t.Errorf("account %d: event %d arrived at position %d: order broken: %v", i+1, seq, n, got)
				break
			}
		}
	}
	if overlap.max < 2 {
		t.Errorf("at most %d batches were held at once: the workers did not run concurrently", overlap.max)
	}
	if overlap.sameAccount {
		t.Error("two batches of one account were held at once")
	}
}

// trackingStore records how many batches are held at once, and whether
// one account ever had two.
type trackingStore struct {
	*fakeStore
	overlap *overlapCounter
}

type overlapCounter struct {
	mu          sync.Mutex
	held        map[int64]bool
	max         int
	sameAccount bool
}

func (s *trackingStore) ClaimEventBatch(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) (*sealpost.EventBatch, error) {
	b, err := s.fakeStore.ClaimEventBatch(ctx, owner, now, lease, limit)
	if b != nil {
		o := s.overlap
		o.mu.Lock()
		if o.held == nil {
			o.held = map[int64]bool{}
		}
		if o.held[b.AccountID] {
			o.sameAccount = true
		}
		o.held[b.AccountID] = true
		o.max = max(o.max, len(o.held))
		o.mu.Unlock()
	}
	return b, err
}

func (s *trackingStore) release(b *sealpost.EventBatch) {
	s.overlap.mu.Lock()
	delete(s.overlap.held, b.AccountID)
	s.overlap.mu.Unlock()
}

func (s *trackingStore) AckEventBatch(ctx context.Context, b *sealpost.EventBatch) error {
	s.release(b)
	return s.fakeStore.AckEventBatch(ctx, b)
}

func (s *trackingStore) RetryEventBatch(ctx context.Context, b *sealpost.EventBatch, next time.Time) error {
	s.release(b)
	return s.fakeStore.RetryEventBatch(ctx, b, next)
}

func TestLostLeaseIsNotAnError(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusOK, http.StatusInternalServerError} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			c := newClock()
			store := newFakeStore(c)
			rcv := newReceiver(t, func(int) int {
				// The post outlived the lease: another node took the batch.
				store.stealLease(1)
				return status
			})
			store.setWebhook(1, allKinds(rcv.URL), nil)
			store.add(1, sealpost.EventDelivered, payload(sealpost.EventDelivered, 0))
			p := newPoster(t, store, c)
			flush(t, p)
			if s := p.Stats(); s.LeasesLost != 1 {
				t.Errorf("LeasesLost = %d, want 1", s.LeasesLost)
			}
			if left := store.waiting(1); len(left) != 1 {
				t.Errorf("%d events waiting; the new lease holder must still have the 1", len(left))
			}
		})
	}
}

// failingStore fails every claim.
type failingStore struct{ *fakeStore }

func (failingStore) ClaimEventBatch(context.Context, string, time.Time, time.Duration, int) (*sealpost.EventBatch, error) {
	return nil, sealpost.Errorf(sealpost.EUNAVAILABLE, "database is down")
}

func TestStoreErrors(t *testing.T) {
	t.Parallel()
	c := newClock()
	p := newPoster(t, failingStore{newFakeStore(c)}, c)
	if err := p.Flush(t.Context()); sealpost.ErrorCode(err) != sealpost.EUNAVAILABLE {
		t.Errorf("Flush = %v, want the store's EUNAVAILABLE", err)
	}
	// Run keeps going through store errors until cancelled.
	p.Interval = time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Errorf("Run = %v, want nil after cancellation", err)
	}
	if err := (&Poster{Owner: "x"}).Run(t.Context()); err == nil {
		t.Error("Run without a store succeeded")
	}
}

func TestLogsKeepSecrets(t *testing.T) {
	t.Parallel()
	c := newClock()
	store := newFakeStore(c)
	rcv := newReceiver(t, func(int) int { return http.StatusInternalServerError })
	priv, _, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	secretURL := strings.Replace(rcv.URL, "http://", "http://hookuser:s3cr3t-pass@", 1) + "/in?token=t0ken-value"
	store.setWebhook(1, allKinds(secretURL), priv)
	store.add(1, sealpost.EventDelivered, payload(sealpost.EventDelivered, 0))

	// A closed server, to log a connection error too.
	closed := newReceiver(t, nil)
	closedURL := strings.Replace(closed.URL, "http://", "http://hookuser:s3cr3t-pass@", 1) + "/?token=t0ken-value"
	closed.Close()
	store.setWebhook(2, allKinds(closedURL), priv)
	store.add(2, sealpost.EventDelivered, payload(sealpost.EventDelivered, 0))

	var logs syncBuffer
	p := newPoster(t, store, c)
	p.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	flush(t, p)
	c.Advance(time.Hour)
	p.MaxAge = time.Minute // give up: logged at warn
	flush(t, p)

	out := logs.String()
	if !strings.Contains(out, "event webhook post failed") || !strings.Contains(out, "giving up") {
		t.Fatalf("expected failure logs, got:\n%s", out)
	}
	for _, secret := range []string{"s3cr3t-pass", "hookuser", "t0ken-value", base64.StdEncoding.EncodeToString(priv)[:40]} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q:\n%s", secret, out)
		}
	}
	if got := rcv.received(); len(got) == 0 || got[0].Header.Get("Authorization") == "" {
		t.Error("the URL's userinfo did not reach the receiver as basic auth")
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
