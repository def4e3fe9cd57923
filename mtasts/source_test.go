package mtasts_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/internal/testclock"
	"github.com/sealpost/sealpost/mtasts"
)

var _ delivery.MTASTSSource = (*mtasts.Source)(nil)

// world is a domain's DNS and policy host, and the cache, as fakes: what
// the Source sees, and what it asked.
type world struct {
	*testclock.Clock
	mu      sync.Mutex
	txt     map[string][]string // by name
	txtErr  error
	policy  map[string]sealpost.MTASTSPolicy // by domain
	failing map[string]error                 // by domain
	fetches map[string]int
	block   chan struct{} // when set, fetches wait for it

	cache    map[string]sealpost.CachedMTASTSPolicy
	getErr   error
	putErr   error
	putCalls int
}

func newWorld() *world {
	return &world{Clock: testclock.New(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)), txt: map[string][]string{},
		policy: map[string]sealpost.MTASTSPolicy{}, failing: map[string]error{}, fetches: map[string]int{},
		cache: map[string]sealpost.CachedMTASTSPolicy{}}
}

func (w *world) set(f func(w *world)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w)
}

func (w *world) LookupTXT(_ context.Context, name string) ([]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.txt[name], w.txtErr
}

func (w *world) FetchMTASTSPolicy(ctx context.Context, domain string) (sealpost.MTASTSPolicy, error) {
	w.mu.Lock()
	w.fetches[domain]++
	block := w.block
	w.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return sealpost.MTASTSPolicy{}, ctx.Err()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.failing[domain]; err != nil {
		return sealpost.MTASTSPolicy{}, err
	}
	p, ok := w.policy[domain]
	if !ok {
		return sealpost.MTASTSPolicy{}, errors.New("fetching the MTA-STS policy: no such host")
	}
	return p, nil
}

func (w *world) CachedMTASTSPolicy(_ context.Context, domain string) (*sealpost.CachedMTASTSPolicy, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.getErr != nil {
		return nil, w.getErr
	}
	p, ok := w.cache[domain]
	if !ok {
		return nil, sealpost.Errorf(sealpost.ENOTFOUND, "not cached")
	}
	return &p, nil
}

func (w *world) PutMTASTSPolicy(_ context.Context, p sealpost.CachedMTASTSPolicy) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.putCalls++
	if w.putErr != nil {
		return w.putErr
	}
	if old, ok := w.cache[p.Domain]; !ok || !old.FetchedAt.After(p.FetchedAt) {
		w.cache[p.Domain] = p
	}
	return nil
}

func (w *world) fetchCount(domain string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fetches[domain]
}

func (w *world) totalFetches() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.fetches {
		n += c
	}
	return n
}

func (w *world) cached(domain string) (sealpost.CachedMTASTSPolicy, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.cache[domain]
	return p, ok
}

// publish sets domain's record (id "" removes it) and policy.
func (w *world) publish(domain, id string, p sealpost.MTASTSPolicy) {
	w.set(func(w *world) {
		if id == "" {
			delete(w.txt, "_mta-sts."+domain)
		} else {
			w.txt["_mta-sts."+domain] = []string{"v=STSv1; id=" + id, "unrelated"}
		}
		w.policy[domain] = p
	})
}

func (w *world) source() *mtasts.Source {
	return &mtasts.Source{Resolver: w, Fetcher: w, Cache: w, Now: w.Now}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func enforce(maxAge int64, mx ...string) sealpost.MTASTSPolicy {
	return sealpost.MTASTSPolicy{Mode: "enforce", MX: mx, MaxAge: maxAge}
}

const day = 86400

// policyCall checks one call of Policy: the policy (nil for none), and how
// many fetches it took.
func policyCall(t *testing.T, w *world, s *mtasts.Source, domain string, want *sealpost.MTASTSPolicy, wantFetches int) {
	t.Helper()
	before := w.totalFetches()
	got, err := s.Policy(t.Context(), domain)
	if err != nil {
		t.Fatalf("Policy(%s): %v", domain, err)
	}
	samePolicy(t, got, want)
	if n := w.totalFetches() - before; n != wantFetches {
		t.Errorf("Policy(%s) fetched %d times, want %d", domain, n, wantFetches)
	}
}

func samePolicy(t *testing.T, got, want *sealpost.MTASTSPolicy) {
	t.Helper()
	if (got == nil) != (want == nil) || (got != nil && (got.Mode != want.Mode || got.MaxAge != want.MaxAge || !slices.Equal(got.MX, want.MX))) {
		t.Errorf("policy %+v, want %+v", got, want)
	}
}

func TestPolicyFetchedAndCached(t *testing.T) {
	t.Parallel()
	w := newWorld()
	p := enforce(7*day, "mx1.example.com", "*.example.net")
	w.publish("example.com", "20260101", p)
	s := w.source()

	policyCall(t, w, s, "Example.COM.", &p, 1)
	c, ok := w.cached("example.com")
	if !ok || c.ID != "20260101" || !c.FetchedAt.Equal(w.Now()) || !c.ExpiresAt.Equal(w.Now().Add(7*24*time.Hour)) || c.Policy.Mode != "enforce" {
		t.Fatalf("cached %+v, %v; want id 20260101 fetched now, expiring in 7 days", c, ok)
	}
	w.Add(time.Hour)
	policyCall(t, w, s, "example.com", &p, 0)

	// Another node shares the database: it answers from it, fetching nothing.
	policyCall(t, w, w.source(), "example.com", &p, 0)
}

func TestPolicyRefetches(t *testing.T) {
	t.Parallel()
	v1 := enforce(2*day, "mx1.example.com")
	v2 := enforce(2*day, "mx2.example.com")
	tests := []struct {
		name   string
		change func(w *world)
		want   sealpost.MTASTSPolicy
	}{
		{"id changed", func(w *world) { w.publish("example.com", "2", v2) }, v2},
		{"expired", func(w *world) { w.Add(2*24*time.Hour + time.Second); w.publish("example.com", "1", v2) }, v2},
		// RFC 8461 3.3: refreshed before it expires, daily, id unchanged.
		{"a day old", func(w *world) { w.Add(24 * time.Hour); w.publish("example.com", "1", v2) }, v2},
		{"not yet a day old", func(w *world) { w.Add(23 * time.Hour); w.publish("example.com", "1", v2) }, v1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld()
			w.publish("example.com", "1", v1)
			s := w.source()
			policyCall(t, w, s, "example.com", &v1, 1)
			w.Add(2 * time.Minute) // past the reuse of a fresh fetch
			tt.change(w)
			fetches := 1
			if tt.want.MX[0] == v1.MX[0] {
				fetches = 0
			}
			policyCall(t, w, s, "example.com", &tt.want, fetches)
			if c, _ := w.cached("example.com"); c.Policy.MX[0] != tt.want.MX[0] {
				t.Errorf("cached %+v, want %+v", c.Policy, tt.want)
			}
		})
	}
}

func TestPolicyFetchFails(t *testing.T) {
	t.Parallel()
	old := enforce(7*day, "mx1.example.com")
	t.Run("nothing cached: as though none", func(t *testing.T) {
		t.Parallel()
		w := newWorld()
		w.publish("example.com", "1", old)
		w.set(func(w *world) { w.failing["example.com"] = errors.New("connection refused") })
		s := w.source()
		policyCall(t, w, s, "example.com", nil, 1)
		// RFC 8461 3.3: no new attempt for the same id within five minutes.
		w.Add(4 * time.Minute)
		policyCall(t, w, s, "example.com", nil, 0)
		w.Add(time.Minute)
		w.set(func(w *world) { delete(w.failing, "example.com") })
		policyCall(t, w, s, "example.com", &old, 1)
	})
	t.Run("cached: the cached policy applies", func(t *testing.T) {
		t.Parallel()
		w := newWorld()
		w.publish("example.com", "1", old)
		s := w.source()
		policyCall(t, w, s, "example.com", &old, 1)
		w.Add(time.Hour)
		w.publish("example.com", "2", enforce(day, "mx2.example.com"))
		w.set(func(w *world) { w.failing["example.com"] = errors.New("certificate signed by unknown authority") })
		policyCall(t, w, s, "example.com", &old, 1)
		policyCall(t, w, s, "example.com", &old, 0)
		// Past its expiry the old policy no longer applies.
		w.Add(7 * 24 * time.Hour)
		policyCall(t, w, s, "example.com", nil, 1)
	})
}

func TestPolicyWithoutRecord(t *testing.T) {
	t.Parallel()
	p := enforce(2*day, "mx1.example.com")
	w := newWorld()
	s := w.source()
	policyCall(t, w, s, "plain.example", nil, 0)

	w.publish("example.com", "1", p)
	policyCall(t, w, s, "example.com", &p, 1)
	// RFC 8461 3.1: a record gone, or unusable, does not remove the cached
	// policy before it expires; nothing is fetched.
	for _, txt := range [][]string{nil, {"v=STSv1; id=2", "v=STSv1; id=3"}, {"v=STSv1; id=not valid"}} {
		w.set(func(w *world) { w.txt["_mta-sts.example.com"] = txt })
		policyCall(t, w, s, "example.com", &p, 0)
	}
	w.set(func(w *world) { w.txtErr = errors.New("SERVFAIL") })
	policyCall(t, w, s, "example.com", &p, 0)
	w.Add(2 * 24 * time.Hour)
	policyCall(t, w, s, "example.com", nil, 0)
	w.set(func(w *world) { w.txtErr = nil; delete(w.txt, "_mta-sts.example.com") })
	policyCall(t, w, s, "example.com", nil, 0)
}

func TestPolicyModes(t *testing.T) {
	t.Parallel()
	w := newWorld()
	s := w.source()
	testingMode := sealpost.MTASTSPolicy{Mode: "testing", MX: []string{"mx.example.com"}, MaxAge: day}
	w.publish("example.com", "1", testingMode)
	policyCall(t, w, s, "example.com", &testingMode, 1)

	// A none policy replaces an enforce one, and requires nothing.
	w.publish("example.org", "1", enforce(30*day, "mx.example.org"))
	policyCall(t, w, s, "example.org", &sealpost.MTASTSPolicy{Mode: "enforce", MX: []string{"mx.example.org"}, MaxAge: 30 * day}, 1)
	w.Add(time.Hour)
	w.publish("example.org", "2", sealpost.MTASTSPolicy{Mode: "none", MaxAge: day})
	policyCall(t, w, s, "example.org", nil, 1)
	policyCall(t, w, s, "example.org", nil, 0)
	if c, _ := w.cached("example.org"); c.Policy.Mode != "none" || c.ID != "2" {
		t.Errorf("cached %+v, want the none policy", c)
	}
}

// TestPolicyMaxAgeZero: a policy with max_age 0 applies to the delivery it
// was fetched for; a burst of deliveries shares one fetch all the same.
func TestPolicyMaxAgeZero(t *testing.T) {
	t.Parallel()
	w := newWorld()
	s := w.source()
	p := enforce(0, "mx.example.com")
	w.publish("example.com", "1", p)
	policyCall(t, w, s, "example.com", &p, 1)
	w.Add(30 * time.Second)
	policyCall(t, w, s, "example.com", &p, 0)
	w.Add(31 * time.Second)
	policyCall(t, w, s, "example.com", &p, 1)
}

func TestCacheFailuresAreErrors(t *testing.T) {
	t.Parallel()
	p := enforce(day, "mx.example.com")
	broken := errors.New("database unavailable")
	tests := []struct {
		name       string
		breakCache func(w *world)
	}{
		{"read", func(w *world) { w.getErr = broken }},
		{"write", func(w *world) { w.putErr = broken }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld()
			w.publish("example.com", "1", p)
			w.set(tt.breakCache)
			s := w.source()
			if got, err := s.Policy(t.Context(), "example.com"); !errors.Is(err, broken) {
				t.Errorf("Policy = %+v, %v; want the cache's error", got, err)
			}
			if tt.name == "write" {
				if got, err := s.Refresh(t.Context(), "example.com"); !errors.Is(err, broken) {
					t.Errorf("Refresh = %+v, %v; want the cache's error", got, err)
				}
				// A policy the cache lost is fetched again once it works.
				w.set(func(w *world) { w.putErr = nil })
				policyCall(t, w, s, "example.com", &p, 1)
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	v1 := enforce(7*day, "mx1.example.com")
	v2 := enforce(7*day, "mx2.example.com")
	w := newWorld()
	s := w.source()
	w.publish("example.com", "1", v1)
	policyCall(t, w, s, "example.com", &v1, 1)

	// The policy changed without a new id: only a fetch past the cache sees it.
	w.Add(2 * time.Minute)
	w.publish("example.com", "1", v2)
	got, err := s.Refresh(t.Context(), "example.com")
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	samePolicy(t, got, &v2)
	if c, _ := w.cached("example.com"); c.Policy.MX[0] != "mx2.example.com" || w.fetchCount("example.com") != 2 {
		t.Errorf("after Refresh: cached %+v, %d fetches; want v2 stored, 2 fetches", c.Policy, w.fetchCount("example.com"))
	}
	// Deliveries failing together refresh once.
	if _, err := s.Refresh(t.Context(), "example.com"); err != nil || w.fetchCount("example.com") != 2 {
		t.Errorf("second Refresh: %v, %d fetches; want the first's answer", err, w.fetchCount("example.com"))
	}

	w.Add(2 * time.Minute)
	w.set(func(w *world) { w.failing["example.com"] = errors.New("timeout") })
	if got, err := s.Refresh(t.Context(), "example.com"); err == nil {
		t.Errorf("Refresh with the fetch failing = %+v, want an error", got)
	}
	w.set(func(w *world) { delete(w.failing, "example.com"); w.txtErr = errors.New("SERVFAIL") })
	if got, err := s.Refresh(t.Context(), "example.com"); err == nil {
		t.Errorf("Refresh with the record lookup failing = %+v, want an error", got)
	}
	// With the record gone there is no new policy: the cached one holds.
	w.set(func(w *world) { w.txtErr = nil; delete(w.txt, "_mta-sts.example.com") })
	got, err = s.Refresh(t.Context(), "example.com")
	if err != nil {
		t.Fatalf("Refresh without a record: %v", err)
	}
	samePolicy(t, got, &v2)
}

// TestOneFetchAtATime: concurrent deliveries to a domain wait for one
// fetch; one that gives up does not fail the others.
func TestOneFetchAtATime(t *testing.T) {
	t.Parallel()
	w := newWorld()
	p := enforce(day, "mx.example.com")
	w.publish("example.com", "1", p)
	block := make(chan struct{})
	w.set(func(w *world) { w.block = block })
	s := w.source()

	impatient, cancel := context.WithCancel(t.Context())
	impatientErr := make(chan error, 1)
	go func() {
		_, err := s.Policy(impatient, "example.com")
		impatientErr <- err
	}()
	const callers = 8
	var wg sync.WaitGroup
	results := make([]*sealpost.MTASTSPolicy, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { results[i], errs[i] = s.Policy(t.Context(), "example.com") })
	}
	// Every caller is waiting once the fetch started and the impatient one
	// gave up; the fetch itself waits for block.
	deadline := time.Now().Add(30 * time.Second)
	for w.fetchCount("example.com") == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-impatientErr; !errors.Is(err, context.Canceled) {
		t.Errorf("the caller that gave up: %v, want context.Canceled", err)
	}
	close(block)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		samePolicy(t, results[i], &p)
	}
	if n := w.fetchCount("example.com"); n != 1 {
		t.Errorf("%d fetches for %d callers, want 1", n, callers+1)
	}
}
