package storetest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// The queue and outbox contract the tests below hold every store to, where
// the interface comments leave room:
//
//   - EnqueueMessages is all or nothing. A message of a missing account is
//     ENOTFOUND. Each message gets one delivery per distinct recipient
//     domain, due at msg.CreatedAt with no attempts; recipients are stored
//     queued whatever State they carry, and their IDs increase in the order
//     given, which is the order RecipientStates and a claimed delivery's
//     Message.Recipients list them in.
//   - A claimed delivery carries the whole message (Body and Layout, which
//     render to the bytes enqueued, From, SMTPID,
//     XMessageID, Categories, CustomArgs, AccountID, CreatedAt; the Body's
//     Categories and CustomArgs) but only its
//     own still-queued recipients; its CreatedAt is the message's.
//     ClaimDeliveries orders by due time, then by delivery ID; limit <= 0
//     claims nothing. A lease is live while now < LeaseUntil.
//   - CompleteDelivery checks only the lease owner, not the clock: an owner
//     whose lease ran out may still complete while nobody else claimed the
//     delivery. A done or unknown delivery is ECONFLICT. It counts the
//     attempt, stores the events after any stored before, and either makes
//     the delivery due at NextAttemptAt (some recipient still queued) or
//     marks it done for good.
//   - Event payloads come back byte for byte (they are posted and signed as
//     stored). ClaimEventBatch picks, among due accounts, the one whose
//     oldest waiting event is oldest. AckEventBatch deletes exactly the
//     batch's events (newer ones stay), resets Attempts and FailingSince,
//     and makes the account due at once. RetryEventBatch sets FailingSince
//     to the store's clock at the first failure of a run and keeps it
//     through later ones. Ack and Retry check only the lease owner.
//   - Messages sharing one *MessageBody in a call share one stored body,
//     whose ID EnqueueMessages sets; a message without a body is stored
//     whole, and one whose layout needs a body it lacks is EINVALID.
//   - Deleting an account deletes its messages, deliveries, recipients,
//     events, outbox state and webhook settings.

// baseTime is where the queue tests' explicit clocks start. Whole seconds,
// so that a store keeping microseconds holds it exactly.
func baseTime() time.Time { return time.Now().UTC().Truncate(time.Second) }

// newMessage builds a message of accountID, created at at, to the given
// addresses in order.
func newMessage(accountID int64, xMessageID string, at time.Time, emails ...string) *sealpost.Message {
	m := &sealpost.Message{
		AccountID:  accountID,
		XMessageID: xMessageID,
		SMTPID:     "<" + xMessageID + "@sealpost.test>",
		From:       "sender@example.com",
		// A NUL and a byte that is not UTF-8: a body is bytes, not text.
		// The request's categories and custom args go with the body; the
		// message's own custom arg "order" wins over the request's.
		Body: &sealpost.MessageBody{Data: []byte("Subject: " + xMessageID + "\r\n\r\nbody\x00\xff\r\n"),
			Categories: []string{"request"}, CustomArgs: map[string]string{"campaign": "ñ " + xMessageID, "order": "request"}},
		Categories: []string{"cat facts", "ünïcode"},
		CustomArgs: map[string]string{"order": xMessageID, "quote": `"x"`},
		CreatedAt:  at,
	}
	for i, e := range emails {
		m.Recipients = append(m.Recipients, sealpost.Recipient{
			Email:       e,
			Domain:      strings.ToLower(e[strings.LastIndexByte(e, '@')+1:]),
			SGMessageID: fmt.Sprintf("%s.filter%04d", xMessageID, i),
			State:       sealpost.StateQueued,
		})
	}
	return m
}

// newEvent builds an event whose payload names it, so that order and
// identity can be checked on the way out.
func newEvent(accountID int64, kind sealpost.EventKind, name string) sealpost.Event {
	payload, _ := json.Marshal(map[string]any{"event": string(kind), "name": name, "sg_event_id": "id-" + name})
	return sealpost.Event{AccountID: accountID, Kind: kind, SGEventID: "id-" + name, Payload: payload}
}

func enqueue(t *testing.T, s sealpost.Store, msgs []*sealpost.Message, events ...sealpost.Event) {
	t.Helper()
	if err := s.EnqueueMessages(t.Context(), msgs, events); err != nil {
		t.Fatalf("EnqueueMessages: %v", err)
	}
}

func claim(t *testing.T, s sealpost.Store, owner string, now time.Time, lease time.Duration, limit int) []*sealpost.Delivery {
	t.Helper()
	ds, err := s.ClaimDeliveries(t.Context(), owner, now, lease, limit)
	if err != nil {
		t.Fatalf("ClaimDeliveries(%s, %v): %v", owner, now, err)
	}
	return ds
}

func complete(t *testing.T, s sealpost.Store, owner string, c sealpost.DeliveryCompletion) {
	t.Helper()
	if err := s.CompleteDelivery(t.Context(), owner, c); err != nil {
		t.Fatalf("CompleteDelivery(%s, %d): %v", owner, c.DeliveryID, err)
	}
}

func recipientStates(t *testing.T, s sealpost.Store, accountID int64, xMessageID string) []sealpost.Recipient {
	t.Helper()
	got, err := s.RecipientStates(t.Context(), accountID, xMessageID)
	if err != nil {
		t.Fatalf("RecipientStates(%d, %s): %v", accountID, xMessageID, err)
	}
	return got
}

func deliveryIDs(ds []*sealpost.Delivery) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func recipientEmails(rs []sealpost.Recipient) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Email
	}
	return out
}

// wantRecipients compares everything a store keeps of recipients.
func wantRecipients(t *testing.T, got, want []sealpost.Recipient, what string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d recipients %q, want %d %q", what, len(got), recipientEmails(got), len(want), recipientEmails(want))
		return
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%s: recipient %d = %+v, want %+v", what, i, got[i], want[i])
		}
	}
}

// wantMessage compares a claimed delivery's message with the enqueued one,
// apart from Recipients.
func wantMessage(t *testing.T, got, want *sealpost.Message, what string) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: Message is nil", what)
		return
	}
	if got.ID != want.ID || got.AccountID != want.AccountID || got.XMessageID != want.XMessageID ||
		got.SMTPID != want.SMTPID || got.From != want.From || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("%s: Message = {ID %d, AccountID %d, XMessageID %q, SMTPID %q, From %q, CreatedAt %v}, want {%d, %d, %q, %q, %q, %v}",
			what, got.ID, got.AccountID, got.XMessageID, got.SMTPID, got.From, got.CreatedAt,
			want.ID, want.AccountID, want.XMessageID, want.SMTPID, want.From, want.CreatedAt)
	}
	gotData, err := got.Render()
	if err != nil {
		t.Errorf("%s: Render: %v", what, err)
	}
	if wantData, _ := want.Render(); string(gotData) != string(wantData) {
		t.Errorf("%s: renders %q, want %q", what, gotData, wantData)
	}
	if !slices.Equal(got.Categories, want.Categories) {
		t.Errorf("%s: Categories = %q, want %q", what, got.Categories, want.Categories)
	}
	if !maps.Equal(got.CustomArgs, want.CustomArgs) {
		t.Errorf("%s: CustomArgs = %v, want %v", what, got.CustomArgs, want.CustomArgs)
	}
	if !slices.Equal(got.EventCategories(), want.EventCategories()) {
		t.Errorf("%s: EventCategories = %q, want %q", what, got.EventCategories(), want.EventCategories())
	}
	if !maps.Equal(got.EventCustomArgs(), want.EventCustomArgs()) {
		t.Errorf("%s: EventCustomArgs = %v, want %v", what, got.EventCustomArgs(), want.EventCustomArgs())
	}
}

func testEnqueueRecipientStates(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	b := createUser(t, s, "bob")
	at := baseTime()
	// Two personalizations of one send share an X-Message-Id.
	m1 := newMessage(a.ID, "xid1", at, "a@x.test", "B@Y.test", "c@x.test")
	m2 := newMessage(a.ID, "xid1", at, "d@z.test")
	m3 := newMessage(a.ID, "xid2", at, "e@x.test")
	other := newMessage(b.ID, "xid1", at, "f@x.test")
	enqueue(t, s, []*sealpost.Message{m1, m2, m3})
	enqueue(t, s, []*sealpost.Message{other})

	seen := map[int64]bool{}
	for _, m := range []*sealpost.Message{m1, m2, m3, other} {
		if m.ID == 0 || seen[m.ID] {
			t.Errorf("message %s: ID %d is zero or repeated", m.XMessageID, m.ID)
		}
		seen[m.ID] = true
	}
	seen = map[int64]bool{}
	for _, m := range []*sealpost.Message{m1, m2, m3, other} {
		for _, r := range m.Recipients {
			if r.ID == 0 || seen[r.ID] {
				t.Errorf("recipient %s: ID %d is zero or repeated", r.Email, r.ID)
			}
			seen[r.ID] = true
		}
	}

	want := slices.Concat(m1.Recipients, m2.Recipients)
	wantRecipients(t, recipientStates(t, s, a.ID, "xid1"), want, "RecipientStates(alice, xid1)")
	wantRecipients(t, recipientStates(t, s, a.ID, "xid2"), m3.Recipients, "RecipientStates(alice, xid2)")
	wantRecipients(t, recipientStates(t, s, b.ID, "xid1"), other.Recipients, "RecipientStates(bob, xid1)")
	for _, st := range []struct {
		account int64
		xid     string
	}{{a.ID, "nope"}, {b.ID, "xid2"}, {a.ID + 1000, "xid1"}, {a.ID, ""}} {
		got, err := s.RecipientStates(ctx, st.account, st.xid)
		if err != nil || len(got) != 0 {
			t.Errorf("RecipientStates(%d, %q) = %v, %v; want none, no error", st.account, st.xid, got, err)
		}
	}
	// Empty input is no work and no error.
	if err := s.EnqueueMessages(ctx, nil, nil); err != nil {
		t.Errorf("EnqueueMessages(nil, nil): %v", err)
	}
}

func testEnqueueUnknownAccount(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "alice")
	at := baseTime()
	good := newMessage(a.ID, "good", at, "a@x.test")
	bad := newMessage(a.ID+1000, "bad", at, "b@x.test")
	err := s.EnqueueMessages(t.Context(), []*sealpost.Message{good, bad}, []sealpost.Event{newEvent(a.ID, sealpost.EventProcessed, "p")})
	wantCode(t, err, sealpost.ENOTFOUND, "EnqueueMessages with a message of a missing account")
	// All or nothing: the good message is not there either.
	if got := recipientStates(t, s, a.ID, "good"); len(got) != 0 {
		t.Errorf("RecipientStates after a failed enqueue = %+v, want none", got)
	}
	if ds := claim(t, s, "w", at.Add(time.Hour), time.Minute, 10); len(ds) != 0 {
		t.Errorf("ClaimDeliveries after a failed enqueue = %v, want none", deliveryIDs(ds))
	}
	if b := claimBatch(t, s, "p", time.Now(), time.Minute, 10); b != nil {
		t.Errorf("ClaimEventBatch after a failed enqueue = %+v, want nil", b)
	}
}

func testClaimGroupsByDomain(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "alice")
	at := baseTime()
	m := newMessage(a.ID, "xid", at, "a@x.test", "c@y.test", "b@x.test")
	enqueue(t, s, []*sealpost.Message{m})
	now := at.Add(time.Second)
	ds := claim(t, s, "w1", now, time.Minute, 10)
	if len(ds) != 2 {
		t.Fatalf("ClaimDeliveries = %d deliveries, want 2 (one per domain)", len(ds))
	}
	byDomain := map[string]*sealpost.Delivery{}
	for _, d := range ds {
		byDomain[d.Domain] = d
	}
	x, y := byDomain["x.test"], byDomain["y.test"]
	if x == nil || y == nil {
		t.Fatalf("ClaimDeliveries domains = %q, %q; want x.test and y.test", ds[0].Domain, ds[1].Domain)
	}
	if x.ID == y.ID || x.ID == 0 || y.ID == 0 {
		t.Errorf("delivery IDs %d and %d: want distinct, non-zero", x.ID, y.ID)
	}
	for _, c := range []struct {
		d     *sealpost.Delivery
		rcpts []sealpost.Recipient
	}{
		{x, []sealpost.Recipient{m.Recipients[0], m.Recipients[2]}},
		{y, []sealpost.Recipient{m.Recipients[1]}},
	} {
		what := "delivery to " + c.d.Domain
		wantMessage(t, c.d.Message, m, what)
		if c.d.Message != nil {
			wantRecipients(t, c.d.Message.Recipients, c.rcpts, what)
		}
		if c.d.Attempts != 0 {
			t.Errorf("%s: Attempts = %d, want 0", what, c.d.Attempts)
		}
		if !c.d.CreatedAt.Equal(at) {
			t.Errorf("%s: CreatedAt = %v, want the message's %v", what, c.d.CreatedAt, at)
		}
		if c.d.LeaseOwner != "w1" || !c.d.LeaseUntil.Equal(now.Add(time.Minute)) {
			t.Errorf("%s: lease %q until %v, want w1 until %v", what, c.d.LeaseOwner, c.d.LeaseUntil, now.Add(time.Minute))
		}
	}
}

func testClaimDueOldestFirst(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "alice")
	t0 := baseTime()
	// Enqueued out of order: due order is by the time a delivery is due,
	// not by insertion.
	m2 := newMessage(a.ID, "m2", t0.Add(2*time.Second), "a@x.test")
	m0 := newMessage(a.ID, "m0", t0, "a@x.test")
	m3 := newMessage(a.ID, "m3", t0.Add(3*time.Second), "a@x.test")
	m1 := newMessage(a.ID, "m1", t0.Add(time.Second), "a@x.test")
	enqueue(t, s, []*sealpost.Message{m2, m0})
	enqueue(t, s, []*sealpost.Message{m3, m1})
	const lease = 1000 * time.Hour // outlives every claim below

	if ds := claim(t, s, "w", t0.Add(-time.Nanosecond), lease, 10); len(ds) != 0 {
		t.Errorf("ClaimDeliveries before anything is due = %d deliveries, want 0", len(ds))
	}
	if ds := claim(t, s, "w", t0, lease, 10); len(ds) != 1 || ds[0].Message.ID != m0.ID {
		t.Errorf("ClaimDeliveries at the first due time: want exactly m0, got %d deliveries", len(ds))
	}
	ds := claim(t, s, "w", t0.Add(time.Hour), lease, 2)
	if len(ds) != 2 {
		t.Fatalf("ClaimDeliveries(limit 2) = %d deliveries, want 2", len(ds))
	}
	if ds[0].Message.ID != m1.ID || ds[1].Message.ID != m2.ID {
		t.Errorf("ClaimDeliveries(limit 2) = messages %s, %s; want m1, m2 (oldest due first)", ds[0].Message.XMessageID, ds[1].Message.XMessageID)
	}
	ds = claim(t, s, "w", t0.Add(time.Hour), lease, 10)
	if len(ds) != 1 || ds[0].Message.ID != m3.ID {
		t.Errorf("ClaimDeliveries after that = %d deliveries, want m3 only", len(ds))
	}
	if ds := claim(t, s, "w", t0.Add(time.Hour), lease, 0); len(ds) != 0 {
		t.Errorf("ClaimDeliveries(limit 0) = %d deliveries, want 0", len(ds))
	}
}

func testClaimLease(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "alice")
	t0 := baseTime()
	m := newMessage(a.ID, "xid", t0, "a@x.test")
	enqueue(t, s, []*sealpost.Message{m})
	lease := time.Minute
	ds := claim(t, s, "w1", t0, lease, 10)
	if len(ds) != 1 {
		t.Fatalf("first claim: %d deliveries, want 1", len(ds))
	}
	id := ds[0].ID
	for _, at := range []time.Time{t0, t0.Add(30 * time.Second), t0.Add(lease - time.Nanosecond)} {
		if ds := claim(t, s, "w2", at, lease, 10); len(ds) != 0 {
			t.Errorf("claim by another owner at +%v, while leased: got %v, want none", at.Sub(t0), deliveryIDs(ds))
		}
		if ds := claim(t, s, "w1", at, lease, 10); len(ds) != 0 {
			t.Errorf("claim by the same owner at +%v, while leased: got %v, want none", at.Sub(t0), deliveryIDs(ds))
		}
	}
	// The lease ran out: w1 is presumed dead and w2 takes over.
	t1 := t0.Add(lease)
	ds = claim(t, s, "w2", t1, lease, 10)
	if len(ds) != 1 || ds[0].ID != id {
		t.Fatalf("claim after the lease ran out: %v, want [%d]", deliveryIDs(ds), id)
	}
	if ds[0].LeaseOwner != "w2" || !ds[0].LeaseUntil.Equal(t1.Add(lease)) {
		t.Errorf("new lease %q until %v, want w2 until %v", ds[0].LeaseOwner, ds[0].LeaseUntil, t1.Add(lease))
	}
	if ds[0].Attempts != 0 {
		t.Errorf("Attempts after a lost lease = %d, want 0 (no attempt was recorded)", ds[0].Attempts)
	}
	wantMessage(t, ds[0].Message, m, "re-claimed delivery")
	if ds[0].Message != nil {
		wantRecipients(t, ds[0].Message.Recipients, m.Recipients, "re-claimed delivery")
	}

	// The old owner's completion is refused and changes nothing.
	stale := sealpost.DeliveryCompletion{
		DeliveryID: id,
		Recipients: []sealpost.RecipientUpdate{{RecipientID: m.Recipients[0].ID, State: sealpost.StateDelivered}},
		Events:     []sealpost.Event{newEvent(a.ID, sealpost.EventDelivered, "stale")},
	}
	err := s.CompleteDelivery(t.Context(), "w1", stale)
	wantCode(t, err, sealpost.ECONFLICT, "CompleteDelivery by the owner of a lost lease")
	wantRecipients(t, recipientStates(t, s, a.ID, "xid"), m.Recipients, "RecipientStates after a refused completion")
	if b := claimBatch(t, s, "p", time.Now(), time.Minute, 10); b != nil {
		t.Errorf("ClaimEventBatch after a refused completion = %d events, want none", len(b.Events))
	}
	// The new owner's lease is intact.
	if ds := claim(t, s, "w3", t1.Add(lease/2), lease, 10); len(ds) != 0 {
		t.Errorf("claim during w2's lease after the refused completion: %v, want none", deliveryIDs(ds))
	}
	complete(t, s, "w2", sealpost.DeliveryCompletion{
		DeliveryID: id,
		Recipients: []sealpost.RecipientUpdate{{RecipientID: m.Recipients[0].ID, State: sealpost.StateDelivered}},
	})
	want := slices.Clone(m.Recipients)
	want[0].State = sealpost.StateDelivered
	wantRecipients(t, recipientStates(t, s, a.ID, "xid"), want, "RecipientStates after w2's completion")
}

// testCompleteAfterLeaseExpired checks that a lease that ran out but that
// nobody took over still lets its owner record the attempt it made.
func testCompleteAfterLeaseExpired(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "alice")
	t0 := baseTime()
	m := newMessage(a.ID, "xid", t0, "a@x.test")
	enqueue(t, s, []*sealpost.Message{m})
	ds := claim(t, s, "w1", t0, time.Minute, 10)
	if len(ds) != 1 {
		t.Fatalf("claim: %d deliveries, want 1", len(ds))
	}
	complete(t, s, "w1", sealpost.DeliveryCompletion{
		DeliveryID: ds[0].ID,
		Recipients: []sealpost.RecipientUpdate{{RecipientID: m.Recipients[0].ID, State: sealpost.StateBounced}},
	})
	if ds := claim(t, s, "w2", t0.Add(24*time.Hour), time.Minute, 10); len(ds) != 0 {
		t.Errorf("claim after completion: %v, want none", deliveryIDs(ds))
	}
	if got := recipientStates(t, s, a.ID, "xid"); len(got) != 1 || got[0].State != sealpost.StateBounced {
		t.Errorf("RecipientStates = %+v, want one bounced", got)
	}
}

func testCompletePartial(t *testing.T, s sealpost.Store) {
	a := createSubscriber(t, s, "alice")
	t0 := baseTime()
	m := newMessage(a.ID, "xid", t0, "a@x.test", "b@x.test", "c@x.test")
	enqueue(t, s, []*sealpost.Message{m}, newEvent(a.ID, sealpost.EventProcessed, "processed"))
	ds := claim(t, s, "w1", t0, time.Minute, 10)
	if len(ds) != 1 {
		t.Fatalf("claim: %d deliveries, want 1", len(ds))
	}
	id := ds[0].ID
	next := t0.Add(5 * time.Minute)
	complete(t, s, "w1", sealpost.DeliveryCompletion{
		DeliveryID: id,
		Recipients: []sealpost.RecipientUpdate{
			{RecipientID: m.Recipients[0].ID, State: sealpost.StateDelivered},
			{RecipientID: m.Recipients[1].ID, State: sealpost.StateQueued},
		},
		Events:        []sealpost.Event{newEvent(a.ID, sealpost.EventDelivered, "delivered-a"), newEvent(a.ID, sealpost.EventDeferred, "deferred-b")},
		NextAttemptAt: next,
	})
	want := slices.Clone(m.Recipients)
	want[0].State = sealpost.StateDelivered
	wantRecipients(t, recipientStates(t, s, a.ID, "xid"), want, "RecipientStates after the first attempt")

	// The lease is released, but the delivery waits for NextAttemptAt.
	if ds := claim(t, s, "w2", next.Add(-time.Nanosecond), time.Minute, 10); len(ds) != 0 {
		t.Errorf("claim before NextAttemptAt: %v, want none", deliveryIDs(ds))
	}
	ds = claim(t, s, "w2", next, time.Minute, 10)
	if len(ds) != 1 || ds[0].ID != id {
		t.Fatalf("claim at NextAttemptAt: %v, want [%d]", deliveryIDs(ds), id)
	}
	if ds[0].Attempts != 1 {
		t.Errorf("Attempts = %d, want 1", ds[0].Attempts)
	}
	if !ds[0].CreatedAt.Equal(t0) {
		t.Errorf("CreatedAt = %v, want %v (unchanged by attempts)", ds[0].CreatedAt, t0)
	}
	wantMessage(t, ds[0].Message, m, "second attempt")
	if ds[0].Message != nil {
		wantRecipients(t, ds[0].Message.Recipients, want[1:], "second attempt (queued recipients only)")
	}

	complete(t, s, "w2", sealpost.DeliveryCompletion{
		DeliveryID: id,
		Recipients: []sealpost.RecipientUpdate{
			{RecipientID: m.Recipients[1].ID, State: sealpost.StateBlocked},
			{RecipientID: m.Recipients[2].ID, State: sealpost.StateBounced},
		},
		Events:        []sealpost.Event{newEvent(a.ID, sealpost.EventBounce, "blocked-b"), newEvent(a.ID, sealpost.EventBounce, "bounce-c")},
		NextAttemptAt: next.Add(time.Hour), // ignored: nothing is queued
	})
	want[1].State, want[2].State = sealpost.StateBlocked, sealpost.StateBounced
	wantRecipients(t, recipientStates(t, s, a.ID, "xid"), want, "RecipientStates after the last attempt")
	for _, at := range []time.Time{next.Add(time.Hour), next.Add(1000 * time.Hour)} {
		if ds := claim(t, s, "w3", at, time.Minute, 10); len(ds) != 0 {
			t.Errorf("claim of a done delivery at +%v: %v, want none", at.Sub(t0), deliveryIDs(ds))
		}
	}
	// Completing a done delivery again is refused.
	err := s.CompleteDelivery(t.Context(), "w2", sealpost.DeliveryCompletion{DeliveryID: id})
	wantCode(t, err, sealpost.ECONFLICT, "CompleteDelivery of a done delivery")
	err = s.CompleteDelivery(t.Context(), "w2", sealpost.DeliveryCompletion{DeliveryID: id + 1000})
	wantCode(t, err, sealpost.ECONFLICT, "CompleteDelivery of a delivery that does not exist")

	// Every event is in the outbox, in the order it was recorded.
	b := claimBatch(t, s, "p", time.Now(), time.Minute, 100)
	wantEventNames(t, b, []string{"processed", "delivered-a", "deferred-b", "blocked-b", "bounce-c"}, "outbox")
}

// testCompleteKeepsOtherDeliveries checks that one domain's completion
// leaves the message's other deliveries, and their data, alone.
func testCompleteKeepsOtherDeliveries(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "alice")
	t0 := baseTime()
	m := newMessage(a.ID, "xid", t0, "a@x.test", "b@y.test")
	enqueue(t, s, []*sealpost.Message{m})
	ds := claim(t, s, "w1", t0, time.Minute, 1)
	if len(ds) != 1 {
		t.Fatalf("claim: %d deliveries, want 1", len(ds))
	}
	first := ds[0]
	var rcpt int64
	for _, r := range m.Recipients {
		if r.Domain == first.Domain {
			rcpt = r.ID
		}
	}
	complete(t, s, "w1", sealpost.DeliveryCompletion{
		DeliveryID: first.ID,
		Recipients: []sealpost.RecipientUpdate{{RecipientID: rcpt, State: sealpost.StateDelivered}},
	})
	ds = claim(t, s, "w1", t0, time.Minute, 10)
	if len(ds) != 1 || ds[0].ID == first.ID {
		t.Fatalf("claim after completing %s: %v, want the other domain's delivery", first.Domain, deliveryIDs(ds))
	}
	wantMessage(t, ds[0].Message, m, "the other delivery")
	complete(t, s, "w1", sealpost.DeliveryCompletion{
		DeliveryID: ds[0].ID,
		Recipients: []sealpost.RecipientUpdate{{RecipientID: ds[0].Message.Recipients[0].ID, State: sealpost.StateDelivered}},
	})
	got := recipientStates(t, s, a.ID, "xid")
	if len(got) != 2 || got[0].State != sealpost.StateDelivered || got[1].State != sealpost.StateDelivered {
		t.Errorf("RecipientStates after both deliveries = %+v, want both delivered", got)
	}
}

// testClaimConcurrent checks that concurrent claimers never share a
// delivery while its lease is live: SKIP LOCKED on PostgreSQL, the single
// writer on SQLite.
func testClaimConcurrent(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "alice")
	t0 := baseTime()
	const messages = 100 // two domains each: 200 deliveries
	var msgs []*sealpost.Message
	for i := range messages {
		msgs = append(msgs, newMessage(a.ID, fmt.Sprintf("m%d", i), t0.Add(time.Duration(i)*time.Millisecond), "a@x.test", "b@y.test"))
	}
	enqueue(t, s, msgs[:messages/2])
	enqueue(t, s, msgs[messages/2:])

	var mu sync.Mutex
	owners := map[int64]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			// Bounded, so that a store handing out deliveries twice fails
			// rather than hangs.
			for i := range 2 * messages {
				owner := fmt.Sprintf("w%d-%d", w, i)
				ds, err := s.ClaimDeliveries(t.Context(), owner, t0.Add(time.Second), time.Hour, 3)
				if err != nil {
					t.Errorf("ClaimDeliveries(%s): %v", owner, err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					if prev, ok := owners[d.ID]; ok {
						t.Errorf("delivery %d claimed by %s and by %s", d.ID, prev, owner)
					}
					owners[d.ID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(owners) != 2*messages {
		t.Errorf("concurrent claimers got %d distinct deliveries, want %d", len(owners), 2*messages)
	}
}

// testCompleteUnattempted checks that a delivery handed back unattempted
// is due again at once with its attempt count unchanged.
func testCompleteUnattempted(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "alice")
	t0 := baseTime()
	m := newMessage(a.ID, "xid", t0, "a@x.test")
	enqueue(t, s, []*sealpost.Message{m})
	ds := claim(t, s, "w1", t0, time.Hour, 10)
	if len(ds) != 1 {
		t.Fatalf("claim: %d deliveries, want 1", len(ds))
	}
	complete(t, s, "w1", sealpost.DeliveryCompletion{DeliveryID: ds[0].ID, NextAttemptAt: t0, Unattempted: true})
	ds = claim(t, s, "w2", t0, time.Hour, 10)
	if len(ds) != 1 {
		t.Fatalf("claim after the hand-back: %d deliveries, want 1 (due at once, lease released)", len(ds))
	}
	if ds[0].Attempts != 0 {
		t.Errorf("Attempts = %d after a hand-back, want 0", ds[0].Attempts)
	}
	complete(t, s, "w2", sealpost.DeliveryCompletion{DeliveryID: ds[0].ID, NextAttemptAt: t0})
	if ds = claim(t, s, "w3", t0, time.Hour, 10); len(ds) != 1 || ds[0].Attempts != 1 {
		t.Errorf("after one real attempt: %v, want one delivery with Attempts 1", ds)
	}
}

// testEnqueueSharedBody: the messages of one send share one stored body,
// each renders to its own bytes, and a message without a body is stored
// whole.
func testEnqueueSharedBody(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "alice")
	at := baseTime()
	body := &sealpost.MessageBody{Data: []byte("Date: x\r\nSubject: shared\r\n\r\nbody\x00\xff\r\n")}
	layout := func(own string) []byte {
		// own bytes, then the whole body: "To: ...\r\n" + body
		return append(append(binary.AppendUvarint(nil, uint64(len(own))<<1), own...),
			binary.AppendUvarint(binary.AppendUvarint(nil, 1), uint64(len(body.Data)))...)
	}
	var sameSend []*sealpost.Message
	for i, rcpt := range []string{"a@x.test", "b@y.test", "c@x.test"} {
		m := newMessage(a.ID, "xid", at, rcpt)
		m.SMTPID = fmt.Sprintf("<xid.%d@sealpost.test>", i)
		m.Body, m.Layout = body, layout("To: <"+rcpt+">\r\n")
		sameSend = append(sameSend, m)
	}
	// The middle one shares the body as it is.
	sameSend[1].Layout = nil
	other := newMessage(a.ID, "other", at, "d@x.test")
	whole := newMessage(a.ID, "whole", at, "e@x.test")
	whole.Body, whole.Layout = nil, append(binary.AppendUvarint(nil, 10<<1), "whole\r\n\r\nx"...)
	enqueue(t, s, append(sameSend, other, whole))
	if body.ID == 0 || other.Body.ID == 0 || body.ID == other.Body.ID {
		t.Errorf("body IDs %d and %d: want both set and distinct", body.ID, other.Body.ID)
	}
	want := map[int64]string{
		sameSend[0].ID: "To: <a@x.test>\r\n" + string(body.Data),
		sameSend[1].ID: string(body.Data),
		sameSend[2].ID: "To: <c@x.test>\r\n" + string(body.Data),
		other.ID:       string(other.Body.Data),
		whole.ID:       "whole\r\n\r\nx",
	}
	ds := claim(t, s, "w", at.Add(time.Second), time.Minute, 10)
	if len(ds) != len(want) {
		t.Fatalf("claimed %d deliveries, want %d", len(ds), len(want))
	}
	for _, d := range ds {
		got, err := d.Message.Render()
		if err != nil || string(got) != want[d.Message.ID] {
			t.Errorf("message %d renders %q, %v; want %q", d.Message.ID, got, err, want[d.Message.ID])
		}
		if d.Message.Body == nil || d.Message.Body.ID != 0 && d.Message.Body.ID != body.ID && d.Message.Body.ID != other.Body.ID {
			t.Errorf("message %d: body %+v, want one of the stored bodies", d.Message.ID, d.Message.Body)
		}
		complete(t, s, "w", sealpost.DeliveryCompletion{DeliveryID: d.ID,
			Recipients: []sealpost.RecipientUpdate{{RecipientID: d.Message.Recipients[0].ID, State: sealpost.StateDelivered}}})
	}
	// A layout referring to a body the message does not have is refused,
	// and stores nothing.
	bad := newMessage(a.ID, "bad", at, "f@x.test")
	bad.Body, bad.Layout = nil, binary.AppendUvarint(binary.AppendUvarint(nil, 1), 1)
	err := s.EnqueueMessages(t.Context(), []*sealpost.Message{newMessage(a.ID, "bad", at, "g@x.test"), bad}, nil)
	wantCode(t, err, sealpost.EINVALID, "EnqueueMessages with a layout and no body")
	if got := recipientStates(t, s, a.ID, "bad"); len(got) != 0 {
		t.Errorf("RecipientStates after a refused enqueue = %+v, want none", got)
	}
}
