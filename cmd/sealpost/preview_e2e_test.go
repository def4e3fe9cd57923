package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sealpost/sealpost/delivery/mxtest"
	"github.com/sealpost/sealpost/postgres/pgtest"
)

// TestBinaryPreviewMatchesEnforcement is the readiness preview's proof:
// a history built by real deliveries through the binary, then, policy by
// policy, the preview's answer set against what delivering under that
// policy does. Each strict send also feeds the registry (handshakes its
// policy cut short), so every later preview is also judged on facts
// learnt under another policy.
func TestBinaryPreviewMatchesEnforcement(t *testing.T) {
	t.Parallel()
	stores := map[string]func(t testing.TB) string{
		"sqlite":   func(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "sealpost.db") },
		"postgres": pgtest.URL,
	}
	for name, database := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testPreviewMatchesEnforcement(t, database(t))
		})
	}
}

// previewAnswer is the part of the preview the test compares.
type previewAnswer struct {
	DomainsSeen int `json:"domains_seen"`
	Unknown     struct {
		Domains    int `json:"domains"`
		Recipients int `json:"recipients"`
	} `json:"unknown"`
	Domains []struct {
		Domain     string `json:"domain"`
		ResultType string `json:"result_type"`
	} `json:"domains"`
}

func testPreviewMatchesEnforcement(t *testing.T, database string) {
	h := mxtest.New(t)
	h.AddMX("tls13.test", 10, mxtest.Behavior{})
	h.AddMX("tls12.test", 10, mxtest.TLS12Only())
	h.AddMX("plain.test", 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	h.AddMX("wrongname.test", 10, mxtest.Behavior{Cert: mxtest.CertWrongName})
	h.AddMX("expired.test", 10, mxtest.Behavior{Cert: mxtest.CertExpired})
	// Mail to a domain whose DNS fails is deferred before any TLS: its
	// recipients count, as unknown.
	h.DNS().SetServFail("nodns.test")
	hook := newWebhookReceiver(t)

	p := startServe(t, buildBinary(t),
		"SEALPOST_DATABASE="+database,
		"SEALPOST_DNS_SERVER="+h.DNSAddr(),
		fmt.Sprintf("SEALPOST_SMTP_PORT=%d", h.Port()),
		"SEALPOST_TLS_CA_FILE="+h.CAFile(),
		"SEALPOST_HELO_HOSTNAME=sealpost.test",
		"SEALPOST_WEBHOOK_INTERVAL=50ms",
		allowLoopback,
	)
	key := p.key
	settings := fmt.Sprintf(`{"enabled":true,"url":%q,"delivered":true,"deferred":true,"bounce":true}`, hook.srv.URL)
	if status, body, _ := p.do(t, "PATCH", "/v3/user/webhooks/event/settings", key, settings); status != 200 {
		t.Fatalf("PATCH webhook settings: %d %s", status, body)
	}
	domains := []string{"tls13.test", "tls12.test", "plain.test", "wrongname.test", "expired.test"}
	var rcpts []string
	for _, d := range domains {
		rcpts = append(rcpts, "someone@"+d)
	}

	preview := func(query string) previewAnswer {
		t.Helper()
		status, body, _ := p.do(t, "GET", "/v3/user/settings/enforced_tls/preview"+query, key, "")
		var a previewAnswer
		if status != 200 || json.Unmarshal([]byte(body), &a) != nil {
			t.Fatalf("GET preview%s: %d %s", query, status, body)
		}
		t.Logf("preview%s: %s", query, body)
		return a
	}

	// The history: one opportunistic send to every domain.
	first := sendWithOfficialClient(t, p.base, key, "history", append(rcpts, "someone@nodns.test")...)
	waitFor(t, "the history's deliveries", 30*time.Second, func() bool {
		return len(hook.eventsFor(first)) == len(rcpts)+1
	})
	if a := preview("?require_tls=true"); a.DomainsSeen != 6 || a.Unknown.Domains != 1 || a.Unknown.Recipients != 1 {
		t.Fatalf("history: %+v, want 6 domains seen, nodns.test unknown", a)
	}

	for _, tc := range []struct {
		query, patch string
		want         map[string]string // domain: result type
	}{
		{"?require_tls=true&require_valid_cert=false&version=1.2", `{"require_tls":true,"require_valid_cert":false,"version":1.2}`,
			map[string]string{"plain.test": "starttls-not-supported"}},
		{"?require_tls=false&require_valid_cert=true&version=1.2", `{"require_tls":false,"require_valid_cert":true,"version":1.2}`,
			map[string]string{"plain.test": "starttls-not-supported", "wrongname.test": "certificate-host-mismatch", "expired.test": "certificate-expired"}},
		{"?require_tls=true&require_valid_cert=false&version=1.3", `{"require_tls":true,"require_valid_cert":false,"version":1.3}`,
			map[string]string{"plain.test": "starttls-not-supported", "tls12.test": "validation-failure"}},
		{"?require_tls=false&require_valid_cert=true&version=1.3", `{"require_tls":false,"require_valid_cert":true,"version":1.3}`,
			map[string]string{"plain.test": "starttls-not-supported", "tls12.test": "validation-failure",
				"wrongname.test": "certificate-host-mismatch", "expired.test": "certificate-expired"}},
	} {
		a := preview(tc.query)
		previewed := map[string]string{}
		for _, d := range a.Domains {
			previewed[d.Domain] = d.ResultType
		}
		if status, body, _ := p.do(t, "PATCH", "/v3/user/settings/enforced_tls", key, tc.patch); status != 200 {
			t.Fatalf("PATCH enforced_tls %s: %d %s", tc.patch, status, body)
		}
		// With the policy on, the preview without parameters is the same.
		if b := preview(""); fmt.Sprint(b) != fmt.Sprint(a) {
			t.Errorf("%s: preview with the setting's defaults %+v, with parameters %+v", tc.patch, b, a)
		}
		xid := sendWithOfficialClient(t, p.base, key, "under "+tc.patch, rcpts...)
		waitFor(t, "the deliveries under "+tc.patch, 30*time.Second, func() bool { return len(hook.eventsFor(xid)) == len(rcpts) })
		blocked := map[string]string{}
		for _, e := range hook.eventsFor(xid) {
			if e["event"] != "bounce" || e["type"] != "blocked" {
				continue
			}
			email, _ := e["email"].(string)
			facts, _ := e["sealpost"].(map[string]any)
			rt, _ := facts["result_type"].(string)
			blocked[email[len("someone@"):]] = rt
		}
		if !maps.Equal(previewed, blocked) || !maps.Equal(blocked, tc.want) {
			t.Errorf("%s: preview would block %v, delivery blocked %v, want %v", tc.patch, previewed, blocked, tc.want)
		}
		if got := slices.Sorted(maps.Keys(previewed)); len(got) != len(a.Domains) {
			t.Errorf("%s: a domain listed twice: %+v", tc.patch, a.Domains)
		}
	}
	p.stop(t)
}
