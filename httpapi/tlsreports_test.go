package httpapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// TestTLSReports: the acting account's own sessions of a day in RFC 8460's
// shape; another account sees none of them, another day is empty, the
// date is required, and the route needs the preview's scope.
func TestTLSReports(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	const path = "/v3/tls/reports?date=2026-12-01"
	report := func(domain, policy string) string {
		return `{"organization-name":"sealpost","date-range":{"start-datetime":"2026-12-01T00:00:00Z","end-datetime":"2026-12-01T23:59:59Z"},` +
			`"contact-info":"alice@example.com","report-id":"2026-12-01_` + domain + `@example.com","policies":[` + policy + `]}`
	}
	want := `{"date":"2026-12-01","reports":[` +
		report("expired.example", `{"policy":{"policy-type":"no-policy-found","policy-domain":"expired.example"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}`) + "," +
		report("plain.example", `{"policy":{"policy-type":"no-policy-found","policy-domain":"plain.example"},"summary":{"total-successful-session-count":0,"total-failure-session-count":1},`+
			`"failure-details":[{"result-type":"starttls-not-supported","receiving-mx-hostname":"mx.plain.example","failed-session-count":1}]}`) + "," +
		report("tls12.example", `{"policy":{"policy-type":"no-policy-found","policy-domain":"tls12.example"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}`) + "," +
		report("tls13.example", `{"policy":{"policy-type":"no-policy-found","policy-domain":"tls13.example"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}`) +
		`]}`
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open, func(c *Config) { c.Now = func() time.Time { return at.Add(time.Hour) } })
		alice := e.user("alice")
		seedRegistry(t, e.store, alice, at)
		tok := e.key(alice, sealpost.ScopeEnforcedTLSRead)
		e.do(request{method: http.MethodGet, path: path, token: tok}).want(t, "alice's reports", http.StatusOK, want)
		e.do(request{method: http.MethodGet, path: "/v3/tls/reports?date=2026-11-30", token: tok}).
			want(t, "another day", http.StatusOK, `{"date":"2026-11-30","reports":[]}`)
		e.do(request{method: http.MethodGet, path: "/v3/tls/reports", token: tok}).
			want(t, "no date", http.StatusBadRequest, `{"errors":[{"field":"date","message":"date must be a UTC date, YYYY-MM-DD"}]}`)
		e.do(request{method: http.MethodGet, path: path, token: e.key(alice, sealpost.ScopeMailSend)}).
			want(t, "without the scope", http.StatusForbidden, wantForbidden)
		bob := e.user("bob")
		e.do(request{method: http.MethodGet, path: path, token: e.key(bob, sealpost.ScopeEnforcedTLSRead)}).
			want(t, "another account", http.StatusOK, `{"date":"2026-12-01","reports":[]}`)
	})
}
