package webhook

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/sqlite"
)

// These tests run the Poster on the real SQLite store, so that what the
// Poster assumes of the outbox (payloads byte for byte, acks of exactly the
// batch's events, leases, failure counts) is checked against it.

func openSQLite(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sealpost.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func storeAccount(t *testing.T, db sealpost.Store, name, url string, key []byte) *sealpost.Account {
	t.Helper()
	a := &sealpost.Account{Kind: sealpost.KindUser, Username: name, Email: name + "@example.com"}
	if err := db.CreateAccount(t.Context(), a); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	on := map[string]bool{"enabled": true, "processed": true, "delivered": true, "bounce": true, "deferred": false, "dropped": true}
	if _, err := db.UpdateEventWebhookSettings(t.Context(), a.ID, sealpost.EventWebhookPatch{Bools: on, URL: &url}); err != nil {
		t.Fatalf("UpdateEventWebhookSettings: %v", err)
	}
	if key != nil {
		if err := db.SetEventWebhookSigningKey(t.Context(), a.ID, key); err != nil {
			t.Fatalf("SetEventWebhookSigningKey: %v", err)
		}
	}
	return a
}

// enqueueEvents stores one message of a with an event of each kind in
// kinds, the way the mail send and delivery store them, and returns the
// payloads they are to be posted with, in order.
func enqueueEvents(t *testing.T, db sealpost.Store, a *sealpost.Account, pad string, kinds ...sealpost.EventKind) []string {
	t.Helper()
	xid := fmt.Sprintf("x%d-%d", a.ID, time.Now().UnixNano())
	msg := &sealpost.Message{
		AccountID: a.ID, XMessageID: xid, SMTPID: "<" + xid + "@sealpost.test>",
		From: "sender@example.com", Body: &sealpost.MessageBody{Data: []byte("Subject: hi\r\n\r\nbody\r\n")},
		Categories: []string{"cat facts", "ünïcode"},
		CustomArgs: map[string]string{"note": "grüße ✓ 😀 中文" + pad},
		CreatedAt:  time.Now(),
		Recipients: []sealpost.Recipient{{
			Email: "rcpt@exämple.com", Domain: "exämple.com", SGMessageID: xid + ".filter0000", State: sealpost.StateQueued,
		}},
	}
	var events []sealpost.Event
	var stored []string
	for _, k := range kinds {
		e, err := sealpost.NewEvent(k, msg, msg.Recipients[0], time.Now(), sealpost.EventDetails{Response: "250 OK"})
		if err != nil {
			t.Fatal(err)
		}
		posted, err := e.Posted()
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
		stored = append(stored, string(posted))
	}
	if err := db.EnqueueMessages(t.Context(), []*sealpost.Message{msg}, events); err != nil {
		t.Fatalf("EnqueueMessages: %v", err)
	}
	return stored
}

func TestSQLitePostsSignedInOrderWithRetries(t *testing.T) {
	t.Parallel()
	db := openSQLite(t)
	rcv := newReceiver(t, func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	priv, pub, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	a := storeAccount(t, db, "alice", rcv.URL, priv)
	var want []string
	for range 5 {
		stored := enqueueEvents(t, db, a, "",
			sealpost.EventProcessed, sealpost.EventDeferred, sealpost.EventDelivered, sealpost.EventBounce)
		for i, p := range stored {
			if i != 1 { // deferred is off
				want = append(want, p)
			}
		}
	}
	c := &clock{}
	c.t = time.Now()
	p := newPoster(t, db, c)
	p.MaxBatch = 4
	flush(t, p) // the first post is taken, the second fails
	if got := len(rcv.received()); got != 2 {
		t.Fatalf("%d posts before the backoff, want 2", got)
	}
	c.Advance(10 * time.Second)
	flush(t, p)

	var got []string
	for i, post := range rcv.received() {
		if !verify(t, pub, post) {
			t.Errorf("post %d does not verify", i)
		}
		if post.Status == http.StatusOK {
			for _, e := range decodeArray(t, post.Body) {
				got = append(got, string(e))
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("accepted events:\n got %q\nwant %q", got, want)
	}
	if b, err := db.ClaimEventBatch(t.Context(), "check", c.Now().Add(time.Hour), time.Minute, 10); err != nil || b != nil {
		t.Errorf("outbox after posting: %v, %v; want empty", b, err)
	}
}

func TestSQLiteSplitsAt768KBAndGivesUp(t *testing.T) {
	t.Parallel()
	db := openSQLite(t)
	rcv := newReceiver(t, nil)
	a := storeAccount(t, db, "bob", rcv.URL, nil)
	pad := strings.Repeat("ü", 100_000) // 200 kB an event
	var want []string
	for range 3 {
		want = append(want, enqueueEvents(t, db, a, pad,
			sealpost.EventProcessed, sealpost.EventDelivered, sealpost.EventDeferred)...)
	}
	want = slices.DeleteFunc(want, func(p string) bool { return strings.Contains(p, `"event":"deferred"`) })

	c := &clock{}
	c.t = time.Now()
	p := newPoster(t, db, c)
	flush(t, p)
	var got []string
	for _, post := range rcv.received() {
		if len(post.Body) > MaxBodyBytes {
			t.Errorf("a post of %d bytes", len(post.Body))
		}
		for _, e := range decodeArray(t, post.Body) {
			got = append(got, string(e))
		}
	}
	if len(rcv.received()) < 2 || !slices.Equal(got, want) {
		t.Errorf("%d posts carried %d events, want the %d stored in order over at least 2 posts", len(rcv.received()), len(got), len(want))
	}

	// A receiver that never answers 2xx: given up on after MaxAge.
	dead := newReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	carol := storeAccount(t, db, "carol", dead.URL, nil)
	enqueueEvents(t, db, carol, "", sealpost.EventDelivered)
	p.MaxAge = time.Hour
	flush(t, p)
	c.Advance(30 * time.Minute)
	flush(t, p)
	if n := p.Stats().EventsGivenUp; n != 0 {
		t.Fatalf("gave up on %d events before MaxAge", n)
	}
	c.Advance(time.Hour)
	flush(t, p)
	if n := p.Stats().EventsGivenUp; n != 1 {
		t.Errorf("EventsGivenUp = %d, want 1", n)
	}
	if n := len(dead.received()); n != 3 {
		t.Errorf("dead receiver got %d posts, want 3", n)
	}
	if b, err := db.ClaimEventBatch(t.Context(), "check", c.Now().Add(24*time.Hour), time.Minute, 10); err != nil || b != nil {
		t.Errorf("outbox after giving up: %+v, %v; want empty", b, err)
	}
}
