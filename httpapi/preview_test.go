package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

const pathPreview = pathTLS + "/preview"

// seedRegistry gives a the history the preview tests judge: recipients
// at five domains today, facts for four of them.
func seedRegistry(t *testing.T, s sealpost.Store, a *sealpost.Account, at time.Time) {
	t.Helper()
	var msgs []*sealpost.Message
	add := func(domain string, n int) {
		m := &sealpost.Message{AccountID: a.ID, XMessageID: fmt.Sprintf("x-%s", domain), SMTPID: "<" + domain + "@t>",
			From: "s@example.com", Body: &sealpost.MessageBody{Data: []byte("Subject: x\r\n\r\nx\r\n")}, CreatedAt: at}
		for i := range n {
			m.Recipients = append(m.Recipients, sealpost.Recipient{Email: fmt.Sprintf("r%d@%s", i, domain), Domain: domain, SGMessageID: fmt.Sprintf("%s.%d", domain, i)})
		}
		msgs = append(msgs, m)
	}
	add("plain.example", 4)
	add("tls12.example", 3)
	add("tls13.example", 2)
	add("expired.example", 2)
	add("unknown.example", 5)
	if err := s.EnqueueMessages(t.Context(), msgs, nil); err != nil {
		t.Fatal(err)
	}
	obs := func(domain string, f sealpost.TLSFacts, cert string) sealpost.HostObservation {
		f.MXHost = "mx." + domain
		return sealpost.HostObservation{AccountID: a.ID, Domain: domain, MXHost: f.MXHost, At: at, Facts: f, CertResult: cert, Recipients: 1}
	}
	err := s.RecordObservations(t.Context(), []sealpost.HostObservation{
		obs("plain.example", sealpost.TLSFacts{}, ""),
		obs("tls12.example", sealpost.TLSFacts{TLS: true, Version: "1.2", Verified: true}, ""),
		obs("tls13.example", sealpost.TLSFacts{TLS: true, Version: "1.3", Verified: true}, ""),
		obs("expired.example", sealpost.TLSFacts{TLS: true, Version: "1.3", VerifyError: "expired"}, sealpost.ResultCertificateExpired),
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestEnforcedTLSPreview(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	const (
		seen    = `"days":30,"domains_seen":5,"recipients_seen":16,`
		unknown = `"unknown":{"domains":1,"recipients":5},`
		plain   = `{"domain":"plain.example","recipients":4,"last_attempt":"2026-12-01T10:00:00Z","result_type":"starttls-not-supported","best":{"tls_version":null,"cert_valid":false}}`
		tls12   = `{"domain":"tls12.example","recipients":3,"last_attempt":"2026-12-01T10:00:00Z","result_type":"validation-failure","best":{"tls_version":"1.2","cert_valid":true}}`
		expired = `{"domain":"expired.example","recipients":2,"last_attempt":"2026-12-01T10:00:00Z","result_type":"certificate-expired","best":{"tls_version":"1.3","cert_valid":false}}`
	)
	tests := []struct {
		name, query, want string
	}{
		{"the account's own setting: opportunistic", "",
			`{"policy":{"require_tls":false,"require_valid_cert":false,"version":1.1},` + seen +
				`"would_block":{"domains":0,"recipients":0},` + unknown + `"domains":[]}`},
		{"require_tls", "?require_tls=true",
			`{"policy":{"require_tls":true,"require_valid_cert":false,"version":1.1},` + seen +
				`"would_block":{"domains":1,"recipients":4},` + unknown + `"domains":[` + plain + `]}`},
		{"require_tls 1.3", "?require_tls=true&version=1.3",
			`{"policy":{"require_tls":true,"require_valid_cert":false,"version":1.3},` + seen +
				`"would_block":{"domains":2,"recipients":7},` + unknown + `"domains":[` + plain + `,` + tls12 + `]}`},
		{"require_valid_cert 1.3", "?require_valid_cert=true&version=1.3&days=7",
			`{"policy":{"require_tls":false,"require_valid_cert":true,"version":1.3},"days":7,"domains_seen":5,"recipients_seen":16,` +
				`"would_block":{"domains":3,"recipients":9},` + unknown + `"domains":[` + plain + `,` + tls12 + `,` + expired + `]}`},
		{"paginated", "?require_valid_cert=true&version=1.3&limit=1&offset=1",
			`{"policy":{"require_tls":false,"require_valid_cert":true,"version":1.3},` + seen +
				`"would_block":{"domains":3,"recipients":9},` + unknown + `"domains":[` + tls12 + `]}`},
		{"offset past the end", "?require_valid_cert=true&offset=10",
			`{"policy":{"require_tls":false,"require_valid_cert":true,"version":1.1},` + seen +
				`"would_block":{"domains":2,"recipients":6},` + unknown + `"domains":[]}`},
	}
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open, func(c *Config) { c.Now = func() time.Time { return at.Add(time.Hour) } })
		alice := e.user("alice")
		seedRegistry(t, e.store, alice, at)
		token := e.key(alice, sealpost.ScopeEnforcedTLSRead)
		for _, tc := range tests {
			res := e.do(request{method: http.MethodGet, path: pathPreview + tc.query, token: token})
			res.want(t, tc.name, http.StatusOK, tc.want)
		}
		// Missing parameters default to the account's current setting.
		if _, err := e.store.UpdateEnforcedTLS(t.Context(), alice.ID, sealpost.EnforcedTLSPatch{RequireTLS: new(true)}); err != nil {
			t.Fatal(err)
		}
		res := e.do(request{method: http.MethodGet, path: pathPreview, token: token})
		res.want(t, "after enabling require_tls", http.StatusOK,
			`{"policy":{"require_tls":true,"require_valid_cert":false,"version":1.1},`+seen+
				`"would_block":{"domains":1,"recipients":4},`+unknown+`"domains":[`+plain+`]}`)
		// Nothing of alice's shows through another account.
		bob := e.user("bob")
		res = e.do(request{method: http.MethodGet, path: pathPreview + "?require_tls=true", token: e.key(bob, sealpost.ScopeEnforcedTLSRead)})
		res.want(t, "another account", http.StatusOK,
			`{"policy":{"require_tls":true,"require_valid_cert":false,"version":1.1},"days":30,"domains_seen":0,"recipients_seen":0,`+
				`"would_block":{"domains":0,"recipients":0},"unknown":{"domains":0,"recipients":0},"domains":[]}`)
	})
}

func TestEnforcedTLSPreviewInvalid(t *testing.T) {
	t.Parallel()
	bad := func(field, msg string) string {
		return `{"errors":[{"field":"` + field + `","message":"` + msg + `"}]}`
	}
	tests := []struct {
		query, want string
	}{
		{"require_tls=yes", bad("require_tls", "require_tls must be true or false")},
		{"require_tls=", bad("require_tls", "require_tls must be true or false")},
		{"require_valid_cert=1", bad("require_valid_cert", "require_valid_cert must be true or false")},
		{"version=1.0", bad("version", "version must be one of 1.1, 1.2, 1.3")},
		{"version=tls1.2", bad("version", "version must be one of 1.1, 1.2, 1.3")},
		{"days=0", bad("days", "days must be an integer from 1 to 30")},
		{"days=31", bad("days", "days must be an integer from 1 to 30")},
		{"days=1.5", bad("days", "days must be an integer from 1 to 30")},
		{"limit=0", bad("limit", "limit must be an integer from 1 to 500")},
		{"limit=501", bad("limit", "limit must be an integer from 1 to 500")},
		{"offset=-1", bad("offset", "offset must be an integer from 0 to 2147483647")},
		{"require_tls=on&days=x", `{"errors":[{"field":"require_tls","message":"require_tls must be true or false"},` +
			`{"field":"days","message":"days must be an integer from 1 to 30"}]}`},
	}
	e := newEnv(t, openSQLite)
	token := e.key(e.user("alice"), sealpost.ScopeEnforcedTLSRead)
	for _, tc := range tests {
		res := e.do(request{method: http.MethodGet, path: pathPreview + "?" + tc.query, token: token})
		res.want(t, tc.query, http.StatusBadRequest, tc.want)
	}
	// The scope is the setting's read scope.
	res := e.do(request{method: http.MethodGet, path: pathPreview, token: e.key(e.user("carol"), sealpost.ScopeMailSend)})
	if res.status != http.StatusForbidden || !strings.Contains(res.body, "access forbidden") {
		t.Errorf("without the scope: %d %s, want 403", res.status, res.body)
	}
	// A shorter retention narrows the window.
	e = newEnv(t, openSQLite, func(c *Config) { c.RegistryRetention = 7 * 24 * time.Hour })
	token = e.key(e.user("alice"), sealpost.ScopeEnforcedTLSRead)
	e.do(request{method: http.MethodGet, path: pathPreview + "?days=8", token: token}).want(t, "days past the retention",
		http.StatusBadRequest, bad("days", "days must be an integer from 1 to 7"))
	e.do(request{method: http.MethodGet, path: pathPreview, token: token}).want(t, "default days under a short retention",
		http.StatusOK, `{"policy":{"require_tls":false,"require_valid_cert":false,"version":1.1},"days":7,"domains_seen":0,"recipients_seen":0,`+
			`"would_block":{"domains":0,"recipients":0},"unknown":{"domains":0,"recipients":0},"domains":[]}`)
}
