package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sealpost/sealpost"
)

// Hostile but well-formed mail sends are a client's problem, never a 500:
// each is either accepted whole or refused with a 400.
func TestMailSendHostileInputNever500(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"NUL in category", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"b"}],"categories":["a\u0000b"]}`},
		{"NUL in custom arg value", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"b"}],"custom_args":{"k":"a\u0000b"}}`},
		{"NUL in custom arg key", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"b"}],"custom_args":{"k\u0000":"v"}}`},
		{"NUL in content", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"a\u0000b"}]}`},
		{"lone surrogate in custom arg", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"b"}],"custom_args":{"k":"\ud800"}}`},
		{"huge number subject", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":1e999999,"content":[{"type":"text/plain","value":"b"}]}`},
		{"deep nesting", `{"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`},
	}
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		token := e.key(e.user("sender"), sealpost.ScopeMailSend)
		for _, tt := range tests {
			res := e.do(request{method: http.MethodPost, path: pathMailSend, token: token, body: tt.body})
			if res.status != http.StatusAccepted && res.status != http.StatusBadRequest {
				t.Errorf("%s: %d %s", tt.name, res.status, res.body)
			}
		}
	})
}

// The GET body writes the URL as given, as SendGrid does: no \u0026 for "&".
func TestEventWebhookURLNotHTMLEscaped(t *testing.T) {
	const path = "/v3/user/webhooks/event/settings"
	const url = "https://example.com/hook?a=1&b=<2>"
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		token := e.key(e.user("owner"))
		want := `{"enabled":false,"url":"` + url + `","group_resubscribe":false,"delivered":false,` +
			`"group_unsubscribe":false,"spam_report":false,"bounce":false,"deferred":false,` +
			`"unsubscribe":false,"processed":false,"open":false,"click":false,"dropped":false}`
		e.do(request{method: http.MethodPatch, path: path, token: token, body: `{"url":"` + url + `"}`}).want(t, "PATCH", http.StatusOK, want)
		e.do(request{method: http.MethodGet, path: path, token: token}).want(t, "GET", http.StatusOK, want)
	})
}

// A url that is null or not valid UTF-8 is refused like any wrong type,
// and the stored URL is kept.
func TestEventWebhookURLWrongType(t *testing.T) {
	const path = "/v3/user/webhooks/event/settings"
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		a := e.user("owner")
		token := e.key(a)
		e.do(request{method: http.MethodPatch, path: path, token: token, body: `{"url":"https://example.com/hook"}`}).want(t, "set url", http.StatusOK, "")
		for _, body := range []string{`{"url":null}`, "{\"url\":\"https://ex\xffample.com/\"}", `{"url":1}`} {
			res := e.do(request{method: http.MethodPatch, path: path, token: token, body: body})
			if res.status != http.StatusBadRequest || !strings.Contains(res.body, `"field":"url"`) {
				t.Errorf("PATCH %q: %d %s, want 400 naming url", body, res.status, res.body)
			}
		}
		got, err := e.store.EventWebhookSettings(t.Context(), a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.URL != "https://example.com/hook" {
			t.Errorf("stored url %q after refused patches", got.URL)
		}
	})
}
