package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// TestPostsAreRecorded: each post's outcome is kept for the account — when,
// the URL's host only, the events, the status or the failure in words —
// after its batch is settled.
func TestPostsAreRecorded(t *testing.T) {
	t.Parallel()
	db := openSQLite(t)
	rcv := newReceiver(t, func(n int) int {
		if n == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	// The path and query stand for a receiver's secret, which no record
	// may keep.
	a := storeAccount(t, db, "alice", rcv.URL+"/hook?token=s3cret", nil)
	enqueueEvents(t, db, a, "", sealpost.EventProcessed, sealpost.EventDelivered)
	c := &clock{}
	c.t = time.Now()
	p := newPoster(t, db, c)
	p.Recorder = db
	flush(t, p) // fails
	c.Advance(10 * time.Second)
	flush(t, p) // taken

	posts, err := db.EventWebhookPosts(t.Context(), a.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(posts) != 2 {
		t.Fatalf("recorded %d posts, want 2: %+v", len(posts), posts)
	}
	host := strings.TrimPrefix(rcv.URL, "http://")
	ok, failed := posts[0], posts[1]
	if ok.Host != host || ok.Events != 2 || ok.Status != http.StatusNoContent || ok.Error != "" || ok.Test {
		t.Errorf("the post taken was recorded as %+v", ok)
	}
	if failed.Host != host || failed.Events != 2 || failed.Status != http.StatusServiceUnavailable || failed.Error == "" {
		t.Errorf("the failed post was recorded as %+v", failed)
	}
	if !ok.At.After(failed.At) || ok.Duration <= 0 || ok.Duration > time.Minute {
		t.Errorf("times: failed at %v, taken at %v after %v", failed.At, ok.At, ok.Duration)
	}
}

// failingRecorder fails every record.
type failingRecorder struct {
	calls chan sealpost.EventWebhookPost
}

func (f failingRecorder) RecordEventWebhookPost(_ context.Context, p sealpost.EventWebhookPost) error {
	f.calls <- p
	return errors.New("the database is gone")
}

// TestRecordFailureDoesNotFailThePost: a record that cannot be kept is
// logged; the batch is acknowledged all the same.
func TestRecordFailureDoesNotFailThePost(t *testing.T) {
	t.Parallel()
	db := openSQLite(t)
	rcv := newReceiver(t, nil)
	a := storeAccount(t, db, "bob", rcv.URL, nil)
	enqueueEvents(t, db, a, "", sealpost.EventProcessed)
	c := &clock{}
	c.t = time.Now()
	p := newPoster(t, db, c)
	rec := failingRecorder{calls: make(chan sealpost.EventWebhookPost, 10)}
	p.Recorder = rec
	flush(t, p)
	if len(rec.calls) != 1 {
		t.Fatalf("%d records tried, want 1", len(rec.calls))
	}
	if b, err := db.ClaimEventBatch(t.Context(), "check", c.Now().Add(time.Hour), time.Minute, 10); err != nil || b != nil {
		t.Errorf("outbox after the post: %v, %v; want empty", b, err)
	}
	if s := p.Stats(); s.Posts != 1 || s.FailedPosts != 0 {
		t.Errorf("stats %+v; want one post taken", s)
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

var _ net.Error = timeoutError{}

func TestPostFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		err    error
		want   string
	}{
		{"taken", 200, nil, ""},
		{"5xx", 503, &StatusError{Code: 503}, "answered with a status other than 2xx"},
		{"redirect", 302, &StatusError{Code: 302}, "answered with a redirect, which is not followed"},
		{"refused destination", 0, sealpost.ErrDestinationRefused, "destination address not allowed"},
		{"deadline", 0, context.DeadlineExceeded, "no answer in time"},
		{"net timeout", 0, timeoutError{}, "no answer in time"},
		// The server's view of the network (here, a private address and
		// a refused port) is not the account's business.
		{"connection refused", 0, errors.New("posting: dial tcp 10.0.0.1:8080: connect: connection refused"), "no HTTP answer (connection or TLS failed)"},
	} {
		if got := PostFailure(tc.status, tc.err); got != tc.want {
			t.Errorf("%s: PostFailure = %q, want %q", tc.name, got, tc.want)
		}
	}
}
