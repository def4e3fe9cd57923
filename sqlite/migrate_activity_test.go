package sqlite_test

import (
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// Mail queued before the Email Activity migration is in the feed once it
// has run: its recipients take their message's account and creation time.
func TestActivityMigrationBackfills(t *testing.T) {
	ctx := t.Context()
	path, db, accts := openWithAccounts(t, "alice", "bob")
	a, b := accts[0], accts[1]
	created := time.Now().Add(-time.Hour).UTC().Round(0)
	m := &sealpost.Message{
		AccountID: a.ID, XMessageID: "xid", SMTPID: "<xid@sealpost>", From: "s@example.com", Body: &sealpost.MessageBody{Data: []byte("body")},
		Recipients: []sealpost.Recipient{{Email: "r@x.test", Domain: "x.test", SGMessageID: "xid.0"}},
		CreatedAt:  created,
	}
	if err := db.EnqueueMessages(ctx, []*sealpost.Message{m}, nil); err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw := inspect(t, path)
	for _, stmt := range []string{
		`DROP TABLE activity_events`,
		`DROP INDEX recipients_activity`,
		`DROP INDEX recipients_activity_email`,
		`DROP INDEX recipients_activity_msg_id`,
		`ALTER TABLE recipients DROP COLUMN account_id`,
		`ALTER TABLE recipients DROP COLUMN last_event_at`,
		`ALTER TABLE messages DROP COLUMN subject`,
		`DELETE FROM schema_migrations WHERE version = '0012_email_activity'`,
	} {
		if _, err := raw.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	raw.Close()

	db = openAt(t, path)
	got, err := db.ListActivity(ctx, a.ID, nil, created.Add(-time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].MsgID != "xid.0" || got[0].ToEmail != "r@x.test" || !got[0].LastEventTime.Equal(created) || got[0].State != sealpost.StateQueued {
		t.Errorf("the feed after the migration %+v, want xid.0 at %v", got, created)
	}
	if got, err := db.ListActivity(ctx, b.ID, nil, created.Add(-time.Minute), 10); err != nil || len(got) != 0 {
		t.Errorf("another account's feed %+v, %v; want it empty", got, err)
	}
}
