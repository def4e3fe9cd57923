package sqlite_test

import (
	"slices"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// The migration that rebuilds recipients for the dropped state keeps every
// row, its id and the id sequence. It is run again here on a populated
// database, which copies the rows exactly as the first run did.
func TestDroppedStateMigrationKeepsRecipients(t *testing.T) {
	ctx := t.Context()
	path, db, accts := openWithAccounts(t, "alice")
	a := accts[0]
	m := &sealpost.Message{
		AccountID: a.ID, XMessageID: "xid", SMTPID: "<xid@sealpost>", From: "s@example.com", Body: &sealpost.MessageBody{Data: []byte("body")},
		Recipients: []sealpost.Recipient{
			{Email: "a@x.test", Domain: "x.test", SGMessageID: "xid.0"},
			{Email: "b@y.test", Domain: "y.test", SGMessageID: "xid.1"},
		},
		CreatedAt: time.Now(),
	}
	if err := db.EnqueueMessages(ctx, []*sealpost.Message{m}, nil); err != nil {
		t.Fatal(err)
	}
	before, err := db.RecipientStates(ctx, a.ID, "xid")
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw := inspect(t, path)
	// The rebuild drops the columns later migrations added to recipients:
	// the Email Activity one runs again after it, on a schema without
	// what it adds.
	for _, stmt := range []string{
		`DELETE FROM schema_migrations WHERE version IN ('0005_dropped_state', '0012_email_activity')`,
		`DROP TABLE activity_events`,
		`ALTER TABLE messages DROP COLUMN subject`,
	} {
		if _, err := raw.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()

	db = openAt(t, path)
	after, err := db.RecipientStates(ctx, a.ID, "xid")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, after) {
		t.Errorf("recipients after the migration %+v, want %+v", after, before)
	}
	m2 := &sealpost.Message{
		AccountID: a.ID, XMessageID: "xid2", SMTPID: "<xid2@sealpost>", From: "s@example.com", Body: &sealpost.MessageBody{Data: []byte("body")},
		Recipients: []sealpost.Recipient{{Email: "c@x.test", Domain: "x.test", SGMessageID: "xid2.0"}},
		CreatedAt:  time.Now(),
	}
	if err := db.EnqueueMessages(ctx, []*sealpost.Message{m2}, nil); err != nil {
		t.Fatal(err)
	}
	if id := m2.Recipients[0].ID; id <= max(before[0].ID, before[1].ID) {
		t.Errorf("a new recipient got id %d, not past the old ones %d, %d", id, before[0].ID, before[1].ID)
	}
}
