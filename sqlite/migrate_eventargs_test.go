package sqlite

import (
	"database/sql"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// TestMigrationKeepsStoredEventsAndArgs: an event stored before
// 0008_event_args, with its categories and custom args in its payload, is
// posted as it was stored; a message stored then, with the send's custom
// args merged into its own and a body without any, still gives its later
// events all of them.
func TestMigrationKeepsStoredEventsAndArgs(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sealpost.db")
	old, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	all, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	type stmt struct {
		sql  string
		args []any
	}
	stmts := []stmt{{sql: `CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT`}}
	for _, m := range all {
		if m.version >= "0008" {
			break
		}
		stmts = append(stmts, stmt{sql: m.sql}, stmt{`INSERT INTO schema_migrations VALUES (?, 0)`, []any{m.version}})
	}
	const data = "Subject: queued before\r\n\r\nbody\r\n"
	const oldEvent = `{"campaign":"spring","category":"c","email":"r@x.test","event":"processed","order":"own","sg_event_id":"e0","sg_message_id":"xid.0","smtp-id":"<xid.0@sealpost>","timestamp":1}`
	at := time.Now().Add(-time.Minute).UnixNano()
	stmts = append(stmts,
		stmt{sql: `INSERT INTO accounts (id, kind, username, email, created_at) VALUES (1, 'user', 'alice', 'a@example.com', 0)`},
		stmt{`INSERT INTO message_bodies (id, account_id, data) VALUES (1, 1, ?)`, []any{[]byte(data)}},
		stmt{`INSERT INTO messages (id, account_id, x_message_id, smtp_id, mail_from, body_id, data, categories, custom_args, created_at)
			VALUES (1, 1, 'xid', '<xid.0@sealpost>', 's@example.com', 1, X'', '["c"]', '{"campaign":"spring","order":"own"}', ?)`, []any{at}},
		stmt{`INSERT INTO deliveries (id, message_id, domain, next_attempt_at, created_at) VALUES (1, 1, 'x.test', ?, ?)`, []any{at, at}},
		stmt{sql: `INSERT INTO recipients (id, message_id, delivery_id, ordinal, email, domain, sg_message_id, state)
			VALUES (1, 1, 1, 0, 'r@x.test', 'x.test', 'xid.0', 'queued')`},
		stmt{`INSERT INTO events (account_id, kind, sg_event_id, payload, created_at) VALUES (1, 'processed', 'e0', ?, ?)`, []any{[]byte(oldEvent), at}},
		stmt{sql: `INSERT INTO outbox_state (account_id) VALUES (1)`},
		stmt{sql: `INSERT INTO event_webhooks (account_id, enabled, url, processed, delivered) VALUES (1, 1, 'https://hooks.example.com/a', 1, 1)`},
	)
	for _, s := range stmts {
		if _, err := old.ExecContext(ctx, s.sql, s.args...); err != nil {
			t.Fatalf("%s: %v", s.sql, err)
		}
	}
	old.Close()

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ds, err := db.ClaimDeliveries(ctx, "w", time.Now(), time.Minute, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("ClaimDeliveries = %d, %v; want the queued delivery", len(ds), err)
	}
	m := ds[0].Message
	if got, err := m.Render(); err != nil || string(got) != data {
		t.Errorf("queued message renders %q, %v; want %q", got, err, data)
	}
	if got := m.EventCustomArgs(); len(got) != 2 || got["campaign"] != "spring" || got["order"] != "own" {
		t.Errorf("EventCustomArgs = %v, want those stored with the message", got)
	}
	if got := m.EventCategories(); !slices.Equal(got, []string{"c"}) {
		t.Errorf("EventCategories = %q, want [c]", got)
	}
	ev, err := sealpost.NewEvent(sealpost.EventDelivered, m, m.Recipients[0], time.Unix(2, 0), sealpost.EventDetails{Response: "250 OK"})
	if err != nil {
		t.Fatal(err)
	}
	wantNew, err := ev.Posted()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CompleteDelivery(ctx, "w", sealpost.DeliveryCompletion{DeliveryID: ds[0].ID, Events: []sealpost.Event{ev},
		Recipients: []sealpost.RecipientUpdate{{RecipientID: m.Recipients[0].ID, State: sealpost.StateDelivered}}}); err != nil {
		t.Fatalf("CompleteDelivery: %v", err)
	}
	b, err := db.ClaimEventBatch(ctx, "p", time.Now(), time.Minute, 10)
	if err != nil || b == nil || len(b.Events) != 2 {
		t.Fatalf("ClaimEventBatch = %+v, %v; want both events", b, err)
	}
	if got := string(b.Events[0].Payload); got != oldEvent {
		t.Errorf("event stored before the migration posts\n%s\nwant it as stored\n%s", got, oldEvent)
	}
	if got := string(b.Events[1].Payload); got != string(wantNew) {
		t.Errorf("event stored after the migration posts\n%s\nwant\n%s", got, wantNew)
	}
}
