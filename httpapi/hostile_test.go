package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// hostileMailLimit keeps the mail send limit small enough to exceed in a
// test; the real 30 MB is TestMailSend's.
const hostileMailLimit = 1 << 20

// hostileTarget is one endpoint that takes a body, with a body it accepts.
type hostileTarget struct {
	method, path string
	limit        int64
	valid        string
}

// hostileEnv is a server with one account and a key of every scope, a
// subuser and a second key, so that every body-taking endpoint can be
// reached, and a snapshot of everything those endpoints can change.
type hostileEnv struct {
	*env
	acct    *sealpost.Account
	token   string
	targets []hostileTarget
}

func newHostileEnv(t *testing.T, open func(testing.TB) sealpost.Store) *hostileEnv {
	e := newEnv(t, open, noRateLimit, withSigner, func(c *Config) { c.MaxMailBytes = hostileMailLimit })
	acct := e.user("owner")
	token := e.key(acct)
	e.subuser(acct, "kid")
	k, _, err := sealpost.NewAPIKey(acct.ID, "second", []string{sealpost.ScopeMailSend})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateAPIKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	const mail = `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"x"}]}`
	return &hostileEnv{env: e, acct: acct, token: token, targets: []hostileTarget{
		{http.MethodPatch, pathTLS, maxBodyBytes, `{"require_tls":true}`},
		{http.MethodPost, "/v3/api_keys", maxBodyBytes, `{"name":"k"}`},
		{http.MethodPut, "/v3/api_keys/" + k.ID, maxBodyBytes, `{"name":"k","scopes":["mail.send"]}`},
		{http.MethodPatch, "/v3/api_keys/" + k.ID, maxBodyBytes, `{"name":"k"}`},
		{http.MethodPost, "/v3/subusers", maxBodyBytes, `{"username":"newkid","email":"n@example.com","password":"p","ips":[]}`},
		{http.MethodPatch, "/v3/subusers/kid", maxBodyBytes, `{"disabled":true}`},
		{http.MethodPost, "/v3/partners/accounts", maxBodyBytes, `{"profile":{"email":"c@example.com"}}`},
		{http.MethodPost, "/v3/mail/send", hostileMailLimit, mail},
		{http.MethodPatch, "/v3/user/webhooks/event/settings", maxBodyBytes, `{"enabled":true,"url":"https://example.com/hook"}`},
		{http.MethodPatch, "/v3/user/webhooks/event/settings/signed", maxBodyBytes, `{"enabled":true}`},
		{http.MethodPost, "/v3/user/webhooks/event/test", maxBodyBytes, `{"url":"http://127.0.0.1:1/hook"}`},
	}}
}

// snapshot is everything the body-taking endpoints but mail send can
// change, as the API itself reports it.
func (h *hostileEnv) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, p := range []string{pathTLS, "/v3/api_keys", "/v3/subusers", "/v3/partners/accounts",
		"/v3/user/webhooks/event/settings", "/v3/user/webhooks/event/settings/signed"} {
		res := h.do(request{method: http.MethodGet, path: p, token: h.token})
		b.WriteString(p + " " + res.body + "\n")
	}
	for _, k := range h.keyDetails(t) {
		b.WriteString(k + "\n")
	}
	return b.String()
}

func (h *hostileEnv) keyDetails(t *testing.T) []string {
	t.Helper()
	keys, err := h.store.APIKeys(context.Background(), h.acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		res := h.do(request{method: http.MethodGet, path: "/v3/api_keys/" + k.ID, token: h.token})
		out = append(out, res.body)
	}
	return out
}

// hostileCountingReader counts the bytes a handler pulled from a body
// that never ends.
type hostileCountingReader struct{ n atomic.Int64 }

func (r *hostileCountingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	r.n.Add(int64(len(p)))
	return len(p), nil
}

// TestHostileOversizedBodies: every endpoint that takes a body answers a
// body over its limit with 413 in SendGrid's form, whether the length is
// declared or only found out by reading, reads no more than the limit
// (nothing at all when the declared length is already too much), and
// changes nothing.
func TestHostileOversizedBodies(t *testing.T) {
	t.Parallel()
	h := newHostileEnv(t, openSQLite)
	before := h.snapshot(t)
	for _, tg := range h.targets {
		for _, declared := range []bool{true, false} {
			what := tg.method + " " + tg.path
			if declared {
				what += " with Content-Length"
			}
			// Valid JSON but for its length: a leading run of spaces.
			body := &hostileCountingReader{}
			req := httptest.NewRequest(tg.method, tg.path, io.MultiReader(io.LimitReader(body, tg.limit*4), strings.NewReader(tg.valid)))
			req.ContentLength = -1
			if declared {
				req.ContentLength = tg.limit*4 + int64(len(tg.valid))
			}
			req.Header.Set("Authorization", "Bearer "+h.token)
			rec := httptest.NewRecorder()
			h.serve(t, rec, req)
			want := wantTooLarge
			if tg.path == "/v3/partners/accounts" {
				want = provisioningForm[wantTooLarge]
			}
			if rec.Code != http.StatusRequestEntityTooLarge || rec.Body.String() != want {
				t.Errorf("%s: %d %s, want 413 %s", what, rec.Code, rec.Body, want)
			}
			read := body.n.Load()
			if declared && read != 0 {
				t.Errorf("%s: read %d bytes of a body declared too large", what, read)
			}
			if read > tg.limit+1 {
				t.Errorf("%s: read %d bytes, limit %d", what, read, tg.limit)
			}
		}
		// At the limit exactly, the same padding is accepted: the limit
		// is the one documented, not a smaller one.
		pad := strings.Repeat(" ", int(tg.limit)-len(tg.valid))
		res := h.do(request{method: tg.method, path: tg.path, token: h.token, body: pad + tg.valid})
		if res.status == http.StatusRequestEntityTooLarge || res.status >= 500 {
			t.Errorf("%s at the limit: %d %s", tg.method+" "+tg.path, res.status, res.body)
		}
		before = h.snapshot(t) // the at-limit request may change things
	}
	if after := h.snapshot(t); after != before {
		t.Errorf("state changed:\n%s\nwant\n%s", after, before)
	}
}

// hostileBody is one hostile body sent to every body-taking endpoint.
type hostileBody struct {
	name string
	body func(tg hostileTarget) string
}

// hostileDepth is how deeply a body within tg's limit can nest: 100,000
// where the limit allows, and always beyond encoding/json's 10,000.
func hostileDepth(tg hostileTarget, perLevel int) int {
	return min(100000, int(tg.limit)/perLevel-len(tg.valid))
}

// hostileBodies are bodies no endpoint may accept: each must be a 400 in
// SendGrid's form, quickly, changing nothing.
var hostileBodies = []hostileBody{
	{"invalid UTF-8 in a string", func(tg hostileTarget) string { return tg.valid[:len(tg.valid)-1] + ",\"x\":\"\xff\"}" }},
	{"invalid UTF-8 in a key", func(tg hostileTarget) string { return tg.valid[:len(tg.valid)-1] + ",\"\xc3\":1}" }},
	{"overlong UTF-8 encoding", func(tg hostileTarget) string { return tg.valid[:len(tg.valid)-1] + ",\"x\":\"\xc0\xaf\"}" }},
	{"UTF-16 surrogate as UTF-8", func(tg hostileTarget) string { return tg.valid[:len(tg.valid)-1] + ",\"x\":\"\xed\xa0\x80\"}" }},
	{"invalid UTF-8 after the object", func(tg hostileTarget) string { return tg.valid + "\xff" }},
	{"raw NUL inside a string", func(tg hostileTarget) string { return tg.valid[:len(tg.valid)-1] + ",\"x\":\"a\x00b\"}" }},
	{"raw NUL after the object", func(tg hostileTarget) string { return tg.valid + "\x00" }},
	{"two objects", func(tg hostileTarget) string { return tg.valid + tg.valid }},
	{"deeply nested arrays", func(tg hostileTarget) string {
		n := hostileDepth(tg, 2)
		return strings.Repeat("[", n) + strings.Repeat("]", n)
	}},
	{"deeply nested arrays in a member", func(tg hostileTarget) string {
		n := hostileDepth(tg, 2)
		return tg.valid[:len(tg.valid)-1] + `,"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + "}"
	}},
	{"deeply nested objects in a member", func(tg hostileTarget) string {
		n := hostileDepth(tg, 6)
		return tg.valid[:len(tg.valid)-1] + `,"x":` + strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) + "}"
	}},
	{"deeply nested arrays, unclosed", func(tg hostileTarget) string { return strings.Repeat("[", hostileDepth(tg, 1)) }},
	{"not JSON", func(hostileTarget) string { return "\x00\x01\x02" }},
	{"array", func(tg hostileTarget) string { return "[" + tg.valid + "]" }},
	{"string", func(hostileTarget) string { return `"{}"` }},
	{"number too large for a float", func(hostileTarget) string { return `1e400` }},
	{"null", func(hostileTarget) string { return `null` }},
}

// TestHostileBodies sends every hostile body to every endpoint that takes
// one: a prompt 400 in SendGrid's form that changes nothing, never a 500,
// a panic or a blown stack.
func TestHostileBodies(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		h := newHostileEnv(t, open)
		before := h.snapshot(t)
		for _, tg := range h.targets {
			for _, hb := range hostileBodies {
				what := tg.method + " " + tg.path + ": " + hb.name
				start := time.Now()
				res := h.do(request{method: tg.method, path: tg.path, token: h.token, body: hb.body(tg)})
				if res.status != http.StatusBadRequest {
					t.Errorf("%s: %d %s, want 400", what, res.status, res.body)
					continue
				}
				if elapsed := time.Since(start); elapsed > 5*time.Second {
					t.Errorf("%s: took %v", what, elapsed)
				}
				checkErrorBody(t, res.status, res.body)
				if res.header.Get(headerMessageID) != "" {
					t.Errorf("%s: X-Message-Id on a 400", what)
				}
			}
		}
		if after := h.snapshot(t); after != before {
			t.Errorf("state changed:\n%s\nwant\n%s", after, before)
		}
	})
}

// TestHostileJSONValues: escaped NULs, numbers no float holds, duplicate
// keys and wrong types, endpoint by endpoint. A refusal is a 400 naming
// every offending field; a repeated key means its last value, as
// encoding/json reads it, everywhere; nothing is ever a 500, on either
// store (PostgreSQL refuses NUL in text outright).
func TestHostileJSONValues(t *testing.T) {
	t.Parallel()
	const mailHead = `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},`
	tests := []struct {
		method, path, body string
		status             int
		fields             []string // each must be named in a 400
		contains           string   // in a 2xx body
	}{
		{"PATCH", pathTLS, `{"version":1e400}`, 400, []string{"version"}, ""},
		{"PATCH", pathTLS, `{"version":100000000000000000000000000000000000000000}`, 400, []string{"version"}, ""},
		{"PATCH", pathTLS, `{"version":-1.2}`, 400, []string{"version"}, ""},
		{"PATCH", pathTLS, `{"version":1.3,"require_tls":1,"require_valid_cert":"true"}`, 400, []string{"require_tls", "require_valid_cert"}, ""},
		{"PATCH", pathTLS, `{"require_tls":null,"require_valid_cert":[],"version":"1.2"}`, 400, []string{"require_tls", "require_valid_cert", "version"}, ""},
		{"PATCH", pathTLS, `{"require_tls":true,"require_tls":"no"}`, 400, []string{"require_tls"}, ""},
		{"PATCH", pathTLS, `{"require_tls":"no","require_tls":true,"version":1.1,"version":1.3}`, 200, nil, `{"require_tls":true,"require_valid_cert":false,"version":1.3}`},
		{"PATCH", pathTLS, `{"require_valid_cert":true,"x\u0000":"\u0000"}`, 200, nil, `"require_valid_cert":true`},

		{"POST", "/v3/api_keys", `{"name":"a\u0000b"}`, 400, []string{"name"}, ""},
		{"POST", "/v3/api_keys", `{"name":1e400}`, 400, []string{"name"}, ""},
		{"POST", "/v3/api_keys", `{"name":"k","scopes":"mail.send"}`, 400, []string{"scopes"}, ""},
		{"POST", "/v3/api_keys", `{"name":"k","scopes":["mail.send",1]}`, 400, []string{"scopes"}, ""},
		{"POST", "/v3/api_keys", `{"name":"k","scopes":["mail.send\u0000"]}`, 400, []string{"scopes"}, ""},
		{"POST", "/v3/api_keys", `{"name":"first","scopes":["api_keys.read"],"name":"last","scopes":["mail.send"]}`, 201, nil, `"name":"last","scopes":["mail.send"]`},

		{"POST", "/v3/subusers", `{"username":"a\u0000b","email":"x@example.com"}`, 400, []string{"username"}, ""},
		{"POST", "/v3/subusers", `{"username":"nul","email":"x\u0000@example.com"}`, 400, []string{"email"}, ""},
		{"POST", "/v3/subusers", `{"username":"big","email":"b@example.com","ips":[1e400],"password":false}`, 400, []string{"ips", "password"}, ""},
		{"POST", "/v3/subusers", `{"username":1,"email":{}}`, 400, []string{"username", "email"}, ""},
		{"PATCH", "/v3/subusers/kid", `{"disabled":"true"}`, 400, []string{"disabled"}, ""},
		{"PATCH", "/v3/subusers/kid", `{"disabled":null}`, 400, []string{"disabled"}, ""},
		{"PATCH", "/v3/subusers/kid", `{"disabled":1e400}`, 400, []string{"disabled"}, ""},

		{"POST", "/v3/partners/accounts", `{"profile":{"email":"a\u0000@example.com"}}`, 400, []string{"profile.email"}, ""},
		{"POST", "/v3/partners/accounts", `{"profile":"x","offerings":{}}`, 400, []string{"profile", "offerings"}, ""},
		{"POST", "/v3/partners/accounts", `{"offerings":[{"name":"x","type":"y","quantity":1e400}]}`, 400, []string{"offerings[0].quantity"}, ""},

		{"PATCH", "/v3/user/webhooks/event/settings", `{"url":"https://example.com/\u0000"}`, 400, []string{"url"}, ""},
		{"PATCH", "/v3/user/webhooks/event/settings", `{"enabled":1,"delivered":"true","url":5}`, 400, []string{"enabled", "delivered", "url"}, ""},
		{"PATCH", "/v3/user/webhooks/event/settings", `{"url":"https://example.com/a","enabled":true,"url":"https://example.com/b"}`, 200, nil, `"url":"https://example.com/b"`},
		{"PATCH", "/v3/user/webhooks/event/settings/signed", `{"enabled":"yes"}`, 400, []string{"enabled"}, ""},
		{"PATCH", "/v3/user/webhooks/event/settings/signed", `{"enabled":1e400}`, 400, []string{"enabled"}, ""},
		{"POST", "/v3/user/webhooks/event/test", `{"url":"http://127.0.0.1:1/\u0000"}`, 400, []string{"url"}, ""},
		{"POST", "/v3/user/webhooks/event/test", `{"url":["http://127.0.0.1:1/"]}`, 400, []string{"url"}, ""},

		{"POST", "/v3/mail/send", mailHead + `"subject":"a\u0000b","content":[{"type":"text/plain","value":"x"}]}`, 400, []string{"subject"}, ""},
		{"POST", "/v3/mail/send", mailHead + `"subject":"s","content":[{"type":"text/plain","value":"x"}],"headers":{"X-A":"\u0000"}}`, 400, []string{"headers"}, ""},
		{"POST", "/v3/mail/send", mailHead + `"subject":"s","content":[{"type":"text/plain","value":"x\u0000y"}]}`, 202, nil, ""},
		{"POST", "/v3/mail/send", mailHead + `"subject":"s","content":[{"type":"text/plain","value":"x"}],"custom_args":{"k\u0000":"v"},"categories":["c\u0000"]}`, 400, []string{"categories.0", "custom_args"}, ""},
		{"POST", "/v3/mail/send", `{"personalizations":[{"to":[{"email":"a@example.com"}],"custom_args":{"k":"v\u0000"}}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"x"}],"categories":["a\r\nb"]}`, 400, []string{"personalizations.0.custom_args", "categories.0"}, ""},
		{"POST", "/v3/mail/send", mailHead + `"subject":"s","content":[{"type":"text/plain","value":"x"}],"asm":{"group_id":1e400}}`, 202, nil, ""},
		// send_at is a Unix time in whole seconds.
		{"POST", "/v3/mail/send", mailHead + `"subject":"s","content":[{"type":"text/plain","value":"x"}],"send_at":1e400}`, 400, []string{"send_at"}, ""},
		{"POST", "/v3/mail/send", `{"personalizations":"x","from":"y","subject":1,"content":{}}`, 400, []string{"personalizations", "from", "subject", "content"}, ""},
		{"POST", "/v3/mail/send", mailHead + `"subject":"s","subject":["last wins"],"content":[{"type":"text/plain","value":"x"}]}`, 400, []string{"subject"}, ""},
	}
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		h := newHostileEnv(t, open)
		for _, tc := range tests {
			what := tc.method + " " + tc.path + " " + tc.body
			res := h.do(request{method: tc.method, path: tc.path, token: h.token, body: tc.body})
			if res.status != tc.status {
				t.Errorf("%s: %d %s, want %d", what, res.status, res.body, tc.status)
				continue
			}
			if tc.status == http.StatusBadRequest {
				checkErrorBody(t, res.status, res.body)
			}
			for _, f := range tc.fields {
				if !strings.Contains(res.body, `"field":"`+f+`"`) {
					t.Errorf("%s: 400 %s does not name %s", what, res.body, f)
				}
			}
			if !strings.Contains(res.body, tc.contains) {
				t.Errorf("%s: %d %s, want it to contain %s", what, res.status, res.body, tc.contains)
			}
		}
	})
}
