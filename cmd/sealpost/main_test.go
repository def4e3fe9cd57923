package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendgrid/rest"
	"github.com/sendgrid/sendgrid-go"

	"github.com/sealpost/sealpost/internal/conformance"
	"github.com/sealpost/sealpost/postgres/pgtest"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines to write to
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startMain starts the real service on port 0 against database and returns it
// with the key printed at bootstrap (empty when the database had accounts)
// and its debug-level log.
func startMain(t *testing.T, database string) (*Main, string, *syncBuffer) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.RateLimit = 100000
	return startMainWith(t, database, cfg)
}

func startMainWith(t *testing.T, database string, cfg Config) (*Main, string, *syncBuffer) {
	t.Helper()
	m, key, logs := openMain(t, database, cfg)
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("closing sealpost: %v", err)
		}
	})
	return m, key, logs
}

// openMain is startMainWith for a test that closes the service itself;
// options set Main's test-only fields before it opens.
func openMain(t *testing.T, database string, cfg Config, options ...func(*Main)) (*Main, string, *syncBuffer) {
	t.Helper()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Database = database
	logs := &syncBuffer{}
	var stdout bytes.Buffer
	m := &Main{
		Config: cfg,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Stdout: &stdout,
		Middleware: func(h http.Handler) http.Handler {
			return conformance.Middleware(t, h)
		},
	}
	for _, o := range options {
		o(m)
	}
	if err := m.Open(context.Background()); err != nil {
		t.Fatalf("starting sealpost: %v", err)
	}
	return m, strings.TrimSpace(stdout.String()), logs
}

// call makes one request with the official SendGrid Go client.
func call(t *testing.T, m *Main, key, method, endpoint, onBehalfOf, body string) *rest.Response {
	t.Helper()
	var req rest.Request
	if onBehalfOf != "" {
		req = sendgrid.GetRequestSubuser(key, endpoint, m.URL(), onBehalfOf)
	} else {
		req = sendgrid.GetRequest(key, endpoint, m.URL())
	}
	req.Method = rest.Method(method)
	if body != "" {
		req.Body = []byte(body)
	}
	resp, err := sendgrid.API(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, endpoint, err)
	}
	return resp
}

func expect(t *testing.T, resp *rest.Response, status int, body string) {
	t.Helper()
	if resp.StatusCode != status || strings.TrimSpace(resp.Body) != body {
		t.Fatalf("got %d %s, want %d %s", resp.StatusCode, resp.Body, status, body)
	}
}

const (
	settings      = "/v3/user/settings/enforced_tls"
	defaultBody   = `{"require_tls":false,"require_valid_cert":false,"version":1.1}`
	unauthorized  = `{"errors":[{"field":null,"message":"authorization required"}]}`
	forbidden     = `{"errors":[{"field":null,"message":"access forbidden"}]}`
	oboNotFound   = `"field":"on-behalf-of"`
	createSubuser = `{"username":"team-blue","email":"blue@example.com","password":"Secr3t-pass","ips":[]}`
)

type storeCase struct {
	name     string
	database func(t *testing.T) string
}

func storeCases() []storeCase {
	return []storeCase{
		{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "sealpost.db") }},
		{"postgres", func(t *testing.T) string { return pgtest.URL(t) }},
	}
}

// forEachStore runs test as a parallel subtest per store, each on a new
// database of its own.
func forEachStore(t *testing.T, test func(t *testing.T, database string)) {
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			test(t, sc.database(t))
		})
	}
}

// TestSendGridGoClient drives the real server with the official Go client,
// the way a user who only changed the base URL would.
func TestSendGridGoClient(t *testing.T) {
	t.Parallel()
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			m, key, logs := startMain(t, sc.database(t))
			if !strings.HasPrefix(key, "SG.") {
				t.Fatalf("bootstrap printed %q, want an SG. key", key)
			}

			expect(t, call(t, m, key, "GET", settings, "", ""), 200, defaultBody)
			steps := []struct{ patch, want string }{
				{`{"require_tls":true}`, `{"require_tls":true,"require_valid_cert":false,"version":1.1}`},
				{`{"require_valid_cert":true}`, `{"require_tls":true,"require_valid_cert":true,"version":1.1}`},
				{`{"version":1.3}`, `{"require_tls":true,"require_valid_cert":true,"version":1.3}`},
				{`{"require_tls":false,"require_valid_cert":false}`, `{"require_tls":false,"require_valid_cert":false,"version":1.3}`},
				{`{"version":1.2}`, `{"require_tls":false,"require_valid_cert":false,"version":1.2}`},
			}
			for _, s := range steps {
				expect(t, call(t, m, key, "PATCH", settings, "", s.patch), 200, s.want)
				expect(t, call(t, m, key, "GET", settings, "", ""), 200, s.want)
			}
			parentState := steps[len(steps)-1].want

			// A subuser, driven on its behalf with GetRequestSubuser.
			resp := call(t, m, key, "POST", "/v3/subusers", "", createSubuser)
			if resp.StatusCode != 200 || !strings.Contains(resp.Body, `"username":"team-blue"`) {
				t.Fatalf("creating subuser: %d %s", resp.StatusCode, resp.Body)
			}
			expect(t, call(t, m, key, "GET", settings, "team-blue", ""), 200, defaultBody)
			subState := `{"require_tls":true,"require_valid_cert":false,"version":1.2}`
			expect(t, call(t, m, key, "PATCH", settings, "team-blue", `{"require_tls":true,"version":1.2}`), 200, subState)
			expect(t, call(t, m, key, "GET", settings, "team-blue", ""), 200, subState)
			expect(t, call(t, m, key, "GET", settings, "", ""), 200, parentState)
			resp = call(t, m, key, "GET", settings, "nobody-here", "")
			if resp.StatusCode != 404 || !strings.Contains(resp.Body, oboNotFound) {
				t.Fatalf("on-behalf-of an unknown subuser: %d %s", resp.StatusCode, resp.Body)
			}

			// A customer account, created and listed as the Account
			// Provisioning document shapes them, and driven on its behalf.
			resp = call(t, m, key, "POST", "/v3/partners/accounts", "", `{"profile":{"email":"shop@example.com"},"offerings":[{"name":"org.ei.free.v1","type":"package","quantity":1}]}`)
			var customer struct {
				AccountID string `json:"account_id"`
			}
			if resp.StatusCode != 201 || json.Unmarshal([]byte(resp.Body), &customer) != nil {
				t.Fatalf("creating a customer account: %d %s", resp.StatusCode, resp.Body)
			}
			resp = call(t, m, key, "GET", "/v3/partners/accounts", "", "")
			if resp.StatusCode != 200 || !strings.Contains(resp.Body, `{"id":"`+customer.AccountID+`","created_at":"`) {
				t.Fatalf("listing customer accounts: %d %s", resp.StatusCode, resp.Body)
			}
			expect(t, call(t, m, key, "GET", settings, "account-id "+customer.AccountID, ""), 200, defaultBody)
			expect(t, call(t, m, key, "POST", "/v3/partners/accounts", "", `{"profile":{"email":"no"}}`), 400,
				`{"errors":[{"message":"profile.email must be a valid email address","field":"profile.email","error_id":"10-40002"}]}`)
			expect(t, call(t, m, "SG.nope.nope", "GET", "/v3/partners/accounts", "", ""), 401, unauthorized)

			// A wrong key, a malformed one, and no key at all.
			expect(t, call(t, m, key+"x", "GET", settings, "", ""), 401, unauthorized)
			expect(t, call(t, m, "SG.nope.nope", "GET", settings, "", ""), 401, unauthorized)
			expect(t, call(t, m, "", "GET", settings, "", ""), 401, unauthorized)

			// A key without the update scope can read but not change.
			resp = call(t, m, key, "POST", "/v3/api_keys", "", `{"name":"read only","scopes":["user.settings.enforced_tls.read"]}`)
			if resp.StatusCode != 201 {
				t.Fatalf("creating a read-only key: %d %s", resp.StatusCode, resp.Body)
			}
			var created struct {
				APIKey   string   `json:"api_key"`
				APIKeyID string   `json:"api_key_id"`
				Scopes   []string `json:"scopes"`
			}
			if err := json.Unmarshal([]byte(resp.Body), &created); err != nil {
				t.Fatal(err)
			}
			expect(t, call(t, m, created.APIKey, "GET", settings, "", ""), 200, parentState)
			expect(t, call(t, m, created.APIKey, "PATCH", settings, "", `{"require_tls":true}`), 403, forbidden)
			expect(t, call(t, m, key, "GET", settings, "", ""), 200, parentState)

			// Deleting the key locks it out on the very next request.
			expect(t, call(t, m, key, "DELETE", "/v3/api_keys/"+created.APIKeyID, "", ""), 204, "")
			expect(t, call(t, m, created.APIKey, "GET", settings, "", ""), 401, unauthorized)

			// No key, nor any part of a secret, ever reaches the logs.
			for _, token := range []string{key, created.APIKey} {
				secret := token[strings.LastIndexByte(token, '.')+1:]
				if strings.Contains(logs.String(), secret) {
					t.Fatalf("the logs contain an API key secret")
				}
			}
		})
	}
}

// TestGetWritesNothing: the hot path must not write to the database. In WAL
// mode any write appends to the -wal file, so its size must not move.
func TestGetWritesNothing(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sealpost.db")
	m, key, _ := startMain(t, "sqlite:"+path)
	expect(t, call(t, m, key, "GET", settings, "", ""), 200, defaultBody)
	before := fileSize(t, path+"-wal")
	for i := 0; i < 200; i++ {
		expect(t, call(t, m, key, "GET", settings, "", ""), 200, defaultBody)
	}
	if after := fileSize(t, path+"-wal"); after != before {
		t.Fatalf("the WAL grew from %d to %d bytes during GETs", before, after)
	}
	expect(t, call(t, m, key, "PATCH", settings, "", `{"require_tls":true}`), 200, `{"require_tls":true,"require_valid_cert":false,"version":1.1}`)
	if after := fileSize(t, path+"-wal"); after == before {
		t.Fatalf("a PATCH did not grow the WAL (%d bytes): the check above cannot fail", after)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestTwoNodesOnePostgres: two serve processes on one database behave as one
// service, with no stale view of keys or settings on either.
func TestTwoNodesOnePostgres(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	a, key, _ := startMain(t, url)
	b, again, _ := startMain(t, url)
	if again != "" {
		t.Fatalf("the second node bootstrapped another account")
	}
	expect(t, call(t, b, key, "GET", settings, "", ""), 200, defaultBody)
	for i, patch := range []string{`{"require_tls":true}`, `{"version":1.3}`, `{"require_tls":false,"require_valid_cert":true}`} {
		on, other := a, b
		if i%2 == 1 {
			on, other = b, a
		}
		want := call(t, on, key, "PATCH", settings, "", patch)
		expect(t, call(t, other, key, "GET", settings, "", ""), 200, strings.TrimSpace(want.Body))
	}
	resp := call(t, a, key, "POST", "/v3/api_keys", "", `{"name":"short lived"}`)
	var created struct {
		APIKey   string `json:"api_key"`
		APIKeyID string `json:"api_key_id"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &created); err != nil || resp.StatusCode != 201 {
		t.Fatalf("creating a key: %d %s", resp.StatusCode, resp.Body)
	}
	if r := call(t, b, created.APIKey, "GET", settings, "", ""); r.StatusCode != 200 {
		t.Fatalf("node b does not know the key node a created: %d", r.StatusCode)
	}
	expect(t, call(t, b, key, "DELETE", "/v3/api_keys/"+created.APIKeyID, "", ""), 204, "")
	expect(t, call(t, a, created.APIKey, "GET", settings, "", ""), 401, unauthorized)
}

func TestAccountCreateCommand(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "sealpost.db")
	ctx := context.Background()
	env := func(string) string { return "" }
	tests := []struct {
		args     []string
		code     int
		keyOut   bool
		errMatch string
	}{
		{[]string{"account", "create", "--username", "acme", "--email", "ops@acme.test", "--database", db}, 0, true, "created account"},
		{[]string{"account", "create", "--username", "acme", "--database", db}, 1, false, "taken"},
		{[]string{"account", "create", "--username", "bad name", "--database", db}, 2, false, "username may contain"},
		{[]string{"account", "create", "--database", db}, 2, false, "username is required"},
		{[]string{"account", "create", "--username", "x", "--email", "not-an-address", "--database", db}, 2, false, "email must be"},
		{[]string{"account", "create", "--username", "y", "--database", "mysql://h/db"}, 2, false, "unsupported scheme"},
		{[]string{"account", "delete"}, 2, false, "usage"},
		{[]string{"frobnicate"}, 2, false, "unknown command"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(ctx, tt.args, env, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.errMatch) {
			t.Errorf("%v: exit %d stderr %q; want exit %d and %q", tt.args, code, stderr.String(), tt.code, tt.errMatch)
		}
		out := stdout.String()
		if tt.keyOut {
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "SG.") || strings.Count(lines[0], ".") != 2 {
				t.Errorf("%v: stdout %q, want exactly one SG.<id>.<secret> line", tt.args, out)
			}
		} else if out != "" {
			t.Errorf("%v: stdout %q, want nothing", tt.args, out)
		}
	}

	// The printed key works against a server on that database, which,
	// having an account already, bootstraps none.
	var stdout bytes.Buffer
	if code := run(ctx, []string{"account", "create", "--username", "second", "--database", db}, env, &stdout, new(bytes.Buffer)); code != 0 {
		t.Fatalf("exit %d", code)
	}
	m, bootKey, _ := startMain(t, db)
	if bootKey != "" {
		t.Fatalf("serve bootstrapped an account on a database that had some")
	}
	expect(t, call(t, m, strings.TrimSpace(stdout.String()), "GET", settings, "", ""), 200, defaultBody)
}

func TestSecondServeOnOneSQLiteFileIsRefused(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "sealpost.db")
	startMain(t, db)
	cfg := DefaultConfig()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Database = db
	second := &Main{Config: cfg}
	err := second.Open(context.Background())
	if err == nil {
		second.Close()
		t.Fatal("a second serve on one SQLite file started")
	}
	if !strings.Contains(err.Error(), "PostgreSQL") {
		t.Fatalf("the refusal should point to PostgreSQL for several nodes: %v", err)
	}
}

func TestServeFlagsAndEnvironment(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--rate-limit", "0"}, nil, "--rate-limit must be at least 1"},
		{[]string{"--mail-send-rate-limit", "0"}, nil, "--mail-send-rate-limit must be at least 1"},
		{nil, map[string]string{"SEALPOST_MAX_SUBUSERS": "0"}, "--max-subusers must be at least 1"},
		{nil, map[string]string{"SEALPOST_RATE_LIMIT": "lots"}, "SEALPOST_RATE_LIMIT"},
		{[]string{"--webhook-max-posts", "0"}, nil, "--webhook-max-posts must be at least 1"},
		{nil, map[string]string{"SEALPOST_WEBHOOK_MAX_POSTS": "-3"}, "--webhook-max-posts must be at least 1"},
		{nil, map[string]string{"SEALPOST_LOG_FORMAT": "xml"}, "--log-format"},
		{[]string{"--tls-registry-retention", "0s"}, nil, "--tls-registry-retention must be positive"},
		{nil, map[string]string{"SEALPOST_TLS_REGISTRY_RETENTION": "-1h"}, "--tls-registry-retention must be positive"},
		{nil, map[string]string{"SEALPOST_TLS_REGISTRY_RETENTION": "a month"}, "SEALPOST_TLS_REGISTRY_RETENTION"},
		{[]string{"--no-such-flag"}, nil, "no-such-flag"},
		{[]string{"extra"}, nil, "unexpected argument"},
		{[]string{"--allow-destinations", "127.0.0.1"}, nil, "--allow-destinations: \"127.0.0.1\" is not a CIDR range"},
		{nil, map[string]string{"SEALPOST_ALLOW_DESTINATIONS": "127.0.0.0/8,10.0.0.1/8"}, "--allow-destinations: \"10.0.0.1/8\" has host bits set"},
		{[]string{"--tls-probe-rate-limit", "0"}, nil, "--tls-probe-rate-limit must be at least 1"},
		{nil, map[string]string{"SEALPOST_TLS_PROBE_RATE_LIMIT": "x"}, "SEALPOST_TLS_PROBE_RATE_LIMIT"},
		{[]string{"--dns-server", "127.0.0.1"}, nil, `--dns-server: "127.0.0.1" is not host:port`},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		code := run(ctx, append([]string{"serve"}, tt.args...), func(k string) string { return tt.env[k] }, new(bytes.Buffer), &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("serve %v env %v: exit %d, stderr %q; want 2 and %q", tt.args, tt.env, code, stderr.String(), tt.want)
		}
	}
}

// TestGoClientRetriesThroughRateLimit: the Go client's MakeRequestRetry gets
// through a 429 by waiting for the next window.
func TestGoClientRetriesThroughRateLimit(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.RateLimit = 2
	cfg.RateLimitWindow = time.Second
	m, key, _ := startMainWith(t, "sqlite:"+filepath.Join(t.TempDir(), "sealpost.db"), cfg)
	limited := 0
	for i := 0; i < 6; i++ {
		req := sendgrid.GetRequest(key, settings, m.URL())
		req.Method = "GET"
		if r, err := sendgrid.API(req); err == nil && r.StatusCode == 429 {
			limited++
			if http.Header(r.Headers).Get("X-RateLimit-Reset") == "" {
				t.Fatal("a 429 without X-RateLimit-Reset")
			}
		}
	}
	if limited == 0 {
		t.Fatal("six requests against a limit of two per second were never limited")
	}
	for i := 0; i < 3; i++ {
		req := sendgrid.GetRequest(key, settings, m.URL())
		req.Method = "GET"
		resp, err := sendgrid.MakeRequestRetry(req)
		if err != nil {
			t.Fatalf("MakeRequestRetry: %v", err)
		}
		expect(t, resp, 200, defaultBody)
	}
}

// TestRateLimitSharedAcrossNodes: on PostgreSQL, a key's limit holds across
// nodes, not per node.
func TestRateLimitSharedAcrossNodes(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	cfg := DefaultConfig()
	cfg.RateLimit = 6
	cfg.RateLimitWindow = time.Hour // no window boundary within the test
	cfg.RateLimitSync = 20 * time.Millisecond
	a, key, _ := startMainWith(t, url, cfg)
	b, _, _ := startMainWith(t, url, cfg)

	for i := 0; i < 4; i++ {
		expect(t, call(t, a, key, "GET", settings, "", ""), 200, defaultBody)
	}
	// b learns of a's four within a few syncs, so it allows at most the two
	// left (plus what it serves before it hears), never six of its own.
	bAllowed := allowedUntilRefused(t, func() *rest.Response { return call(t, b, key, "GET", settings, "", "") }, 200, defaultBody)
	if bAllowed >= cfg.RateLimit {
		t.Fatalf("node b allowed %d requests of a limit of %d after node a's four: the limit is per node", bAllowed, cfg.RateLimit)
	}
	// Once node a has heard from b, its very next request is refused,
	// though it allowed only four itself.
	time.Sleep(200 * time.Millisecond)
	expect(t, call(t, a, key, "GET", settings, "", ""), 429, `{"errors":[{"field":null,"message":"too many requests"}]}`)
}

// TestMailSendRateLimitSharedAcrossNodes: on PostgreSQL, an account's
// mail send allowance holds across nodes, whichever of its keys sends.
func TestMailSendRateLimitSharedAcrossNodes(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	cfg := DefaultConfig()
	cfg.RateLimit = 100000
	cfg.MailSendRateLimit = 6
	cfg.RateLimitWindow = time.Hour // no window boundary within the test
	cfg.RateLimitSync = 20 * time.Millisecond
	cfg.DeliveryWorkers = 0
	a, key, _ := startMainWith(t, url, cfg)
	b, _, _ := startMainWith(t, url, cfg)
	other, _ := apiKeyOf(t, createVia(t, a, key, "/v3/api_keys", "", `{"name":"second"}`, 201))

	// Sandbox sends are counted like any other and store nothing.
	for i := 0; i < 4; i++ {
		expect(t, call(t, a, key, "POST", "/v3/mail/send", "", sandboxSend), 200, "")
	}
	var refusal *rest.Response
	bAllowed := allowedUntilRefused(t, func() *rest.Response {
		refusal = call(t, b, other, "POST", "/v3/mail/send", "", sandboxSend)
		return refusal
	}, 200, "")
	if got := http.Header(refusal.Headers).Get("X-RateLimit-Limit"); got != "6" {
		t.Errorf("429 X-RateLimit-Limit %q, want 6", got)
	}
	if bAllowed >= cfg.MailSendRateLimit {
		t.Fatalf("node b allowed %d mail sends of a limit of %d after node a's four: the limit is per node", bAllowed, cfg.MailSendRateLimit)
	}
}

// allowedUntilRefused repeats do, each answer ok with okBody, until one is
// SendGrid's 429, and returns how many were allowed. It waits longer than
// a sync between requests, so that each may see the other nodes' counts.
func allowedUntilRefused(t *testing.T, do func() *rest.Response, ok int, okBody string) int {
	t.Helper()
	allowed := 0
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := do()
		if resp.StatusCode == 429 {
			expect(t, resp, 429, `{"errors":[{"field":null,"message":"too many requests"}]}`)
			return allowed
		}
		expect(t, resp, ok, okBody)
		allowed++
		if time.Now().After(deadline) {
			t.Fatal("never refused")
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// TestPortInUseKeepsTheBootstrap: a serve that cannot listen must not
// create the first account, or its key would be shown to nobody.
func TestPortInUseKeepsTheBootstrap(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "sealpost.db")
	taken, _, _ := startMain(t, "sqlite:"+filepath.Join(t.TempDir(), "other.db"))
	cfg := DefaultConfig()
	cfg.Database = db
	cfg.HTTPAddr = taken.Addr()
	var stdout bytes.Buffer
	blocked := &Main{Config: cfg, Stdout: &stdout}
	if err := blocked.Open(context.Background()); err == nil {
		blocked.Close()
		t.Fatal("serve started on a port in use")
	}
	if stdout.Len() != 0 {
		t.Fatalf("a serve that could not listen printed %q", stdout.String())
	}
	if _, key, _ := startMain(t, db); !strings.HasPrefix(key, "SG.") {
		t.Fatalf("the next serve did not bootstrap: %q", key)
	}
}
