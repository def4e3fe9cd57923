package delivery

import (
	"crypto/tls"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// mxSpec is one MX host of a scenario; a nil behaviour means nothing
// listens at its address (connection refused).
type mxSpec struct {
	name string
	ip   string
	pref uint16
	b    *mxBehaviour
}

type scenario struct {
	ca     *testCA
	res    *fakeResolver
	client *Client
	mxs    map[string]*fakeMX
}

func newScenario(t *testing.T, ca *testCA, domain string, specs ...mxSpec) *scenario {
	t.Helper()
	var ips []string
	for _, s := range specs {
		if s.b != nil {
			ips = append(ips, s.ip)
		}
	}
	var port int
	var lns []net.Listener
	if len(ips) > 0 {
		port, lns = listenAll(t, ips...)
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	sc := &scenario{ca: ca, res: &fakeResolver{mx: map[string][]*net.MX{}, addrs: map[string][]string{}}, mxs: map[string]*fakeMX{}}
	for _, s := range specs {
		sc.res.mx[domain] = append(sc.res.mx[domain], &net.MX{Host: s.name + ".", Pref: s.pref})
		sc.res.addrs[s.name] = []string{s.ip}
		if s.b != nil {
			sc.mxs[s.name] = startMX(t, s.name, lns[0], *s.b)
			lns = lns[1:]
		}
	}
	sc.client = &Client{
		Resolver:     sc.res,
		Port:         port,
		HeloHostname: "client.test",
		RootCAs:      ca.pool,
		Timeout:      5 * time.Second,
		Logger:       testLogger(t),
		Destinations: loopbackOnly(),
	}
	return sc
}

func testEnvelope(rcpts ...string) Envelope {
	return Envelope{
		From:       "sender@sealpost.test",
		Domain:     "example.test",
		Recipients: rcpts,
		Data:       []byte("Subject: hi\r\n\r\nline one\r\n.leading dot\r\n..two dots\r\nlast\r\n"),
	}
}

func serverTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

func TestDeliverTranscript(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	sc := newScenario(t, ca, "example.test", mxSpec{name: "mx.example.test", ip: "127.0.0.2", pref: 10,
		b: &mxBehaviour{TLS: serverTLS(ca.validLeaf(t, "mx.example.test")), Size: true}})
	env := testEnvelope("a@example.test", "b@example.test")
	res := sc.client.Deliver(t.Context(), sealpost.DefaultEnforcedTLS(), env)

	trs := sc.mxs["mx.example.test"].transcripts()
	if len(trs) != 1 {
		t.Fatalf("got %d connections, want 1", len(trs))
	}
	want := []string{
		"EHLO client.test",
		"STARTTLS",
		"<TLS 1.3>",
		"EHLO client.test",
		"MAIL FROM:<sender@sealpost.test> SIZE=" + itoaLen(env.Data),
		"RCPT TO:<a@example.test>",
		"RCPT TO:<b@example.test>",
		"DATA",
		"QUIT",
	}
	if !slices.Equal(trs[0].Commands, want) {
		t.Errorf("commands:\n got %q\nwant %q", trs[0].Commands, want)
	}
	wantData := "Subject: hi\r\n\r\nline one\r\n..leading dot\r\n...two dots\r\nlast\r\n"
	if trs[0].Data != wantData {
		t.Errorf("data on the wire = %q, want %q", trs[0].Data, wantData)
	}
	for i, rr := range res.Recipients {
		if rr.Status != Delivered || rr.Response != "250 2.0.0 Ok: queued as X" || rr.EnhancedStatus != "2.0.0" {
			t.Errorf("recipient %d: %+v", i, rr)
		}
	}
	wantPolicy := sealpost.RequirementOf(sealpost.DefaultEnforcedTLS())
	if res.TLS.Policy == nil || *res.TLS.Policy != wantPolicy {
		t.Errorf("effective policy %+v, want %+v", res.TLS.Policy, wantPolicy)
	}
	want2 := sealpost.TLSFacts{TLS: true, Version: "1.3", Cipher: res.TLS.Cipher, Verified: true, MXHost: "mx.example.test", MXIP: "127.0.0.2",
		PolicySource: "account", Policy: res.TLS.Policy}
	if res.TLS != want2 || res.TLS.Cipher == "" {
		t.Errorf("TLS facts = %+v, want %+v", res.TLS, want2)
	}
}

// TestCapabilitiesForgottenAfterSTARTTLS: what the server said before TLS
// could have come from an attacker, so only the EHLO over TLS counts.
func TestCapabilitiesForgottenAfterSTARTTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	sc := newScenario(t, ca, "example.test", mxSpec{name: "mx.example.test", ip: "127.0.0.2", pref: 10,
		b: &mxBehaviour{TLS: serverTLS(ca.validLeaf(t, "mx.example.test")), SizeBeforeTLSOnly: true}})
	res := sc.client.Deliver(t.Context(), sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS12}, testEnvelope("a@example.test"))
	if res.Recipients[0].Status != Delivered {
		t.Fatalf("got %+v", res.Recipients[0])
	}
	trs := sc.mxs["mx.example.test"].transcripts()
	if !trs[0].has("MAIL FROM:<sender@sealpost.test>") || trs[0].has("MAIL FROM:<sender@sealpost.test> SIZE") {
		t.Errorf("MAIL used a pre-TLS capability: %q", trs[0].Commands)
	}
}

func itoaLen(b []byte) string { return itoa(len(b)) }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}

// TestPolicyDecision walks the decision table of the Enforced TLS
// specification against one MX host.
func TestPolicyDecision(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	other := newTestCA(t) // a CA the client does not trust
	const host = "mx.example.test"
	valid := ca.validLeaf(t, host)
	expired := ca.leaf(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), host)
	wrongName := ca.validLeaf(t, "other.example.test")
	untrusted := other.validLeaf(t, host)
	tls11only := &tls.Config{Certificates: []tls.Certificate{valid}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	tls10only := &tls.Config{Certificates: []tls.Certificate{valid}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}
	rsa11only := &tls.Config{Certificates: []tls.Certificate{ca.rsaLeaf(t, host)}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	tls12max := &tls.Config{Certificates: []tls.Certificate{valid}, MaxVersion: tls.VersionTLS12}

	opp := sealpost.DefaultEnforcedTLS()
	reqTLS := func(v sealpost.TLSVersion) sealpost.EnforcedTLS {
		return sealpost.EnforcedTLS{RequireTLS: true, Version: v}
	}
	reqCert := sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS11}

	tests := []struct {
		name   string
		policy sealpost.EnforcedTLS
		b      mxBehaviour
		status Status
		tls    bool   // facts.TLS
		ver    string // facts.Version, when tls
		// verified and verifyErr check the certificate facts.
		verified   bool
		verifyErr  string
		resultType string
		conns      int // connections the server saw
		mail       bool
	}{
		{name: "opportunistic, no STARTTLS: plaintext", policy: opp, b: mxBehaviour{}, status: Delivered, conns: 1, mail: true},
		{name: "opportunistic, STARTTLS: TLS", policy: opp, b: mxBehaviour{TLS: serverTLS(valid)}, status: Delivered, tls: true, ver: "1.3", verified: true, conns: 1, mail: true},
		{name: "opportunistic, untrusted cert: TLS anyway", policy: opp, b: mxBehaviour{TLS: serverTLS(untrusted)}, status: Delivered, tls: true, ver: "1.3", verifyErr: "unknown authority", conns: 1, mail: true},
		{name: "opportunistic, handshake fails: plaintext on a new connection", policy: opp, b: mxBehaviour{TLS: serverTLS(valid), BreakHandshake: true}, status: Delivered, conns: 2, mail: true},
		{name: "opportunistic, STARTTLS refused: plaintext", policy: opp, b: mxBehaviour{TLS: serverTLS(valid), STARTTLSReply: "454 4.7.0 TLS not available"}, status: Delivered, conns: 1, mail: true},
		{name: "opportunistic, EHLO refused: HELO", policy: opp, b: mxBehaviour{EHLOReply: "502 5.5.1 no ESMTP"}, status: Delivered, conns: 1, mail: true},
		{name: "opportunistic, TLS 1.0-only server", policy: opp, b: mxBehaviour{TLS: tls10only}, status: Delivered, tls: true, ver: "1.0", verified: true, conns: 1, mail: true},
		{name: "require_tls, no STARTTLS: blocked", policy: reqTLS(sealpost.TLS11), b: mxBehaviour{}, status: Blocked, resultType: sealpost.ResultSTARTTLSNotSupported, conns: 1},
		{name: "require_tls, EHLO refused: blocked", policy: reqTLS(sealpost.TLS11), b: mxBehaviour{EHLOReply: "502 5.5.1 no ESMTP"}, status: Blocked, resultType: sealpost.ResultSTARTTLSNotSupported, conns: 1},
		{name: "require_tls, STARTTLS refused: blocked", policy: reqTLS(sealpost.TLS11), b: mxBehaviour{TLS: serverTLS(valid), STARTTLSReply: "454 4.7.0 TLS not available"}, status: Blocked, resultType: sealpost.ResultValidationFailure, conns: 1},
		{name: "require_tls, handshake fails: blocked, no plaintext retry", policy: reqTLS(sealpost.TLS11), b: mxBehaviour{TLS: serverTLS(valid), BreakHandshake: true}, status: Blocked, resultType: sealpost.ResultValidationFailure, conns: 1},
		{name: "require_tls, untrusted cert: delivered over TLS", policy: reqTLS(sealpost.TLS11), b: mxBehaviour{TLS: serverTLS(untrusted)}, status: Delivered, tls: true, ver: "1.3", verifyErr: "unknown authority", conns: 1, mail: true},
		{name: "require_tls 1.1, TLS 1.1-only server: delivered", policy: reqTLS(sealpost.TLS11), b: mxBehaviour{TLS: tls11only}, status: Delivered, tls: true, ver: "1.1", verified: true, conns: 1, mail: true},
		{name: "require_tls 1.1, TLS 1.1-only server with an RSA key: delivered", policy: reqTLS(sealpost.TLS11), b: mxBehaviour{TLS: rsa11only}, status: Delivered, tls: true, ver: "1.1", verified: true, conns: 1, mail: true},
		{name: "require_tls, plaintext injected after 220: blocked", policy: reqTLS(sealpost.TLS11), b: mxBehaviour{TLS: serverTLS(valid), InjectAfterSTARTTLS: true}, status: Blocked, resultType: sealpost.ResultValidationFailure, conns: 1},
		{name: "opportunistic, plaintext injected after 220: plaintext on a new connection", policy: opp, b: mxBehaviour{TLS: serverTLS(valid), InjectAfterSTARTTLS: true}, status: Delivered, conns: 2, mail: true},
		{name: "require_tls 1.2, TLS 1.1-only server: blocked", policy: reqTLS(sealpost.TLS12), b: mxBehaviour{TLS: tls11only}, status: Blocked, resultType: sealpost.ResultValidationFailure, conns: 1},
		{name: "require_tls 1.3, TLS 1.2 server: blocked", policy: reqTLS(sealpost.TLS13), b: mxBehaviour{TLS: tls12max}, status: Blocked, resultType: sealpost.ResultValidationFailure, conns: 1},
		{name: "require_tls 1.2, TLS 1.2 server: delivered", policy: reqTLS(sealpost.TLS12), b: mxBehaviour{TLS: tls12max}, status: Delivered, tls: true, ver: "1.2", verified: true, conns: 1, mail: true},
		{name: "require_valid_cert, valid: delivered", policy: reqCert, b: mxBehaviour{TLS: serverTLS(valid)}, status: Delivered, tls: true, ver: "1.3", verified: true, conns: 1, mail: true},
		{name: "require_valid_cert, untrusted: blocked", policy: reqCert, b: mxBehaviour{TLS: serverTLS(untrusted)}, status: Blocked, verifyErr: "unknown authority", resultType: sealpost.ResultCertificateNotTrusted, conns: 1},
		{name: "require_valid_cert, expired: blocked", policy: reqCert, b: mxBehaviour{TLS: serverTLS(expired)}, status: Blocked, verifyErr: "expired", resultType: sealpost.ResultCertificateExpired, conns: 1},
		{name: "require_valid_cert, wrong name: blocked", policy: reqCert, b: mxBehaviour{TLS: serverTLS(wrongName)}, status: Blocked, verifyErr: "mx.example.test", resultType: sealpost.ResultCertificateHostMismatch, conns: 1},
		{name: "require_valid_cert, no STARTTLS: blocked", policy: reqCert, b: mxBehaviour{}, status: Blocked, resultType: sealpost.ResultSTARTTLSNotSupported, conns: 1},
		{name: "require_valid_cert 1.1, TLS 1.1-only server: delivered", policy: reqCert, b: mxBehaviour{TLS: tls11only}, status: Delivered, tls: true, ver: "1.1", verified: true, conns: 1, mail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := tt.b
			sc := newScenario(t, ca, "example.test", mxSpec{name: host, ip: "127.0.0.2", pref: 10, b: &b})
			res := sc.client.Deliver(t.Context(), tt.policy, testEnvelope("a@example.test", "b@example.test"))
			trs := sc.mxs[host].transcripts()

			for i, rr := range res.Recipients {
				if rr.Status != tt.status {
					t.Errorf("recipient %d: status %v (%s), want %v", i, rr.Status, rr.Response, tt.status)
				}
				if tt.status == Blocked && (rr.Response != sealpost.BlockedReason || rr.EnhancedStatus != "5.7.10") {
					t.Errorf("blocked recipient %d: %+v", i, rr)
				}
			}
			f := res.TLS
			if f.MXHost != host || f.MXIP != "127.0.0.2" {
				t.Errorf("MX facts %q %q", f.MXHost, f.MXIP)
			}
			if tt.status == Delivered && (f.TLS != tt.tls || (tt.tls && f.Version != tt.ver)) {
				t.Errorf("TLS facts %+v, want tls=%v version %q", f, tt.tls, tt.ver)
			}
			if f.ResultType != tt.resultType {
				t.Errorf("result type %q, want %q", f.ResultType, tt.resultType)
			}
			if (tt.tls || tt.verifyErr != "") && f.Verified != tt.verified {
				t.Errorf("verified = %v, want %v (%s)", f.Verified, tt.verified, f.VerifyError)
			}
			if tt.verifyErr != "" && !strings.Contains(f.VerifyError, tt.verifyErr) {
				t.Errorf("verify error %q, want it to mention %q", f.VerifyError, tt.verifyErr)
			}
			if len(trs) != tt.conns {
				t.Fatalf("server saw %d connections, want %d: %+v", len(trs), tt.conns, trs)
			}
			var mailed bool
			for _, tr := range trs {
				mailed = mailed || tr.has("MAIL") || tr.has("RCPT") || tr.has("DATA") || tr.Data != ""
			}
			if mailed != tt.mail {
				t.Errorf("mail transaction seen = %v, want %v: %+v", mailed, tt.mail, trs)
			}
			if tt.conns == 2 && trs[1].has("STARTTLS") {
				t.Errorf("plaintext retry tried STARTTLS again: %q", trs[1].Commands)
			}
			if tt.mail && !tt.tls {
				// Delivered in plaintext: the retry or the only session.
				last := trs[len(trs)-1]
				if last.has("<TLS") {
					t.Errorf("expected a plaintext session, got %q", last.Commands)
				}
			}
			if tt.status == Delivered && tt.tls && trs[0].Commands[len(trs[0].Commands)-1] != "QUIT" {
				t.Errorf("session did not end with QUIT: %q", trs[0].Commands)
			}
		})
	}
}
