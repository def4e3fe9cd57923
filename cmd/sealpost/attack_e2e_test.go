package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost/delivery/mxtest"
)

// attackTarget is one recipient domain whose only MX sits behind an
// on-path attacker.
type attackTarget struct {
	domain     string
	mode       mxtest.ProxyMode
	resultType string // of the blocked event under require_valid_cert
	tls        bool   // the delivered event under the default policy
	version    string

	proxy *mxtest.Proxy
	mx    *mxtest.Server
}

// attackMark is where one proxy's and its MX's recordings stood at a moment.
type attackMark struct {
	wire, clear, decrypted, forwarded, mxClear, handshakes, received int
}

func (a *attackTarget) mark() attackMark {
	return attackMark{
		wire: len(a.proxy.ClientToServer()), clear: len(a.proxy.ClientCleartext()), decrypted: len(a.proxy.Decrypted()),
		forwarded: len(a.proxy.Forwarded()), mxClear: len(a.mx.CleartextBytes()), handshakes: len(a.proxy.Handshakes()), received: len(a.mx.Received()),
	}
}

// attackLeak names the first sign of a message in b: the marker, or a
// MAIL, RCPT or DATA command; "" if there is none.
func attackLeak(b []byte, marker string) string {
	if bytes.Contains(b, []byte(marker)) {
		return "the marker"
	}
	upper := bytes.ToUpper(b)
	for _, cmd := range []string{"MAIL FROM:", "RCPT TO:"} {
		if bytes.Contains(upper, []byte(cmd)) {
			return cmd
		}
	}
	if bytes.HasPrefix(upper, []byte("DATA\r\n")) || bytes.Contains(upper, []byte("\nDATA\r\n")) {
		return "DATA"
	}
	return ""
}

// TestBinaryEnforcedTLSUnderAttack: the real binary sends to four domains,
// each MX behind a different on-path attacker. Under the default policy the
// attackers read every message (which shows that their recordings would
// catch a leak); once require_valid_cert is set through the API, each
// recipient gets a blocked event at the webhook and not one byte of the
// message, nor any MAIL, RCPT or DATA command, reaches an attacker in clear,
// inside its TLS, or the MX behind it.
func TestBinaryEnforcedTLSUnderAttack(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	targets := []*attackTarget{
		{domain: "stripped.test", mode: mxtest.StripSTARTTLS, resultType: "starttls-not-supported"},
		{domain: "refused.test", mode: mxtest.RefuseSTARTTLS, resultType: "validation-failure"},
		{domain: "tls10.test", mode: mxtest.DowngradeTLS10, resultType: "validation-failure", tls: true, version: "1.0"},
		{domain: "impostor.test", mode: mxtest.ImpersonateWrongName, resultType: "certificate-host-mismatch", tls: true, version: "1.3"},
	}
	for _, a := range targets {
		a.proxy, a.mx = h.AddProxiedMX(a.domain, 10, mxtest.Behavior{}, a.mode)
	}
	hook := newWebhookReceiver(t)
	p := startServe(t, buildBinary(t),
		"SEALPOST_DATABASE=sqlite:"+filepath.Join(t.TempDir(), "sealpost.db"),
		"SEALPOST_DNS_SERVER="+h.DNSAddr(),
		allowLoopback,
		fmt.Sprintf("SEALPOST_SMTP_PORT=%d", h.Port()),
		"SEALPOST_TLS_CA_FILE="+h.CAFile(),
		"SEALPOST_HELO_HOSTNAME=sealpost.test",
		"SEALPOST_WEBHOOK_INTERVAL=50ms",
	)
	key := p.key
	settingsBody := fmt.Sprintf(`{"enabled":true,"url":%q,"processed":true,"delivered":true,"deferred":true,"bounce":true,"dropped":true}`, hook.srv.URL)
	if status, body, _ := p.do(t, "PATCH", "/v3/user/webhooks/event/settings", key, settingsBody); status != 200 {
		t.Fatalf("PATCH webhook settings: %d %s", status, body)
	}

	// send mails one message to each domain and waits for each one's
	// outcome event.
	send := func(phase string) (markers, xids map[string]string, outcomes map[string]map[string]any) {
		t.Helper()
		markers, xids, outcomes = map[string]string{}, map[string]string{}, map[string]map[string]any{}
		for _, a := range targets {
			markers[a.domain] = fmt.Sprintf("attack-%s-%d-%s", phase, time.Now().UnixNano(), a.domain)
			xids[a.domain] = sendWithOfficialClient(t, p.base, key, markers[a.domain], "victim@"+a.domain)
		}
		waitFor(t, phase+" outcome events", 30*time.Second, func() bool {
			for _, a := range targets {
				for _, e := range hook.eventsFor(xids[a.domain]) {
					if e["event"] != "processed" {
						outcomes[a.domain] = e
					}
				}
			}
			return len(outcomes) == len(targets)
		})
		return markers, xids, outcomes
	}

	// 1. The default policy: opportunistic TLS delivers through every
	// attacker, and each attacker's recording holds the message.
	markers, _, outcomes := send("opportunistic")
	for _, a := range targets {
		e := outcomes[a.domain]
		facts, _ := e["sealpost"].(map[string]any)
		wantTLS := 0.0
		if a.tls {
			wantTLS = 1
		}
		if e["event"] != "delivered" || e["tls"] != wantTLS || (a.tls && facts["tls_version"] != a.version) {
			t.Errorf("%s under the default policy: %v, want delivered with tls %v %s", a.domain, e, wantTLS, a.version)
		}
		readBy := a.proxy.ClientToServer() // in clear on the wire
		if a.mode.Terminating() {
			if leak := attackLeak(a.proxy.ClientToServer(), markers[a.domain]); leak != "" {
				t.Errorf("%s: %s on the wire under TLS", a.domain, leak)
			}
			readBy = a.proxy.Decrypted()
		}
		if !bytes.Contains(readBy, []byte(markers[a.domain])) || !bytes.Contains(a.mx.CleartextBytes(), []byte(markers[a.domain])) {
			t.Errorf("%s: the attacker's recording lacks the message it let through; the checks below could not see a leak", a.domain)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// 2. require_valid_cert through the API: every attacker is refused.
	if status, body, _ := p.do(t, "PATCH", "/v3/user/settings/enforced_tls", key, `{"require_valid_cert":true}`); status != 200 ||
		body != `{"require_tls":false,"require_valid_cert":true,"version":1.1}` {
		t.Fatalf("PATCH enforced_tls: %d %s", status, body)
	}
	before := map[string]attackMark{}
	for _, a := range targets {
		before[a.domain] = a.mark()
	}
	markers, xids, outcomes := send("require_valid_cert")
	for _, a := range targets {
		e := outcomes[a.domain]
		facts, _ := e["sealpost"].(map[string]any)
		if e["event"] != "bounce" || e["type"] != "blocked" || e["reason"] != "TLS required but not supported" || e["status"] != "5.7.10" || e["tls"] != 0.0 {
			t.Errorf("%s under require_valid_cert: %v, want a blocked bounce", a.domain, e)
		}
		if facts["result_type"] != a.resultType {
			t.Errorf("%s: result_type %v, want %s", a.domain, facts["result_type"], a.resultType)
		}
		if got := summary(hook.eventsFor(xids[a.domain])); len(got) != 2 {
			t.Errorf("%s: events %v, want processed and one blocked bounce", a.domain, got)
		}

		m := before[a.domain]
		for _, c := range []struct {
			what string
			b    []byte
		}{
			{"the wire from sealpost", a.proxy.ClientToServer()[m.wire:]},
			{"the cleartext before TLS", a.proxy.ClientCleartext()[m.clear:]},
			{"what the attacker decrypted", a.proxy.Decrypted()[m.decrypted:]},
			{"what the attacker forwarded", a.proxy.Forwarded()[m.forwarded:]},
			{"what the MX read", a.mx.CleartextBytes()[m.mxClear:]},
		} {
			if leak := attackLeak(c.b, markers[a.domain]); leak != "" {
				t.Errorf("%s: %s holds %s", a.domain, c.what, leak)
			}
		}
		for _, line := range strings.SplitAfter(string(a.proxy.ClientCleartext()[m.clear:]), "\n") {
			verb, _, _ := strings.Cut(strings.TrimSpace(line), " ")
			switch strings.ToUpper(verb) {
			case "", "EHLO", "HELO", "STARTTLS", "QUIT":
			default:
				t.Errorf("%s: sent in clear under require_valid_cert: %q", a.domain, line)
			}
		}
		for _, hs := range a.proxy.Handshakes()[m.handshakes:] {
			if hs.Err == nil {
				t.Errorf("%s: a TLS session with the attacker completed (version %#04x)", a.domain, hs.Version)
			}
		}
		if n := len(a.mx.Received()) - m.received; n != 0 {
			t.Errorf("%s: the MX saw %d MAIL transactions under require_valid_cert", a.domain, n)
		}
		t.Logf("%-14s %-50v blocked (%s): after the PATCH the attacker got %d wire bytes (%d of them cleartext: %q), decrypted %d, forwarded %d",
			a.domain, a.mode, facts["result_type"], len(a.proxy.ClientToServer())-m.wire, len(a.proxy.ClientCleartext())-m.clear,
			a.proxy.ClientCleartext()[m.clear:], len(a.proxy.Decrypted())-m.decrypted, len(a.proxy.Forwarded())-m.forwarded)
	}
	p.stop(t)
}
