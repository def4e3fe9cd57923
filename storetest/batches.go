package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// testScheduledSendAt checks that a message's deliveries fall due at its
// send_at, not at acceptance, and are created then (MaxAge counts from
// there).
func testScheduledSendAt(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "sendat")
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	later := newMessage(a.ID, "later", at, "r@later.test")
	later.SendAt = at.Add(time.Hour)
	past := newMessage(a.ID, "past", at, "r@past.test")
	past.SendAt = at.Add(-time.Hour) // in the past: due at acceptance
	enqueue(t, s, []*sealpost.Message{later, past})

	ds := claim(t, s, "n1", at.Add(59*time.Minute), 3*time.Hour, 10)
	if len(ds) != 1 || ds[0].Message.XMessageID != "past" {
		t.Fatalf("claimed before send_at: %v, want only the past one", deliveryNames(ds))
	}
	if !ds[0].CreatedAt.Equal(at) {
		t.Errorf("past send_at: delivery created %v, want acceptance %v", ds[0].CreatedAt, at)
	}
	ds = claim(t, s, "n1", at.Add(time.Hour), time.Minute, 10)
	if len(ds) != 1 || ds[0].Message.XMessageID != "later" {
		t.Fatalf("claimed at send_at: %v, want the later one", deliveryNames(ds))
	}
	if !ds[0].CreatedAt.Equal(at.Add(time.Hour)) || ds[0].Cancelled {
		t.Errorf("delivery created %v cancelled %v, want %v and not cancelled", ds[0].CreatedAt, ds[0].Cancelled, at.Add(time.Hour))
	}
}

func deliveryNames(ds []*sealpost.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Message.XMessageID)
	}
	return out
}

// testBatches checks batches, their statuses and their isolation.
func testBatches(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "batcher")
	b := createUser(t, s, "other")
	if err := s.CreateBatch(ctx, a.ID, "batch-a"); err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	wantCode(t, s.CreateBatch(ctx, b.ID, "batch-a"), sealpost.ECONFLICT, "CreateBatch with a taken id")
	wantCode(t, s.CreateBatch(ctx, 1<<40, "batch-x"), sealpost.ENOTFOUND, "CreateBatch of a missing account")
	for _, c := range []struct {
		account int64
		id      string
		want    bool
	}{{a.ID, "batch-a", true}, {b.ID, "batch-a", false}, {a.ID, "nope", false}} {
		got, err := s.BatchExists(ctx, c.account, c.id)
		if err != nil || got != c.want {
			t.Errorf("BatchExists(%d, %s) = %v, %v; want %v", c.account, c.id, got, err, c.want)
		}
	}
	wantCode(t, s.SetScheduledSend(ctx, a.ID, "batch-a", sealpost.BatchPause, false), sealpost.ENOTFOUND, "updating a status never set")
	wantCode(t, s.DeleteScheduledSend(ctx, a.ID, "batch-a"), sealpost.ENOTFOUND, "deleting a status never set")
	wantCode(t, s.SetScheduledSend(ctx, b.ID, "batch-a", sealpost.BatchPause, true), sealpost.ENOTFOUND, "another account's batch")
	if err := s.SetScheduledSend(ctx, a.ID, "batch-a", sealpost.BatchPause, true); err != nil {
		t.Fatalf("SetScheduledSend: %v", err)
	}
	wantCode(t, s.SetScheduledSend(ctx, a.ID, "batch-a", sealpost.BatchCancel, true), sealpost.ECONFLICT, "creating over a status")
	if err := s.SetScheduledSend(ctx, a.ID, "batch-a", sealpost.BatchCancel, false); err != nil {
		t.Fatalf("SetScheduledSend update: %v", err)
	}
	list, err := s.ScheduledSends(ctx, a.ID)
	if want := []sealpost.ScheduledSend{{BatchID: "batch-a", Status: sealpost.BatchCancel}}; err != nil || !slices.Equal(list, want) {
		t.Errorf("ScheduledSends = %v, %v; want %v", list, err, want)
	}
	if list, err := s.ScheduledSends(ctx, b.ID); err != nil || len(list) != 0 {
		t.Errorf("another account's ScheduledSends = %v, %v; want none", list, err)
	}
	wantCode(t, s.DeleteScheduledSend(ctx, b.ID, "batch-a"), sealpost.ENOTFOUND, "deleting another account's status")
	if err := s.DeleteScheduledSend(ctx, a.ID, "batch-a"); err != nil {
		t.Fatalf("DeleteScheduledSend: %v", err)
	}
	if list, err := s.ScheduledSends(ctx, a.ID); err != nil || len(list) != 0 {
		t.Errorf("ScheduledSends after delete = %v, %v; want none", list, err)
	}
}

// testClaimHonoursBatchStatus checks that a paused batch's mail is not
// claimed until resumed, that a cancelled batch's is claimed Cancelled,
// and that a retry already under way is not held by a pause.
func testClaimHonoursBatchStatus(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "held")
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, id := range []string{"p", "c"} {
		if err := s.CreateBatch(ctx, a.ID, "batch-"+id); err != nil {
			t.Fatalf("CreateBatch: %v", err)
		}
	}
	paused := newMessage(a.ID, "paused", at, "r@p.test")
	paused.BatchID = "batch-p"
	cancelled := newMessage(a.ID, "cancelled", at, "r@c.test")
	cancelled.BatchID = "batch-c"
	retried := newMessage(a.ID, "retried", at, "r@r.test")
	retried.BatchID = "batch-p"
	enqueue(t, s, []*sealpost.Message{retried})
	// One attempt before the pause: its retry is not held.
	ds := claim(t, s, "n1", at, time.Minute, 10)
	if len(ds) != 1 {
		t.Fatalf("claimed %v, want the retried one", deliveryNames(ds))
	}
	err := s.CompleteDelivery(ctx, "n1", sealpost.DeliveryCompletion{DeliveryID: ds[0].ID, NextAttemptAt: at.Add(time.Second)})
	if err != nil {
		t.Fatalf("CompleteDelivery: %v", err)
	}
	enqueue(t, s, []*sealpost.Message{paused, cancelled})
	for _, st := range []struct {
		id     string
		status sealpost.BatchStatus
	}{{"batch-p", sealpost.BatchPause}, {"batch-c", sealpost.BatchCancel}} {
		if err := s.SetScheduledSend(ctx, a.ID, st.id, st.status, true); err != nil {
			t.Fatalf("SetScheduledSend: %v", err)
		}
	}
	ds = claim(t, s, "n1", at.Add(time.Minute), time.Minute, 10)
	got := map[string]bool{}
	for _, d := range ds {
		got[d.Message.XMessageID] = d.Cancelled
	}
	if want := map[string]bool{"cancelled": true, "retried": false}; len(got) != 2 || !got["cancelled"] || got["retried"] {
		t.Fatalf("claimed while paused %v, want %v", got, want)
	}
	if err := s.DeleteScheduledSend(ctx, a.ID, "batch-p"); err != nil {
		t.Fatalf("DeleteScheduledSend: %v", err)
	}
	ds = claim(t, s, "n2", at.Add(time.Minute), time.Minute, 10)
	if len(ds) != 1 || ds[0].Message.XMessageID != "paused" || ds[0].Cancelled {
		t.Fatalf("claimed after resuming %v, want the paused one, not cancelled", deliveryNames(ds))
	}
}

// testScheduledSendCap: an account's batches with a status are capped at
// SendGrid's 10; changing a status is not a creation, a deleted status
// frees its place, and other accounts are not affected. Creations racing
// past the cap (on PostgreSQL on separate connections, as on separate
// nodes) stop exactly at it.
func testScheduledSendCap(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "capped")
	b := createUser(t, s, "other")
	const batches = sealpost.MaxScheduledSends + 8
	ids := make([]string, batches)
	for i := range ids {
		ids[i] = fmt.Sprintf("batch-%d", i)
		if err := s.CreateBatch(ctx, a.ID, ids[i]); err != nil {
			t.Fatalf("CreateBatch: %v", err)
		}
	}
	if err := s.CreateBatch(ctx, b.ID, "batch-b"); err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	codes := make([]string, batches)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			codes[i] = sealpost.ErrorCode(s.SetScheduledSend(ctx, a.ID, id, sealpost.BatchPause, true))
		})
	}
	wg.Wait()
	var set, free []string
	for i, c := range codes {
		switch c {
		case "":
			set = append(set, ids[i])
		case sealpost.ELIMIT:
			free = append(free, ids[i])
		default:
			t.Errorf("status of %s: %s", ids[i], c)
		}
	}
	list, err := s.ScheduledSends(ctx, a.ID)
	if err != nil || len(set) != sealpost.MaxScheduledSends || len(list) != sealpost.MaxScheduledSends {
		t.Fatalf("%d statuses set, %d listed (%v); want %d", len(set), len(list), err, sealpost.MaxScheduledSends)
	}
	err = s.SetScheduledSend(ctx, a.ID, free[0], sealpost.BatchCancel, true)
	wantCode(t, err, sealpost.ELIMIT, "a status past the cap")
	if f := sealpost.ErrorFields(err); len(f) != 1 || f[0].Field != "" || f[0].Message != sealpost.MsgScheduledSendLimit {
		t.Errorf("cap error fields %+v, want SendGrid's message with no field", f)
	}
	// At the cap, a batch that has a status is still a conflict, and one
	// of another account still unknown.
	wantCode(t, s.SetScheduledSend(ctx, a.ID, set[0], sealpost.BatchCancel, true), sealpost.ECONFLICT, "creating over a status at the cap")
	wantCode(t, s.SetScheduledSend(ctx, a.ID, "batch-b", sealpost.BatchCancel, true), sealpost.ENOTFOUND, "another account's batch at the cap")
	if err := s.SetScheduledSend(ctx, a.ID, set[0], sealpost.BatchCancel, false); err != nil {
		t.Errorf("changing a status at the cap: %v", err)
	}
	if err := s.SetScheduledSend(ctx, b.ID, "batch-b", sealpost.BatchPause, true); err != nil {
		t.Errorf("another account's first status: %v", err)
	}
	if err := s.DeleteScheduledSend(ctx, a.ID, set[1]); err != nil {
		t.Fatalf("DeleteScheduledSend: %v", err)
	}
	if err := s.SetScheduledSend(ctx, a.ID, free[0], sealpost.BatchPause, true); err != nil {
		t.Errorf("a status after one was deleted: %v", err)
	}
}
