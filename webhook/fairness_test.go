package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/postgres/pgtest"
)

// healthyBound is the bound the fairness promise sets: with receivers that hang, a
// healthy account's events still arrive within this long of being recorded.
// Under -race on a busy 2-core machine a healthy account with nothing in
// its way already takes over 2 s now and then (the store calls are CPU
// bound there), so the race build allows five times as long; that still
// fails a poster that queues the account behind the hanging posts, which
// takes at least one 10 s timeout.
func healthyBound() time.Duration {
	if raceDetector {
		return 10 * time.Second
	}
	return 2 * time.Second
}

// Not parallel: the bound is on time, and the package's other tests would
// take CPU from the poster (under -race, SQLite's claims are CPU-bound).
func TestSQLiteHangingReceiversDoNotDelayOthers(t *testing.T) {
	testHangingReceiversDoNotDelayOthers(t, openSQLite(t))
}

func TestPostgresHangingReceiversDoNotDelayOthers(t *testing.T) {
	testHangingReceiversDoNotDelayOthers(t, openPostgres(t, pgtest.URL(t)))
}

// hangingReceiver accepts posts and never answers them; it counts them.
type hangingReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	posts int
}

func newHangingReceiver(t *testing.T, release <-chan struct{}) *hangingReceiver {
	h := &hangingReceiver{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.posts++
		h.mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done(): // the poster gave up on the post
		}
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hangingReceiver) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.posts
}

// arrivals is a receiver that notes when each event reached it.
type arrivals struct {
	mu sync.Mutex
	at map[string]time.Time // payload as posted
}

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var events []json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&events); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	a.mu.Lock()
	for _, e := range events {
		if _, seen := a.at[string(e)]; !seen {
			a.at[string(e)] = now
		}
	}
	a.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (a *arrivals) arrived(payload string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.at[payload]
	return at, ok
}

// testHangingReceiversDoNotDelayOthers is the hanging-receivers attack: 50 accounts
// whose webhook receivers accept the connection and never answer, their
// events recorded before a healthy account's so that oldest-first would
// serve them first. With the default workers, timeout and backoff, the
// healthy account's events must arrive within healthyBound of being
// recorded: on the first round (no receiver has failed yet), while the
// hanging posts time out, and once the hanging accounts back off and are
// retried.
func testHangingReceiversDoNotDelayOthers(t *testing.T, db sealpost.Store) {
	const (
		hanging = 50
		ticks   = 17 // a healthy event a second: past the 10 s timeout and the first retries
	)
	release := make(chan struct{})
	var stuck []*hangingReceiver
	var stuckAccounts []*sealpost.Account
	for i := range hanging {
		h := newHangingReceiver(t, release)
		stuck = append(stuck, h)
		stuckAccounts = append(stuckAccounts, storeAccount(t, db, fmt.Sprintf("hanging%d", i), h.URL, nil))
	}
	// Registered after the servers' Close, so it runs before them: Close
	// waits for the handlers.
	t.Cleanup(func() { close(release) })
	healthyRcv := &arrivals{at: map[string]time.Time{}}
	healthySrv := httptest.NewServer(healthyRcv)
	t.Cleanup(healthySrv.Close)
	healthy := storeAccount(t, db, "healthy", healthySrv.URL, nil)

	p := &Poster{Store: db, Owner: "node-a", Destinations: loopback(), Client: NewClient(loopback()), Logger: testLogger(t)}
	for _, a := range stuckAccounts {
		enqueueEvents(t, db, a, "", sealpost.EventProcessed)
	}
	bound := healthyBound()
	start := time.Now()
	var delays []time.Duration
	for tick := range ticks {
		if wait := time.Until(start.Add(time.Duration(tick) * time.Second)); wait > 0 {
			time.Sleep(wait)
		}
		// The hanging accounts keep sending too.
		enqueueEvents(t, db, stuckAccounts[tick%hanging], "", sealpost.EventProcessed)
		recorded := time.Now() // before the commit: the delay measured is an upper bound
		payloads := enqueueEvents(t, db, healthy, "", sealpost.EventProcessed, sealpost.EventDelivered)
		if tick == 0 {
			// Started only now, the poster finds all 50 hanging accounts
			// ahead of the healthy one: the worst first round.
			defer startRun(t, p)()
		}
		for _, pl := range payloads {
			at, ok := waitArrival(healthyRcv, pl, recorded.Add(bound+5*time.Second))
			if !ok {
				t.Fatalf("tick %d (+%v): a healthy event had not arrived %v after it was recorded; arrived before: %v",
					tick, recorded.Sub(start).Round(time.Millisecond), bound+5*time.Second, delays)
			}
			if tick == 0 {
				// However slow the machine, the first round must not have
				// waited for any hanging post to time out.
				if failed := p.Stats().FailedPosts; failed != 0 {
					t.Errorf("the healthy account's first events arrived after %d hanging posts had timed out, want 0", failed)
				}
			}
			delays = append(delays, at.Sub(recorded))
		}
	}
	// The first tick's two events meet 50 receivers no post has failed on
	// yet; the later ones meet them timing out, backing off and retried.
	firstRound, later := slices.Max(delays[:2]), slices.Max(delays[2:])
	slices.Sort(delays)
	t.Logf("%d healthy events beside %d hanging receivers: delay median %v, max %v (first round %v, later %v); stats %+v",
		len(delays), hanging, delays[len(delays)/2].Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond),
		firstRound.Round(time.Millisecond), later.Round(time.Millisecond), p.Stats())
	if worst := delays[len(delays)-1]; worst > bound {
		t.Errorf("a healthy account's event arrived %v after it was recorded, want at most %v (delays %v)", worst, bound, delays)
	}
	// Each hanging endpoint is tried, and then backs off on its own: in
	// the test's 17 s, its first post times out after 10 s and the retry
	// waits 4 to 5 s more.
	for i, h := range stuck {
		if n := h.count(); n < 1 || n > 2 {
			t.Errorf("hanging receiver %d got %d posts, want 1 or 2 (tried, then backing off)", i, n)
		}
	}
}

func waitArrival(a *arrivals, payload string, deadline time.Time) (time.Time, bool) {
	for {
		if at, ok := a.arrived(payload); ok {
			return at, true
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFailingAccountsHoldHalfThePosts checks the bound on accounts whose
// last post failed: however many of their receivers hang, they hold at most
// half of MaxPosts, and a healthy account's events go out beside them.
func TestFailingAccountsHoldHalfThePosts(t *testing.T) {
	t.Parallel()
	const (
		failing  = 6
		maxPosts = 4
	)
	c := &clock{} // real time
	store := newFakeStore(c)
	release := make(chan struct{})
	var stuck []*hangingReceiver
	for i := range failing {
		h := newHangingReceiver(t, release)
		stuck = append(stuck, h)
		id := int64(i + 1)
		store.setWebhook(id, allKinds(h.URL), nil)
		store.add(id, sealpost.EventDelivered, payload(sealpost.EventDelivered, i))
		store.mu.Lock()
		store.account(id).attempts = 1 // failed before, and due again
		store.mu.Unlock()
	}
	t.Cleanup(func() { close(release) })
	rcv := newReceiver(t, nil)
	const healthyID = failing + 1
	store.setWebhook(healthyID, allKinds(rcv.URL), nil)

	p := &Poster{Store: store, Owner: "node-a", Destinations: loopback(), Client: NewClient(loopback()), Workers: 1, MaxPosts: maxPosts,
		Interval: 10 * time.Millisecond, Logger: testLogger(t)}
	defer startRun(t, p)()

	inFlight := func() int {
		n := 0
		for _, h := range stuck {
			n += h.count()
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for inFlight() < maxPosts/2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// With the failing accounts' share of the lane taken, a healthy
	// account's events go out on the worker at once.
	for n := range 3 {
		store.add(healthyID, sealpost.EventDelivered, payload(sealpost.EventDelivered, n))
		for len(rcv.accepted(t)) <= n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if got := len(rcv.accepted(t)); got != 3 {
		t.Errorf("healthy account: %d events accepted beside %d hanging failing accounts, want 3", got, failing)
	}
	if got := inFlight(); got != maxPosts/2 {
		t.Errorf("%d posts to failing accounts in flight, want %d (half of MaxPosts %d)", got, maxPosts/2, maxPosts)
	}
	if st := p.Stats(); st.FailingInFlight != maxPosts/2 || st.InFlight < st.FailingInFlight {
		t.Errorf("Stats: InFlight %d, FailingInFlight %d; want FailingInFlight %d, InFlight at least that", st.InFlight, st.FailingInFlight, maxPosts/2)
	}
}

// startRun runs p until the returned stop is called.
func startRun(t *testing.T, p *Poster) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}
