package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// TestMigrationKeepsQueuedMessagesDeliverable: a message queued before
// 0004_message_bodies, with its whole message in messages.data, is claimed
// and rendered as it was after the migration.
func TestMigrationKeepsQueuedMessagesDeliverable(t *testing.T) {
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
		if m.version >= "0004" {
			break
		}
		stmts = append(stmts, stmt{sql: m.sql}, stmt{`INSERT INTO schema_migrations VALUES (?, 0)`, []any{m.version}})
	}
	const data = "Subject: queued before\r\n\r\nbody\r\n"
	at := time.Now().Add(-time.Minute).UnixNano()
	stmts = append(stmts,
		stmt{sql: `INSERT INTO accounts (id, kind, username, email, created_at) VALUES (1, 'user', 'alice', 'a@example.com', 0)`},
		stmt{`INSERT INTO messages (id, account_id, x_message_id, smtp_id, mail_from, data, categories, custom_args, created_at)
			VALUES (1, 1, 'xid', '<xid.0@sealpost>', 's@example.com', ?, '[]', '{}', ?)`, []any{[]byte(data), at}},
		stmt{`INSERT INTO deliveries (id, message_id, domain, next_attempt_at, created_at) VALUES (1, 1, 'x.test', ?, ?)`, []any{at, at}},
		stmt{sql: `INSERT INTO recipients (id, message_id, delivery_id, ordinal, email, domain, sg_message_id, state)
			VALUES (1, 1, 1, 0, 'r@x.test', 'x.test', 'xid.0', 'queued')`},
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
	if got, err := ds[0].Message.Render(); err != nil || string(got) != data {
		t.Errorf("queued message renders %q, %v; want %q", got, err, data)
	}
}
