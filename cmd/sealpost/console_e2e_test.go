package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sealpost/sealpost/postgres/pgtest"
)

func consoleGet(t *testing.T, c *http.Client, m *Main, path string) (int, string) {
	t.Helper()
	resp, err := c.Get(m.URL() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestConsoleSessionOnEveryNode: a session started on one node is known to
// another sharing the database, and signing out on either ends it on both,
// even for a browser that kept the cookie.
func TestConsoleSessionOnEveryNode(t *testing.T) {
	t.Parallel()
	database := pgtest.URL(t)
	cfg := DefaultConfig()
	cfg.RateLimit = 100000
	cfg.DeliveryWorkers = 0
	cfg.WebhookWorkers = 0
	a, key, _ := startMainWith(t, database, cfg)
	b, _, _ := startMainWith(t, database, cfg)

	c := consoleClient(t, a, key)
	aURL, _ := url.Parse(a.URL() + "/console/")
	var kept *http.Cookie
	for _, ck := range c.Jar.Cookies(aURL) {
		if ck.Name == "sealpost_console" {
			kept = ck
		}
	}
	if kept == nil {
		t.Fatal("no session cookie after sign-in")
	}
	// Cookies are per host, not per port: the jar sends it to b too.
	if status, body := consoleGet(t, c, b, "/console/tls"); status != 200 || !strings.Contains(body, `id="tls-form"`) {
		t.Fatalf("the other node: %d %s, want the signed-in page", status, body)
	}
	token := consoleCSRF(t, c, b)
	if status, body := consolePost(t, c, b, "/console/signout", b.URL(), url.Values{"csrf": {token}}); status != 200 || !strings.Contains(body, `id="api_key"`) {
		t.Fatalf("sign-out on the other node: %d %s", status, body)
	}
	// The cookie the browser kept no longer signs in anywhere.
	replay := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, m := range []*Main{a, b} {
		req, _ := http.NewRequest("GET", m.URL()+"/console/tls", nil)
		req.AddCookie(&http.Cookie{Name: kept.Name, Value: kept.Value})
		resp, err := replay.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/signin" {
			t.Errorf("%s with the ended session's cookie: %d to %q, want 303 to /console/signin", m.URL(), resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// TestConsoleActsOnBehalfOf: "Acting as" switches to a subuser under the
// API's on-behalf-of rules: the subuser's own setting shows; an account
// that is not the key's child is refused, as the API refuses it, and the
// console stays on the account it was on.
func TestConsoleActsOnBehalfOf(t *testing.T) {
	t.Parallel()
	m, key, _ := startMain(t, "sqlite:"+t.TempDir()+"/sealpost.db")
	if resp := call(t, m, key, "POST", "/v3/subusers", "", createSubuser); resp.StatusCode != 201 && resp.StatusCode != 200 {
		t.Fatalf("creating a subuser: %d %s", resp.StatusCode, resp.Body)
	}
	if resp := call(t, m, key, "PATCH", "/v3/user/settings/enforced_tls", "team-blue", `{"require_valid_cert":true}`); resp.StatusCode != 200 {
		t.Fatalf("the subuser's setting: %d %s", resp.StatusCode, resp.Body)
	}
	c := consoleClient(t, m, key)
	token := consoleCSRF(t, c, m)
	checked := `name="require_valid_cert" value="true" checked`

	status, body := consolePost(t, c, m, "/console/account", m.URL(), url.Values{"csrf": {token}, "on_behalf_of": {"team-blue"}, "back": {"/console/tls"}})
	if status != 200 || !strings.Contains(body, checked) || !strings.Contains(body, `value="team-blue"`) {
		t.Fatalf("acting as the subuser: %d, want its setting (require_valid_cert on); body %s", status, body)
	}
	status, body = consolePost(t, c, m, "/console/account", m.URL(), url.Values{"csrf": {token}, "on_behalf_of": {"someone-else"}})
	if status != http.StatusNotFound || !strings.Contains(body, "Cannot act as someone-else") {
		t.Errorf("acting as an unknown account: %d, want the API's 404; body %s", status, body)
	}
	if status, body := consoleGet(t, c, m, "/console/tls"); status != 200 || !strings.Contains(body, checked) {
		t.Errorf("after the refused switch: %d, want still the subuser's setting", status)
	}
	// Back to the key's own account: its setting is the default.
	status, body = consolePost(t, c, m, "/console/account", m.URL(), url.Values{"csrf": {token}, "on_behalf_of": {""}, "back": {"/console/tls"}})
	if status != 200 || strings.Contains(body, checked) {
		t.Errorf("back to the own account: %d, want require_valid_cert off", status)
	}
}

// TestConsoleOff: with --console=false the console's paths are unknown API
// routes.
func TestConsoleOff(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Console = false
	cfg.DeliveryWorkers = 0
	m, _, _ := startMainWith(t, "sqlite:"+t.TempDir()+"/sealpost.db", cfg)
	for _, path := range []string{"/console/", "/console/signin", "/console/static/console.css"} {
		if status, body := consoleGet(t, http.DefaultClient, m, path); status != http.StatusNotFound || !strings.Contains(body, `"message":"resource not found"`) {
			t.Errorf("GET %s with the console off: %d %s, want the API's 404", path, status, body)
		}
	}
}

// TestConsoleWithoutJavaScript: every page is whole as the server sends it,
// and the Preview button shows the edited setting's preview without
// saving it.
func TestConsoleWithoutJavaScript(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.RateLimit = 100000
	cfg.DeliveryWorkers = 0 // the mail waits: its domain is unknown to the registry
	cfg.AllowDestinations = "127.0.0.0/8"
	m, key, _ := startMainWith(t, "sqlite:"+t.TempDir()+"/sealpost.db", cfg)
	hook := newWebhookReceiver(t)
	if status, resp := apiDo(t, m, "PATCH", "/v3/user/webhooks/event/settings", key, fmt.Sprintf(`{"url":%q}`, hook.srv.URL)); status != 200 {
		t.Fatalf("PATCH webhook settings: %d %s", status, resp)
	}
	body := `{"personalizations":[{"to":[{"email":"someone@waiting.test"}]}],"from":{"email":"s@example.com"},"subject":"waiting","content":[{"type":"text/plain","value":"x"}]}`
	if status, resp := apiDo(t, m, "POST", "/v3/mail/send", key, body); status != 202 {
		t.Fatalf("mail send: %d %s", status, resp)
	}
	c := consoleClient(t, m, key)
	for path, want := range map[string]string{
		"/console/tls":        "This would block 0 domains, 0 recipients in the last 30 days",
		"/console/activity":   "someone@waiting.test",
		"/console/recipients": "<td>waiting.test</td>",
		"/console/webhook":    "Events waiting",
	} {
		status, page := consoleGet(t, c, m, path)
		if status != 200 || !strings.Contains(page, want) {
			t.Errorf("GET %s: %d, want %q in the page; body %s", path, status, want, page)
		}
	}
	token := consoleCSRF(t, c, m)
	status, page := consolePost(t, c, m, "/console/tls", m.URL(), url.Values{"csrf": {token}, "action": {"preview"}, "require_tls": {"true"}, "version": {"1.3"}})
	if status != 200 || !strings.Contains(page, "1 domain never attempted") || !strings.Contains(page, `name="require_tls" value="true" checked`) {
		t.Errorf("preview of an edited setting: %d %s", status, page)
	}
	if _, setting := apiDo(t, m, "GET", "/v3/user/settings/enforced_tls", key, ""); !strings.Contains(setting, `"require_tls":false`) {
		t.Errorf("setting after a preview: %s, want unchanged", setting)
	}

	// Send test, by a plain form post: the page that answers lists it.
	if _, page := consoleGet(t, c, m, "/console/webhook"); !strings.Contains(page, `<p id="posts">No posts yet.</p>`) {
		t.Errorf("webhook page before any post: want no posts; body %s", page)
	}
	status, page = consolePost(t, c, m, "/console/webhook", m.URL(), url.Values{"csrf": {token}})
	host := strings.TrimPrefix(hook.srv.URL, "http://")
	if row := `<td class="wrap">` + host + `</td><td>1</td><td>200</td>`; status != 200 || !strings.Contains(page, "Test event posted") ||
		!strings.Contains(page, row) || !strings.Contains(page, "<td>test</td>") {
		t.Errorf("send test: %d, want the test post listed (%s); body %s", status, row, page)
	}
}
