package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/internal/conformance"
	"github.com/sealpost/sealpost/postgres"
	"github.com/sealpost/sealpost/postgres/pgtest"
	"github.com/sealpost/sealpost/sqlite"
)

// Exact bodies the contract fixes.
const (
	wantDefaultTLS    = `{"require_tls":false,"require_valid_cert":false,"version":1.1}`
	wantUnauthorized  = `{"errors":[{"field":null,"message":"authorization required"}]}`
	wantForbidden     = `{"errors":[{"field":null,"message":"access forbidden"}]}`
	wantNotFound      = `{"errors":[{"field":null,"message":"resource not found"}]}`
	wantMethod        = `{"errors":[{"field":null,"message":"method not allowed"}]}`
	wantTooLarge      = `{"errors":[{"field":null,"message":"content too large"}]}`
	wantTooMany       = `{"errors":[{"field":null,"message":"too many requests"}]}`
	wantInternal      = `{"errors":[{"message":"internal server error"}]}`
	wantUnavailable   = `{"errors":[{"field":null,"message":"service unavailable"}]}`
	wantOBONotFound   = `{"errors":[{"field":"on-behalf-of","message":"on-behalf-of names no account of yours"}]}`
	pathTLS           = "/v3/user/settings/enforced_tls"
	contentTypeJSON   = "application/json"
	headerRateLimit   = "X-RateLimit-Limit"
	headerRateRemain  = "X-RateLimit-Remaining"
	headerRateReset   = "X-RateLimit-Reset"
	headerOnBehalfOf  = "On-Behalf-Of"
	headerContentType = "Content-Type"
)

// provisioningForm maps the fixed bodies to the Account Provisioning API's
// forms of them; its 401 is the generic body, as SendGrid answers it.
var provisioningForm = map[string]string{
	wantUnauthorized: wantUnauthorized,
	wantForbidden:    `{"errors":[{"message":"access forbidden","field":"","error_id":"10-40300"}]}`,
	wantOBONotFound:  `{"errors":[{"message":"on-behalf-of names no account of yours","field":"on-behalf-of","error_id":"10-40400"}]}`,
	wantMethod:       `{"errors":[{"message":"method not allowed","field":"","error_id":"10-40500"}]}`,
	wantTooLarge:     `{"errors":[{"message":"content too large","field":"","error_id":"10-41300"}]}`,
	"":               "",
}

// storeKind is one real store the tests run against.
type storeKind struct {
	name string
	open func(t testing.TB) sealpost.Store
}

// storeKinds are the stores every store-backed test runs on. PostgreSQL
// skips itself when SEALPOST_TEST_POSTGRES is unset.
var storeKinds = []storeKind{
	{"sqlite", openSQLite},
	{"postgres", openPostgres},
}

func openSQLite(t testing.TB) sealpost.Store {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sealpost.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openPostgres(t testing.TB) sealpost.Store {
	t.Helper()
	url := pgtest.URL(t)
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// forEachStore runs fn once per store kind, in parallel subtests.
func forEachStore(t *testing.T, fn func(t *testing.T, open func(testing.TB) sealpost.Store)) {
	t.Helper()
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			t.Parallel()
			fn(t, sk.open)
		})
	}
}

// fixedWindow is a minimal sealpost.RateLimiter for tests: limit requests
// per key per window, windows aligned to the epoch.
type fixedWindow struct {
	limit  int
	window time.Duration

	mu     sync.Mutex
	counts map[string]int
	starts map[string]int64
}

func newFixedWindow(limit int, window time.Duration) *fixedWindow {
	return &fixedWindow{limit: limit, window: window, counts: map[string]int{}, starts: map[string]int64{}}
}

func (l *fixedWindow) Take(keyID string, now time.Time) sealpost.RateLimit {
	l.mu.Lock()
	defer l.mu.Unlock()
	idx := now.UnixNano() / int64(l.window)
	if l.starts[keyID] != idx {
		l.starts[keyID] = idx
		l.counts[keyID] = 0
	}
	reset := time.Unix(0, (idx+1)*int64(l.window))
	if l.counts[keyID] >= l.limit {
		return sealpost.RateLimit{Limit: l.limit, Remaining: 0, Reset: reset}
	}
	l.counts[keyID]++
	return sealpost.RateLimit{Limit: l.limit, Remaining: l.limit - l.counts[keyID], Reset: reset, Allowed: true}
}

// env is one server on one fresh store.
type env struct {
	t        testing.TB
	store    sealpost.Store
	srv      *Server
	registry *prometheus.Registry
}

type envOption func(*Config)

func newEnv(t testing.TB, open func(testing.TB) sealpost.Store, opts ...envOption) *env {
	t.Helper()
	store := open(t)
	cfg := Config{
		Store:       store,
		RateLimiter: newFixedWindow(1_000_000, time.Minute),
		Logger:      slog.New(slog.DiscardHandler),
		Registry:    prometheus.NewRegistry(),
		// Test receivers listen on loopback, which the default refuses.
		Destinations: sealpost.AllowDestinations(netip.MustParsePrefix("127.0.0.0/8")),
	}
	for _, o := range opts {
		o(&cfg)
	}
	return &env{t: t, store: store, srv: New(cfg), registry: cfg.Registry}
}

// request describes one call; zero fields are left out.
type request struct {
	method string
	path   string
	token  string // sent as "Bearer <token>" when set
	obo    string // on-behalf-of header when set
	body   string
	header http.Header
}

type response struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(r request) response {
	e.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, r.path, body)
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.obo != "" {
		req.Header.Set("on-behalf-of", r.obo)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	e.serve(e.t, rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	out := response{status: res.StatusCode, header: res.Header, body: string(b)}
	// Every response with a body is JSON (the contract says so for all of them).
	if out.body != "" && out.header.Get(headerContentType) != contentTypeJSON && r.path != "/metrics" {
		e.t.Errorf("%s %s: Content-Type %q with body %q", r.method, r.path, out.header.Get(headerContentType), out.body)
	}
	return out
}

// serve runs req through the server and checks the response against
// SendGrid's OpenAPI documents: a mismatch fails t.
func (e *env) serve(t testing.TB, w http.ResponseWriter, req *http.Request) {
	t.Helper()
	conformance.Middleware(t, e.srv).ServeHTTP(w, req)
}

// handler is the server for httptest.NewServer, every response checked as
// serve checks it.
func (e *env) handler() http.Handler {
	e.t.Helper()
	return conformance.Middleware(e.t, e.srv)
}

// want fails unless res has status and, when body is not "", exactly body.
func (res response) want(t testing.TB, what string, status int, body string) {
	t.Helper()
	if res.status != status || (body != "" && res.body != body) {
		t.Errorf("%s: got %d %s\nwant %d %s", what, res.status, res.body, status, body)
	}
}

func (e *env) createAccount(a *sealpost.Account) *sealpost.Account {
	e.t.Helper()
	if err := e.store.CreateAccount(context.Background(), a); err != nil {
		e.t.Fatalf("CreateAccount(%+v): %v", *a, err)
	}
	return a
}

func (e *env) user(username string) *sealpost.Account {
	return e.createAccount(&sealpost.Account{Kind: sealpost.KindUser, Username: username, Email: username + "@example.com"})
}

func (e *env) subuser(parent *sealpost.Account, username string) *sealpost.Account {
	return e.createAccount(&sealpost.Account{Kind: sealpost.KindSubuser, ParentID: parent.ID, Username: username, Email: username + "@example.net"})
}

func (e *env) customer(parent *sealpost.Account) *sealpost.Account {
	id, err := sealpost.NewPublicAccountID()
	if err != nil {
		e.t.Fatal(err)
	}
	return e.createAccount(&sealpost.Account{Kind: sealpost.KindCustomer, ParentID: parent.ID, PublicID: id, Email: "customer@example.org"})
}

// key stores a key for a with scopes (full access for a's kind when none
// are given) and returns its token.
func (e *env) key(a *sealpost.Account, scopes ...string) string {
	e.t.Helper()
	if len(scopes) == 0 {
		scopes = sealpost.FullAccessScopes(a.Kind)
	}
	k, token, err := sealpost.NewAPIKey(a.ID, "test key", scopes)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.CreateAPIKey(context.Background(), k); err != nil {
		e.t.Fatalf("CreateAPIKey: %v", err)
	}
	return token
}

func (e *env) setting(a *sealpost.Account) sealpost.EnforcedTLS {
	e.t.Helper()
	s, err := e.store.EnforcedTLS(context.Background(), a.ID)
	if err != nil {
		e.t.Fatalf("EnforcedTLS(%d): %v", a.ID, err)
	}
	return s
}

// exactHeader reads a header by its exact spelling, which checks that the
// rate-limit headers go out as SendGrid spells them.
func exactHeader(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}
