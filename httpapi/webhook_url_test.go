package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sealpost/sealpost"
)

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
