package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sealpost/sealpost/delivery/mxtest"
)

// browserContext starts headless Chromium for one test. It skips when
// Chromium is absent, unless SEALPOST_REQUIRE_CHROMIUM=1 (CI) makes that a
// failure. Chromium resolves no name but the test's and fetches nothing
// of its own: the test stays on loopback.
func browserContext(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("SEALPOST_REQUIRE_CHROMIUM") == "1" {
			t.Fatal("chromium not found and SEALPOST_REQUIRE_CHROMIUM=1")
		}
		t.Skip("chromium not installed")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root, where the sandbox cannot start
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(800, 900),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("dns-prefetch-disable", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.Flag("proxy-server", "direct://"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// screenshotDir is where the test leaves its screenshots:
// $SEALPOST_SCREENSHOT_DIR, or a temporary directory.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("SEALPOST_SCREENSHOT_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func screenshot(dir, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, tab) // 100: PNG, not JPEG
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	})
}

// waitText waits until the element sel's text matches re.
func waitText(sel string, re *regexp.Regexp) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		for {
			// Each try is short: a query begun as the page navigates may
			// wait on a document that is gone.
			tryCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
			text, err := chromedp.Text(chromedp.CSS(sel))(tryCtx, tab)
			cancel()
			if err == nil && re.MatchString(text) {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s to match %s: %w", sel, re, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// waitLocation waits until the page's URL matches re: a submitted form's
// answer has loaded, not the page it was submitted from.
func waitLocation(re *regexp.Regexp) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		for {
			tryCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
			loc, err := chromedp.Location()(tryCtx, tab)
			cancel()
			if err == nil && re.MatchString(loc) {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for a URL matching %s: %w", re, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// ownOriginOnly fails unless every resource the page loaded came from
// origin: the Content-Security-Policy allows nothing else, and this checks
// the pages ask for nothing else either.
func ownOriginOnly(origin string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		urls, err := chromedp.Evaluate[[]string](`[location.href].concat(performance.getEntriesByType("resource").map(e => e.name))`)(ctx, tab)
		if err != nil {
			return err
		}
		for _, u := range urls {
			if !strings.HasPrefix(u, origin+"/") {
				return fmt.Errorf("the page loaded %s, not from %s", u, origin)
			}
		}
		return nil
	})
}

// fitsWidth fails when the page is wider than the viewport: on a phone
// nothing but a table may scroll sideways, inside its own box.
func fitsWidth() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		over, err := chromedp.Evaluate[int](`document.documentElement.scrollWidth - document.documentElement.clientWidth`)(ctx, tab)
		if err != nil {
			return err
		}
		if over > 0 {
			return fmt.Errorf("the page is %d px wider than the viewport", over)
		}
		return nil
	})
}

// TestConsoleInBrowser drives the console in headless Chromium against
// the real server and fake MX servers: sign in, watch the preview change
// with the edited policy, save it, find the mail it blocks in Activity
// with its cause, probe a domain, sign out.
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	ctx := browserContext(t)
	shots := screenshotDir(t)
	h := mxtest.New(t)
	h.AddMX("tls13.test", 10, mxtest.Behavior{})
	h.AddMX("plain.test", 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	h.AddMX("tls12.test", 10, mxtest.TLS12Only())
	m, key := destinationMain(t, h, "127.0.0.0/8")
	hook := newWebhookReceiver(t)
	hookSettings := fmt.Sprintf(`{"enabled":true,"url":%q,"delivered":true,"bounce":true}`, hook.srv.URL)
	if status, body := apiDo(t, m, "PATCH", "/v3/user/webhooks/event/settings", key, hookSettings); status != 200 {
		t.Fatalf("PATCH webhook settings: %d %s", status, body)
	}

	// A history: one mail to each domain under the default policy, all
	// delivered, so the registry knows each domain's TLS.
	for _, d := range []string{"tls13.test", "plain.test", "tls12.test"} {
		sendTo(t, m, key, "first@"+d)
	}
	waitActivity(t, m, key, `status="delivered"`, 3)

	base := m.URL() + "/console/"
	browse(t, ctx, "sign-in and the Enforced TLS page",
		chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.CSS("#api_key")),
		screenshot(shots, "console-signin"),
		ownOriginOnly(m.URL()),
		// Keyboard only: the key typed and Enter pressed.
		chromedp.SendKeys(chromedp.CSS("#api_key"), key+"\r"),
		waitLocation(regexp.MustCompile(`/console/tls$`)),
		waitText("#tls-form", regexp.MustCompile(`Require TLS`)),
		waitText("#preview-summary", regexp.MustCompile(`block 0 domains, 0 recipients`)),
		// Editing the form updates the preview without a page load.
		chromedp.Click(chromedp.CSS("#require_tls")),
		waitText("#preview-summary", regexp.MustCompile(`block 1 domain, 1 recipient in the last`)),
		chromedp.SetValue(chromedp.CSS("#version"), "1.3"),
		chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`document.getElementById("version").dispatchEvent(new Event("change", {bubbles: true}))`)(ctx, tab)
			return err
		}),
		waitText("#preview-summary", regexp.MustCompile(`block 2 domains, 2 recipients`)),
		waitText("#preview", regexp.MustCompile(`tls12\.test[\s\S]*plain\.test|plain\.test[\s\S]*tls12\.test`)),
		screenshot(shots, "console-enforced-tls"),
		ownOriginOnly(m.URL()),
		chromedp.Click(chromedp.CSS(`button[value="save"]`)),
		waitText("main", regexp.MustCompile(`Saved\.`)),
	)
	if status, body := apiDo(t, m, "GET", "/v3/user/settings/enforced_tls", key, ""); !strings.Contains(body, `"require_tls":true`) || !strings.Contains(body, `"version":1.3`) {
		t.Fatalf("setting after saving in the console: %d %s", status, body)
	}

	// Mail sent through the API now is blocked for plain.test.
	sendTo(t, m, key, "blocked@plain.test")
	waitActivity(t, m, key, `to_email="blocked@plain.test" AND status="not_delivered"`, 1)
	browse(t, ctx, "activity, recipients, webhook, phone widths, sign-out",
		chromedp.Click(chromedp.CSS(`a[href="/console/activity"]`)),
		waitLocation(regexp.MustCompile(`/console/activity$`)),
		waitText("h1", regexp.MustCompile(`Activity`)),
		chromedp.SendKeys(chromedp.CSS("#query"), `to_email="blocked@plain.test"`),
		chromedp.Submit(chromedp.CSS("#query")),
		waitLocation(regexp.MustCompile(`/console/activity\?query=to_email`)),
		waitText(".message", regexp.MustCompile(`blocked@plain\.test`)),
		waitText("main", regexp.MustCompile(`Blocked: the recipient's mail server does not offer TLS`)),
		waitText("main", regexp.MustCompile(`blocked@plain\.test`)),
		screenshot(shots, "console-activity"),
		ownOriginOnly(m.URL()),
		// The search found that message alone.
		chromedp.WaitNotPresent(chromedp.CSS(`[id^="msg-"]:nth-of-type(2)`)),

		chromedp.Click(chromedp.CSS(`a[href="/console/recipients"]`)),
		waitLocation(regexp.MustCompile(`/console/recipients$`)),
		waitText("h1", regexp.MustCompile(`Recipients`)),
		waitText("main", regexp.MustCompile(`plain\.test`)),
		chromedp.SendKeys(chromedp.CSS("#domain"), "tls12.test"),
		chromedp.Submit(chromedp.CSS("#domain")),
		waitText("#probe", regexp.MustCompile(`Probe of tls12\.test[\s\S]*TLS1?\.?2|1\.2`)),
		screenshot(shots, "console-recipients"),
		ownOriginOnly(m.URL()),

		chromedp.Click(chromedp.CSS(`a[href="/console/webhook"]`)),
		waitLocation(regexp.MustCompile(`/console/webhook$`)),
		waitText("h1", regexp.MustCompile(`Event Webhook`)),
		waitText("main", regexp.MustCompile(regexp.QuoteMeta(hook.srv.URL))),
		waitText("#backlog", regexp.MustCompile(`Events waiting\s*\d+[\s\S]*Next retry`)),
		chromedp.Click(chromedp.CSS(`#send-test`)),
		waitText("main", regexp.MustCompile(`Test event posted`)),
		// The test post heads the last posts, with the receiver's status.
		waitText("#posts tbody tr:first-child", regexp.MustCompile(`\b200\b[\s\S]*\btest\b`)),
		screenshot(shots, "console-webhook"),
		ownOriginOnly(m.URL()),

		// A phone's width: every page fits it.
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(m.URL()+"/console/tls"),
		waitText("#preview-summary", regexp.MustCompile(`would block`)),
		fitsWidth(),
		screenshot(shots, "console-enforced-tls-phone"),
		chromedp.Navigate(m.URL()+"/console/activity"),
		waitText(".message", regexp.MustCompile(`plain\.test`)),
		fitsWidth(),
		screenshot(shots, "console-activity-phone"),
		chromedp.Navigate(m.URL()+"/console/recipients"),
		waitText("h2#reg-h", regexp.MustCompile(`Recipient domains`)),
		fitsWidth(),
		chromedp.Navigate(m.URL()+"/console/webhook"),
		waitText("#backlog", regexp.MustCompile(`Events waiting`)),
		fitsWidth(),

		chromedp.Click(chromedp.CSS("#signout")),
		waitLocation(regexp.MustCompile(`/console/signin$`)),
		waitText("main", regexp.MustCompile(`API key`)),
		// Signed out for good: the console sends this browser to sign in.
		chromedp.Navigate(m.URL()+"/console/activity"),
		waitLocation(regexp.MustCompile(`/console/signin$`)),
		waitText("main", regexp.MustCompile(`API key`)),
	)
	t.Logf("screenshots in %s", shots)
}

// browse runs one phase of the test, each with its own time limit; on a
// failure it reports where the browser was and what the page said.
func browse(t *testing.T, ctx context.Context, phase string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	phaseCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(phaseCtx, steps...); err != nil {
		lookCtx, cancelLook := context.WithTimeout(ctx, 10*time.Second)
		defer cancelLook()
		loc, _ := chromedp.Run(lookCtx, chromedp.Location())
		text, _ := chromedp.Run(lookCtx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\nthe browser is at %s, showing:\n%s", phase, err, loc, text)
	}
}

func sendTo(t *testing.T, m *Main, key, to string) {
	t.Helper()
	body := fmt.Sprintf(`{"personalizations":[{"to":[{"email":%q}]}],"from":{"email":"sender@example.com"},"subject":"hello %s","content":[{"type":"text/plain","value":"x"}]}`, to, to)
	if status, resp := apiDo(t, m, "POST", "/v3/mail/send", key, body); status != 202 {
		t.Fatalf("mail send to %s: %d %s", to, status, resp)
	}
}

// waitActivity waits until the Email Activity API lists n messages for query.
func waitActivity(t *testing.T, m *Main, key, query string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, body := apiDo(t, m, "GET", "/v3/messages?limit=50&query="+url.QueryEscape(query), key, "")
		var list struct {
			Messages []json.RawMessage `json:"messages"`
		}
		if status == 200 && json.Unmarshal([]byte(body), &list) == nil && len(list.Messages) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("activity %q: want %d messages, last answer %d %s", query, n, status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// consoleClient signs in to the console over plain HTTP, as a browser
// would, and returns the client holding the session cookie.
func consoleClient(t *testing.T, m *Main, key string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	status, body := consolePost(t, c, m, "/console/signin", m.URL(), url.Values{"api_key": {key}})
	if status != 200 || !strings.Contains(body, `id="tls-form"`) {
		t.Fatalf("sign-in: %d %s", status, body)
	}
	return c
}

func consolePost(t *testing.T, c *http.Client, m *Main, path, origin string, form url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", m.URL()+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func consoleCSRF(t *testing.T, c *http.Client, m *Main) string {
	t.Helper()
	resp, err := c.Get(m.URL() + "/console/tls")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	match := csrfField.FindSubmatch(b)
	if match == nil {
		t.Fatalf("no CSRF token on the page: %d %s", resp.StatusCode, b)
	}
	return string(match[1])
}

// TestConsoleRefusals: a POST from another origin, or without the session's
// CSRF token, changes nothing; a key without enforced_tls.update cannot
// change the policy in the console, as it cannot through the API; the key
// appears on no page.
func TestConsoleRefusals(t *testing.T) {
	t.Parallel()
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultConfig()
			cfg.RateLimit = 100000
			cfg.DeliveryWorkers = 0
			m, key, logs := startMainWith(t, sc.database(t), cfg)
			c := consoleClient(t, m, key)
			token := consoleCSRF(t, c, m)
			save := url.Values{"csrf": {token}, "action": {"save"}, "require_tls": {"true"}, "version": {"1.2"}}

			if status, body := consolePost(t, c, m, "/console/tls", "http://evil.example", save); status != http.StatusForbidden {
				t.Errorf("POST from another origin: %d %s, want 403", status, body)
			}
			noToken := url.Values{"action": {"save"}, "require_tls": {"true"}, "version": {"1.2"}}
			if status, body := consolePost(t, c, m, "/console/tls", m.URL(), noToken); status != http.StatusForbidden {
				t.Errorf("POST without the CSRF token: %d %s, want 403", status, body)
			}
			if _, body := apiDo(t, m, "GET", "/v3/user/settings/enforced_tls", key, ""); !strings.Contains(body, `"require_tls":false`) {
				t.Fatalf("setting after refused posts: %s, want unchanged", body)
			}

			// A read-only key: it sees the page, and saving fails as the
			// API's PATCH would.
			status, body := apiDo(t, m, "POST", "/v3/api_keys", key, `{"name":"reader","scopes":["user.settings.enforced_tls.read"]}`)
			var created struct {
				APIKey string `json:"api_key"`
			}
			if status != 201 || json.Unmarshal([]byte(body), &created) != nil || created.APIKey == "" {
				t.Fatalf("creating a read-only key: %d %s", status, body)
			}
			rc := consoleClient(t, m, created.APIKey)
			save["csrf"] = []string{consoleCSRF(t, rc, m)}
			status, body = consolePost(t, rc, m, "/console/tls", m.URL(), save)
			if status != http.StatusForbidden || !strings.Contains(body, "access forbidden") {
				t.Errorf("saving with a read-only key: %d, want 403 with the API's refusal; body %s", status, body)
			}
			if _, body := apiDo(t, m, "GET", "/v3/user/settings/enforced_tls", key, ""); !strings.Contains(body, `"require_tls":false`) {
				t.Errorf("setting after a read-only key's save: %s, want unchanged", body)
			}
			// The same key through the API directly: the same answer.
			if status, _ := apiDo(t, m, "PATCH", "/v3/user/settings/enforced_tls", created.APIKey, `{"require_tls":true}`); status != http.StatusForbidden {
				t.Errorf("PATCH with the read-only key through the API: %d, want 403", status)
			}

			// The right token from the right origin works.
			if status, body := consolePost(t, c, m, "/console/tls", m.URL(), save0(token)); status != 200 || !strings.Contains(body, "Saved.") {
				t.Errorf("saving with the full-access key: %d %s", status, body)
			}
			for _, path := range []string{"/console/tls", "/console/activity", "/console/recipients", "/console/webhook"} {
				_, body := consoleGet(t, c, m, path)
				if strings.Contains(body, key) {
					t.Errorf("the API key appears on %s", path)
				}
			}
			for _, secret := range []string{key, created.APIKey} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("an API key appears in the log")
				}
			}
		})
	}
}

func save0(token string) url.Values {
	return url.Values{"csrf": {token}, "action": {"save"}, "require_tls": {"true"}, "version": {"1.2"}}
}
