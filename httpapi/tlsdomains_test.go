package httpapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

const pathTLSDomains = "/v3/tls/domains"

// TestTLSDomains: the registry of the acting account's recipient domains,
// each with its summary; a domain never attempted has null version and
// time. Another account sees none of it, and the route needs the preview's
// scope.
func TestTLSDomains(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	const want = `{"days":30,"domains":[` +
		`{"domain":"expired.example","recipients":2,"highest_tls_version":"1.3","valid_cert_seen":false,"last_attempt":"2026-12-01T10:00:00Z"},` +
		`{"domain":"plain.example","recipients":4,"highest_tls_version":null,"valid_cert_seen":false,"last_attempt":"2026-12-01T10:00:00Z"},` +
		`{"domain":"tls12.example","recipients":3,"highest_tls_version":"1.2","valid_cert_seen":true,"last_attempt":"2026-12-01T10:00:00Z"},` +
		`{"domain":"tls13.example","recipients":2,"highest_tls_version":"1.3","valid_cert_seen":true,"last_attempt":"2026-12-01T10:00:00Z"},` +
		`{"domain":"unknown.example","recipients":5,"highest_tls_version":null,"valid_cert_seen":false,"last_attempt":null}]}`
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open, func(c *Config) { c.Now = func() time.Time { return at.Add(time.Hour) } })
		alice := e.user("alice")
		seedRegistry(t, e.store, alice, at)
		e.do(request{method: http.MethodGet, path: pathTLSDomains, token: e.key(alice, sealpost.ScopeEnforcedTLSRead)}).
			want(t, "alice's registry", http.StatusOK, want)
		e.do(request{method: http.MethodGet, path: pathTLSDomains, token: e.key(alice, sealpost.ScopeMailSend)}).
			want(t, "without the scope", http.StatusForbidden, wantForbidden)
		bob := e.user("bob")
		e.do(request{method: http.MethodGet, path: pathTLSDomains, token: e.key(bob, sealpost.ScopeEnforcedTLSRead)}).
			want(t, "another account", http.StatusOK, `{"days":30,"domains":[]}`)
	})
}
