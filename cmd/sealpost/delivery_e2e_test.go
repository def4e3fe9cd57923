package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendgrid/sendgrid-go"
	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"
	"github.com/sendgrid/sendgrid-go/helpers/mail"

	"github.com/sealpost/sealpost/delivery/mxtest"
	"github.com/sealpost/sealpost/postgres/pgtest"
)

// webhookReceiver is an Event Webhook endpoint that verifies every signed
// post with SendGrid's own helper and keeps the events.
type webhookReceiver struct {
	t   *testing.T
	srv *httptest.Server

	// failing makes the receiver answer 503 to every post.
	failing atomic.Bool
	refused atomic.Int64

	mu        sync.Mutex
	publicKey string
	posts     int
	unsigned  int
	badSig    int
	events    []map[string]any
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	r := &webhookReceiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *webhookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	if r.failing.Load() {
		r.refused.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(500)
		return
	}
	sig := req.Header.Get(eventwebhook.VerificationHTTPHeader)
	ts := req.Header.Get(eventwebhook.TimestampHTTPHeader)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.posts++
	if sig == "" {
		r.unsigned++
	} else {
		key, err := eventwebhook.ConvertPublicKeyBase64ToECDSA(r.publicKey)
		if err != nil {
			r.t.Errorf("converting the public key: %v", err)
		}
		if ok, err := eventwebhook.VerifySignature(key, body, sig, ts); err != nil || !ok {
			r.badSig++
		}
	}
	var events []map[string]any
	if err := json.Unmarshal(body, &events); err != nil {
		r.t.Errorf("a webhook post is not a JSON array: %s", body)
	}
	r.events = append(r.events, events...)
	w.WriteHeader(http.StatusOK)
}

func (r *webhookReceiver) setPublicKey(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publicKey = k
}

// eventsFor returns the events of one X-Message-Id, as "email:event[:type]".
func (r *webhookReceiver) eventsFor(xid string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, e := range r.events {
		if id, _ := e["sg_message_id"].(string); strings.HasPrefix(id, xid+".") {
			out = append(out, e)
		}
	}
	return out
}

func summary(events []map[string]any) map[string]int {
	m := map[string]int{}
	for _, e := range events {
		k := fmt.Sprintf("%s:%s", e["email"], e["event"])
		if t, ok := e["type"].(string); ok {
			k += ":" + t
		}
		m[k]++
	}
	return m
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sendWithOfficialClient(t *testing.T, base, key, subject string, to ...string) string {
	t.Helper()
	m := mail.NewV3Mail()
	m.SetFrom(mail.NewEmail("Sender", "sender@sealpost.test"))
	m.Subject = subject
	p := mail.NewPersonalization()
	for _, a := range to {
		p.AddTos(mail.NewEmail("", a))
	}
	m.AddPersonalizations(p)
	m.AddContent(mail.NewContent("text/plain", "The body of "+subject), mail.NewContent("text/html", "<p>The body of "+subject+"</p>"))
	m.SetCustomArg("campaign", "e2e")
	client := sendgrid.NewSendClient(key)
	client.Request.BaseURL = base + "/v3/mail/send"
	resp, err := client.Send(m)
	if err != nil {
		t.Fatalf("sending with sendgrid-go: %v", err)
	}
	xid := resp.Headers["X-Message-Id"]
	if resp.StatusCode != 202 || len(xid) != 1 || len(xid[0]) != 22 || resp.Body != "" {
		t.Fatalf("mail send: %d %q headers %v", resp.StatusCode, resp.Body, resp.Headers)
	}
	return xid[0]
}

// TestBinaryDeliveryUnderEnforcedTLS is the proof end to end: the real
// binary, the official Go client's mail helper, fake MX servers with real
// TLS, and signed Event Webhook posts checked with SendGrid's helper.
func TestBinaryDeliveryUnderEnforcedTLS(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	partner := h.AddMX("partner.test", 10, mxtest.Behavior{})                               // valid cert, TLS 1.3
	legacy := h.AddMX("legacy.test", 10, mxtest.TLS12Only())                                // valid cert, at most TLS 1.2
	plain := h.AddMX("plain.test", 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})        // no TLS at all
	wrongName := h.AddMX("wrongname.test", 10, mxtest.Behavior{Cert: mxtest.CertWrongName}) // TLS 1.3, certificate for another name
	hook := newWebhookReceiver(t)

	p := startServe(t, buildBinary(t),
		"SEALPOST_DATABASE=sqlite:"+filepath.Join(t.TempDir(), "sealpost.db"),
		"SEALPOST_DNS_SERVER="+h.DNSAddr(),
		allowLoopback,
		fmt.Sprintf("SEALPOST_SMTP_PORT=%d", h.Port()),
		"SEALPOST_TLS_CA_FILE="+h.CAFile(),
		"SEALPOST_HELO_HOSTNAME=sealpost.test",
		"SEALPOST_WEBHOOK_INTERVAL=50ms",
		// Sessions stay open until the shutdown, which must QUIT them.
		"SEALPOST_SMTP_SESSION_IDLE=4m",
	)
	key := p.key

	// The Event Webhook: every kind, signed.
	settingsBody := fmt.Sprintf(`{"enabled":true,"url":%q,"processed":true,"delivered":true,"deferred":true,"bounce":true,"dropped":true}`, hook.srv.URL)
	if status, body, _ := p.do(t, "PATCH", "/v3/user/webhooks/event/settings", key, settingsBody); status != 200 {
		t.Fatalf("PATCH webhook settings: %d %s", status, body)
	}
	status, body, _ := p.do(t, "PATCH", "/v3/user/webhooks/event/settings/signed", key, `{"enabled":true}`)
	var signed struct {
		PublicKey string `json:"public_key"`
	}
	if err := json.Unmarshal([]byte(body), &signed); err != nil || status != 200 || signed.PublicKey == "" {
		t.Fatalf("enabling signing: %d %s", status, body)
	}
	hook.setPublicKey(signed.PublicKey)

	rcpts := []string{"ann@partner.test", "bob@legacy.test", "cy@plain.test", "di@wrongname.test"}

	// 1. The default policy: opportunistic TLS, everyone gets the mail.
	first := sendWithOfficialClient(t, p.base, key, "first message", rcpts...)
	waitFor(t, "the first message's events", 20*time.Second, func() bool {
		return summary(hook.eventsFor(first))["di@wrongname.test:delivered"] == 1 &&
			len(hook.eventsFor(first)) == 8
	})
	want := map[string]int{}
	for _, r := range rcpts {
		want[r+":processed"] = 1
		want[r+":delivered"] = 1
	}
	if got := summary(hook.eventsFor(first)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("first message's events = %v, want %v", got, want)
	}
	for _, e := range hook.eventsFor(first) {
		if e["campaign"] != "e2e" || e["smtp-id"] == nil || e["sg_event_id"] == nil {
			t.Errorf("event lacks custom args or ids: %v", e)
		}
		if e["event"] == "delivered" {
			wantTLS := 1.0
			if e["email"] == "cy@plain.test" {
				wantTLS = 0
			}
			if e["tls"] != wantTLS {
				t.Errorf("%s delivered with tls=%v, want %v", e["email"], e["tls"], wantTLS)
			}
		}
	}
	checkReceived(t, partner, "first message", true, tls.VersionTLS13)
	checkReceived(t, legacy, "first message", true, tls.VersionTLS12)
	checkReceived(t, plain, "first message", false, 0)
	checkReceived(t, wrongName, "first message", true, tls.VersionTLS13)
	// The posts are recorded for the account, after each is settled.
	waitFor(t, "the posts in the account's history", 20*time.Second, func() bool {
		status, body, _ := p.do(t, "GET", "/v3/user/webhooks/event/posts?limit=100", key, "")
		return status == 200 && strings.Contains(body, `"status":200,"duration_ms":`) && strings.Contains(body, `"test":false`) &&
			strings.Contains(body, `"host":"`+strings.TrimPrefix(hook.srv.URL, "http://")+`"`)
	})

	// 2. Enforce: a valid certificate and TLS 1.3.
	if status, body, _ := p.do(t, "PATCH", "/v3/user/settings/enforced_tls", key, `{"require_valid_cert":true,"version":1.3}`); status != 200 ||
		body != `{"require_tls":false,"require_valid_cert":true,"version":1.3}` {
		t.Fatalf("PATCH enforced_tls: %d %s", status, body)
	}
	second := sendWithOfficialClient(t, p.base, key, "second message", rcpts...)
	waitFor(t, "the second message's events", 20*time.Second, func() bool { return len(hook.eventsFor(second)) == 8 })
	want = map[string]int{
		"ann@partner.test:processed": 1, "bob@legacy.test:processed": 1, "cy@plain.test:processed": 1, "di@wrongname.test:processed": 1,
		"ann@partner.test:delivered":       1,
		"bob@legacy.test:bounce:blocked":   1,
		"cy@plain.test:bounce:blocked":     1,
		"di@wrongname.test:bounce:blocked": 1,
	}
	if got := summary(hook.eventsFor(second)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("second message's events = %v, want %v", got, want)
	}
	wantResult := map[string]string{
		"bob@legacy.test":   "validation-failure",
		"cy@plain.test":     "starttls-not-supported",
		"di@wrongname.test": "certificate-host-mismatch",
	}
	for _, e := range hook.eventsFor(second) {
		if e["event"] != "bounce" {
			continue
		}
		if e["reason"] != "TLS required but not supported" || e["status"] != "5.7.10" || e["tls"] != 0.0 {
			t.Errorf("blocked event = %v", e)
		}
		facts, _ := e["sealpost"].(map[string]any)
		if facts["result_type"] != wantResult[e["email"].(string)] {
			t.Errorf("%s: result_type %v, want %s", e["email"], facts["result_type"], wantResult[e["email"].(string)])
		}
	}
	// What the servers saw: only the partner got the second message, over
	// TLS 1.3; not one byte of it reached anyone else.
	checkReceived(t, partner, "second message", true, tls.VersionTLS13)
	// The session the first message left open was opened under the default
	// policy: the second, under another, came over a new connection.
	if acc := partner.Accepted(); len(acc) != 2 || acc[0].Conn == acc[1].Conn || partner.Connections() != 2 {
		t.Errorf("the partner's MX saw %d connections for %d messages, want one each", partner.Connections(), len(acc))
	}
	for _, s := range []*mxtest.Server{legacy, plain, wrongName} {
		for _, d := range s.Received() {
			if bytes.Contains(d.Data, []byte("second message")) {
				t.Errorf("%s received the second message (tls %v, version %x)", s.Host(), d.TLS, d.Version)
			}
		}
		if bytes.Contains(s.CleartextBytes(), []byte("second message")) {
			t.Errorf("%s saw the second message in clear", s.Host())
		}
	}

	checkActivity(t, p, key, second, wantResult)

	_, metrics, _ := p.do(t, "GET", "/metrics", "", "")
	for _, line := range []string{
		`sealpost_delivery_recipients_total{outcome="blocked",tls="0"} 3`,
		`sealpost_delivery_recipients_total{outcome="delivered",tls="0"} 1`,
		`sealpost_delivery_recipients_total{outcome="delivered",tls="1"} 4`,
	} {
		if !strings.Contains(metrics, line+"\n") {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	if !strings.Contains(metrics, "sealpost_webhook_events_posted_total ") {
		t.Error("/metrics lacks sealpost_webhook_events_posted_total")
	}

	hook.mu.Lock()
	if hook.unsigned != 0 || hook.badSig != 0 || hook.posts == 0 {
		t.Errorf("webhook posts: %d, unsigned %d, failing verification %d", hook.posts, hook.unsigned, hook.badSig)
	}
	hook.mu.Unlock()
	p.stop(t)
	// The shutdown ended the idle session with QUIT, as the blocked one
	// was ended: one QUIT per connection (the plain MX shows them in clear).
	if quits, conns := bytes.Count(plain.CleartextBytes(), []byte("QUIT\r\n")), plain.Connections(); quits != conns || conns != 2 {
		t.Errorf("the plain MX saw %d QUITs for %d connections, want 2 of each", quits, conns)
	}
}

// checkActivity asserts that the Email Activity API tells what the webhook
// told of the blocked recipients of mail send xid: each not delivered, its
// events in order, the cause under sealpost.
func checkActivity(t *testing.T, p *process, key, xid string, wantResult map[string]string) {
	t.Helper()
	query := url.QueryEscape(`msg_id LIKE "` + xid + `%" AND status="not_delivered"`)
	status, body, _ := p.do(t, "GET", "/v3/messages?limit=100&query="+query, key, "")
	var list struct {
		Messages []struct {
			MsgID   string `json:"msg_id"`
			ToEmail string `json:"to_email"`
		} `json:"messages"`
	}
	if err := json.Unmarshal([]byte(body), &list); status != 200 || err != nil || len(list.Messages) != len(wantResult) {
		t.Fatalf("GET /v3/messages for the blocked: %d %s", status, body)
	}
	for _, m := range list.Messages {
		status, body, _ := p.do(t, "GET", "/v3/messages/"+m.MsgID, key, "")
		var d struct {
			Events []struct {
				EventName  string `json:"event_name"`
				Reason     string `json:"reason"`
				BounceType string `json:"bounce_type"`
				MXServer   string `json:"mx_server"`
				Sealpost   struct {
					ResultType string `json:"result_type"`
				} `json:"sealpost"`
			} `json:"events"`
		}
		if err := json.Unmarshal([]byte(body), &d); status != 200 || err != nil || len(d.Events) != 2 {
			t.Errorf("GET /v3/messages/%s: %d %s", m.MsgID, status, body)
			continue
		}
		if e := d.Events[1]; d.Events[0].EventName != "processed" || e.EventName != "bounced" || e.BounceType != "soft" ||
			e.Reason != "TLS required but not supported" || e.MXServer == "" || e.Sealpost.ResultType != wantResult[m.ToEmail] {
			t.Errorf("%s's activity: %s, want processed then blocked with result_type %s", m.ToEmail, body, wantResult[m.ToEmail])
		}
	}
}

// checkReceived asserts that s accepted exactly one message whose body
// contains marker, over TLS at version or in plaintext.
func checkReceived(t *testing.T, s *mxtest.Server, marker string, overTLS bool, version uint16) {
	t.Helper()
	var found []mxtest.Delivery
	for _, d := range s.Accepted() {
		if bytes.Contains(d.Data, []byte(marker)) {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s accepted %d copies of %q, want 1", s.Host(), len(found), marker)
	}
	d := found[0]
	if d.TLS != overTLS || (overTLS && d.Version != version) {
		t.Errorf("%s got %q with TLS %v version %x, want TLS %v version %x", s.Host(), marker, d.TLS, d.Version, overTLS, version)
	}
}

// TestBinaryTwoNodesShareTheQueue: two serve processes on one PostgreSQL
// database deliver what either accepted, each message once.
func TestBinaryTwoNodesShareTheQueue(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	h := mxtest.New(t)
	mx := h.AddMX("shared.test", 10, mxtest.Behavior{})
	bin := buildBinary(t)
	env := []string{
		"SEALPOST_DATABASE=" + url,
		"SEALPOST_DNS_SERVER=" + h.DNSAddr(),
		allowLoopback,
		fmt.Sprintf("SEALPOST_SMTP_PORT=%d", h.Port()),
		"SEALPOST_TLS_CA_FILE=" + h.CAFile(),
	}
	a := startServe(t, bin, append(env, "SEALPOST_NODE_ID=node-a")...)
	b := startServe(t, bin, append(env, "SEALPOST_NODE_ID=node-b")...)
	key := a.key
	const n = 40
	for i := range n {
		node := a
		if i%2 == 1 {
			node = b
		}
		body := fmt.Sprintf(`{"personalizations":[{"to":[{"email":"r%d@shared.test"}]}],"from":{"email":"s@sealpost.test"},"subject":"m%d","content":[{"type":"text/plain","value":"message number %d."}]}`, i, i, i)
		if status, resp, _ := node.do(t, "POST", "/v3/mail/send", key, body); status != 202 {
			t.Fatalf("mail send on node %d: %d %s", i%2, status, resp)
		}
	}
	waitFor(t, "every message delivered", 30*time.Second, func() bool { return len(mx.Accepted()) >= n })
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive now
	seen := map[string]int{}
	for _, d := range mx.Accepted() {
		seen[strings.Join(d.To, ",")]++
	}
	for i := range n {
		if c := seen[fmt.Sprintf("r%d@shared.test", i)]; c != 1 {
			t.Errorf("r%d@shared.test received %d copies, want 1", i, c)
		}
	}
	a.stop(t)
	b.stop(t)
}

// TestBinaryRestartKeepsEvents: events wait in the database while the
// webhook receiver fails; a restart of the binary loses none of them, and
// once acknowledged none is posted again.
func TestBinaryRestartKeepsEvents(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	mx := h.AddMX("restart.test", 10, mxtest.Behavior{})
	hook := newWebhookReceiver(t)
	hook.failing.Store(true)
	db := "SEALPOST_DATABASE=sqlite:" + filepath.Join(t.TempDir(), "sealpost.db")
	env := []string{db,
		"SEALPOST_DNS_SERVER=" + h.DNSAddr(),
		allowLoopback,
		fmt.Sprintf("SEALPOST_SMTP_PORT=%d", h.Port()),
		"SEALPOST_TLS_CA_FILE=" + h.CAFile(),
		"SEALPOST_WEBHOOK_INTERVAL=20ms",
		"SEALPOST_WEBHOOK_RETRY=100ms",
	}
	bin := buildBinary(t)
	p := startServe(t, bin, env...)
	key := p.key
	settingsBody := fmt.Sprintf(`{"enabled":true,"url":%q,"processed":true,"delivered":true}`, hook.srv.URL)
	if status, body, _ := p.do(t, "PATCH", "/v3/user/webhooks/event/settings", key, settingsBody); status != 200 {
		t.Fatalf("PATCH webhook settings: %d %s", status, body)
	}
	var xids []string
	for i := range 5 {
		body := fmt.Sprintf(`{"personalizations":[{"to":[{"email":"r%d@restart.test"}]}],"from":{"email":"s@sealpost.test"},"subject":"m%d","content":[{"type":"text/plain","value":"x"}]}`, i, i)
		status, resp, hdr := p.do(t, "POST", "/v3/mail/send", key, body)
		if status != 202 {
			t.Fatalf("mail send: %d %s", status, resp)
		}
		xids = append(xids, hdr.Get("X-Message-Id"))
	}
	waitFor(t, "delivery", 20*time.Second, func() bool { return mx.AcceptedCount() == 5 })
	waitFor(t, "failed posts", 10*time.Second, func() bool { return hook.refused.Load() >= 2 })
	p.stop(t)

	// Restart with a receiver that answers.
	hook.failing.Store(false)
	p = startServe(t, bin, env...)
	waitFor(t, "every event after the restart", 20*time.Second, func() bool {
		n := 0
		for _, x := range xids {
			n += len(hook.eventsFor(x))
		}
		return n == 10
	})
	time.Sleep(500 * time.Millisecond) // a repeated post would arrive now
	seen := map[string]int{}
	for _, x := range xids {
		for _, e := range hook.eventsFor(x) {
			seen[e["sg_event_id"].(string)]++
		}
		if got := summary(hook.eventsFor(x)); len(got) != 2 {
			t.Errorf("events of %s: %v, want processed and delivered", x, got)
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s posted %d times", id, n)
		}
	}
	if len(seen) != 10 {
		t.Errorf("%d distinct events, want 10", len(seen))
	}
	p.stop(t)
}

// TestBinaryKilledMidDeliveryLosesNothing: SIGKILL in the middle of
// delivery, then a restart: every accepted message arrives, and no more are
// repeated than were in flight.
func TestBinaryKilledMidDeliveryLosesNothing(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	mx := h.AddMX("crash.test", 10, mxtest.Behavior{})
	bin := buildBinary(t)
	const workers = 4
	env := []string{
		"SEALPOST_DATABASE=sqlite:" + filepath.Join(t.TempDir(), "sealpost.db"),
		"SEALPOST_DNS_SERVER=" + h.DNSAddr(),
		allowLoopback,
		fmt.Sprintf("SEALPOST_SMTP_PORT=%d", h.Port()),
		"SEALPOST_TLS_CA_FILE=" + h.CAFile(),
		fmt.Sprintf("SEALPOST_DELIVERY_WORKERS=%d", workers),
		"SEALPOST_DELIVERY_LEASE=10s",
		"SEALPOST_SMTP_TIMEOUT=5s",
	}
	p := startServe(t, bin, env...)
	key := p.key
	const n = 300
	for i := range n {
		body := fmt.Sprintf(`{"personalizations":[{"to":[{"email":"r%d@crash.test"}]}],"from":{"email":"s@sealpost.test"},"subject":"m%d","content":[{"type":"text/plain","value":"x"}]}`, i, i)
		if status, resp, _ := p.do(t, "POST", "/v3/mail/send", key, body); status != 202 {
			t.Fatalf("mail send %d: %d %s", i, status, resp)
		}
	}
	waitFor(t, "some deliveries", 20*time.Second, func() bool { return mx.AcceptedCount() >= 30 })
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	before := mx.AcceptedCount()
	if before >= n {
		t.Skipf("all %d delivered before the kill; nothing was in flight", n)
	}

	// The deliveries leased by the dead process are taken over once their
	// leases (10s) run out.
	startServe(t, bin, env...)
	waitFor(t, "every message after the restart", 60*time.Second, func() bool {
		seen := map[string]bool{}
		for _, d := range mx.Accepted() {
			seen[strings.Join(d.To, ",")] = true
		}
		return len(seen) == n
	})
	copies := map[string]int{}
	for _, d := range mx.Accepted() {
		copies[strings.Join(d.To, ",")]++
	}
	repeated := 0
	for _, c := range copies {
		repeated += c - 1
	}
	// In flight at the kill: at most the workers' attempts plus the
	// deliveries claimed ahead for them.
	if repeated > 2*workers {
		t.Errorf("%d deliveries repeated after the kill, more than the %d that can be in flight", repeated, 2*workers)
	}
	t.Logf("killed after %d of %d deliveries; %d repeated after the restart", before, n, repeated)
}
