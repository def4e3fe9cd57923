package webhook

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/sealpost/sealpost"
)

// fakeStore is an in-memory Store that keeps the outbox contract: an
// account's events are leased as one batch to one owner at a time, oldest
// first; ack and retry are refused with ECONFLICT once the lease has moved
// on; a retried account is not due before its next attempt.
type fakeStore struct {
	clock *clock

	mu       sync.Mutex
	nextID   int64
	accounts map[int64]*fakeAccount
}

type fakeAccount struct {
	settings     sealpost.EventWebhookSettings
	key          []byte
	events       []sealpost.StoredEvent
	attempts     int
	failingSince time.Time
	nextAt       time.Time
	leaseOwner   string
	leaseUntil   time.Time
}

func newFakeStore(c *clock) *fakeStore {
	return &fakeStore{clock: c, accounts: map[int64]*fakeAccount{}}
}

func (s *fakeStore) account(id int64) *fakeAccount {
	a := s.accounts[id]
	if a == nil {
		a = &fakeAccount{}
		s.accounts[id] = a
	}
	return a
}

// setWebhook makes account id exist with settings and signing key.
func (s *fakeStore) setWebhook(id int64, settings sealpost.EventWebhookSettings, key []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.account(id)
	a.settings, a.key = settings, key
}

// add stores events in the outbox of account id, returning their ids.
func (s *fakeStore) add(id int64, kind sealpost.EventKind, payloads ...string) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.account(id)
	var ids []int64
	for _, p := range payloads {
		s.nextID++
		a.events = append(a.events, sealpost.StoredEvent{
			ID: s.nextID, Kind: kind, Payload: json.RawMessage(p), CreatedAt: s.clock.Now(),
		})
		ids = append(ids, s.nextID)
	}
	return ids
}

func (s *fakeStore) waiting(id int64) []sealpost.StoredEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[id]; a != nil {
		return slices.Clone(a.events)
	}
	return nil
}

func (s *fakeStore) state(id int64) (attempts int, failingSince, nextAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.account(id)
	return a.attempts, a.failingSince, a.nextAt
}

// stealLease hands account id's lease to another node, as when this
// poster's lease ran out and another node claimed the batch.
func (s *fakeStore) stealLease(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.account(id)
	a.leaseOwner, a.leaseUntil = "other-node", s.clock.Now().Add(time.Hour)
}

func (s *fakeStore) ClaimEventBatch(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) (*sealpost.EventBatch, error) {
	return s.ClaimEventBatchInLane(ctx, owner, sealpost.AnyOutbox, now, lease, max)
}

func (s *fakeStore) ClaimEventBatchInLane(ctx context.Context, owner string, lane sealpost.OutboxLane, now time.Time, lease time.Duration, max int) (*sealpost.EventBatch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		best   *fakeAccount
		bestID int64
	)
	for id, a := range s.accounts {
		if len(a.events) == 0 || a.nextAt.After(now) {
			continue
		}
		if a.leaseOwner != "" && a.leaseUntil.After(now) {
			continue
		}
		if (lane == sealpost.HealthyOutbox && a.attempts > 0) || (lane == sealpost.FailingOutbox && a.attempts == 0) {
			continue
		}
		if best == nil || a.events[0].ID < best.events[0].ID {
			best, bestID = a, id
		}
	}
	if best == nil {
		return nil, nil
	}
	best.leaseOwner, best.leaseUntil = owner, now.Add(lease)
	n := min(max, len(best.events))
	return &sealpost.EventBatch{
		AccountID:    bestID,
		Events:       slices.Clone(best.events[:n]),
		Attempts:     best.attempts,
		FailingSince: best.failingSince,
		LeaseOwner:   owner,
	}, nil
}

func (s *fakeStore) leased(b *sealpost.EventBatch) (*fakeAccount, error) {
	a := s.accounts[b.AccountID]
	if a == nil || a.leaseOwner == "" || a.leaseOwner != b.LeaseOwner {
		return nil, sealpost.Errorf(sealpost.ECONFLICT, "event batch lease lost")
	}
	return a, nil
}

func (s *fakeStore) AckEventBatch(ctx context.Context, b *sealpost.EventBatch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.leased(b)
	if err != nil {
		return err
	}
	done := map[int64]bool{}
	for _, e := range b.Events {
		done[e.ID] = true
	}
	a.events = slices.DeleteFunc(a.events, func(e sealpost.StoredEvent) bool { return done[e.ID] })
	a.attempts, a.failingSince, a.nextAt = 0, time.Time{}, time.Time{}
	a.leaseOwner, a.leaseUntil = "", time.Time{}
	return nil
}

func (s *fakeStore) RetryEventBatch(ctx context.Context, b *sealpost.EventBatch, next time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.leased(b)
	if err != nil {
		return err
	}
	if a.attempts == 0 {
		a.failingSince = s.clock.Now()
	}
	a.attempts++
	a.nextAt = next
	a.leaseOwner, a.leaseUntil = "", time.Time{}
	return nil
}

func (s *fakeStore) EventWebhookSettings(ctx context.Context, accountID int64) (sealpost.EventWebhookSettings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[accountID]
	if a == nil {
		return sealpost.EventWebhookSettings{}, sealpost.Errorf(sealpost.ENOTFOUND, "account not found")
	}
	return a.settings, nil
}

func (s *fakeStore) UpdateEventWebhookSettings(ctx context.Context, accountID int64, patch sealpost.EventWebhookPatch) (sealpost.EventWebhookSettings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[accountID]
	if a == nil {
		return sealpost.EventWebhookSettings{}, sealpost.Errorf(sealpost.ENOTFOUND, "account not found")
	}
	a.settings = patch.Apply(a.settings)
	return a.settings, nil
}

func (s *fakeStore) EventWebhookSigningKey(ctx context.Context, accountID int64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[accountID]
	if a == nil {
		return nil, sealpost.Errorf(sealpost.ENOTFOUND, "account not found")
	}
	return slices.Clone(a.key), nil
}

func (s *fakeStore) SetEventWebhookSigningKey(ctx context.Context, accountID int64, key []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[accountID]
	if a == nil {
		return sealpost.Errorf(sealpost.ENOTFOUND, "account not found")
	}
	a.key = slices.Clone(key)
	return nil
}

// clock is a settable time source shared by a test's store and poster;
// the zero clock is the real time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.IsZero() {
		return time.Now()
	}
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
