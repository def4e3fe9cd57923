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
			Body: &sealpost.MessageBody{Data: data}, Categories: []string{"bench"}, CustomArgs: map[string]string{"k": "v"},
			Recipients: []sealpost.Recipient{{Email: "r@example.net", Domain: "example.net", SGMessageID: xid + ".0"}},
			CreatedAt:  time.Now(),
		}
		ev := sealpost.Event{AccountID: a.ID, Kind: sealpost.EventProcessed, SGEventID: xid, Payload: payload}
		if err := db.EnqueueMessages(ctx, []*sealpost.Message{m}, []sealpost.Event{ev}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCompleteDropsDoneData checks that a message's layout is dropped
// once every delivery of it is done, and the body its mail send shares
// once every delivery of every message using it is: the queue must not keep
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
	body := &sealpost.MessageBody{Data: []byte("body")}
	m := &sealpost.Message{
		AccountID: a.ID, XMessageID: "xid", SMTPID: "<xid@sealpost>", From: "s@example.com", Body: body, Layout: []byte{2, 'X', 1, 4},
		Recipients: []sealpost.Recipient{
			{Email: "a@x.test", Domain: "x.test", SGMessageID: "xid.0"},
			{Email: "b@y.test", Domain: "y.test", SGMessageID: "xid.1"},
		},
		CreatedAt: t0,
	}
	// A second personalization of the same send, delivered later.
	m2 := &sealpost.Message{
		AccountID: a.ID, XMessageID: "xid", SMTPID: "<xid2@sealpost>", From: "s@example.com", Body: body,
		Recipients: []sealpost.Recipient{{Email: "c@z.test", Domain: "z.test", SGMessageID: "xid.2"}},
		CreatedAt:  t0.Add(time.Hour),
	}
	if err := db.EnqueueMessages(ctx, []*sealpost.Message{m, m2}, nil); err != nil {
		t.Fatal(err)
	}
	raw := inspect(t, path)
	lengths := func() (layout, shared sql.NullInt64) {
		t.Helper()
		if err := raw.QueryRowContext(ctx, `SELECT length(m.data), length(b.data) FROM messages m JOIN message_bodies b ON b.id = m.body_id
			WHERE m.id = ?`, m.ID).Scan(&layout, &shared); err != nil {
			t.Fatal(err)
		}
		return layout, shared
	}
	var bodies int
	if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM message_bodies`).Scan(&bodies); err != nil || bodies != 1 {
		t.Fatalf("%d bodies stored (%v), want 1 for two messages sharing one", bodies, err)
	}
	ds, err := db.ClaimDeliveries(ctx, "w", t0, time.Minute, 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("ClaimDeliveries = %d, %v; want 2 deliveries", len(ds), err)
	}
	for i, d := range ds {
		if data, err := d.Message.Render(); err != nil || string(data) != "Xbody" {
			t.Errorf("delivery %d renders %q, %v; want %q", i, data, err, "Xbody")
		}
		c := sealpost.DeliveryCompletion{DeliveryID: d.ID, Recipients: []sealpost.RecipientUpdate{{RecipientID: d.Message.Recipients[0].ID, State: sealpost.StateDelivered}}}
		if err := db.CompleteDelivery(ctx, "w", c); err != nil {
			t.Fatal(err)
		}
		layout, shared := lengths()
		if last := i == len(ds)-1; last && layout.Valid {
			t.Errorf("after the last delivery: layout is %d bytes, want NULL", layout.Int64)
		} else if !last && (!layout.Valid || layout.Int64 != 4) {
			t.Errorf("after delivery %d of %d: layout length %v, want 4 (another delivery needs it)", i+1, len(ds), layout)
		}
		if !shared.Valid || shared.Int64 != 4 {
			t.Errorf("after delivery %d of %d: body length %v, want 4 (the other message needs it)", i+1, len(ds), shared)
		}
	}
	ds, err = db.ClaimDeliveries(ctx, "w", t0.Add(time.Hour), time.Minute, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("ClaimDeliveries = %d, %v; want the second message's delivery", len(ds), err)
	}
	if data, err := ds[0].Message.Render(); err != nil || string(data) != "body" {
		t.Errorf("second message renders %q, %v; want %q", data, err, "body")
	}
	c := sealpost.DeliveryCompletion{DeliveryID: ds[0].ID, Recipients: []sealpost.RecipientUpdate{{RecipientID: ds[0].Message.Recipients[0].ID, State: sealpost.StateDelivered}}}
	if err := db.CompleteDelivery(ctx, "w", c); err != nil {
		t.Fatal(err)
	}
	if _, shared := lengths(); shared.Valid {
		t.Errorf("after every delivery: body is %d bytes, want NULL", shared.Int64)
	}
	got, err := db.RecipientStates(ctx, a.ID, "xid")
	if err != nil || len(got) != 3 || got[0].State != sealpost.StateDelivered || got[2].State != sealpost.StateDelivered {
		t.Errorf("RecipientStates after the data was dropped = %+v, %v; want all delivered", got, err)
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
			Body: &sealpost.MessageBody{Data: data}, Categories: []string{"bench"}, CustomArgs: map[string]string{"k": "v"},
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
