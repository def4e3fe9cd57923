package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/postgres"
	"github.com/sealpost/sealpost/postgres/pgtest"
)

func testMessage(accountID int64, xid string, at time.Time, emails ...string) *sealpost.Message {
	m := &sealpost.Message{
		AccountID:  accountID,
		XMessageID: xid,
		SMTPID:     "<" + xid + "@sealpost.test>",
		From:       "sender@example.com",
		Body:       &sealpost.MessageBody{Data: []byte("Subject: " + xid + "\r\n\r\nbody\r\n")},
		CreatedAt:  at,
	}
	for i, e := range emails {
		m.Recipients = append(m.Recipients, sealpost.Recipient{Email: e, SGMessageID: fmt.Sprintf("%s.%d", xid, i)})
	}
	return m
}

func createTestUser(t *testing.T, db *postgres.DB, name string) *sealpost.Account {
	t.Helper()
	a := &sealpost.Account{Kind: sealpost.KindUser, Username: name, Email: name + "@example.com"}
	if err := db.CreateAccount(t.Context(), a); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	return a
}

// TestClaimAcrossNodes runs claimers on two stores with pools of their own
// on one schema, as two serve processes on one database: every due
// delivery and every account's outbox goes to exactly one of them.
func TestClaimAcrossNodes(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	nodes := []*postgres.DB{openURL(t, u), openURL(t, u)}
	ctx := t.Context()
	t0 := time.Now().Truncate(time.Second)

	const accounts, perAccount = 10, 10 // two domains each: 200 deliveries
	for i := range accounts {
		a := createTestUser(t, nodes[i%2], fmt.Sprintf("user%d", i))
		if _, err := nodes[i%2].UpdateEventWebhookSettings(ctx, a.ID, sealpost.EventWebhookPatch{URL: new("https://hooks.example.com/a"),
			Bools: map[string]bool{"enabled": true, "processed": true}}); err != nil {
			t.Fatal(err)
		}
		var msgs []*sealpost.Message
		for j := range perAccount {
			msgs = append(msgs, testMessage(a.ID, fmt.Sprintf("m%d-%d", i, j), t0.Add(time.Duration(j)*time.Millisecond), "a@x.test", "b@y.test"))
		}
		ev, err := sealpost.NewEvent(sealpost.EventProcessed, msgs[0], msgs[0].Recipients[0], t0, sealpost.EventDetails{})
		if err != nil {
			t.Fatal(err)
		}
		if err := nodes[(i+1)%2].EnqueueMessages(ctx, msgs, []sealpost.Event{ev}); err != nil {
			t.Fatalf("EnqueueMessages: %v", err)
		}
	}

	var mu sync.Mutex
	deliveries := map[int64]string{}
	batches := map[int64]string{}
	var wg sync.WaitGroup
	for n, node := range nodes {
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					owner := fmt.Sprintf("node%d-w%d-%d", n, w, i)
					ds, err := node.ClaimDeliveries(ctx, owner, t0.Add(time.Second), time.Hour, 3)
					if err != nil {
						t.Errorf("ClaimDeliveries(%s): %v", owner, err)
						return
					}
					b, err := node.ClaimEventBatch(ctx, owner, t0.Add(time.Second), time.Hour, 100)
					if err != nil {
						t.Errorf("ClaimEventBatch(%s): %v", owner, err)
						return
					}
					if len(ds) == 0 && b == nil {
						return
					}
					mu.Lock()
					for _, d := range ds {
						if prev, ok := deliveries[d.ID]; ok {
							t.Errorf("delivery %d leased to %s and to %s", d.ID, prev, owner)
						}
						deliveries[d.ID] = owner
					}
					if b != nil {
						if prev, ok := batches[b.AccountID]; ok {
							t.Errorf("account %d's events leased to %s and to %s", b.AccountID, prev, owner)
						}
						batches[b.AccountID] = owner
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if want := accounts * perAccount * 2; len(deliveries) != want {
		t.Errorf("nodes claimed %d distinct deliveries, want %d", len(deliveries), want)
	}
	if len(batches) != accounts {
		t.Errorf("nodes claimed %d accounts' events, want %d", len(batches), accounts)
	}
}

// TestLeaseHandover: a node that stops working a delivery (it crashed) has
// it taken over by another node once the lease runs out, and the first
// node's late completion is refused.
func TestLeaseHandover(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	nodeA, nodeB := openURL(t, u), openURL(t, u)
	ctx := t.Context()
	a := createTestUser(t, nodeA, "alice")
	t0 := time.Now().Truncate(time.Second).Add(123 * time.Nanosecond)
	m := testMessage(a.ID, "xid", t0, "a@x.test")
	if err := nodeA.EnqueueMessages(ctx, []*sealpost.Message{m}, nil); err != nil {
		t.Fatalf("EnqueueMessages: %v", err)
	}
	const lease = time.Minute
	ds, err := nodeA.ClaimDeliveries(ctx, "a", t0, lease, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("ClaimDeliveries on A = %d deliveries, %v; want 1", len(ds), err)
	}
	id := ds[0].ID

	// Nanoseconds count: the lease is live up to its last one.
	if ds, err := nodeB.ClaimDeliveries(ctx, "b", t0.Add(lease-time.Nanosecond), lease, 10); err != nil || len(ds) != 0 {
		t.Fatalf("ClaimDeliveries on B while A's lease is live = %d deliveries, %v; want none", len(ds), err)
	}
	ds, err = nodeB.ClaimDeliveries(ctx, "b", t0.Add(lease), lease, 10)
	if err != nil || len(ds) != 1 || ds[0].ID != id {
		t.Fatalf("ClaimDeliveries on B after A's lease ran out = %d deliveries, %v; want delivery %d", len(ds), err, id)
	}
	if string(ds[0].Message.Body.Data) != string(m.Body.Data) || len(ds[0].Message.Recipients) != 1 {
		t.Errorf("B's delivery: Data %q, %d recipients; want the message and its recipient", ds[0].Message.Body.Data, len(ds[0].Message.Recipients))
	}

	done := sealpost.DeliveryCompletion{
		DeliveryID: id,
		Recipients: []sealpost.RecipientUpdate{{RecipientID: m.Recipients[0].ID, State: sealpost.StateDelivered}},
	}
	wantCode(t, nodeA.CompleteDelivery(ctx, "a", done), sealpost.ECONFLICT, "CompleteDelivery by A after B took over")
	if err := nodeB.CompleteDelivery(ctx, "b", done); err != nil {
		t.Fatalf("CompleteDelivery by B: %v", err)
	}
	got, err := nodeA.RecipientStates(ctx, a.ID, "xid")
	if err != nil || len(got) != 1 || got[0].State != sealpost.StateDelivered {
		t.Errorf("RecipientStates on A = %+v, %v; want one delivered", got, err)
	}
}

// twoNodes opens two stores on one new schema, with one user, and a plain
// connection to look at the rows with.
func twoNodes(t *testing.T) ([]*postgres.DB, *sealpost.Account, *pgx.Conn) {
	t.Helper()
	u := pgtest.URL(t)
	nodes := []*postgres.DB{openURL(t, u), openURL(t, u)}
	a := createTestUser(t, nodes[0], "alice")
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return nodes, a, conn
}

// notNull reports whether column data of the row of table with id is set.
func notNull(t *testing.T, conn *pgx.Conn, table string, id int64) bool {
	t.Helper()
	var has bool
	if err := conn.QueryRow(t.Context(), `SELECT data IS NOT NULL FROM `+table+` WHERE id = $1`, id).Scan(&has); err != nil {
		t.Fatal(err)
	}
	return has
}

// completeOnEach has node n complete claimed[n], all at the same moment,
// each delivering the delivery's first recipient.
func completeOnEach(t *testing.T, nodes []*postgres.DB, claimed []*sealpost.Delivery) {
	t.Helper()
	var wg sync.WaitGroup
	for n, node := range nodes {
		wg.Go(func() {
			d := claimed[n]
			err := node.CompleteDelivery(t.Context(), fmt.Sprint("node", n), sealpost.DeliveryCompletion{
				DeliveryID: d.ID,
				Recipients: []sealpost.RecipientUpdate{{RecipientID: d.Message.Recipients[0].ID, State: sealpost.StateDelivered}},
			})
			if err != nil {
				t.Errorf("CompleteDelivery on node %d: %v", n, err)
			}
		})
	}
	wg.Wait()
}

// TestMessageDataDropped: the body goes when the last of a message's
// deliveries is done, also when two nodes complete the last two at the
// same moment (neither sees the other's done in its own snapshot unless
// completions of one message take turns).
func TestMessageDataDropped(t *testing.T) {
	t.Parallel()
	nodes, a, conn := twoNodes(t)
	ctx := t.Context()
	t0 := time.Now().Truncate(time.Second)
	hasData := func(id int64) bool { t.Helper(); return notNull(t, conn, "messages", id) }

	const rounds = 20
	for i := range rounds {
		m := testMessage(a.ID, fmt.Sprintf("m%d", i), t0, "a@x.test", "b@y.test")
		if err := nodes[0].EnqueueMessages(ctx, []*sealpost.Message{m}, nil); err != nil {
			t.Fatalf("EnqueueMessages: %v", err)
		}
		var claimed []*sealpost.Delivery
		for n, node := range nodes {
			ds, err := node.ClaimDeliveries(ctx, fmt.Sprint("node", n), t0, time.Minute, 1)
			if err != nil || len(ds) != 1 {
				t.Fatalf("ClaimDeliveries on node %d = %d deliveries, %v; want 1", n, len(ds), err)
			}
			claimed = append(claimed, ds[0])
		}
		completeOnEach(t, nodes, claimed)
		if hasData(m.ID) {
			t.Fatalf("round %d: message data kept after both deliveries were done", i)
		}
		got, err := nodes[1].RecipientStates(ctx, a.ID, m.XMessageID)
		if err != nil || len(got) != 2 {
			t.Fatalf("RecipientStates after the data was dropped = %+v, %v; want both recipients", got, err)
		}
	}

	// One of two done keeps the body for the other.
	m := testMessage(a.ID, "half", t0, "a@x.test", "b@y.test")
	if err := nodes[0].EnqueueMessages(ctx, []*sealpost.Message{m}, nil); err != nil {
		t.Fatalf("EnqueueMessages: %v", err)
	}
	ds, err := nodes[0].ClaimDeliveries(ctx, "n", t0, time.Minute, 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("ClaimDeliveries = %d deliveries, %v; want 1", len(ds), err)
	}
	if err := nodes[0].CompleteDelivery(ctx, "n", sealpost.DeliveryCompletion{
		DeliveryID: ds[0].ID,
		Recipients: []sealpost.RecipientUpdate{{RecipientID: ds[0].Message.Recipients[0].ID, State: sealpost.StateBounced}},
	}); err != nil {
		t.Fatalf("CompleteDelivery: %v", err)
	}
	if !hasData(m.ID) {
		t.Error("message data dropped while a delivery is still to do")
	}
}

// TestSharedBodyDropped: a mail send's shared body goes when the last
// delivery of the last of its messages is done, also when two nodes finish
// its last two messages at the same moment.
func TestSharedBodyDropped(t *testing.T) {
	t.Parallel()
	nodes, a, conn := twoNodes(t)
	ctx := t.Context()
	t0 := time.Now().Truncate(time.Second)

	const rounds = 20
	for i := range rounds {
		body := &sealpost.MessageBody{Data: []byte("Subject: s\r\n\r\nbody\r\n")}
		var msgs []*sealpost.Message
		for j, rcpt := range []string{"a@x.test", "b@y.test"} {
			m := testMessage(a.ID, fmt.Sprintf("m%d", i), t0, rcpt)
			m.SMTPID = fmt.Sprintf("<m%d.%d@sealpost>", i, j)
			m.Body = body
			msgs = append(msgs, m)
		}
		if err := nodes[0].EnqueueMessages(ctx, msgs, nil); err != nil {
			t.Fatalf("EnqueueMessages: %v", err)
		}
		var claimed []*sealpost.Delivery
		for n, node := range nodes {
			ds, err := node.ClaimDeliveries(ctx, fmt.Sprint("node", n), t0, time.Minute, 1)
			if err != nil || len(ds) != 1 {
				t.Fatalf("ClaimDeliveries on node %d = %d deliveries, %v; want 1", n, len(ds), err)
			}
			if got, err := ds[0].Message.Render(); err != nil || string(got) != string(body.Data) {
				t.Fatalf("node %d's delivery renders %q, %v; want the body", n, got, err)
			}
			claimed = append(claimed, ds[0])
		}
		completeOnEach(t, nodes, claimed)
		if notNull(t, conn, "message_bodies", body.ID) {
			t.Fatalf("round %d: shared body kept after every message was delivered", i)
		}
	}
}

// TestQueuedBeforeSharedBodies: a message stored before
// 0004_message_bodies, whole in messages.data and without a body_id, is
// claimed and rendered as it was.
func TestQueuedBeforeSharedBodies(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	db := openURL(t, u)
	ctx := t.Context()
	a := createTestUser(t, db, "alice")
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	const data = "Subject: queued before\r\n\r\nbody\r\n"
	at := time.Now().Add(-time.Minute).UnixNano()
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO messages (id, account_id, x_message_id, smtp_id, mail_from, data, categories, custom_args, created_at)
		VALUES (1000001, $1, 'xid', '<xid.0@sealpost>', 's@example.com', $2, '[]', '{}', $3)`, a.ID, []byte(data), at)
	b.Queue(`INSERT INTO deliveries (id, message_id, domain, next_attempt_at, created_at) VALUES (1000001, 1000001, 'x.test', $1, $1)`, at)
	b.Queue(`INSERT INTO recipients (id, message_id, delivery_id, ordinal, email, domain, sg_message_id, state)
		VALUES (1000001, 1000001, 1000001, 0, 'r@x.test', 'x.test', 'xid.0', 'queued')`)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	ds, err := db.ClaimDeliveries(ctx, "w", time.Now(), time.Minute, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("ClaimDeliveries = %d, %v; want the queued delivery", len(ds), err)
	}
	if got, err := ds[0].Message.Render(); err != nil || string(got) != data {
		t.Errorf("queued message renders %q, %v; want %q", got, err, data)
	}
	if err := db.CompleteDelivery(ctx, "w", sealpost.DeliveryCompletion{DeliveryID: ds[0].ID,
		Recipients: []sealpost.RecipientUpdate{{RecipientID: ds[0].Message.Recipients[0].ID, State: sealpost.StateDelivered}}}); err != nil {
		t.Errorf("CompleteDelivery: %v", err)
	}
}

// TestStoredBeforeEventArgs: an event stored before 0008_event_args, with
// its categories and custom args in its payload and no message_id, is
// posted as it was stored; a message stored then, with the send's custom
// args merged into its own and a body without any, still gives its later
// events all of them.
func TestStoredBeforeEventArgs(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	db := openURL(t, u)
	ctx := t.Context()
	a := createTestUser(t, db, "alice")
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	const data = "Subject: queued before\r\n\r\nbody\r\n"
	const oldEvent = `{"campaign":"spring","category":"c","email":"r@x.test","event":"processed","order":"own","sg_event_id":"e0","sg_message_id":"xid.0","smtp-id":"<xid.0@sealpost>","timestamp":1}`
	at := time.Now().Add(-time.Minute).UnixNano()
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO message_bodies (id, account_id, data) VALUES (1000001, $1, $2)`, a.ID, []byte(data))
	b.Queue(`INSERT INTO messages (id, account_id, x_message_id, smtp_id, mail_from, body_id, data, categories, custom_args, created_at)
		VALUES (1000001, $1, 'xid', '<xid.0@sealpost>', 's@example.com', 1000001, '\x', '["c"]', '{"campaign":"spring","order":"own"}', $2)`, a.ID, at)
	b.Queue(`INSERT INTO deliveries (id, message_id, domain, next_attempt_at, created_at) VALUES (1000001, 1000001, 'x.test', $1, $1)`, at)
	b.Queue(`INSERT INTO recipients (id, message_id, delivery_id, ordinal, email, domain, sg_message_id, state)
		VALUES (1000001, 1000001, 1000001, 0, 'r@x.test', 'x.test', 'xid.0', 'queued')`)
	b.Queue(`INSERT INTO outbox_events (account_id, kind, sg_event_id, payload) VALUES ($1, 'processed', 'e0', $2)`, a.ID, []byte(oldEvent))
	b.Queue(`INSERT INTO outbox_accounts (account_id) VALUES ($1)`, a.ID)
	b.Queue(`INSERT INTO event_webhooks (account_id, enabled, url, processed, delivered) VALUES ($1, true, 'https://hooks.example.com/a', true, true)`, a.ID)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
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
	batch, err := db.ClaimEventBatch(ctx, "p", time.Now(), time.Minute, 10)
	if err != nil || batch == nil || len(batch.Events) != 2 {
		t.Fatalf("ClaimEventBatch = %+v, %v; want both events", batch, err)
	}
	if got := string(batch.Events[0].Payload); got != oldEvent {
		t.Errorf("event stored before the migration posts\n%s\nwant it as stored\n%s", got, oldEvent)
	}
	if got := string(batch.Events[1].Payload); got != string(wantNew) {
		t.Errorf("event stored after the migration posts\n%s\nwant\n%s", got, wantNew)
	}
}

// Mail queued before the Email Activity migration is in the feed once it
// has run: its recipients take their message's account and creation time.
func TestActivityMigrationBackfills(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	db := openURL(t, u)
	ctx := t.Context()
	a := createTestUser(t, db, "alice")
	b := createTestUser(t, db, "bob")
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
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, stmt := range []string{
		`DROP TABLE activity_events`,
		`ALTER TABLE recipients DROP COLUMN account_id, DROP COLUMN last_event_at`,
		`ALTER TABLE messages DROP COLUMN subject`,
		`DELETE FROM schema_migrations WHERE version = '0012_email_activity'`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}

	db = openURL(t, u)
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
