package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

func TestPostsStoredPayloadsExactly(t *testing.T) {
	t.Parallel()
	c := newClock()
	store := newFakeStore(c)
	rcv := newReceiver(t, nil)
	store.setWebhook(1, allKinds(rcv.URL+"/hook"), nil)
	stored := []string{
		payload(sealpost.EventProcessed, 1),
		`{"email":"a@example.com","event":"delivered","n":2,   "custom":{"b":1,"a":[1,2]}}`,
		"{\"email\":\"x@example.com\",\"event\":\"bounce\",\"n\":3,\"raw\":\"\u2028 é\"}",
	}
	store.add(1, sealpost.EventProcessed, stored[0])
	store.add(1, sealpost.EventDelivered, stored[1])
	store.add(1, sealpost.EventBounce, stored[2])

	p := newPoster(t, store, c)
	flush(t, p)

	posts := rcv.received()
	if len(posts) != 1 {
		t.Fatalf("got %d posts, want 1", len(posts))
	}
	want := "[" + strings.Join(stored, ",") + "]"
	if got := string(posts[0].Body); got != want {
		t.Errorf("body:\n got %s\nwant %s", got, want)
	}
	for header, want := range map[string]string{
		"Content-Type": "application/json", "User-Agent": "sealpost-event-webhook",
	} {
		if got := posts[0].Header.Get(header); got != want {
			t.Errorf("%s = %q, want %q", header, got, want)
		}
	}
	if posts[0].Path != "/hook" {
		t.Errorf("posted to %q, want /hook", posts[0].Path)
	}
	if h := posts[0].Header.Get(SignatureHeader); h != "" {
		t.Errorf("unsigned webhook got a signature %q", h)
	}
	if left := store.waiting(1); len(left) != 0 {
		t.Errorf("%d events still waiting after a 200", len(left))
	}
	if s := p.Stats(); s.Posts != 1 || s.EventsPosted != 3 {
		t.Errorf("stats = %+v, want 1 post of 3 events", s)
	}
}

func TestOnlyWantedKindsArePosted(t *testing.T) {
	t.Parallel()
	kinds := []sealpost.EventKind{
		sealpost.EventProcessed, sealpost.EventDelivered, sealpost.EventDeferred,
		sealpost.EventBounce, sealpost.EventDropped,
	}
	tests := []struct {
		name string
		set  func(*sealpost.EventWebhookSettings)
		want []sealpost.EventKind
	}{
		{"all", func(*sealpost.EventWebhookSettings) {}, kinds},
		{"delivered and bounce", func(s *sealpost.EventWebhookSettings) {
			s.Processed, s.Deferred, s.Dropped = false, false, false
		}, []sealpost.EventKind{sealpost.EventDelivered, sealpost.EventBounce}},
		{"processed only", func(s *sealpost.EventWebhookSettings) {
			s.Delivered, s.Deferred, s.Bounce, s.Dropped = false, false, false, false
		}, []sealpost.EventKind{sealpost.EventProcessed}},
		{"dropped only", func(s *sealpost.EventWebhookSettings) {
			s.Processed, s.Delivered, s.Deferred, s.Bounce = false, false, false, false
		}, []sealpost.EventKind{sealpost.EventDropped}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClock()
			store := newFakeStore(c)
			rcv := newReceiver(t, nil)
			settings := allKinds(rcv.URL)
			tc.set(&settings)
			store.setWebhook(1, settings, nil)
			n := 0
			for range 2 {
				for _, k := range kinds {
					store.add(1, k, payload(k, n))
					n++
				}
			}
			flush(t, newPoster(t, store, c))

			var got []sealpost.EventKind
			for _, e := range rcv.accepted(t) {
				var v struct{ Event sealpost.EventKind }
				if err := json.Unmarshal(e, &v); err != nil {
					t.Fatal(err)
				}
				got = append(got, v.Event)
			}
			want := append(slices.Clone(tc.want), tc.want...)
			if !slices.Equal(got, want) {
				t.Errorf("posted kinds %v, want %v", got, want)
			}
			if left := store.waiting(1); len(left) != 0 {
				t.Errorf("%d events left unacked", len(left))
			}
		})
	}
}

func TestNothingPostedWhenWebhookOff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		set  func(s *sealpost.EventWebhookSettings)
	}{
		{"disabled", func(s *sealpost.EventWebhookSettings) { s.Enabled = false }},
		{"no url", func(s *sealpost.EventWebhookSettings) { s.URL = "" }},
		{"no kind", func(s *sealpost.EventWebhookSettings) {
			*s = sealpost.EventWebhookSettings{Enabled: true, URL: s.URL, Open: true, Click: true}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClock()
			store := newFakeStore(c)
			rcv := newReceiver(t, nil)
			settings := allKinds(rcv.URL)
			tc.set(&settings)
			store.setWebhook(1, settings, nil)
			store.add(1, sealpost.EventDelivered, payloads(sealpost.EventDelivered, 0, 5)...)
			p := newPoster(t, store, c)
			flush(t, p)
			if n := len(rcv.received()); n != 0 {
				t.Errorf("%d posts reached a webhook that is off", n)
			}
			if left := store.waiting(1); len(left) != 0 {
				t.Errorf("%d events left; they must be acked unposted", len(left))
			}
			if s := p.Stats(); s.EventsSkipped != 5 {
				t.Errorf("EventsSkipped = %d, want 5", s.EventsSkipped)
			}
		})
	}
}

func TestEventsOfAGoneAccountAreDropped(t *testing.T) {
	t.Parallel()
	c := newClock()
	store := newFakeStore(c)
	store.add(7, sealpost.EventDelivered, payload(sealpost.EventDelivered, 0))
	// The account exists in the outbox only: settings say ENOTFOUND.
	store.mu.Lock()
	store.accounts[7].settings = sealpost.EventWebhookSettings{}
	store.mu.Unlock()
	gone := &goneAccounts{fakeStore: store, gone: 7}
	flush(t, newPoster(t, gone, c))
	if left := store.waiting(7); len(left) != 0 {
		t.Errorf("%d events of a deleted account left waiting", len(left))
	}
}

type goneAccounts struct {
	*fakeStore
	gone int64
}

func (g *goneAccounts) EventWebhookSettings(ctx context.Context, id int64) (sealpost.EventWebhookSettings, error) {
	if id == g.gone {
		return sealpost.EventWebhookSettings{}, sealpost.Errorf(sealpost.ENOTFOUND, "account not found")
	}
	return g.fakeStore.EventWebhookSettings(ctx, id)
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	clients := map[string]*http.Client{
		"default client":           nil,
		"client that would follow": {Timeout: 5 * time.Second},
	}
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		for name, client := range clients {
			t.Run(fmt.Sprintf("%d %s", code, name), func(t *testing.T) {
				t.Parallel()
				target := newReceiver(t, nil)
				var hits int
				var mu sync.Mutex
				redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					hits++
					mu.Unlock()
					http.Redirect(w, r, target.URL+"/elsewhere", code)
				}))
				t.Cleanup(redirector.Close)

				c := newClock()
				store := newFakeStore(c)
				key, _, err := GenerateKey()
				if err != nil {
					t.Fatal(err)
				}
				store.setWebhook(1, allKinds(redirector.URL), key)
				store.add(1, sealpost.EventDelivered, payload(sealpost.EventDelivered, 1))
				p := newPoster(t, store, c)
				p.Client = client
				flush(t, p)

				if n := len(target.received()); n != 0 {
					t.Errorf("redirect target received %d posts", n)
				}
				mu.Lock()
				defer mu.Unlock()
				if hits != 1 {
					t.Errorf("webhook hit %d times, want 1", hits)
				}
				if left := store.waiting(1); len(left) != 1 {
					t.Errorf("%d events waiting, want the 1 to retry", len(left))
				}
				attempts, _, next := store.state(1)
				if attempts != 1 || !next.Equal(c.Now().Add(10*time.Second)) {
					t.Errorf("attempts %d next %v, want 1 and now+10s", attempts, next)
				}
			})
		}
	}
}

func TestFailedPostIsRetriedWithBackoffInOrder(t *testing.T) {
	t.Parallel()
	c := newClock()
	store := newFakeStore(c)
	rcv := newReceiver(t, func(n int) int {
		if n < 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	store.setWebhook(1, allKinds(rcv.URL), nil)
	store.add(1, sealpost.EventDelivered, payloads(sealpost.EventDelivered, 0, 3)...)

	var (
		mu       sync.Mutex
		attempts []int
	)
	p := newPoster(t, store, c)
	p.Backoff = func(a int) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, a)
		return time.Duration(a) * time.Minute
	}

	flush(t, p) // fails: 500
	if n, _, next := store.state(1); n != 1 || !next.Equal(c.Now().Add(time.Minute)) {
		t.Fatalf("after one 500: attempts %d next %v, want 1 and now+1m", n, next)
	}
	// Events stored while failing queue behind the failing ones.
	store.add(1, sealpost.EventDelivered, payloads(sealpost.EventDelivered, 3, 5)...)
	flush(t, p) // not due yet
	if n := len(rcv.received()); n != 1 {
		t.Fatalf("posted %d times before the backoff ran out, want 1", n)
	}
	c.Advance(time.Minute)
	flush(t, p) // fails again: 500
	if n, _, next := store.state(1); n != 2 || !next.Equal(c.Now().Add(2*time.Minute)) {
		t.Fatalf("after two 500s: attempts %d next %v, want 2 and now+2m", n, next)
	}
	c.Advance(2 * time.Minute)
	flush(t, p) // 200

	var got []int
	for _, e := range rcv.accepted(t) {
		got = append(got, seqOf(t, e))
	}
	if want := []int{0, 1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("accepted events %v, want %v", got, want)
	}
	if !slices.Equal(attempts, []int{1, 2}) {
		t.Errorf("Backoff called with %v, want [1 2]", attempts)
	}
	if n, since, _ := store.state(1); n != 0 || !since.IsZero() || len(store.waiting(1)) != 0 {
		t.Errorf("after the 200: attempts %d failing since %v, %d waiting; want all cleared", n, since, len(store.waiting(1)))
	}
}

func TestGiveUpAfterMaxAge(t *testing.T) {
	t.Parallel()
	c := newClock()
	store := newFakeStore(c)
	rcv := newReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	store.setWebhook(1, allKinds(rcv.URL), nil)
	store.add(1, sealpost.EventDelivered, payloads(sealpost.EventDelivered, 0, 3)...)

	p := newPoster(t, store, c)
	p.MaxAge = time.Hour
	p.Backoff = func(int) time.Duration { return 20 * time.Minute }

	for i := range 3 { // fails at 0, 20 and 40 minutes: kept
		flush(t, p)
		if left := len(store.waiting(1)); left != 3 {
			t.Fatalf("after %d failures %d events left, want 3", i+1, left)
		}
		c.Advance(20 * time.Minute)
	}
	flush(t, p) // fails at 60 minutes: given up
	if left := len(store.waiting(1)); left != 0 {
		t.Errorf("%d events left after failing for MaxAge, want 0", left)
	}
	if n := len(rcv.received()); n != 4 {
		t.Errorf("%d posts, want 4", n)
	}
	if s := p.Stats(); s.EventsGivenUp != 3 || s.FailedPosts != 4 {
		t.Errorf("stats %+v, want 3 given up after 4 failed posts", s)
	}

	// Events that have waited MaxAge already (a long outage behind a
	// backlog) are given up on at their first failure.
	store.add(1, sealpost.EventDelivered, payload(sealpost.EventDelivered, 9))
	c.Advance(time.Hour)
	flush(t, p)
	if left := len(store.waiting(1)); left != 0 {
		t.Errorf("an event older than MaxAge was kept after failing")
	}
}

func TestBatchesAreSplitAtMaxBatch(t *testing.T) {
	t.Parallel()
	c := newClock()
	store := newFakeStore(c)
	rcv := newReceiver(t, nil)
	store.setWebhook(1, allKinds(rcv.URL), nil)
	store.add(1, sealpost.EventDelivered, payloads(sealpost.EventDelivered, 0, 25)...)
	p := newPoster(t, store, c)
	p.MaxBatch = 10
	p.Workers = 1
	flush(t, p)

	var sizes, seq []int
	for _, post := range rcv.received() {
		events := decodeArray(t, post.Body)
		sizes = append(sizes, len(events))
		for _, e := range events {
			seq = append(seq, seqOf(t, e))
		}
	}
	if want := []int{10, 10, 5}; !slices.Equal(sizes, want) {
		t.Errorf("post sizes %v, want %v", sizes, want)
	}
	if !slices.IsSorted(seq) || len(seq) != 25 {
		t.Errorf("posted events %v, want 0..24 in order", seq)
	}
}

func TestBodiesAreCappedAt768KB(t *testing.T) {
	t.Parallel()
	c := newClock()
	store := newFakeStore(c)
	rcv := newReceiver(t, nil)
	store.setWebhook(1, allKinds(rcv.URL), nil)
	big := strings.Repeat("é", 50_000) // 100 kB each
	for n := range 20 {
		kind := sealpost.EventDelivered
		if n%5 == 4 {
			kind = sealpost.EventKind("open") // not a kind sealpost posts
		}
		store.add(1, kind, fmt.Sprintf(`{"event":%q,"n":%d,"pad":"%s"}`, kind, n, big))
	}
	// One event over the cap on its own still goes, alone.
	huge := fmt.Sprintf(`{"event":"delivered","n":20,"pad":"%s"}`, strings.Repeat("x", MaxBodyBytes))
	store.add(1, sealpost.EventDelivered, huge)
	store.add(1, sealpost.EventDelivered, `{"event":"delivered","n":21}`)

	p := newPoster(t, store, c)
	flush(t, p)

	var seq []int
	for i, post := range rcv.received() {
		events := decodeArray(t, post.Body)
		if len(post.Body) > MaxBodyBytes && len(events) > 1 {
			t.Errorf("post %d: %d bytes in %d events, over the cap", i, len(post.Body), len(events))
		}
		for _, e := range events {
			seq = append(seq, seqOf(t, e))
		}
	}
	var want []int
	for n := range 22 {
		if n < 20 && n%5 == 4 {
			continue
		}
		want = append(want, n)
	}
	if !slices.Equal(seq, want) {
		t.Errorf("posted %v, want %v", seq, want)
	}
	if n := len(rcv.received()); n < 3 {
		t.Errorf("%d posts carried 1.6 MB: not split", n)
	}
	if left := store.waiting(1); len(left) != 0 {
		t.Errorf("%d events left", len(left))
	}
}
