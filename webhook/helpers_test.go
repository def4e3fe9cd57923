package webhook

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// receiver is an Event Webhook endpoint that records what reaches it.
type receiver struct {
	*httptest.Server
	// status answers the n-th post (0-based); nil answers 200.
	status func(n int) int
	delay  time.Duration

	mu          sync.Mutex
	posts       []receivedPost
	inflight    int
	maxInflight int
}

type receivedPost struct {
	Path   string
	Header http.Header
	Body   []byte
	Status int
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	t.Helper()
	r := &receiver{status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	n := len(r.posts)
	code := http.StatusOK
	if r.status != nil {
		code = r.status(n)
	}
	r.posts = append(r.posts, receivedPost{Path: req.URL.Path, Header: req.Header.Clone(), Body: body, Status: code})
	r.inflight++
	r.maxInflight = max(r.maxInflight, r.inflight)
	r.mu.Unlock()
	time.Sleep(r.delay)
	r.mu.Lock()
	r.inflight--
	r.mu.Unlock()
	w.WriteHeader(code)
}

func (r *receiver) received() []receivedPost {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedPost(nil), r.posts...)
}

// accepted returns the events of the posts answered 2xx, in arrival order.
func (r *receiver) accepted(t *testing.T) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	for _, p := range r.received() {
		if p.Status/100 == 2 {
			all = append(all, decodeArray(t, p.Body)...)
		}
	}
	return all
}

func decodeArray(t *testing.T, body []byte) []json.RawMessage {
	t.Helper()
	var events []json.RawMessage
	if err := json.Unmarshal(body, &events); err != nil {
		t.Fatalf("post body is not a JSON array: %v: %.200q", err, body)
	}
	return events
}

// seqOf returns the "n" member of an event built by payload.
func seqOf(t *testing.T, e json.RawMessage) int {
	t.Helper()
	var v struct{ N int }
	if err := json.Unmarshal(e, &v); err != nil {
		t.Fatalf("event %s: %v", e, err)
	}
	return v.N
}

// payload is an event as stored: spacing and non-ASCII text kept as they
// are, which a poster that re-encoded would change.
func payload(kind sealpost.EventKind, n int) string {
	return fmt.Sprintf(`{"email":"rcpt%d@exämple.com", "event":%q,"n":%d,"note":"grüße ✓ 😀 中文 \u2028"}`, n, kind, n)
}

func payloads(kind sealpost.EventKind, from, to int) []string {
	var ps []string
	for n := from; n < to; n++ {
		ps = append(ps, payload(kind, n))
	}
	return ps
}

func allKinds(url string) sealpost.EventWebhookSettings {
	return sealpost.EventWebhookSettings{
		Enabled: true, URL: url,
		Processed: true, Delivered: true, Deferred: true, Bounce: true, Dropped: true,
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newPoster returns a Poster on store whose time is c and whose retries
// wait a fixed 10 s.
func newPoster(t *testing.T, store Store, c *clock) *Poster {
	return &Poster{
		Store:        store,
		Owner:        "node-a",
		Destinations: loopback(),
		Now:          c.Now,
		Backoff:      func(int) time.Duration { return 10 * time.Second },
		Logger:       testLogger(t),
	}
}

// loopback allows the test receivers, which listen on loopback addresses
// that the default rule refuses.
func loopback() sealpost.Destinations {
	return sealpost.AllowDestinations(netip.MustParsePrefix("127.0.0.0/8"))
}

func flush(t *testing.T, p *Poster) {
	t.Helper()
	if err := p.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}
