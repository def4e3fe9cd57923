package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

func claimBatch(t *testing.T, s sealpost.Store, owner string, now time.Time, lease time.Duration, max int) *sealpost.EventBatch {
	t.Helper()
	b, err := s.ClaimEventBatch(t.Context(), owner, now, lease, max)
	if err != nil {
		t.Fatalf("ClaimEventBatch(%s): %v", owner, err)
	}
	return b
}

// eventNames returns the name each newEvent payload carries.
func eventNames(t *testing.T, b *sealpost.EventBatch) []string {
	t.Helper()
	if b == nil {
		return nil
	}
	out := make([]string, len(b.Events))
	for i, e := range b.Events {
		var p struct{ Name string }
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			t.Errorf("event %d: payload %q is not JSON: %v", e.ID, e.Payload, err)
		}
		out[i] = p.Name
	}
	return out
}

func wantEventNames(t *testing.T, b *sealpost.EventBatch, want []string, what string) {
	t.Helper()
	if got := eventNames(t, b); !slices.Equal(got, want) {
		t.Errorf("%s: events %q, want %q", what, got, want)
	}
}

// storeEvents puts events into the outbox the way delivery does: with an
// enqueue of a message of the same account.
func storeEvents(t *testing.T, s sealpost.Store, accountID int64, events ...sealpost.Event) {
	t.Helper()
	enqueue(t, s, []*sealpost.Message{newMessage(accountID, "carrier", baseTime(), "r@x.test")}, events...)
}

func testOutboxEmpty(t *testing.T, s sealpost.Store) {
	createUser(t, s, "alice")
	if b := claimBatch(t, s, "p", time.Now(), time.Minute, 10); b != nil {
		t.Errorf("ClaimEventBatch on an empty outbox = %+v, want nil", b)
	}
}

// testOutboxOnlyWantedKinds: an event is queued only if the account's
// webhook wants it when it happens (on, with a URL, subscribed to its
// kind); a later change of the settings does not bring it back. Every
// event is kept for Email Activity either way.
func testOutboxOnlyWantedKinds(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	off := SubscribeAll()
	off.Bools["enabled"] = false
	noURL := SubscribeAll()
	noURL.URL = nil
	settings := []struct {
		name  string
		patch sealpost.EventWebhookPatch
	}{
		{"never set", sealpost.EventWebhookPatch{}},
		{"off", off},
		{"no URL", noURL},
		{"unrelated kinds only", sealpost.EventWebhookPatch{URL: ptr("https://hooks.example.com/a"), Bools: map[string]bool{
			"enabled": true, "open": true, "click": true, "spam_report": true, "unsubscribe": true}}},
	}
	for _, k := range eventKinds {
		settings = append(settings, struct {
			name  string
			patch sealpost.EventWebhookPatch
		}{"only " + string(k), sealpost.EventWebhookPatch{URL: ptr("https://hooks.example.com/a"),
			Bools: map[string]bool{"enabled": true, string(k): true}}})
	}
	for i, st := range settings {
		a := createUser(t, s, fmt.Sprintf("user%d", i))
		ws, err := s.UpdateEventWebhookSettings(ctx, a.ID, st.patch)
		if err != nil {
			t.Fatalf("%s: UpdateEventWebhookSettings: %v", st.name, err)
		}
		var events []sealpost.Event
		var want []string
		for _, k := range eventKinds {
			events = append(events, newEvent(a.ID, k, string(k)))
			if ws.Wants(k) {
				want = append(want, string(k))
			}
		}
		storeEvents(t, s, a.ID, events...)
		// Subscribing afterwards brings nothing back.
		if _, err := s.UpdateEventWebhookSettings(ctx, a.ID, SubscribeAll()); err != nil {
			t.Fatalf("%s: UpdateEventWebhookSettings(all): %v", st.name, err)
		}
		var got []string
		if b, err := s.ClaimEventBatchInLane(ctx, "p", sealpost.AnyOutbox, time.Now(), time.Minute, 100); err != nil {
			t.Fatalf("%s: ClaimEventBatchInLane: %v", st.name, err)
		} else if b != nil {
			if b.AccountID != a.ID {
				t.Fatalf("%s: claimed account %d's batch, want %d's", st.name, b.AccountID, a.ID)
			}
			got = eventNames(t, b)
			if err := s.AckEventBatch(ctx, b); err != nil {
				t.Fatalf("%s: AckEventBatch: %v", st.name, err)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: queued %q, want %q", st.name, got, want)
		}
	}
}

func testOutboxOrder(t *testing.T, s sealpost.Store) {
	a := createSubscriber(t, s, "alice")
	t0 := baseTime()
	m := newMessage(a.ID, "xid", t0, "a@x.test")
	want := []sealpost.Event{
		newEvent(a.ID, sealpost.EventProcessed, "e1"),
		newEvent(a.ID, sealpost.EventDropped, "e2"),
	}
	enqueue(t, s, []*sealpost.Message{m}, want...)
	ds := claim(t, s, "w", t0, time.Minute, 10)
	if len(ds) != 1 {
		t.Fatalf("claim: %d deliveries, want 1", len(ds))
	}
	more := []sealpost.Event{
		newEvent(a.ID, sealpost.EventDeferred, "e3"),
		newEvent(a.ID, sealpost.EventDelivered, "e4"),
	}
	complete(t, s, "w", sealpost.DeliveryCompletion{
		DeliveryID:    ds[0].ID,
		Recipients:    []sealpost.RecipientUpdate{{RecipientID: m.Recipients[0].ID, State: sealpost.StateDelivered}},
		Events:        more,
		NextAttemptAt: t0.Add(time.Minute),
	})
	storeEvents(t, s, a.ID, newEvent(a.ID, sealpost.EventProcessed, "e5"))
	want = append(want, more...)
	want = append(want, newEvent(a.ID, sealpost.EventProcessed, "e5"))

	b := claimBatch(t, s, "p", time.Now(), time.Minute, 100)
	if b == nil {
		t.Fatal("ClaimEventBatch = nil, want a batch")
	}
	if b.AccountID != a.ID || b.LeaseOwner != "p" || b.Attempts != 0 || !b.FailingSince.IsZero() {
		t.Errorf("batch = {AccountID %d, LeaseOwner %q, Attempts %d, FailingSince %v}, want {%d, p, 0, zero}",
			b.AccountID, b.LeaseOwner, b.Attempts, b.FailingSince, a.ID)
	}
	if len(b.Events) != len(want) {
		t.Fatalf("batch has %d events %q, want %d", len(b.Events), eventNames(t, b), len(want))
	}
	for i, e := range b.Events {
		// Payloads are posted as stored and signed over: byte for byte.
		if e.Kind != want[i].Kind || string(e.Payload) != string(want[i].Payload) {
			t.Errorf("event %d = {%s %s}, want {%s %s}", i, e.Kind, e.Payload, want[i].Kind, want[i].Payload)
		}
		if i > 0 && e.ID <= b.Events[i-1].ID {
			t.Errorf("event %d: ID %d not above the previous %d", i, e.ID, b.Events[i-1].ID)
		}
		recent(t, e.CreatedAt, fmt.Sprintf("event %d", i))
	}
}

func testOutboxLease(t *testing.T, s sealpost.Store) {
	a := createSubscriber(t, s, "alice")
	storeEvents(t, s, a.ID, newEvent(a.ID, sealpost.EventProcessed, "e1"))
	now := time.Now()
	lease := time.Minute
	b := claimBatch(t, s, "p1", now, lease, 10)
	if b == nil {
		t.Fatal("first claim = nil")
	}
	for _, at := range []time.Time{now, now.Add(lease - time.Nanosecond)} {
		if got := claimBatch(t, s, "p2", at, lease, 10); got != nil {
			t.Errorf("claim at +%v while leased = %q, want nil", at.Sub(now), eventNames(t, got))
		}
	}
	// New events of a leased account wait too.
	storeEvents(t, s, a.ID, newEvent(a.ID, sealpost.EventProcessed, "e2"))
	if got := claimBatch(t, s, "p2", now, lease, 10); got != nil {
		t.Errorf("claim after more events while leased = %q, want nil", eventNames(t, got))
	}
	b2 := claimBatch(t, s, "p2", now.Add(lease), lease, 10)
	if b2 == nil {
		t.Fatal("claim after the lease ran out = nil, want the batch")
	}
	wantEventNames(t, b2, []string{"e1", "e2"}, "claim after the lease ran out")
	if b2.LeaseOwner != "p2" {
		t.Errorf("LeaseOwner = %q, want p2", b2.LeaseOwner)
	}
	wantCode(t, s.AckEventBatch(t.Context(), b), sealpost.ECONFLICT, "AckEventBatch by the owner of a lost lease")
	wantCode(t, s.RetryEventBatch(t.Context(), b, now), sealpost.ECONFLICT, "RetryEventBatch by the owner of a lost lease")
	// The refused calls changed nothing: p2 still holds the lease.
	if got := claimBatch(t, s, "p3", now.Add(lease), lease, 10); got != nil {
		t.Errorf("claim during p2's lease = %q, want nil", eventNames(t, got))
	}
	if err := s.AckEventBatch(t.Context(), b2); err != nil {
		t.Fatalf("AckEventBatch by p2: %v", err)
	}
	wantCode(t, s.AckEventBatch(t.Context(), b2), sealpost.ECONFLICT, "AckEventBatch twice")
}

func testOutboxAck(t *testing.T, s sealpost.Store) {
	a := createSubscriber(t, s, "alice")
	storeEvents(t, s, a.ID,
		newEvent(a.ID, sealpost.EventProcessed, "e1"),
		newEvent(a.ID, sealpost.EventProcessed, "e2"),
		newEvent(a.ID, sealpost.EventProcessed, "e3"))
	now := time.Now()
	b := claimBatch(t, s, "p", now, time.Minute, 2)
	wantEventNames(t, b, []string{"e1", "e2"}, "first batch (max 2)")
	if b == nil {
		t.FailNow()
	}
	// Stored while the batch was out: must survive its ack.
	storeEvents(t, s, a.ID, newEvent(a.ID, sealpost.EventDelivered, "e4"))
	if err := s.AckEventBatch(t.Context(), b); err != nil {
		t.Fatalf("AckEventBatch: %v", err)
	}
	// The lease is released by the ack: the account is due at once.
	b = claimBatch(t, s, "p", now, time.Minute, 10)
	wantEventNames(t, b, []string{"e3", "e4"}, "batch after the ack")
	if b == nil {
		t.FailNow()
	}
	if err := s.AckEventBatch(t.Context(), b); err != nil {
		t.Fatalf("AckEventBatch: %v", err)
	}
	if b := claimBatch(t, s, "p", now.Add(time.Hour), time.Minute, 10); b != nil {
		t.Errorf("claim after every event was acked = %q, want nil", eventNames(t, b))
	}
}

func testOutboxRetry(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createSubscriber(t, s, "alice")
	storeEvents(t, s, a.ID, newEvent(a.ID, sealpost.EventProcessed, "e1"), newEvent(a.ID, sealpost.EventProcessed, "e2"))
	now := time.Now()
	b := claimBatch(t, s, "p", now, time.Minute, 10)
	if b == nil {
		t.Fatal("claim = nil")
	}
	next := now.Add(30 * time.Second)
	if err := s.RetryEventBatch(ctx, b, next); err != nil {
		t.Fatalf("RetryEventBatch: %v", err)
	}
	// Released, but not due before next, for anyone.
	for _, owner := range []string{"p", "q"} {
		if got := claimBatch(t, s, owner, next.Add(-time.Nanosecond), time.Minute, 10); got != nil {
			t.Errorf("claim by %s before next = %q, want nil", owner, eventNames(t, got))
		}
	}
	b = claimBatch(t, s, "q", next, time.Minute, 10)
	if b == nil {
		t.Fatal("claim at next = nil")
	}
	wantEventNames(t, b, []string{"e1", "e2"}, "claim after a retry")
	if b.Attempts != 1 {
		t.Errorf("Attempts after one failure = %d, want 1", b.Attempts)
	}
	recent(t, b.FailingSince, "FailingSince after one failure")
	firstFailure := b.FailingSince

	next2 := next.Add(time.Minute)
	if err := s.RetryEventBatch(ctx, b, next2); err != nil {
		t.Fatalf("RetryEventBatch: %v", err)
	}
	b = claimBatch(t, s, "q", next2, time.Minute, 10)
	if b == nil {
		t.Fatal("claim at next2 = nil")
	}
	if b.Attempts != 2 || !b.FailingSince.Equal(firstFailure) {
		t.Errorf("after two failures: Attempts %d, FailingSince %v; want 2, %v (the first failure)", b.Attempts, b.FailingSince, firstFailure)
	}
	wantCode(t, s.RetryEventBatch(ctx, &sealpost.EventBatch{AccountID: a.ID, Events: b.Events, LeaseOwner: "other"}, next2), sealpost.ECONFLICT, "RetryEventBatch by another owner")

	// A success clears the failure count and the due time.
	if err := s.AckEventBatch(ctx, b); err != nil {
		t.Fatalf("AckEventBatch: %v", err)
	}
	storeEvents(t, s, a.ID, newEvent(a.ID, sealpost.EventProcessed, "e3"))
	b = claimBatch(t, s, "q", now, time.Minute, 10)
	if b == nil {
		t.Fatal("claim after the ack = nil, want due at once")
	}
	wantEventNames(t, b, []string{"e3"}, "claim after the ack")
	if b.Attempts != 0 || !b.FailingSince.IsZero() {
		t.Errorf("after a success: Attempts %d, FailingSince %v; want 0, zero", b.Attempts, b.FailingSince)
	}
}

func testOutboxAccounts(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createSubscriber(t, s, "alice")
	b := createSubscriber(t, s, "bob")
	c := createSubscriber(t, s, "carol")
	storeEvents(t, s, b.ID, newEvent(b.ID, sealpost.EventProcessed, "b1"))
	storeEvents(t, s, a.ID, newEvent(a.ID, sealpost.EventProcessed, "a1"))
	storeEvents(t, s, b.ID, newEvent(b.ID, sealpost.EventProcessed, "b2"))
	storeEvents(t, s, c.ID, newEvent(c.ID, sealpost.EventProcessed, "c1"))
	now := time.Now()

	// The account whose head event waited longest goes first; one batch
	// never mixes accounts.
	first := claimBatch(t, s, "p1", now, time.Minute, 10)
	if first == nil || first.AccountID != b.ID {
		t.Fatalf("first claim = %+v, want bob's batch (oldest event)", first)
	}
	wantEventNames(t, first, []string{"b1", "b2"}, "bob's batch")
	second := claimBatch(t, s, "p2", now, time.Minute, 10)
	if second == nil || second.AccountID != a.ID {
		t.Fatalf("second claim = %+v, want alice's batch", second)
	}
	wantEventNames(t, second, []string{"a1"}, "alice's batch")
	// A failing account does not hold up the others.
	if err := s.RetryEventBatch(ctx, second, now.Add(time.Hour)); err != nil {
		t.Fatalf("RetryEventBatch: %v", err)
	}
	third := claimBatch(t, s, "p3", now, time.Minute, 10)
	if third == nil || third.AccountID != c.ID {
		t.Fatalf("third claim = %+v, want carol's batch", third)
	}
	if got := claimBatch(t, s, "p4", now, time.Minute, 10); got != nil {
		t.Errorf("fourth claim = account %d, want nil (every account leased or deferred)", got.AccountID)
	}
	for _, batch := range []*sealpost.EventBatch{first, third} {
		if err := s.AckEventBatch(ctx, batch); err != nil {
			t.Errorf("AckEventBatch(%d): %v", batch.AccountID, err)
		}
	}

	// Deleting an account takes its waiting events with it.
	if err := s.DeleteAccount(ctx, a.ID); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	if got := claimBatch(t, s, "p5", now.Add(2*time.Hour), time.Minute, 10); got != nil {
		t.Errorf("claim after deleting the account = account %d %q, want nil", got.AccountID, eventNames(t, got))
	}
}

func testOutboxMax(t *testing.T, s sealpost.Store) {
	a := createSubscriber(t, s, "alice")
	var events []sealpost.Event
	var names []string
	for i := range 7 {
		name := fmt.Sprintf("e%d", i)
		events = append(events, newEvent(a.ID, sealpost.EventProcessed, name))
		names = append(names, name)
	}
	storeEvents(t, s, a.ID, events...)
	now := time.Now()
	for start := 0; start < len(names); start += 3 {
		b := claimBatch(t, s, "p", now, time.Minute, 3)
		wantEventNames(t, b, names[start:min(start+3, len(names))], fmt.Sprintf("batch from %d", start))
		if b == nil {
			t.FailNow()
		}
		if err := s.AckEventBatch(t.Context(), b); err != nil {
			t.Fatalf("AckEventBatch: %v", err)
		}
	}
}

// testOutboxConcurrentClaims checks that concurrent posters each get a
// different account and never the same one twice while leased.
func testOutboxConcurrentClaims(t *testing.T, s sealpost.Store) {
	const accounts = 12
	for i := range accounts {
		a := createSubscriber(t, s, fmt.Sprintf("user%d", i))
		storeEvents(t, s, a.ID, newEvent(a.ID, sealpost.EventProcessed, fmt.Sprintf("a%d", i)))
	}
	now := time.Now()
	var mu sync.Mutex
	owners := map[int64]string{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := range 2 * accounts { // bounded: a broken lease must fail, not hang
				owner := fmt.Sprintf("p%d-%d", w, i)
				b, err := s.ClaimEventBatch(t.Context(), owner, now, time.Hour, 10)
				if err != nil {
					t.Errorf("ClaimEventBatch(%s): %v", owner, err)
					return
				}
				if b == nil {
					return
				}
				mu.Lock()
				if prev, ok := owners[b.AccountID]; ok {
					t.Errorf("account %d's batch claimed by %s and by %s", b.AccountID, prev, owner)
				}
				owners[b.AccountID] = owner
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(owners) != accounts {
		t.Errorf("concurrent posters got %d accounts, want %d", len(owners), accounts)
	}
}

func claimInLane(t *testing.T, s sealpost.Store, owner string, lane sealpost.OutboxLane, now time.Time) *sealpost.EventBatch {
	t.Helper()
	b, err := s.ClaimEventBatchInLane(t.Context(), owner, lane, now, time.Minute, 10)
	if err != nil {
		t.Fatalf("ClaimEventBatchInLane(%s, lane %d): %v", owner, lane, err)
	}
	return b
}

func batchAccount(b *sealpost.EventBatch) int64 {
	if b == nil {
		return 0
	}
	return b.AccountID
}

// testOutboxLanes checks that an account whose post failed is served only
// by the failing lane, so that a poster can keep endpoints known to fail
// away from the capacity healthy ones need, and that a success moves it
// back.
func testOutboxLanes(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	failing := createSubscriber(t, s, "failing")
	healthy := createSubscriber(t, s, "healthy")
	// The failing account's events are the oldest: oldest-first alone
	// would serve it first in every lane.
	storeEvents(t, s, failing.ID, newEvent(failing.ID, sealpost.EventProcessed, "f1"))
	storeEvents(t, s, healthy.ID, newEvent(healthy.ID, sealpost.EventProcessed, "h1"))
	now := time.Now()

	b := claimInLane(t, s, "p", sealpost.AnyOutbox, now)
	if batchAccount(b) != failing.ID {
		t.Fatalf("claim in any lane = account %d, want %d (oldest events)", batchAccount(b), failing.ID)
	}
	next := now.Add(time.Minute)
	if err := s.RetryEventBatch(ctx, b, next); err != nil {
		t.Fatalf("RetryEventBatch: %v", err)
	}
	// Due again: still only in the failing lane.
	for _, tc := range []struct {
		lane sealpost.OutboxLane
		at   time.Time
		want int64
	}{
		{sealpost.FailingOutbox, now, 0}, // backing off
		{sealpost.FailingOutbox, next, failing.ID},
		{sealpost.HealthyOutbox, next, healthy.ID},
	} {
		got := claimInLane(t, s, "p", tc.lane, tc.at)
		if batchAccount(got) != tc.want {
			t.Errorf("claim in lane %d at +%v = account %d, want %d", tc.lane, tc.at.Sub(now), batchAccount(got), tc.want)
		}
		if got == nil {
			continue
		}
		if tc.lane == sealpost.FailingOutbox && got.Attempts != 1 {
			t.Errorf("failing lane batch: Attempts %d, want 1", got.Attempts)
		}
		if err := s.AckEventBatch(ctx, got); err != nil {
			t.Fatalf("AckEventBatch: %v", err)
		}
	}
	// A success puts the account back in the healthy lane.
	storeEvents(t, s, failing.ID, newEvent(failing.ID, sealpost.EventProcessed, "f2"))
	if got := claimInLane(t, s, "p", sealpost.FailingOutbox, next); got != nil {
		t.Errorf("failing lane after a success = account %d, want nil", got.AccountID)
	}
	got := claimInLane(t, s, "p", sealpost.HealthyOutbox, next)
	if batchAccount(got) != failing.ID {
		t.Fatalf("healthy lane after a success = account %d, want %d", batchAccount(got), failing.ID)
	}
	wantEventNames(t, got, []string{"f2"}, "healthy lane after a success")
}

// testOutboxBackoffPerAccount checks that the backoff is kept per account
// endpoint in the store, where every node sees it: one account's failures
// defer none of the others, and no owner can claim a deferred account
// early.
func testOutboxBackoffPerAccount(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	const accounts = 5
	var ids []int64
	for i := range accounts {
		a := createSubscriber(t, s, fmt.Sprintf("user%d", i))
		ids = append(ids, a.ID)
		storeEvents(t, s, a.ID, newEvent(a.ID, sealpost.EventProcessed, fmt.Sprintf("a%d", i)))
	}
	now := time.Now()
	// Every account fails once; account i backs off i+1 minutes.
	for range accounts {
		b := claimInLane(t, s, "node-a", sealpost.HealthyOutbox, now)
		if b == nil {
			t.Fatal("claim = nil, want a batch")
		}
		i := slices.Index(ids, b.AccountID)
		if err := s.RetryEventBatch(ctx, b, now.Add(time.Duration(i+1)*time.Minute)); err != nil {
			t.Fatalf("RetryEventBatch: %v", err)
		}
	}
	if b := claimInLane(t, s, "node-b", sealpost.AnyOutbox, now); b != nil {
		t.Errorf("claim while every account backs off = account %d, want nil", b.AccountID)
	}
	// Another node sees each account come due at its own time.
	for i, id := range ids {
		at := now.Add(time.Duration(i+1) * time.Minute)
		got := claimInLane(t, s, "node-b", sealpost.FailingOutbox, at)
		if batchAccount(got) != id {
			t.Fatalf("failing lane at +%v = account %d, want %d", at.Sub(now), batchAccount(got), id)
		}
		if more := claimInLane(t, s, "node-b", sealpost.FailingOutbox, at); more != nil {
			t.Errorf("second claim at +%v = account %d, want nil (not due yet)", at.Sub(now), more.AccountID)
		}
		if err := s.AckEventBatch(ctx, got); err != nil {
			t.Fatalf("AckEventBatch: %v", err)
		}
	}
}

// testOutboxNewURLEndsBackoff checks that changing the webhook URL makes a
// backing-off account due at once: a new URL is a new endpoint. It stays in
// the failing lane until a post to it works; other changes keep the wait.
func testOutboxNewURLEndsBackoff(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createSubscriber(t, s, "alice")
	storeEvents(t, s, a.ID, newEvent(a.ID, sealpost.EventProcessed, "e1"))
	now := time.Now()
	b := claimInLane(t, s, "p", sealpost.AnyOutbox, now)
	if b == nil {
		t.Fatal("claim = nil")
	}
	if err := s.RetryEventBatch(ctx, b, now.Add(time.Hour)); err != nil {
		t.Fatalf("RetryEventBatch: %v", err)
	}
	patch := func(p sealpost.EventWebhookPatch) {
		t.Helper()
		if _, err := s.UpdateEventWebhookSettings(ctx, a.ID, p); err != nil {
			t.Fatalf("UpdateEventWebhookSettings: %v", err)
		}
	}
	url := "https://fixed.example/hook"
	patch(sealpost.EventWebhookPatch{Bools: map[string]bool{"delivered": true}})
	if got := claimInLane(t, s, "p", sealpost.AnyOutbox, now); got != nil {
		t.Errorf("claim after a patch without a URL = account %d, want nil (still backing off)", got.AccountID)
	}
	patch(sealpost.EventWebhookPatch{URL: &url})
	if got := claimInLane(t, s, "p", sealpost.HealthyOutbox, now); got != nil {
		t.Errorf("healthy lane after a new URL = account %d, want nil (failing until a post works)", got.AccountID)
	}
	got := claimInLane(t, s, "p", sealpost.FailingOutbox, now)
	if batchAccount(got) != a.ID {
		t.Fatalf("failing lane after a new URL = account %d, want %d due at once", batchAccount(got), a.ID)
	}
	if err := s.RetryEventBatch(ctx, got, now.Add(time.Hour)); err != nil {
		t.Fatalf("RetryEventBatch: %v", err)
	}
	// The same URL again is no new endpoint.
	patch(sealpost.EventWebhookPatch{URL: &url})
	if got := claimInLane(t, s, "p", sealpost.AnyOutbox, now); got != nil {
		t.Errorf("claim after patching the same URL = account %d, want nil (still backing off)", got.AccountID)
	}
}

// testOutboxRoundRobin checks that claims go round the accounts with events
// waiting: an account with a backlog, served, goes behind the others even
// though its next events are older than theirs, so that it cannot keep the
// posters to itself while they wait.
func testOutboxRoundRobin(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	busy := createSubscriber(t, s, "busy")
	quiet1 := createSubscriber(t, s, "quiet1")
	quiet2 := createSubscriber(t, s, "quiet2")
	storeEvents(t, s, busy.ID,
		newEvent(busy.ID, sealpost.EventProcessed, "b1"),
		newEvent(busy.ID, sealpost.EventProcessed, "b2"),
		newEvent(busy.ID, sealpost.EventProcessed, "b3"))
	storeEvents(t, s, quiet1.ID, newEvent(quiet1.ID, sealpost.EventProcessed, "q1"))
	storeEvents(t, s, quiet2.ID, newEvent(quiet2.ID, sealpost.EventProcessed, "r1"))
	now := time.Now()
	var got []string
	for i := range 5 {
		b := claimBatch(t, s, "p", now.Add(time.Duration(i)*time.Millisecond), time.Minute, 1)
		if b == nil {
			t.Fatalf("claim %d = nil, want a batch (got %q so far)", i, got)
		}
		got = append(got, eventNames(t, b)...)
		if err := s.AckEventBatch(ctx, b); err != nil {
			t.Fatalf("AckEventBatch: %v", err)
		}
	}
	if want := []string{"b1", "q1", "r1", "b2", "b3"}; !slices.Equal(got, want) {
		t.Errorf("claims served %q, want %q (each account once a round)", got, want)
	}
}

// testOutboxEventArgs stores events the way the mail send and delivery do,
// each about a message, and checks that they are posted with the
// categories and custom args of their message and its send, which the
// store keeps once, even after every delivery of the send is done and its
// body's data forgotten.
func testOutboxEventArgs(t *testing.T, s sealpost.Store) {
	a := createSubscriber(t, s, "alice")
	at := baseTime()
	shared := &sealpost.MessageBody{Data: []byte("Subject: s\r\n\r\nbody\r\n"),
		Categories: []string{"c1", "c2"}, CustomArgs: map[string]string{"order": "request", "campaign": "<spring> & \u2028", "event": "forged"}}
	m1 := newMessage(a.ID, "xid", at, "a@x.test", "b@y.test")
	m2 := newMessage(a.ID, "xid", at, "c@x.test")
	m1.Body, m2.Body = shared, shared
	m1.Categories, m1.CustomArgs = nil, map[string]string{"order": "own", "n": "1"}
	m2.Categories, m2.CustomArgs = nil, nil
	var events []sealpost.Event
	var want []string
	record := func(kind sealpost.EventKind, m *sealpost.Message, rcpt sealpost.Recipient) sealpost.Event {
		t.Helper()
		e, err := sealpost.NewEvent(kind, m, rcpt, at, sealpost.EventDetails{Response: "250 OK"})
		if err != nil {
			t.Fatal(err)
		}
		posted, err := e.Posted()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(posted), `"c1","c2"`) {
			t.Fatalf("%s event posts %s, without its categories", kind, posted)
		}
		want = append(want, string(posted))
		return e
	}
	for _, m := range []*sealpost.Message{m1, m2} {
		for _, r := range m.Recipients {
			events = append(events, record(sealpost.EventProcessed, m, r))
		}
	}
	// An event about no message is posted as it is.
	plain := newEvent(a.ID, sealpost.EventDropped, "plain")
	events = append(events, plain)
	want = append(want, string(plain.Payload))
	enqueue(t, s, []*sealpost.Message{m1, m2}, events...)

	// Every delivery done: the body's data is forgotten, the events
	// recorded with the messages' claimed copies still wait.
	for _, d := range claim(t, s, "w", at.Add(time.Second), time.Minute, 10) {
		c := sealpost.DeliveryCompletion{DeliveryID: d.ID}
		for _, r := range d.Message.Recipients {
			c.Recipients = append(c.Recipients, sealpost.RecipientUpdate{RecipientID: r.ID, State: sealpost.StateDelivered})
			c.Events = append(c.Events, record(sealpost.EventDelivered, d.Message, r))
		}
		complete(t, s, "w", c)
	}
	if ds := claim(t, s, "w", at.Add(time.Hour), time.Minute, 10); len(ds) != 0 {
		t.Fatalf("claimed %d deliveries after all were done", len(ds))
	}
	var got []string
	for b := claimBatch(t, s, "p", time.Now(), time.Minute, 3); b != nil; b = claimBatch(t, s, "p", time.Now(), time.Minute, 3) {
		for _, e := range b.Events {
			got = append(got, string(e.Payload))
		}
		if err := s.AckEventBatch(t.Context(), b); err != nil {
			t.Fatalf("AckEventBatch: %v", err)
		}
	}
	// The processed events first, in order; the delivered ones in the
	// order their deliveries were completed.
	if len(got) != len(want) || !slices.Equal(got[:4], want[:4]) {
		t.Fatalf("posted\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	slices.Sort(got[4:])
	slices.Sort(want[4:])
	if !slices.Equal(got, want) {
		t.Errorf("posted\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// An event about a message that is not being stored, nor was, is
	// refused with everything else.
	orphan, err := sealpost.NewEvent(sealpost.EventProcessed, newMessage(a.ID, "orphan", at, "o@x.test"), sealpost.Recipient{Email: "o@x.test"}, at, sealpost.EventDetails{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.EnqueueMessages(t.Context(), []*sealpost.Message{newMessage(a.ID, "refused", at, "r@x.test")}, []sealpost.Event{orphan})
	wantCode(t, err, sealpost.EINVALID, "EnqueueMessages with an event about a message not stored")
	if got := recipientStates(t, s, a.ID, "refused"); len(got) != 0 {
		t.Errorf("RecipientStates after a refused enqueue = %+v, want none", got)
	}
}
