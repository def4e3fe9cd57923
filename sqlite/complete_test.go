package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/storetest"
)

// TestCompletionsShareTransaction holds the commit while several
// completions gather in one batch, some of which must fail: each failure
// must reach its own caller and leave no trace, while the rest commit.
func TestCompletionsShareTransaction(t *testing.T) {
	ctx := t.Context()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "sealpost.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := &sealpost.Account{Kind: sealpost.KindUser, Username: "alice", Email: "alice@example.com"}
	if err := db.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	// Its webhook wants every event, so that the events of each completion
	// are queued, or not, with the completion's other rows.
	if _, err := db.UpdateEventWebhookSettings(ctx, a.ID, storetest.SubscribeAll()); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Truncate(time.Second)
	var msgs []*sealpost.Message
	for i := range 5 {
		xid := fmt.Sprintf("x%d", i)
		m := &sealpost.Message{AccountID: a.ID, XMessageID: xid, SMTPID: "<" + xid + "@sealpost>", From: "s@example.com",
			Body: &sealpost.MessageBody{Data: []byte("body")}, CreatedAt: t0}
		for j := range 2 {
			m.Recipients = append(m.Recipients, sealpost.Recipient{Email: fmt.Sprintf("r%d@x.test", j), Domain: "x.test", SGMessageID: fmt.Sprintf("%s.%d", xid, j)})
		}
		msgs = append(msgs, m)
	}
	if err := db.EnqueueMessages(ctx, msgs, nil); err != nil {
		t.Fatal(err)
	}
	ds, err := db.ClaimDeliveries(ctx, "w", t0, time.Minute, 10)
	if err != nil || len(ds) != len(msgs) {
		t.Fatalf("ClaimDeliveries = %d, %v; want %d", len(ds), err, len(msgs))
	}
	event := func(name string) sealpost.Event {
		return sealpost.Event{AccountID: a.ID, Kind: sealpost.EventDelivered, SGEventID: name, Payload: []byte(`{"name":"` + name + `"}`)}
	}
	update := func(d *sealpost.Delivery, states ...sealpost.RecipientState) []sealpost.RecipientUpdate {
		var us []sealpost.RecipientUpdate
		for i, s := range states {
			us = append(us, sealpost.RecipientUpdate{RecipientID: d.Message.Recipients[i].ID, State: s})
		}
		return us
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	next := t0.Add(time.Hour)
	type call struct {
		name  string
		ctx   context.Context
		owner string
		c     sealpost.DeliveryCompletion
		want  func(error) bool
	}
	calls := []call{
		{"delivered", ctx, "w", sealpost.DeliveryCompletion{DeliveryID: ds[0].ID,
			Recipients: update(ds[0], sealpost.StateDelivered, sealpost.StateDelivered), Events: []sealpost.Event{event("ok0")}},
			func(err error) bool { return err == nil }},
		{"other owner", ctx, "intruder", sealpost.DeliveryCompletion{DeliveryID: ds[1].ID,
			Recipients: update(ds[1], sealpost.StateDelivered), Events: []sealpost.Event{event("bad1")}},
			func(err error) bool { return sealpost.ErrorCode(err) == sealpost.ECONFLICT }},
		{"foreign recipient", ctx, "w", sealpost.DeliveryCompletion{DeliveryID: ds[2].ID,
			Recipients: []sealpost.RecipientUpdate{
				{RecipientID: ds[2].Message.Recipients[0].ID, State: sealpost.StateDelivered},
				{RecipientID: ds[0].Message.Recipients[0].ID, State: sealpost.StateBounced},
			}, Events: []sealpost.Event{event("bad2")}},
			func(err error) bool { return sealpost.ErrorCode(err) == sealpost.EINVALID }},
		{"deferred", ctx, "w", sealpost.DeliveryCompletion{DeliveryID: ds[3].ID,
			Recipients: update(ds[3], sealpost.StateBounced, sealpost.StateQueued), Events: []sealpost.Event{event("ok3")}, NextAttemptAt: next},
			func(err error) bool { return err == nil }},
		{"canceled", canceled, "w", sealpost.DeliveryCompletion{DeliveryID: ds[4].ID,
			Recipients: update(ds[4], sealpost.StateDelivered), Events: []sealpost.Event{event("bad4")}},
			func(err error) bool { return errors.Is(err, context.Canceled) }},
	}

	db.writer.token <- struct{}{} // the writer is busy: the calls gather
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() { errs[i] = db.CompleteDelivery(c.ctx, c.owner, c.c) })
	}
	// The canceled call returns at once; the others wait for the writer.
	waitFor(t, func() bool {
		db.writer.mu.Lock()
		defer db.writer.mu.Unlock()
		return len(db.writer.pending) == len(calls)-1
	})
	<-db.writer.token
	wg.Wait()
	for i, c := range calls {
		if !c.want(errs[i]) {
			t.Errorf("%s: CompleteDelivery = %v", c.name, errs[i])
		}
	}

	type row struct {
		attempts int
		done     bool
		owner    sql.NullString
		next     int64
	}
	wantRows := []row{
		{1, true, sql.NullString{}, t0.UnixNano()},
		{0, false, sql.NullString{String: "w", Valid: true}, t0.UnixNano()},
		{0, false, sql.NullString{String: "w", Valid: true}, t0.UnixNano()},
		{1, false, sql.NullString{}, next.UnixNano()},
		{0, false, sql.NullString{String: "w", Valid: true}, t0.UnixNano()},
	}
	for i, d := range ds {
		var r row
		if err := db.read.QueryRowContext(ctx, `SELECT attempts, done, lease_owner, next_attempt_at FROM deliveries WHERE id = ?`, d.ID).
			Scan(&r.attempts, &r.done, &r.owner, &r.next); err != nil {
			t.Fatal(err)
		}
		if r != wantRows[i] {
			t.Errorf("%s: delivery row %+v, want %+v", calls[i].name, r, wantRows[i])
		}
	}
	wantStates := [][2]sealpost.RecipientState{
		{sealpost.StateDelivered, sealpost.StateDelivered},
		{sealpost.StateQueued, sealpost.StateQueued},
		{sealpost.StateQueued, sealpost.StateQueued},
		{sealpost.StateBounced, sealpost.StateQueued},
		{sealpost.StateQueued, sealpost.StateQueued},
	}
	for i, m := range msgs {
		rs, err := db.RecipientStates(ctx, a.ID, m.XMessageID)
		if err != nil || len(rs) != 2 || rs[0].State != wantStates[i][0] || rs[1].State != wantStates[i][1] {
			t.Errorf("%s: RecipientStates = %+v, %v; want %v", calls[i].name, rs, err, wantStates[i])
		}
	}
	b, err := db.ClaimEventBatch(ctx, "poster", time.Now(), time.Minute, 10)
	if err != nil || b == nil {
		t.Fatalf("ClaimEventBatch = %v, %v", b, err)
	}
	var got []string
	for _, e := range b.Events {
		got = append(got, string(e.Payload))
	}
	slices.Sort(got) // the batch holds them in the order the calls came
	if want := []string{`{"name":"ok0"}`, `{"name":"ok3"}`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored events %v, want %v", got, want)
	}
}

// TestDeliveryPathPlans keeps the statements of every claim and completion
// on indexes that lead straight to their rows: one that walks the pending
// deliveries costs more the longer the queue is.
func TestDeliveryPathPlans(t *testing.T) {
	ctx := t.Context()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "sealpost.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct {
		name string
		sql  string
		args []any
		due  bool // a claim walks the due deliveries, and only those
	}{
		{"dropBody", dropBodySQL, []any{1}, false},
		{"dropSharedBody", dropSharedBodySQL, []any{1}, false},
		{"finishDelivery", finishDeliverySQL, []any{1, 2, "w", 1}, false},
		{"claim", claimSQL, []any{"w", 2, 1, 1, 8}, true},
	} {
		rows, err := db.read.QueryContext(ctx, "EXPLAIN QUERY PLAN "+tc.sql, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		usesDue := false
		for _, step := range plan {
			usesDue = usesDue || strings.Contains(step, "deliveries_due")
			if strings.HasPrefix(step, "SCAN") || strings.Contains(step, "TEMP B-TREE") {
				t.Errorf("%s walks or sorts more than its rows: %q in plan %q", tc.name, step, plan)
			}
		}
		if usesDue != tc.due {
			t.Errorf("%s: deliveries_due used %v, want %v; plan %q", tc.name, usesDue, tc.due, plan)
		}
	}
}
