package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sealpost/sealpost/delivery/mxtest"
	"github.com/sealpost/sealpost/internal/dnssectest"
)

// Recipients' policies meet delivery end to end: the real service (Main on
// port 0, its store, its MTA-STS source and DANE resolver as serve wires
// them), fake MX servers, MTA-STS policies served over HTTPS with the test
// CA, DNSSEC-signed zones behind a real unbound, and signed Event Webhook
// posts. Everything is on loopback.

// stsHost serves one domain's MTA-STS policy over HTTPS as mta-sts.<domain>.
type stsHost struct {
	mu     sync.Mutex
	body   string
	status int // answered instead of the policy when set
}

func (p *stsHost) set(body string, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.body, p.status = body, status
}

func (p *stsHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.URL.Path != "/.well-known/mta-sts.txt" || p.status != 0 {
		w.WriteHeader(max(p.status, http.StatusNotFound))
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, p.body)
}

// publishSTS publishes domain's _mta-sts record with id and serves its
// policy on the harness's port, the one sealpost is told to fetch from.
func publishSTS(t *testing.T, h *mxtest.Harness, domain, id, policy string) *stsHost {
	t.Helper()
	host := &stsHost{body: policy}
	name := "mta-sts." + domain
	cert := h.CA().Issue(t, mxtest.Options{DNSNames: []string{name}})
	ln := h.Listen()
	h.DNS().SetA(name, ln.Addr().(*net.TCPAddr).IP.String())
	h.DNS().SetTXT("_mta-sts."+domain, []string{"v=STSv1; id=" + id})
	srv := &http.Server{Handler: host, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	return host
}

func stsPolicy(mode string, mx ...string) string {
	s := "version: STSv1\r\nmode: " + mode + "\r\n"
	for _, m := range mx {
		s += "mx: " + m + "\r\n"
	}
	return s + "max_age: 604800\r\n"
}

// countingDNS forwards queries to the harness's DNS server and counts
// them by type and name, e.g. "TXT _mta-sts.example.test.".
type countingDNS struct {
	upstream string
	mu       sync.Mutex
	queries  map[string]int
}

func newCountingDNS(t *testing.T, upstream string) (*countingDNS, string) {
	c := &countingDNS{upstream: upstream, queries: map[string]int{}}
	return c, dnssectest.ServeDNS(t, c)
}

func (c *countingDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) == 1 {
		q := req.Question[0]
		c.mu.Lock()
		c.queries[dns.TypeToString[q.Qtype]+" "+strings.ToLower(q.Name)]++
		c.mu.Unlock()
	}
	resp, err := dnssectest.Exchange(context.Background(), c.upstream, req)
	if err != nil {
		resp = new(dns.Msg)
		resp.SetRcode(req, dns.RcodeServerFailure)
	}
	_ = w.WriteMsg(resp)
}

func (c *countingDNS) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queries[key]
}

// policyNode starts one sealpost node on database with delivery pointed at
// h, retrying deferred mail quickly; close stops it (once).
func policyNode(t *testing.T, h *mxtest.Harness, database string, edit func(*Config)) (m *Main, key string, close func()) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.RateLimit = 100000
	cfg.DNSServer = h.DNSAddr()
	cfg.SMTPPort = h.Port()
	cfg.TLSCAFile = h.CAFile()
	cfg.HeloHostname = "sealpost.test"
	cfg.WebhookInterval = 50 * time.Millisecond
	cfg.AllowDestinations = "127.0.0.0/8"
	cfg.RetryInitial, cfg.RetryMax = 300*time.Millisecond, 2*time.Second
	if edit != nil {
		edit(&cfg)
	}
	m, key, _ = openMain(t, database, cfg, func(m *Main) { m.mtastsPort = h.Port() })
	var once sync.Once
	close = func() {
		once.Do(func() {
			if err := m.Close(); err != nil {
				t.Errorf("closing sealpost: %v", err)
			}
		})
	}
	t.Cleanup(close)
	return m, key, close
}

// policySend sends one message to someone@domain, its subject a marker of
// its own, and returns the X-Message-Id and the marker.
func policySend(t *testing.T, m *Main, key, domain string) (xid, marker string) {
	t.Helper()
	marker = fmt.Sprintf("policy-e2e-%s-%d", domain, time.Now().UnixNano())
	return sendWithOfficialClient(t, m.URL(), key, marker, "someone@"+domain), marker
}

// outcomes waits until the message's events include one of kind, and
// returns them all but processed, in order.
func outcomes(t *testing.T, hook *webhookReceiver, xid, kind string) []map[string]any {
	t.Helper()
	var got []map[string]any
	waitFor(t, "a "+kind+" event of "+xid, 60*time.Second, func() bool {
		got = got[:0]
		done := false
		for _, e := range hook.eventsFor(xid) {
			if e["event"] == "processed" {
				continue
			}
			got = append(got, e)
			done = done || e["event"] == kind
		}
		return done
	})
	return got
}

func facts(e map[string]any) map[string]any {
	f, _ := e["sealpost"].(map[string]any)
	return f
}

// checkDelivered: one delivered event, over TLS or not, from source.
func checkDelivered(t *testing.T, what string, events []map[string]any, tls bool, source string) map[string]any {
	t.Helper()
	e := events[len(events)-1]
	f := facts(e)
	wantTLS := map[bool]float64{true: 1, false: 0}[tls]
	if len(events) != 1 || e["event"] != "delivered" || e["tls"] != wantTLS || f["policy_source"] != source {
		t.Errorf("%s: events %v, want one delivered with tls %v and policy_source %s", what, events, wantTLS, source)
	}
	return f
}

// checkBlocked: SendGrid's blocked bounce for a TLS requirement, the last
// event, after deferrals if deferred.
func checkBlocked(t *testing.T, what string, events []map[string]any, deferred bool, source, resultType string) {
	t.Helper()
	e := events[len(events)-1]
	f := facts(e)
	if e["event"] != "bounce" || e["type"] != "blocked" || e["reason"] != "TLS required but not supported" || e["status"] != "5.7.10" ||
		f["policy_source"] != source || (resultType != "" && f["result_type"] != resultType) {
		t.Errorf("%s: last event %v, want a blocked bounce from %s (result %q)", what, e, source, resultType)
	}
	if deferred != (len(events) > 1 && events[0]["event"] == "deferred") {
		t.Errorf("%s: events %v, deferred first: %v", what, events, deferred)
	}
}

// nothingSent: the server received no part of the message.
func nothingSent(t *testing.T, what string, mx *mxtest.Server, marker string) {
	t.Helper()
	if mx.AcceptedCount() != 0 || bytes.Contains(mx.CleartextBytes(), []byte(marker)) {
		t.Errorf("%s: %s accepted %d messages, marker in clear: %v", what, mx.Host(), mx.AcceptedCount(), bytes.Contains(mx.CleartextBytes(), []byte(marker)))
	}
}

func webhookTo(t *testing.T, m *Main, key string, hook *webhookReceiver) {
	t.Helper()
	body := fmt.Sprintf(`{"enabled":true,"url":%q,"delivered":true,"deferred":true,"bounce":true,"dropped":true}`, hook.srv.URL)
	if status, resp := apiDo(t, m, "PATCH", "/v3/user/webhooks/event/settings", key, body); status != 200 {
		t.Fatalf("PATCH webhook settings: %d %s", status, resp)
	}
}

// TestPolicySourcesEndToEnd: MTA-STS (each mode, a failing fetch with and
// without a cached policy, an id change seen by a second node on the same
// database), a per-domain policy put through the API, and the account's
// setting combined with MTA-STS, on both stores.
func TestPolicySourcesEndToEnd(t *testing.T) {
	t.Parallel()
	forEachStore(t, testPolicySources)
}

func testPolicySources(t *testing.T, database string) {
	h := mxtest.New(t)
	noTLS := mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS}
	hook := newWebhookReceiver(t)

	match := h.AddMX("sts-match.test", 10, mxtest.Behavior{})
	publishSTS(t, h, "sts-match.test", "1", stsPolicy("enforce", "*.sts-match.test"))
	// Its one MX host is not among the policy's: a policy that lists the
	// hosts an attacker replaced.
	elsewhere := h.AddMX("sts-elsewhere.test", 10, noTLS)
	publishSTS(t, h, "sts-elsewhere.test", "1", stsPolicy("enforce", "mx.sts-elsewhere.test"))
	testingMX := h.AddMX("sts-testing.test", 10, noTLS)
	publishSTS(t, h, "sts-testing.test", "1", stsPolicy("testing", "*.sts-testing.test"))
	// A published record whose policy cannot be fetched, never cached.
	unfetched := h.AddMX("sts-unfetched.test", 10, noTLS)
	publishSTS(t, h, "sts-unfetched.test", "1", "").set("", http.StatusInternalServerError)
	cachedMX := h.AddMX("sts-cached.test", 10, mxtest.Behavior{})
	cachedHost := publishSTS(t, h, "sts-cached.test", "1", stsPolicy("enforce", "mx1.sts-cached.test"))
	renewedOld := h.AddMX("sts-renewed.test", 10, mxtest.Behavior{})
	renewedHost := publishSTS(t, h, "sts-renewed.test", "1", stsPolicy("enforce", "mx1.sts-renewed.test"))

	first, key, closeFirst := policyNode(t, h, database, nil)
	webhookTo(t, first, key, hook)
	type sent struct{ xid, marker string }
	send := func(m *Main, domains ...string) map[string]sent {
		out := map[string]sent{}
		for _, d := range domains {
			xid, marker := policySend(t, m, key, d)
			out[d] = sent{xid, marker}
		}
		return out
	}
	s := send(first, "sts-match.test", "sts-elsewhere.test", "sts-testing.test", "sts-unfetched.test", "sts-cached.test", "sts-renewed.test")

	f := checkDelivered(t, "enforce, matching MX", outcomes(t, hook, s["sts-match.test"].xid, "delivered"), true, "mta-sts")
	if f["mta_sts"] != "enforce" || f["cert_verified"] != true || match.AcceptedCount() != 1 || bytes.Contains(match.CleartextBytes(), []byte(s["sts-match.test"].marker)) {
		t.Errorf("enforce, matching MX: facts %v, %d accepted, want enforce, a verified certificate, one message, none of it in clear", f, match.AcceptedCount())
	}

	checkBlocked(t, "enforce, MX not in the policy", outcomes(t, hook, s["sts-elsewhere.test"].xid, "bounce"), true, "mta-sts", "")
	nothingSent(t, "enforce, MX not in the policy", elsewhere, s["sts-elsewhere.test"].marker)

	f = checkDelivered(t, "testing", outcomes(t, hook, s["sts-testing.test"].xid, "delivered"), false, "account")
	if f["mta_sts"] != "testing" || f["mta_sts_testing_result"] != "starttls-not-supported" || testingMX.AcceptedCount() != 1 {
		t.Errorf("testing: facts %v, %d accepted; want mode testing, starttls-not-supported recorded, delivered", f, testingMX.AcceptedCount())
	}

	f = checkDelivered(t, "fetch failing, nothing cached", outcomes(t, hook, s["sts-unfetched.test"].xid, "delivered"), false, "account")
	if f["mta_sts"] != nil || unfetched.AcceptedCount() != 1 {
		t.Errorf("fetch failing, nothing cached: facts %v, %d accepted; want delivered as without a policy", f, unfetched.AcceptedCount())
	}
	checkDelivered(t, "cached: first", outcomes(t, hook, s["sts-cached.test"].xid, "delivered"), true, "mta-sts")
	checkDelivered(t, "renewed: first", outcomes(t, hook, s["sts-renewed.test"].xid, "delivered"), true, "mta-sts")
	if cachedMX.AcceptedCount() != 1 || renewedOld.AcceptedCount() != 1 {
		t.Fatalf("first deliveries: %d and %d accepted, want 1 each", cachedMX.AcceptedCount(), renewedOld.AcceptedCount())
	}

	// A second node on the same database, whose DNS cache is fresh, sees
	// new ids. sts-cached's new policy cannot be fetched: the cached one
	// holds, so its new preferred MX without TLS is still not used.
	// sts-renewed's new policy names only its new MX: it is used.
	closeFirst()
	cachedPlain := h.AddMX("sts-cached.test", 5, noTLS)
	h.DNS().SetTXT("_mta-sts.sts-cached.test", []string{"v=STSv1; id=2"})
	cachedHost.set("", http.StatusInternalServerError)
	renewedNew := h.AddMX("sts-renewed.test", 5, mxtest.Behavior{})
	h.DNS().SetTXT("_mta-sts.sts-renewed.test", []string{"v=STSv1; id=2"})
	renewedHost.set(stsPolicy("enforce", "mx2.sts-renewed.test"), 0)
	queries, dnsAddr := newCountingDNS(t, h.DNSAddr())
	second, _, _ := policyNode(t, h, database, func(c *Config) { c.DNSServer = dnsAddr })
	s = send(second, "sts-cached.test", "sts-renewed.test")
	f = checkDelivered(t, "cached policy, fetch failing", outcomes(t, hook, s["sts-cached.test"].xid, "delivered"), true, "mta-sts")
	if f["mx_host"] != "mx1.sts-cached.test" || cachedMX.AcceptedCount() != 2 {
		t.Errorf("cached policy, fetch failing: facts %v, want delivered to mx1", f)
	}
	nothingSent(t, "cached policy, fetch failing", cachedPlain, s["sts-cached.test"].marker)
	for _, mx := range []*mxtest.Server{cachedMX, renewedOld, renewedNew} {
		for _, m := range s {
			if bytes.Contains(mx.CleartextBytes(), []byte(m.marker)) {
				t.Errorf("%s read %s in clear under an MTA-STS policy in enforce mode", mx.Host(), m.marker)
			}
		}
	}
	f = checkDelivered(t, "id changed", outcomes(t, hook, s["sts-renewed.test"].xid, "delivered"), true, "mta-sts")
	if f["mx_host"] != "mx2.sts-renewed.test" || renewedNew.AcceptedCount() != 1 || renewedOld.AcceptedCount() != 1 {
		t.Errorf("id changed: facts %v, new MX %d accepted, old %d; want the new policy's MX only", f, renewedNew.AcceptedCount(), renewedOld.AcceptedCount())
	}

	// A per-domain policy through the API: only its domain is held to it.
	strict := h.AddMX("strict.test", 10, mxtest.Behavior{Cert: mxtest.CertWrongName})
	loose := h.AddMX("loose.test", 10, noTLS)
	sentLoose := time.Now()
	if status, resp := apiDo(t, second, "PUT", "/v3/user/settings/enforced_tls/domains/strict.test", key,
		`{"require_tls":true,"require_valid_cert":true,"version":1.2}`); status != 201 {
		t.Fatalf("PUT the strict.test policy: %d %s", status, resp)
	}
	s = send(second, "strict.test", "loose.test")
	checkBlocked(t, "domain policy", outcomes(t, hook, s["strict.test"].xid, "bounce"), false, "domain", "certificate-host-mismatch")
	nothingSent(t, "domain policy", strict, s["strict.test"].marker)
	checkDelivered(t, "another domain", outcomes(t, hook, s["loose.test"].xid, "delivered"), false, "account")
	if !bytes.Contains(loose.CleartextBytes(), []byte(s["loose.test"].marker)) {
		t.Errorf("another domain: the message did not arrive in clear")
	}
	// MTA-STS on by default costs a domain without a policy one TXT
	// lookup, and nothing else.
	if n, a := queries.count("TXT _mta-sts.loose.test."), queries.count("A mta-sts.loose.test."); n != 1 || a != 0 {
		t.Errorf("loose.test, no MTA-STS record: %d TXT lookups of _mta-sts and %d A lookups of mta-sts, want 1 and 0", n, a)
	}
	t.Logf("loose.test (no MTA-STS record): sent to delivered event in %v", time.Since(sentLoose))

	// The account's require_tls with MTA-STS enforce on one domain: each
	// requirement holds. A host without TLS fails the account's, blocked at
	// once; one with TLS but a certificate for another name fails only
	// MTA-STS's, deferred first (RFC 8461 section 5).
	bothPlain := h.AddMX("both-plain.test", 10, noTLS)
	publishSTS(t, h, "both-plain.test", "1", stsPolicy("enforce", "*.both-plain.test"))
	bothName := h.AddMX("both-name.test", 10, mxtest.Behavior{Cert: mxtest.CertWrongName})
	publishSTS(t, h, "both-name.test", "1", stsPolicy("enforce", "*.both-name.test"))
	if status, resp := apiDo(t, second, "PATCH", "/v3/user/settings/enforced_tls", key, `{"require_tls":true}`); status != 200 {
		t.Fatalf("PATCH enforced_tls: %d %s", status, resp)
	}
	s = send(second, "both-plain.test", "both-name.test")
	checkBlocked(t, "require_tls and MTA-STS, no STARTTLS", outcomes(t, hook, s["both-plain.test"].xid, "bounce"), false, "account", "starttls-not-supported")
	nothingSent(t, "require_tls and MTA-STS, no STARTTLS", bothPlain, s["both-plain.test"].marker)
	checkBlocked(t, "require_tls and MTA-STS, wrong name", outcomes(t, hook, s["both-name.test"].xid, "bounce"), true, "mta-sts", "certificate-host-mismatch")
	nothingSent(t, "require_tls and MTA-STS, wrong name", bothName, s["both-name.test"].marker)
}

// TestDANEEndToEnd: DANE through a real validating resolver. Signed zones
// publish each MX host's TLSA records; unbound, trusting only their keys,
// validates them, and sealpost's --dnssec-resolver is unbound.
func TestDANEEndToEnd(t *testing.T) {
	t.Parallel()
	forEachStore(t, testDANE)
}

func testDANE(t *testing.T, database string) {
	h := mxtest.New(t)
	auth := dnssectest.NewServer(t)
	// publish starts domain's MX serving cert (one from the harness CA
	// when nil) and publishes it, signed, with a TLSA record of pinned
	// (the served certificate when nil).
	publish := func(domain string, cert, pinned *tls.Certificate) (*dnssectest.Zone, *mxtest.Server) {
		host := "mx1." + domain
		if cert == nil {
			c := h.CA().Issue(t, mxtest.Options{DNSNames: []string{host}})
			cert = &c
		}
		if pinned == nil {
			pinned = cert
		}
		mx := h.AddMX(domain, 10, mxtest.Behavior{Certificate: cert})
		z := auth.AddZone(t, domain+".", dnssectest.Signed)
		z.AddMX(domain+".", 10, mx.Host())
		z.AddA(mx.Host(), mx.IP())
		z.AddTLSA(mx.Host(), 3, 1, 1, pinned.Leaf)
		return z, mx
	}
	_, ok := publish("dane-ok.test", nil, nil)
	other := h.CA().Issue(t, mxtest.Options{DNSNames: []string{"mx1.dane-mismatch.test"}})
	_, mismatch := publish("dane-mismatch.test", nil, &other)
	bogusZone, bogus := publish("dane-bogus.test", nil, nil)
	bogusZone.CorruptSignatures("_25._tcp." + bogus.Host())
	// Pinned, but not valid under the Web PKI: DANE alone accepts it,
	// the account's require_valid_cert does not.
	selfSigned := mxtest.SelfSigned(t, "mx1.dane-self.test")
	_, self := publish("dane-self.test", &selfSigned, nil)
	// publishPKIXOnly publishes domain's MX, behaving as b, with nothing
	// but a PKIX-EE(1) TLSA record for its certificate: a secure RRset
	// none of whose records SMTP may use (RFC 7672 3.1.3).
	publishPKIXOnly := func(domain string, b mxtest.Behavior) *mxtest.Server {
		mx := h.AddMX(domain, 10, b)
		z := auth.AddZone(t, domain+".", dnssectest.Signed)
		z.AddMX(domain+".", 10, mx.Host())
		z.AddA(mx.Host(), mx.IP())
		z.AddTLSA(mx.Host(), 1, 0, 1, h.CA().Issue(t, mxtest.Options{DNSNames: []string{mx.Host()}}).Leaf)
		return mx
	}
	pkixPlain := publishPKIXOnly("dane-pkix-plain.test", mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	pkixSelfSigned := mxtest.SelfSigned(t, "mx1.dane-pkix-self.test")
	pkixSelf := publishPKIXOnly("dane-pkix-self.test", mxtest.Behavior{Certificate: &pkixSelfSigned})
	unbound := dnssectest.StartUnbound(t, auth)

	hook := newWebhookReceiver(t)
	m, key, _ := policyNode(t, h, database, func(c *Config) { c.DNSSECResolver = unbound.Addr() })
	webhookTo(t, m, key, hook)
	sendTo := func(domain string) (string, string) { return policySend(t, m, key, domain) }

	xid, marker := sendTo("dane-ok.test")
	f := checkDelivered(t, "matching TLSA", outcomes(t, hook, xid, "delivered"), true, "dane")
	if f["dane_verified"] != true || ok.AcceptedCount() != 1 || bytes.Contains(ok.CleartextBytes(), []byte(marker)) {
		t.Errorf("matching TLSA: facts %v, %d accepted; want dane_verified, delivered over TLS", f, ok.AcceptedCount())
	}

	xid, marker = sendTo("dane-mismatch.test")
	checkBlocked(t, "mismatching TLSA", outcomes(t, hook, xid, "bounce"), false, "dane", "tlsa-invalid")
	nothingSent(t, "mismatching TLSA", mismatch, marker)

	xid, marker = sendTo("dane-bogus.test")
	events := outcomes(t, hook, xid, "deferred")
	if f := facts(events[0]); events[0]["event"] != "deferred" || f["result_type"] != "dnssec-invalid" {
		t.Errorf("bogus signatures: events %v, want deferred, dnssec-invalid", events)
	}
	if n := bogus.Connections(); n != 0 {
		t.Errorf("bogus signatures: the MX got %d connections, want none", n)
	}
	nothingSent(t, "bogus signatures", bogus, marker)

	// Secure TLSA records, none usable: TLS is still required (RFC 7672
	// 2.2), and nothing authenticates the certificate.
	xid, marker = sendTo("dane-pkix-plain.test")
	checkBlocked(t, "only unusable TLSA, no STARTTLS", outcomes(t, hook, xid, "bounce"), false, "dane", "starttls-not-supported")
	nothingSent(t, "only unusable TLSA, no STARTTLS", pkixPlain, marker)
	xid, marker = sendTo("dane-pkix-self.test")
	f = checkDelivered(t, "only unusable TLSA, self-signed", outcomes(t, hook, xid, "delivered"), true, "dane")
	if f["dane_verified"] == true || f["cert_verified"] == true || pkixSelf.AcceptedCount() != 1 || bytes.Contains(pkixSelf.CleartextBytes(), []byte(marker)) {
		t.Errorf("only unusable TLSA, self-signed: facts %v, %d accepted; want delivered over TLS, nothing verified", f, pkixSelf.AcceptedCount())
	}

	// DANE with the account's require_valid_cert: both checks must hold.
	if status, resp := apiDo(t, m, "PATCH", "/v3/user/settings/enforced_tls", key, `{"require_tls":true,"require_valid_cert":true}`); status != 200 {
		t.Fatalf("PATCH enforced_tls: %d %s", status, resp)
	}
	xid, marker = sendTo("dane-self.test")
	checkBlocked(t, "DANE match, self-signed, require_valid_cert", outcomes(t, hook, xid, "bounce"), false, "account", "certificate-not-trusted")
	nothingSent(t, "DANE match, self-signed, require_valid_cert", self, marker)
	xid, _ = sendTo("dane-ok.test")
	f = checkDelivered(t, "DANE match, valid, require_valid_cert", outcomes(t, hook, xid, "delivered"), true, "dane")
	if f["dane_verified"] != true || f["cert_verified"] != true {
		t.Errorf("DANE match, valid, require_valid_cert: facts %v, want both checks passed", f)
	}
}
