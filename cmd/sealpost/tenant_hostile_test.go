package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealpost/sealpost/delivery/mxtest"
	"github.com/sealpost/sealpost/postgres/pgtest"
)

// The attacks of a tenant on keys and accounts, on the real wiring; the
// figures they log are the ones RELIABILITY.md quotes.

const sandboxSend = `{"personalizations":[{"to":[{"email":"r@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"v"}],"mail_settings":{"sandbox_mode":{"enable":true}}}`

// createVia POSTs body to path (on behalf of obo when set), requires
// status, and returns the response body.
func createVia(t *testing.T, m *Main, key, path, obo, body string, status int) string {
	t.Helper()
	resp := call(t, m, key, "POST", path, obo, body)
	if resp.StatusCode != status {
		t.Fatalf("POST %s %s: %d %s, want %d", path, body, resp.StatusCode, resp.Body, status)
	}
	return resp.Body
}

func apiKeyOf(t *testing.T, body string) (token, id string) {
	t.Helper()
	var out struct {
		APIKey   string `json:"api_key"`
		APIKeyID string `json:"api_key_id"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return out.APIKey, out.APIKeyID
}

// TestHostileSubuserFloodsMailSend: a subuser sending as fast as it can is
// refused past its allowance; its parent's allowance is untouched.
func TestHostileSubuserFloodsMailSend(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.RateLimit = 100000
	cfg.MailSendRateLimit = 100
	cfg.RateLimitWindow = time.Hour // no window boundary within the test
	cfg.DeliveryWorkers = 0
	m, key, _ := startMainWith(t, "sqlite:"+filepath.Join(t.TempDir(), "sealpost.db"), cfg)
	createVia(t, m, key, "/v3/subusers", "", `{"username":"flooder","email":"f@example.net"}`, 200)
	subKey, _ := apiKeyOf(t, createVia(t, m, key, "/v3/api_keys", "flooder", `{"name":"flood"}`, 201))

	const tries = 300
	var accepted, refused, other atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < tries; i += 8 {
				switch resp := call(t, m, subKey, "POST", "/v3/mail/send", "", sandboxSend); resp.StatusCode {
				case 200:
					accepted.Add(1)
				case 429:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d mail sends by one subuser in %v: %d accepted, %d refused with 429, %d other", tries, elapsed.Round(time.Millisecond), accepted.Load(), refused.Load(), other.Load())
	if accepted.Load() != int64(cfg.MailSendRateLimit) || refused.Load() != tries-int64(cfg.MailSendRateLimit) || other.Load() != 0 {
		t.Errorf("want exactly %d accepted and the rest refused", cfg.MailSendRateLimit)
	}
	resp := call(t, m, key, "POST", "/v3/mail/send", "", sandboxSend)
	t.Logf("the parent's send afterwards: %d", resp.StatusCode)
	if resp.StatusCode != 200 {
		t.Errorf("the parent's send after the subuser's flood: %d %s", resp.StatusCode, resp.Body)
	}
}

// TestHostileNarrowKeyStripsFullKey: a key holding only the api_keys
// scopes tries to strip, rename and revoke the full-access key.
func TestHostileNarrowKeyStripsFullKey(t *testing.T) {
	t.Parallel()
	m, full, _ := startMain(t, "sqlite:"+filepath.Join(t.TempDir(), "sealpost.db"))
	narrow, _ := apiKeyOf(t, createVia(t, m, full, "/v3/api_keys", "", `{"name":"keys only","scopes":["api_keys.read","api_keys.update","api_keys.delete"]}`, 201))
	resp := call(t, m, full, "GET", "/v3/api_keys", "", "")
	var list struct {
		Result []struct {
			Name     string `json:"name"`
			APIKeyID string `json:"api_key_id"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &list); err != nil {
		t.Fatal(err)
	}
	fullID := ""
	for _, k := range list.Result {
		if k.Name != "keys only" {
			fullID = k.APIKeyID
		}
	}
	for _, a := range []struct{ method, body string }{
		{"PUT", `{"name":"stripped","scopes":["api_keys.read"]}`},
		{"PATCH", `{"name":"renamed"}`},
		{"DELETE", ``},
	} {
		resp := call(t, m, narrow, a.method, "/v3/api_keys/"+fullID, "", a.body)
		t.Logf("%s of the full-access key by the narrow key: %d %s", a.method, resp.StatusCode, resp.Body)
		expect(t, resp, 403, `{"errors":[{"field":null,"message":"access forbidden"}]}`)
	}
	resp = call(t, m, full, "GET", "/v3/scopes", "", "")
	var scopes struct {
		Scopes []string `json:"scopes"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &scopes); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the full-access key afterwards: %d %s", resp.StatusCode, resp.Body)
	}
	t.Logf("the full-access key afterwards: %d, %d scopes", resp.StatusCode, len(scopes.Scopes))
}

// TestHostileTenantCreatesAccountsOnTwoNodes: a tenant creates subusers
// and keys as fast as it can on two PostgreSQL nodes at once; each cap
// ends exactly full.
func TestHostileTenantCreatesAccountsOnTwoNodes(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	cfg := DefaultConfig()
	cfg.RateLimit = 100000
	cfg.MaxSubusers = 40
	cfg.DeliveryWorkers = 0
	cfg.WebhookWorkers = 0
	a, key, _ := startMainWith(t, url, cfg)
	b, _, _ := startMainWith(t, url, cfg)
	nodes := []*Main{a, b}

	race := func(what, path string, tries int, body func(i int) string, created int) map[int]int {
		statuses := map[int]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for w := range 16 {
			wg.Go(func() {
				for i := w; i < tries; i += 16 {
					resp := call(t, nodes[i%2], key, "POST", path, "", body(i))
					mu.Lock()
					statuses[resp.StatusCode]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		t.Logf("%d %s created at once on two nodes in %v: %v", tries, what, time.Since(start).Round(time.Millisecond), statuses)
		if statuses[created] == 0 {
			t.Errorf("%s: none created", what)
		}
		return statuses
	}
	subs := race("subusers", "/v3/subusers", 100, func(i int) string {
		return fmt.Sprintf(`{"username":"s%d","email":"s%d@example.net"}`, i, i)
	}, 200)
	if subs[200] != cfg.MaxSubusers || subs[400] != 100-cfg.MaxSubusers {
		t.Errorf("subusers: %v, want %d created and the rest refused", subs, cfg.MaxSubusers)
	}
	resp := call(t, a, key, "GET", "/v3/subusers", "", "")
	var listed []json.RawMessage
	if err := json.Unmarshal([]byte(resp.Body), &listed); err != nil || len(listed) != cfg.MaxSubusers {
		t.Errorf("GET /v3/subusers lists %d, want %d (%v)", len(listed), cfg.MaxSubusers, err)
	}
	resp = call(t, b, key, "POST", "/v3/subusers", "", `{"username":"late","email":"late@example.net"}`)
	t.Logf("one more subuser: %d %s", resp.StatusCode, resp.Body)
	expect(t, resp, 400, fmt.Sprintf(`{"errors":[{"field":null,"message":"There is a limit of %d subusers on your account."}]}`, cfg.MaxSubusers))

	keys := race("API keys", "/v3/api_keys", 130, func(i int) string { return fmt.Sprintf(`{"name":"k%d"}`, i) }, 201)
	// The bootstrap key is the account's first.
	if keys[201] != 99 || keys[400] != 31 {
		t.Errorf("API keys: %v, want 99 created beside the bootstrap key and 31 refused", keys)
	}
	resp = call(t, b, key, "POST", "/v3/api_keys", "", `{"name":"late"}`)
	t.Logf("one more key: %d %s", resp.StatusCode, resp.Body)
	expect(t, resp, 400, `{"errors":[{"field":null,"message":"There is a limit of 100 API Keys on your account."}]}`)
}

// TestHostileDisabledSubuserMailIsDropped: a subuser queues mail that its
// recipients' server keeps deferring; once the parent disables it, none of
// it is delivered and each recipient's dropped event reaches the
// subuser's webhook at once, not at the next retry.
func TestHostileDisabledSubuserMailIsDropped(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	mx := h.AddMX("held.test", 10, mxtest.Behavior{TempFailRcpt: 1 << 20})
	hook := newWebhookReceiver(t)
	cfg := DefaultConfig()
	cfg.RateLimit = 100000
	cfg.DNSServer = h.DNSAddr()
	cfg.SMTPPort = h.Port()
	cfg.TLSCAFile = h.CAFile()
	cfg.AllowDestinations = "127.0.0.0/8"
	cfg.WebhookInterval = 20 * time.Millisecond
	m, key, _ := startMainWith(t, "sqlite:"+filepath.Join(t.TempDir(), "sealpost.db"), cfg)
	createVia(t, m, key, "/v3/subusers", "", `{"username":"sub","email":"sub@example.net"}`, 200)
	subKey, _ := apiKeyOf(t, createVia(t, m, key, "/v3/api_keys", "sub", `{"name":"send","scopes":["mail.send"]}`, 201))
	settings := fmt.Sprintf(`{"enabled":true,"url":%q,"deferred":true,"dropped":true,"delivered":true}`, hook.srv.URL)
	if resp := call(t, m, key, "PATCH", "/v3/user/webhooks/event/settings", "sub", settings); resp.StatusCode != 200 {
		t.Fatalf("PATCH the subuser's webhook: %d %s", resp.StatusCode, resp.Body)
	}

	const n = 5
	var xids []string
	for i := range n {
		body := fmt.Sprintf(`{"personalizations":[{"to":[{"email":"r%d@held.test"}]}],"from":{"email":"s@sealpost.test"},"subject":"m%d","content":[{"type":"text/plain","value":"x"}]}`, i, i)
		resp := call(t, m, subKey, "POST", "/v3/mail/send", "", body)
		if resp.StatusCode != 202 {
			t.Fatalf("mail send: %d %s", resp.StatusCode, resp.Body)
		}
		xids = append(xids, resp.Headers["X-Message-Id"][0])
	}
	count := func(kind string) int {
		c := 0
		for _, x := range xids {
			for _, e := range hook.eventsFor(x) {
				if e["event"] == kind {
					c++
				}
			}
		}
		return c
	}
	waitFor(t, "a deferral of every message", 30*time.Second, func() bool { return count("deferred") == n })

	disabledAt := time.Now()
	if resp := call(t, m, key, "PATCH", "/v3/subusers/sub", "", `{"disabled":true}`); resp.StatusCode != 204 {
		t.Fatalf("disabling the subuser: %d %s", resp.StatusCode, resp.Body)
	}
	waitFor(t, "a dropped event per recipient", 30*time.Second, func() bool { return count("dropped") == n })
	t.Logf("%d recipients deferred, subuser disabled: %d dropped events at its webhook %v later (the next retry was due in %v); %d delivered",
		n, count("dropped"), time.Since(disabledAt).Round(time.Millisecond), cfg.RetryInitial, mx.AcceptedCount())
	for _, x := range xids {
		for _, e := range hook.eventsFor(x) {
			if e["event"] == "dropped" && (e["reason"] != "Account disabled" || e["status"] != "5.0.0") {
				t.Errorf("dropped event %v", e)
			}
		}
	}
	if resp := call(t, m, subKey, "POST", "/v3/mail/send", "", sandboxSend); resp.StatusCode != 401 {
		t.Errorf("a disabled subuser's mail send: %d, want 401", resp.StatusCode)
	}
	time.Sleep(300 * time.Millisecond) // a delivery or a repeated event would show now
	if got := mx.AcceptedCount(); got != 0 {
		t.Errorf("%d messages delivered for a disabled subuser", got)
	}
	if got := count("dropped"); got != n {
		t.Errorf("%d dropped events, want %d", got, n)
	}
}
