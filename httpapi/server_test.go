package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

func TestUnknownRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite)
	token := e.key(e.user("alice"))
	for _, path := range []string{
		"/", "/v3", "/v3/", "/v3/unknown", "/v3/user/settings/enforced_tls/", "/v3/user/settings",
		"/v3/api_keys/", "/v3/api_keys/a/b", "/v3/subusers/x/y", "/v2/user/settings/enforced_tls",
		"/V3/USER/SETTINGS/ENFORCED_TLS", "/healthz/", "/metrics/x",
		// Unclean paths are unknown too, not redirected.
		"/v3//scopes", "//v3/scopes", "/v3/./scopes", "/v3/api_keys/../scopes", "/v3/scopes/.",
	} {
		for _, tok := range []string{"", token} {
			res := e.do(request{method: http.MethodGet, path: path, token: tok})
			res.want(t, "GET "+path, http.StatusNotFound, wantNotFound)
		}
		e.do(request{method: "BREW", path: path}).want(t, "BREW "+path, http.StatusNotFound, wantNotFound)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite)
	token := e.key(e.user("alice"))
	tests := []struct{ method, path, allow string }{
		{http.MethodDelete, pathTLS, "GET, PATCH"},
		{http.MethodPost, pathTLS, "GET, PATCH"},
		{http.MethodPut, pathTLS, "GET, PATCH"},
		{http.MethodHead, pathTLS, "GET, PATCH"},
		{"BREW", pathTLS, "GET, PATCH"},
		{http.MethodPost, "/v3/scopes", "GET"},
		{http.MethodDelete, "/v3/api_keys", "GET, POST"},
		{http.MethodPost, "/v3/api_keys/abc", "GET, PUT, PATCH, DELETE"},
		{http.MethodPut, "/v3/subusers", "GET, POST"},
		{http.MethodGet, "/v3/subusers/abc", "PATCH, DELETE"},
		{http.MethodDelete, "/v3/partners/accounts", "GET, POST"},
		{http.MethodPost, "/healthz", "GET"},
		{http.MethodPost, "/readyz", "GET"},
		{http.MethodPost, "/metrics", "GET"},
	}
	for _, tc := range tests {
		// 405 comes before authentication: no key needed to learn it.
		for _, tok := range []string{"", token} {
			res := e.do(request{method: tc.method, path: tc.path, token: tok})
			switch {
			case tc.method == http.MethodHead:
				res.want(t, tc.method+" "+tc.path, http.StatusMethodNotAllowed, "")
			case tc.path == "/v3/partners/accounts":
				res.want(t, tc.method+" "+tc.path, http.StatusMethodNotAllowed, provisioningForm[wantMethod])
			default:
				res.want(t, tc.method+" "+tc.path, http.StatusMethodNotAllowed, wantMethod)
			}
			if got := res.header.Get("Allow"); got != tc.allow {
				t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
			}
		}
	}
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite)
	acct := e.user("alice")
	token := e.key(acct)
	ts := httptest.NewServer(e.handler())
	defer ts.Close()

	// Valid JSON all the way, so only the size can be the problem.
	big := `{"require_tls":true,"pad":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	send := func(what string, body io.Reader, contentLength int64, auth bool) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPatch, ts.URL+pathTLS, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = contentLength
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		wantStatus, wantBody := http.StatusRequestEntityTooLarge, wantTooLarge
		if !auth {
			wantStatus, wantBody = http.StatusUnauthorized, wantUnauthorized
		}
		if res.StatusCode != wantStatus || string(b) != wantBody {
			t.Errorf("%s: got %d %s, want %d %s", what, res.StatusCode, b, wantStatus, wantBody)
		}
		if ct := res.Header.Get(headerContentType); ct != contentTypeJSON {
			t.Errorf("%s: Content-Type %q", what, ct)
		}
	}
	send("with Content-Length", strings.NewReader(big), int64(len(big)), true)
	// Chunked: the length is only found out while reading.
	send("chunked", io.MultiReader(strings.NewReader(big)), -1, true)
	send("unauthenticated", strings.NewReader(big), int64(len(big)), false)
	if got := e.setting(acct); got != sealpost.DefaultEnforcedTLS() {
		t.Errorf("an oversized PATCH changed the setting to %+v", got)
	}

	// Exactly at the limit is fine.
	atLimit := `{"require_tls":true,"pad":"` + strings.Repeat("x", maxBodyBytes-len(`{"require_tls":true,"pad":""}`)) + `"}`
	e.do(request{method: http.MethodPatch, path: pathTLS, token: token, body: atLimit}).
		want(t, "body at the limit", http.StatusOK, `{"require_tls":true,"require_valid_cert":false,"version":1.1}`)
}

// clock is a settable Config.Now.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestRateLimit(t *testing.T) {
	t.Parallel()
	var clk clock
	clk.set(time.Unix(1_700_000_000, 250_000_000))
	e := newEnv(t, openSQLite, func(c *Config) {
		c.RateLimiter = newFixedWindow(3, time.Minute)
		c.Now = clk.now
	})
	acct := e.user("alice")
	token := e.key(acct)
	noScope := e.key(acct, sealpost.ScopeAPIKeysRead)
	// The window ending after 1_700_000_000.25 is [1_699_999_980, 1_700_000_040).
	const reset = "1700000040"

	check := func(what string, res response, status int, body, remaining string) {
		t.Helper()
		res.want(t, what, status, body)
		for h, want := range map[string]string{headerRateLimit: "3", headerRateRemain: remaining, headerRateReset: reset} {
			if got := exactHeader(res.header, h); got != want {
				t.Errorf("%s: %s = %q, want %q", what, h, got, want)
			}
		}
	}
	check("1st", e.do(request{method: http.MethodGet, path: pathTLS, token: token}), http.StatusOK, wantDefaultTLS, "2")
	// Headers are on every authenticated response, errors included.
	check("2nd, a 400", e.do(request{method: http.MethodPatch, path: pathTLS, token: token, body: `[]`}), http.StatusBadRequest, "", "1")
	check("3rd, a 404", e.do(request{method: http.MethodGet, path: pathTLS, token: token, obo: "nobody"}), http.StatusNotFound, wantOBONotFound, "0")
	check("4th", e.do(request{method: http.MethodGet, path: pathTLS, token: token}), http.StatusTooManyRequests, wantTooMany, "0")
	check("5th, a write", e.do(request{method: http.MethodPatch, path: pathTLS, token: token, body: `{"require_tls":true}`}),
		http.StatusTooManyRequests, wantTooMany, "0")
	if got := e.setting(acct); got.RequireTLS {
		t.Error("a rate-limited PATCH changed the setting")
	}

	// Limits are per key, and the rate limit comes before the scope check.
	check("other key", e.do(request{method: http.MethodGet, path: pathTLS, token: noScope}), http.StatusForbidden, wantForbidden, "2")
	e.do(request{method: http.MethodGet, path: pathTLS, token: noScope})
	e.do(request{method: http.MethodGet, path: pathTLS, token: noScope})
	check("other key exhausted", e.do(request{method: http.MethodGet, path: pathTLS, token: noScope}), http.StatusTooManyRequests, wantTooMany, "0")

	// No headers on unauthenticated responses.
	res := e.do(request{method: http.MethodGet, path: pathTLS, token: "SG.bad.key"})
	res.want(t, "bad key", http.StatusUnauthorized, wantUnauthorized)
	if exactHeader(res.header, headerRateLimit) != "" {
		t.Error("rate-limit headers on a 401")
	}

	clk.advance(time.Minute)
	res = e.do(request{method: http.MethodGet, path: pathTLS, token: token})
	res.want(t, "next window", http.StatusOK, wantDefaultTLS)
	if got := exactHeader(res.header, headerRateReset); got != "1700000100" {
		t.Errorf("next window: reset %q", got)
	}
}

func TestRateLimitResetRoundsUp(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	setRateLimitHeaders(h, sealpost.RateLimit{Limit: 5, Remaining: -1, Reset: time.Unix(100, 1)})
	if exactHeader(h, headerRateReset) != "101" || exactHeader(h, headerRateRemain) != "0" || exactHeader(h, headerRateLimit) != "5" {
		t.Errorf("headers %v", h)
	}
	setRateLimitHeaders(h, sealpost.RateLimit{Limit: 5, Remaining: 2, Reset: time.Unix(100, 0)})
	if exactHeader(h, headerRateReset) != "100" || exactHeader(h, headerRateRemain) != "2" {
		t.Errorf("headers %v", h)
	}
}

func TestNoRateLimiter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite, func(c *Config) { c.RateLimiter = nil })
	token := e.key(e.user("alice"))
	for range 5 {
		res := e.do(request{method: http.MethodGet, path: pathTLS, token: token})
		res.want(t, "GET", http.StatusOK, wantDefaultTLS)
		if exactHeader(res.header, headerRateLimit) != "" {
			t.Error("rate-limit headers without a limiter")
		}
	}
}

// faultyStore fails chosen calls of a real store.
type faultyStore struct {
	sealpost.Store
	settingsErr error
	pingErr     error
	panicking   bool
}

func (s *faultyStore) EnforcedTLS(ctx context.Context, id int64) (sealpost.EnforcedTLS, error) {
	if s.panicking {
		panic("store exploded")
	}
	if s.settingsErr != nil {
		return sealpost.EnforcedTLS{}, s.settingsErr
	}
	return s.Store.EnforcedTLS(ctx, id)
}

func (s *faultyStore) Ping(ctx context.Context) error {
	if s.pingErr != nil {
		return s.pingErr
	}
	return s.Store.Ping(ctx)
}

// logBuffer collects log output for inspection; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestStoreFailures(t *testing.T) {
	t.Parallel()
	const secret = "postgres://admin:hunter2@db.internal/sealpost"
	tests := []struct {
		name       string
		fault      func(*faultyStore)
		wantStatus int
		wantBody   string
		wantLog    string
	}{
		{"unexpected error", func(s *faultyStore) { s.settingsErr = errors.New("disk on fire at " + secret) },
			http.StatusInternalServerError, wantInternal, `"level":"ERROR"`},
		{"unavailable", func(s *faultyStore) {
			s.settingsErr = &sealpost.Error{Code: sealpost.EUNAVAILABLE, Message: "connection refused to " + secret}
		}, http.StatusServiceUnavailable, wantUnavailable, `"msg":"database unavailable"`},
		{"panic", func(s *faultyStore) { s.panicking = true },
			http.StatusInternalServerError, wantInternal, `store exploded`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs logBuffer
			fs := &faultyStore{}
			e := newEnv(t, func(t testing.TB) sealpost.Store { fs.Store = openSQLite(t); return fs }, func(c *Config) {
				c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			})
			token := e.key(e.user("alice"))
			tc.fault(fs)
			res := e.do(request{method: http.MethodGet, path: pathTLS, token: token})
			res.want(t, "GET", tc.wantStatus, tc.wantBody)
			if tc.wantStatus == http.StatusServiceUnavailable && res.header.Get("Retry-After") != "1" {
				t.Errorf("Retry-After %q", res.header.Get("Retry-After"))
			}
			if exactHeader(res.header, headerRateLimit) == "" {
				t.Error("no rate-limit headers on an authenticated failure")
			}
			out := logs.String()
			if !strings.Contains(out, tc.wantLog) || !strings.Contains(out, `"route":"/v3/user/settings/enforced_tls"`) {
				t.Errorf("log lacks %s and the route:\n%s", tc.wantLog, out)
			}
			if strings.Contains(res.body, "hunter2") || strings.Contains(res.body, "fire") {
				t.Errorf("response leaks the cause: %s", res.body)
			}
			_, secretPart, _ := strings.Cut(strings.TrimPrefix(token, "SG."), ".")
			if strings.Contains(out, secretPart) || strings.Contains(out, "Bearer") {
				t.Errorf("log contains the token:\n%s", out)
			}
		})
	}
}

func TestClosedStore(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		token := e.key(e.user("alice"))
		if err := e.store.Close(); err != nil {
			t.Fatal(err)
		}
		res := e.do(request{method: http.MethodPatch, path: pathTLS, token: token, body: `{"require_tls":true}`})
		res.want(t, "PATCH on a closed store", http.StatusInternalServerError, wantInternal)
		e.do(request{method: http.MethodGet, path: "/readyz"}).want(t, "readyz on a closed store", http.StatusServiceUnavailable, wantUnavailable)
	})
}

func TestLogs(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	e := newEnv(t, openSQLite, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	p := e.user("alice")
	e.subuser(p, "child")
	token := e.key(p)
	id, secret, _ := sealpost.ParseToken(token)
	e.do(request{method: http.MethodGet, path: pathTLS, token: token, obo: "child"})
	e.do(request{method: http.MethodGet, path: pathTLS, token: "SG." + id + ".wrong"})
	created := e.do(request{method: http.MethodPost, path: "/v3/api_keys", token: token, body: `{"name":"k"}`})
	out := logs.String()
	for _, want := range []string{`"level":"DEBUG"`, `"route":"/v3/user/settings/enforced_tls"`, `"status":200`, `"status":401`,
		`"key_id":"` + id + `"`, `"account_id":` + strconv.FormatInt(p.ID, 10), `"duration":`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, secret) || strings.Contains(out, "wrong") || strings.Contains(out, "Bearer") {
		t.Errorf("logs contain a credential:\n%s", out)
	}
	var newKey struct {
		APIKey string `json:"api_key"`
	}
	_ = json.Unmarshal([]byte(created.body), &newKey)
	_, newSecret, ok := sealpost.ParseToken(newKey.APIKey)
	if !ok || strings.Contains(out, newSecret) {
		t.Errorf("logs contain a created key's secret (%q):\n%s", newSecret, out)
	}

	// Nothing is logged at Info for a normal request.
	var quiet logBuffer
	q := newEnv(t, openSQLite, func(c *Config) { c.Logger = slog.New(slog.NewJSONHandler(&quiet, nil)) })
	qt := q.key(q.user("bob"))
	q.do(request{method: http.MethodGet, path: pathTLS, token: qt})
	if quiet.String() != "" {
		t.Errorf("Info-level logger got output for a normal request: %s", quiet.String())
	}
}

func TestOnBehalfOfTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite)
	p := e.user("alice")
	e.subuser(p, "one")
	e.subuser(p, "two")
	token := e.key(p)
	h := http.Header{"On-Behalf-Of": {"one", "two"}}
	e.do(request{method: http.MethodGet, path: pathTLS, token: token, header: h}).
		want(t, "two headers", http.StatusBadRequest, `{"errors":[{"field":"on-behalf-of","message":"on-behalf-of must be sent once"}]}`)
	sub := e.key(mustAccount(t, e, "one"))
	e.do(request{method: http.MethodGet, path: pathTLS, token: sub, header: h}).want(t, "two headers, subuser key", http.StatusForbidden, wantForbidden)
}

func TestHealth(t *testing.T) {
	t.Parallel()
	fs := &faultyStore{}
	e := newEnv(t, func(t testing.TB) sealpost.Store { fs.Store = openSQLite(t); return fs })
	e.do(request{method: http.MethodGet, path: "/healthz"}).want(t, "healthz", http.StatusOK, `{"status":"ok"}`)
	e.do(request{method: http.MethodGet, path: "/readyz"}).want(t, "readyz", http.StatusOK, `{"status":"ok"}`)
	fs.pingErr = errors.New("down")
	e.do(request{method: http.MethodGet, path: "/healthz"}).want(t, "healthz, database down", http.StatusOK, `{"status":"ok"}`)
	res := e.do(request{method: http.MethodGet, path: "/readyz"})
	res.want(t, "readyz, database down", http.StatusServiceUnavailable, wantUnavailable)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite)
	token := e.key(e.user("alice"))
	e.do(request{method: http.MethodGet, path: pathTLS, token: token})
	e.do(request{method: http.MethodGet, path: pathTLS, token: token})
	e.do(request{method: http.MethodGet, path: pathTLS})
	e.do(request{method: http.MethodGet, path: "/v3/api_keys/secret-looking-id", token: token})
	e.do(request{method: http.MethodGet, path: "/no/such/path-xyz"})
	e.do(request{method: "WEIRD-METHOD", path: pathTLS})
	res := e.do(request{method: http.MethodGet, path: "/metrics"})
	if res.status != http.StatusOK {
		t.Fatalf("/metrics: %d", res.status)
	}
	for _, want := range []string{
		`sealpost_http_requests_total{code="200",method="GET",route="/v3/user/settings/enforced_tls"} 2`,
		`sealpost_http_requests_total{code="401",method="GET",route="/v3/user/settings/enforced_tls"} 1`,
		`sealpost_http_requests_total{code="404",method="GET",route="/v3/api_keys/{api_key_id}"} 1`,
		`sealpost_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`sealpost_http_requests_total{code="405",method="other",route="/v3/user/settings/enforced_tls"} 1`,
		`sealpost_http_request_duration_seconds_count{method="GET",route="/v3/user/settings/enforced_tls"} 3`,
	} {
		if !strings.Contains(res.body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, never := range []string{"path-xyz", "secret-looking-id", "WEIRD"} {
		if strings.Contains(res.body, never) {
			t.Errorf("/metrics contains the raw %q", never)
		}
	}
	// A second scrape sees the first.
	res = e.do(request{method: http.MethodGet, path: "/metrics"})
	if !strings.Contains(res.body, `sealpost_http_requests_total{code="200",method="GET",route="/metrics"} 1`) {
		t.Error("/metrics does not count itself")
	}
}

func TestSharedRegistry(t *testing.T) {
	t.Parallel()
	a := newEnv(t, openSQLite)
	// A second server on the same registry (a restart in-process, say)
	// shares the collectors rather than panicking.
	b := New(Config{Store: a.store, Registry: a.registry})
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	a.do(request{method: http.MethodGet, path: "/healthz"})
	res := a.do(request{method: http.MethodGet, path: "/metrics"})
	if !strings.Contains(res.body, `sealpost_http_requests_total{code="200",method="GET",route="/healthz"} 2`) {
		t.Errorf("shared registry:\n%s", res.body)
	}
}

func TestScopesRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite)
	p := e.user("alice")
	e.subuser(p, "child")
	token := e.key(p, sealpost.ScopeMailSend, sealpost.ScopeEnforcedTLSRead)
	want := `{"scopes":["mail.send","user.settings.enforced_tls.read"]}`
	e.do(request{method: http.MethodGet, path: "/v3/scopes", token: token}).want(t, "scopes", http.StatusOK, want)
	// Still the calling key's scopes when acting for a subuser.
	e.do(request{method: http.MethodGet, path: "/v3/scopes", token: token, obo: "child"}).want(t, "scopes on behalf", http.StatusOK, want)
	e.do(request{method: http.MethodGet, path: "/v3/scopes"}).want(t, "scopes unauthenticated", http.StatusUnauthorized, wantUnauthorized)
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	// Nil logger, registry, limiter and clock all have working defaults.
	store := openSQLite(t)
	srv := New(Config{Store: store})
	e := &env{t: t, store: store, srv: srv}
	token := e.key(e.user("alice"))
	e.do(request{method: http.MethodGet, path: pathTLS, token: token}).want(t, "GET", http.StatusOK, wantDefaultTLS)
	res := e.do(request{method: http.MethodGet, path: "/metrics"})
	if !strings.Contains(res.body, "sealpost_http_requests_total") {
		t.Errorf("/metrics of the default registry:\n%s", res.body)
	}
}

// TestHostileIdentifiers sends names no account or key can have, with bytes
// (NUL, invalid UTF-8) a store may refuse outright: each must be an
// ordinary not-found or 401, never a 500.
func TestHostileIdentifiers(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p := e.user("parent")
		token := e.key(p)
		for _, bad := range []string{"a\x00b", "a\xffb", "\xc3", strings.Repeat("x", 65), "a b", "a\nb"} {
			esc := strings.NewReplacer("\x00", "%00", "\xff", "%FF", "\xc3", "%C3", " ", "%20", "\n", "%0A").Replace(bad)
			what := strconv.Quote(bad)
			e.do(request{method: http.MethodGet, path: "/v3/api_keys/" + esc, token: token}).want(t, "GET key "+what, http.StatusNotFound, wantNotFound)
			e.do(request{method: http.MethodDelete, path: "/v3/api_keys/" + esc, token: token}).want(t, "DELETE key "+what, http.StatusNotFound, wantNotFound)
			e.do(request{method: http.MethodPatch, path: "/v3/api_keys/" + esc, token: token, body: `{"name":"x"}`}).
				want(t, "PATCH key "+what, http.StatusNotFound, wantNotFound)
			e.do(request{method: http.MethodPatch, path: "/v3/subusers/" + esc, token: token, body: `{"disabled":true}`}).
				want(t, "PATCH subuser "+what, http.StatusNotFound, wantNotFound)
			for _, obo := range []string{bad, "account-id " + bad} {
				e.do(request{method: http.MethodGet, path: pathTLS, token: token, header: http.Header{headerOnBehalfOf: {obo}}}).
					want(t, "on-behalf-of "+strconv.Quote(obo), http.StatusNotFound, wantOBONotFound)
			}
			e.do(request{method: http.MethodGet, path: pathTLS, header: http.Header{"Authorization": {"Bearer SG." + bad + ".secret"}}}).
				want(t, "key id "+what, http.StatusUnauthorized, wantUnauthorized)
		}
	})
}

// TestUnavailableDatabaseLoggedOnce: 200 requests answered 503 while the
// database fails them log one line when it starts failing and one when a
// request is next served, not a line per request, even though /readyz
// keeps succeeding in between (the database flaps).
func TestUnavailableDatabaseLoggedOnce(t *testing.T) {
	t.Parallel()
	fs := &faultyStore{}
	logs := &logBuffer{}
	e := newEnv(t, func(t testing.TB) sealpost.Store { fs.Store = openSQLite(t); return fs }, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	token := e.key(e.user("alice"))
	fs.settingsErr = &sealpost.Error{Code: sealpost.EUNAVAILABLE, Message: "database unavailable",
		Err: errors.New("failed to connect:\n\tdial error: connection refused")}
	for i := range 200 {
		e.do(request{method: http.MethodGet, path: pathTLS, token: token}).want(t, "database down", http.StatusServiceUnavailable, wantUnavailable)
		if i%2 == 0 {
			e.do(request{method: http.MethodGet, path: "/readyz"})
		}
	}
	fs.pingErr = nil
	fs.settingsErr = nil
	e.do(request{method: http.MethodGet, path: pathTLS, token: token}).want(t, "database back", http.StatusOK, `{"require_tls":false,"require_valid_cert":false,"version":1.1}`)
	out := logs.String()
	if n := strings.Count(out, "\n"); n != 2 || !strings.Contains(out, `"msg":"database unavailable"`) || !strings.Contains(out, `"msg":"database available again"`) {
		t.Fatalf("200 503s and a recovery logged %d lines, want 2:\n%s", n, out)
	}
	if strings.Contains(out, `\n`) {
		t.Errorf("a log line holds an escaped newline:\n%s", out)
	}
}
