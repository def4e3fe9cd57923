package sqlite_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/sqlite"
)

// BenchmarkEnqueue measures the store's share of a mail send's 202: one
// message to one recipient with a 2 KB body and its processed event.
func BenchmarkEnqueue(b *testing.B) {
	ctx := b.Context()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "sealpost.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	a := &sealpost.Account{Kind: sealpost.KindUser, Username: "bench", Email: "bench@example.com"}
	if err := db.CreateAccount(ctx, a); err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), 32)
	payload := []byte(`{"email":"r@example.net","event":"processed","sg_event_id":"abc","sg_message_id":"x.0","smtp-id":"<x@sealpost>","timestamp":1700000000}`)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		xid := fmt.Sprintf("bench%d", i)
		i++
		m := &sealpost.Message{
			AccountID: a.ID, XMessageID: xid, SMTPID: "<" + xid + "@sealpost>", From: "s@example.com",
			Data: data, Categories: []string{"bench"}, CustomArgs: map[string]string{"k": "v"},
			Recipients: []sealpost.Recipient{{Email: "r@example.net", Domain: "example.net", SGMessageID: xid + ".0"}},
			CreatedAt:  time.Now(),
		}
		ev := sealpost.Event{AccountID: a.ID, Kind: sealpost.EventProcessed, SGEventID: xid, Payload: payload}
		if err := db.EnqueueMessages(ctx, []*sealpost.Message{m}, []sealpost.Event{ev}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCompleteDropsDoneData checks that a message's body is dropped once
// every delivery of it is done, and only then: the queue must not keep
// every body it ever sent.
func TestCompleteDropsDoneData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sealpost.db")
	db := openAt(t, path)
	a := &sealpost.Account{Kind: sealpost.KindUser, Username: "alice", Email: "alice@example.com"}
	if err := db.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	m := &sealpost.Message{
		AccountID: a.ID, XMessageID: "xid", SMTPID: "<xid@sealpost>", From: "s@example.com", Data: []byte("body"),
		Recipients: []sealpost.Recipient{
			{Email: "a@x.test", Domain: "x.test", SGMessageID: "xid.0"},
			{Email: "b@y.test", Domain: "y.test", SGMessageID: "xid.1"},
		},
		CreatedAt: t0,
	}
	if err := db.EnqueueMessages(ctx, []*sealpost.Message{m}, nil); err != nil {
		t.Fatal(err)
	}
	raw := inspect(t, path)
	dataLen := func() sql.NullInt64 {
		t.Helper()
		var n sql.NullInt64
		if err := raw.QueryRowContext(ctx, `SELECT length(data) FROM messages WHERE id = ?`, m.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	ds, err := db.ClaimDeliveries(ctx, "w", t0, time.Minute, 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("ClaimDeliveries = %d, %v; want 2 deliveries", len(ds), err)
	}
	for i, d := range ds {
		c := sealpost.DeliveryCompletion{DeliveryID: d.ID, Recipients: []sealpost.RecipientUpdate{{RecipientID: d.Message.Recipients[0].ID, State: sealpost.StateDelivered}}}
		if err := db.CompleteDelivery(ctx, "w", c); err != nil {
			t.Fatal(err)
		}
		n := dataLen()
		if last := i == len(ds)-1; last && n.Valid {
			t.Errorf("after the last delivery: data is %d bytes, want NULL", n.Int64)
		} else if !last && (!n.Valid || n.Int64 != 4) {
			t.Errorf("after delivery %d of %d: data length %v, want 4 (another delivery needs it)", i+1, len(ds), n)
		}
	}
	got, err := db.RecipientStates(ctx, a.ID, "xid")
	if err != nil || len(got) != 2 || got[0].State != sealpost.StateDelivered || got[1].State != sealpost.StateDelivered {
		t.Errorf("RecipientStates after the data was dropped = %+v, %v; want both delivered", got, err)
	}
}

// BenchmarkClaimComplete measures the store's share of one delivery: a
// claim of two (as the runner's workers claim) and, for each delivery, a
// completion with its delivered event, on a queue holding b.N messages.
func BenchmarkClaimComplete(b *testing.B) {
	ctx := b.Context()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "sealpost.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	a := &sealpost.Account{Kind: sealpost.KindUser, Username: "bench", Email: "bench@example.com"}
	if err := db.CreateAccount(ctx, a); err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("the body of the message\r\n"), 40)
	payload := bytes.Repeat([]byte("x"), 500)
	t0 := time.Now()
	var msgs []*sealpost.Message
	for i := range b.N {
		xid := fmt.Sprintf("bench%d", i)
		msgs = append(msgs, &sealpost.Message{
			AccountID: a.ID, XMessageID: xid, SMTPID: "<" + xid + "@sealpost>", From: "s@example.com",
			Data: data, Categories: []string{"bench"}, CustomArgs: map[string]string{"k": "v"},
			Recipients: []sealpost.Recipient{{Email: "r@example.net", Domain: "example.net", SGMessageID: xid + ".0"}},
			CreatedAt:  t0,
		})
		if len(msgs) == 100 || i == b.N-1 {
			if err := db.EnqueueMessages(ctx, msgs, nil); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	b.ResetTimer()
	for done := 0; done < b.N; {
		ds, err := db.ClaimDeliveries(ctx, "w", t0, time.Minute, 2)
		if err != nil || len(ds) == 0 {
			b.Fatalf("ClaimDeliveries = %d, %v after %d of %d", len(ds), err, done, b.N)
		}
		for _, d := range ds {
			c := sealpost.DeliveryCompletion{DeliveryID: d.ID,
				Recipients: []sealpost.RecipientUpdate{{RecipientID: d.Message.Recipients[0].ID, State: sealpost.StateDelivered}},
				Events:     []sealpost.Event{{AccountID: a.ID, Kind: sealpost.EventDelivered, SGEventID: "e", Payload: payload}}}
			if err := db.CompleteDelivery(ctx, "w", c); err != nil {
				b.Fatal(err)
			}
			done++
		}
	}
}
