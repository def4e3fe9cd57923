package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"

	"github.com/sealpost/sealpost/delivery/mxtest"
	"github.com/sealpost/sealpost/postgres/pgtest"
)

// TestSoak runs the real binary under a steady mixed load for SEALPOST_SOAK
// (a duration) and fails on any unexpected answer, any accepted message not
// delivered (with its Event Webhook events) after the drain, or a server
// whose RSS, open files or goroutines grow through the run. See
// scripts/soak.sh and the Config fields for the knobs.
func TestSoak(t *testing.T) {
	cfg, ok, err := ParseConfig(os.Getenv)
	if !ok {
		t.Skip("SEALPOST_SOAK (a duration such as 30s or 10m) not set: the soak does not run")
	}
	if err != nil {
		t.Fatal(err)
	}
	if deadline, ok := t.Deadline(); ok {
		if need := cfg.Duration + cfg.Drain + 2*time.Minute; time.Until(deadline) < need {
			t.Fatalf("the soak may need %v but go test's -timeout ends it in %v: pass -timeout", need, time.Until(deadline).Round(time.Second))
		}
	}
	s := newSoak(t, cfg)
	s.setUp()
	s.run()
	s.drain()
	s.stopServer()
	s.finish()
}

// account is one tenant of the load. Each keeps to a policy under which all
// of its recipient domains accept its mail, so that every accepted message
// must be delivered: its PATCHes move only within that policy.
type account struct {
	name     string
	obo      string // on-behalf-of value for the parent's key; empty for the parent
	key      string // the account's own full-access key
	domains  []string
	strict   bool                      // require_valid_cert stays true
	patch    func(r *rand.Rand) string // a PATCH body for enforced_tls, in canonical order
	checkGet func(body []byte) error   // what a GET of enforced_tls must show
	hookURL  string                    // its Event Webhook
	hookKey  string                    // base64 public key its posts are signed with
}

type soak struct {
	t   *testing.T
	cfg Config

	mx      *mxtest.Harness
	servers map[string]*mxtest.Server // by domain
	hooks   *receiver
	srv     *server
	client  *http.Client

	accounts []*account
	parent   *account

	rec *recorder

	seq atomic.Int64 // message sequence, for unique recipients

	mu       sync.Mutex
	expected map[string]string // accepted recipient -> sending account
	messages int
	samples  []sample

	loadStart, loadEnd time.Time
	drainTook          time.Duration
	out                bytes.Buffer // the report
	failures           []string
}

type sample struct {
	at         time.Duration // since the load started
	rss        int64
	heapInuse  float64
	fds        int
	goroutines float64
	serverCPU  float64 // percent of one core since the previous sample
	accepted   int     // recipients accepted so far
	delivered  int     // recipients the fake MX servers accepted so far
	events     int     // Event Webhook events received so far
	pressure   float64 // the machine's CPU pressure (PSI some avg10), percent; -1 if unknown
}

type intervalReport struct {
	end   time.Duration
	span  time.Duration
	kinds map[string]kindStats
}

type kindStats struct {
	Latency
	errors int
}

func newSoak(t *testing.T, cfg Config) *soak {
	return &soak{t: t, cfg: cfg, servers: map[string]*mxtest.Server{}, expected: map[string]string{}, rec: newRecorder()}
}

// logf writes a line to the report and, as it happens, to stdout.
func (s *soak) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.out.WriteString(line + "\n")
	s.mu.Unlock()
	fmt.Println(line)
}

func (s *soak) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.failures = append(s.failures, msg)
	s.mu.Unlock()
}

const (
	modernDomain = "modern.test" // STARTTLS, valid certificate, TLS up to 1.3
	legacyDomain = "legacy.test" // STARTTLS, valid certificate, TLS 1.2 only
	plainDomain  = "plain.test"  // no STARTTLS
)

func (s *soak) setUp() {
	t := s.t
	s.mx = mxtest.New(t)
	s.servers[modernDomain] = s.mx.AddMX(modernDomain, 10, mxtest.Behavior{})
	s.servers[legacyDomain] = s.mx.AddMX(legacyDomain, 10, mxtest.TLS12Only())
	s.servers[plainDomain] = s.mx.AddMX(plainDomain, 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	s.hooks = newReceiver(t)

	db := "sqlite:" + filepath.Join(t.TempDir(), "sealpost.db")
	switch {
	case s.cfg.Database == "postgres":
		db = pgtest.URL(t)
	case s.cfg.Database != "sqlite":
		db = s.cfg.Database
	}
	bin := s.cfg.Binary
	if bin == "" {
		bin = buildBinary(t)
	}
	s.srv = startServer(t, bin,
		"SEALPOST_DATABASE="+db,
		"SEALPOST_DNS_SERVER="+s.mx.DNSAddr(),
		fmt.Sprintf("SEALPOST_SMTP_PORT=%d", s.mx.Port()),
		"SEALPOST_TLS_CA_FILE="+s.mx.CAFile(),
		// The fake MX servers and the webhook receiver are on loopback,
		// which sealpost connects to only when allowed.
		"SEALPOST_ALLOW_DESTINATIONS=127.0.0.0/8",
		"SEALPOST_HELO_HOSTNAME=sealpost.test",
		// The per-key limit on settings endpoints and the per-account
		// limit on mail send would answer 429 to a load this size from one
		// parent key; they are not what is measured.
		"SEALPOST_RATE_LIMIT=1000000000",
		"SEALPOST_MAIL_SEND_RATE_LIMIT=1000000000",
	)
	if s.srv.key == "" {
		t.Fatal("the server printed no bootstrap key: SEALPOST_SOAK_DATABASE must name an empty database")
	}
	s.client = &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 4 * s.cfg.Clients, MaxIdleConnsPerHost: 4 * s.cfg.Clients},
	}

	version := func(r *rand.Rand, vs ...string) string { return vs[r.IntN(len(vs))] }
	s.parent = &account{
		name: "admin", key: s.srv.key,
		domains: []string{modernDomain, legacyDomain, plainDomain},
		// Opportunistic: the version is a minimum only when TLS is mandatory.
		patch: func(r *rand.Rand) string {
			return fmt.Sprintf(`{"require_tls":false,"require_valid_cert":false,"version":%s}`, version(r, "1.1", "1.2", "1.3"))
		},
		checkGet: wantTLS(func(p tlsSetting) bool { return !p.RequireTLS && !p.RequireValidCert }),
	}
	strict := &account{
		name: "strict", obo: "soak-strict", strict: true,
		domains: []string{modernDomain, legacyDomain},
		// legacy.test speaks TLS 1.2 at most, so the minimum stays <= 1.2.
		patch: func(r *rand.Rand) string {
			return fmt.Sprintf(`{"require_tls":%t,"require_valid_cert":true,"version":%s}`, r.IntN(2) == 0, version(r, "1.1", "1.2"))
		},
		checkGet: wantTLS(func(p tlsSetting) bool { return p.RequireValidCert && p.Version != 1.3 }),
	}
	strict13 := &account{
		name: "strict13", obo: "soak-strict13", strict: true,
		domains: []string{modernDomain},
		patch: func(r *rand.Rand) string {
			return fmt.Sprintf(`{"require_tls":%t,"require_valid_cert":true,"version":1.3}`, r.IntN(2) == 0)
		},
		checkGet: wantTLS(func(p tlsSetting) bool { return p.RequireValidCert && p.Version == 1.3 }),
	}
	s.accounts = []*account{s.parent, strict, strict13}

	for _, a := range s.accounts[1:] {
		s.mustDo("POST", "/v3/subusers", s.parent.key, "", fmt.Sprintf(`{"username":%q,"email":"%s@sealpost.test","password":"s3cret-Pass","ips":[]}`, a.obo, a.obo), 200, nil)
		var created struct {
			APIKey string `json:"api_key"`
		}
		s.mustDo("POST", "/v3/api_keys", s.parent.key, a.obo, `{"name":"soak"}`, 201, &created)
		a.key = created.APIKey
	}
	r := rand.New(rand.NewPCG(s.cfg.Seed, 0))
	for _, a := range s.accounts {
		s.mustDo("PATCH", "/v3/user/settings/enforced_tls", s.parent.key, a.obo, a.patch(r), 200, nil)
		a.hookURL = s.hooks.srv.URL + "/hook/" + a.name
		s.mustDo("PATCH", "/v3/user/webhooks/event/settings", s.parent.key, a.obo, hookBody(a.hookURL, false, false), 200, nil)
		var signed struct {
			PublicKey string `json:"public_key"`
		}
		s.mustDo("PATCH", "/v3/user/webhooks/event/settings/signed", s.parent.key, a.obo, `{"enabled":true}`, 200, &signed)
		a.hookKey = signed.PublicKey
		s.hooks.setKey(a.name, a.hookKey)
	}
}

type tlsSetting struct {
	RequireTLS       bool    `json:"require_tls"`
	RequireValidCert bool    `json:"require_valid_cert"`
	Version          float64 `json:"version"`
}

func wantTLS(ok func(tlsSetting) bool) func([]byte) error {
	return func(body []byte) error {
		var p tlsSetting
		if err := json.Unmarshal(body, &p); err != nil {
			return fmt.Errorf("not JSON: %w", err)
		}
		if !ok(p) {
			return fmt.Errorf("setting outside the account's policy")
		}
		return nil
	}
}

func hookBody(url string, open, click bool) string {
	return fmt.Sprintf(`{"enabled":true,"url":%q,"processed":true,"delivered":true,"deferred":true,"bounce":true,"dropped":true,"open":%t,"click":%t}`, url, open, click)
}

// mustDo is a setup request: anything but want ends the test.
func (s *soak) mustDo(method, path, key, obo, body string, want int, out any) {
	s.t.Helper()
	status, b, _, err := s.request(context.Background(), method, path, key, obo, body)
	if err != nil || status != want {
		s.t.Fatalf("%s %s: %d %s %v", method, path, status, b, err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %s: %v", method, path, b, err)
		}
	}
}

func (s *soak) request(ctx context.Context, method, path, key, obo, body string) (int, []byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.srv.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if obo != "" {
		req.Header.Set("On-Behalf-Of", obo)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header, err
}

// run drives the load for the configured duration, reporting every
// interval and sampling the server's resources as it goes.
func (s *soak) run() {
	cfg := s.cfg
	rate := "closed loop (as fast as the clients go)"
	if cfg.Rate > 0 {
		rate = fmt.Sprintf("target %.0f req/s", cfg.Rate)
	}
	s.logf("sealpost soak: %v of load, %s, %d clients, mix %s, store %s, seed %d", cfg.Duration, rate, cfg.Clients, cfg.Mix, storeName(cfg.Database), cfg.Seed)
	s.logf("server pid %d at %s; fake MX servers on port %d (modern.test TLS 1.3, legacy.test TLS 1.2 only, plain.test no STARTTLS)", s.srv.cmd.Process.Pid, s.srv.base, s.mx.Port())
	s.logf("accounts: admin (opportunistic; mail to all three), subuser soak-strict (require_valid_cert, version <= 1.2; modern, legacy), subuser soak-strict13 (require_valid_cert, version 1.3; modern)")
	s.logf("")
	s.logf("%-8s %-10s %9s %9s %9s %9s %7s", "t", "kind", "req/s", "p50_ms", "p99_ms", "max_ms", "errors")

	var stop atomic.Bool
	var wg sync.WaitGroup
	s.loadStart = time.Now()
	cpu0, _ := CPUTime(s.srv.cmd.Process.Pid)
	self0, _ := CPUTime(0)
	done := make(chan struct{})
	var samplerWG sync.WaitGroup
	samplerWG.Go(func() { s.sampler(done) })
	for i := range cfg.Clients {
		wg.Go(func() { s.client1(i, &stop) })
	}

	lastReport := s.loadStart
	ticker := time.NewTicker(cfg.Interval)
	end := time.NewTimer(cfg.Duration)
	for loop := true; loop; {
		select {
		case <-ticker.C:
			s.reportInterval(&lastReport)
		case <-end.C:
			loop = false
		}
	}
	ticker.Stop()
	stop.Store(true)
	wg.Wait()
	s.loadEnd = time.Now()
	if s.loadEnd.Sub(lastReport) > cfg.Interval/10 {
		s.reportInterval(&lastReport)
	}
	close(done)
	samplerWG.Wait()

	cpu1, _ := CPUTime(s.srv.cmd.Process.Pid)
	self1, _ := CPUTime(0)
	span := s.loadEnd.Sub(s.loadStart)
	s.logf("")
	s.logf("CPU during the load: server %.0f%% of one core, test process (clients, fake MX, webhook receiver) %.0f%%",
		100*(cpu1-cpu0).Seconds()/span.Seconds(), 100*(self1-self0).Seconds()/span.Seconds())
}

func storeName(db string) string {
	if db == "sqlite" || db == "postgres" {
		return db
	}
	return "postgres (given URL)"
}

// client1 is one client: open loop at its share of the rate, or closed
// loop. A client that falls behind skips ahead instead of bursting.
func (s *soak) client1(i int, stop *atomic.Bool) {
	r := rand.New(rand.NewPCG(s.cfg.Seed, uint64(i+1)))
	var period time.Duration
	next := time.Now()
	if s.cfg.Rate > 0 {
		period = time.Duration(float64(time.Second) * float64(s.cfg.Clients) / s.cfg.Rate)
		next = next.Add(period * time.Duration(i) / time.Duration(s.cfg.Clients))
	}
	for !stop.Load() {
		if period > 0 {
			now := time.Now()
			if wait := next.Sub(now); wait > 0 {
				time.Sleep(wait)
			} else if -wait > period {
				next = now
			}
			next = next.Add(period)
		}
		s.one(r, s.cfg.Mix.Pick(r))
	}
}

// one makes one request of kind and records its latency and whether it was
// answered as it must be.
func (s *soak) one(r *rand.Rand, kind string) {
	a := s.accounts[r.IntN(len(s.accounts))]
	key, obo := s.parent.key, a.obo
	if a.obo != "" && r.IntN(2) == 0 {
		key, obo = a.key, "" // the subuser's own key
	}
	var (
		method, path, body string
		want               = 200
		check              func(b []byte, h http.Header) error
		rcpts              []string
	)
	switch kind {
	case KindTLSGet:
		method, path = "GET", "/v3/user/settings/enforced_tls"
		check = func(b []byte, _ http.Header) error { return a.checkGet(b) }
	case KindTLSPatch:
		method, path, body = "PATCH", "/v3/user/settings/enforced_tls", a.patch(r)
		sent := body
		check = func(b []byte, _ http.Header) error {
			if string(b) != sent {
				return fmt.Errorf("answered %s to %s", b, sent)
			}
			return nil
		}
	case KindHookGet:
		method, path = "GET", "/v3/user/webhooks/event/settings"
		check = func(b []byte, _ http.Header) error {
			var h struct {
				Enabled   bool   `json:"enabled"`
				URL       string `json:"url"`
				Delivered bool   `json:"delivered"`
			}
			if err := json.Unmarshal(b, &h); err != nil || !h.Enabled || !h.Delivered || h.URL != a.hookURL {
				return fmt.Errorf("webhook settings %s, want enabled with url %s", b, a.hookURL)
			}
			return nil
		}
	case KindHookPatch:
		method, path, body = "PATCH", "/v3/user/webhooks/event/settings", hookBody(a.hookURL, r.IntN(2) == 0, r.IntN(2) == 0)
	case KindSend:
		// Mail send ignores on-behalf-of: each account sends with its own key.
		key, obo = a.key, ""
		method, path, want = "POST", "/v3/mail/send", 202
		n := s.seq.Add(1)
		rcpts = recipients(r, a, n)
		body = mailBody(a, n, rcpts)
		check = func(_ []byte, h http.Header) error {
			if len(h.Get("X-Message-Id")) != 22 {
				return fmt.Errorf("X-Message-Id %q", h.Get("X-Message-Id"))
			}
			return nil
		}
	}
	start := time.Now()
	status, b, h, err := s.request(context.Background(), method, path, key, obo, body)
	took := time.Since(start)
	switch {
	case err != nil:
		s.rec.add(kind, took, fmt.Sprintf("%s %s (%s): %v", method, path, a.name, err))
	case status != want:
		s.rec.add(kind, took, fmt.Sprintf("%s %s (%s): %d %s", method, path, a.name, status, b))
	case check != nil && check(b, h) != nil:
		s.rec.add(kind, took, fmt.Sprintf("%s %s (%s): %v", method, path, a.name, check(b, h)))
	default:
		s.rec.add(kind, took, "")
		if kind == KindSend {
			s.mu.Lock()
			s.messages++
			for _, rc := range rcpts {
				s.expected[rc] = a.name
			}
			s.mu.Unlock()
		}
	}
}

// recipients picks one to three of the account's domains, one recipient in
// each, with addresses no other message uses.
func recipients(r *rand.Rand, a *account, n int64) []string {
	k := 1
	switch x := r.IntN(10); {
	case x == 9:
		k = 3
	case x >= 7:
		k = 2
	}
	k = min(k, len(a.domains))
	var out []string
	for i, d := range r.Perm(len(a.domains))[:k] {
		out = append(out, fmt.Sprintf("r%d-%d@%s", n, i, a.domains[d]))
	}
	return out
}

// mailBody is a typical transactional message: text and HTML parts, a
// category and a custom argument.
func mailBody(a *account, n int64, rcpts []string) string {
	var to []string
	for _, rc := range rcpts {
		to = append(to, fmt.Sprintf(`{"email":%q}`, rc))
	}
	return fmt.Sprintf(`{"personalizations":[{"to":[%s]}],"from":{"email":"%s@sender.test","name":"Sealpost Soak"},`+
		`"subject":"Your order %d has shipped",`+
		`"content":[{"type":"text/plain","value":"Hello,\n\nyour order %d has shipped and will arrive on Thursday.\nTrack it at https://shop.example/orders/%d.\n\nThanks for shopping with us."},`+
		`{"type":"text/html","value":"<p>Hello,</p><p>your order <b>%d</b> has shipped and will arrive on Thursday.</p><p><a href=\"https://shop.example/orders/%d\">Track it</a>.</p><p>Thanks for shopping with us.</p>"}],`+
		`"categories":["shipping"],"custom_args":{"soak_seq":"%d"}}`,
		strings.Join(to, ","), a.name, n, n, n, n, n, n)
}

func (s *soak) delivered() int {
	n := 0
	for _, srv := range s.servers {
		// One recipient per domain per message: a transaction is a recipient.
		n += srv.AcceptedCount()
	}
	return n
}

func (s *soak) acceptedRcpts() (messages, rcpts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.messages, len(s.expected)
}

// sampler reads the server's resources every Sample until done.
func (s *soak) sampler(done <-chan struct{}) {
	pid := s.srv.cmd.Process.Pid
	prevCPU, _ := CPUTime(pid)
	prevAt := time.Now()
	tick := time.NewTicker(s.cfg.Sample)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		now := time.Now()
		smp := sample{at: now.Sub(s.loadStart)}
		var err error
		if smp.rss, err = VmRSS(pid); err != nil {
			s.fail("sampling: %v", err)
		}
		if smp.fds, err = OpenFDs(pid); err != nil {
			s.fail("sampling: %v", err)
		}
		if cpu, err := CPUTime(pid); err == nil {
			smp.serverCPU = 100 * (cpu - prevCPU).Seconds() / now.Sub(prevAt).Seconds()
			prevCPU, prevAt = cpu, now
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if status, b, _, err := s.request(ctx, "GET", "/metrics", "", "", ""); err == nil && status == 200 {
			smp.goroutines, _ = MetricValue(b, "go_goroutines")
			smp.heapInuse, _ = MetricValue(b, "go_memstats_heap_inuse_bytes")
		} else {
			s.fail("scraping /metrics: %d %v", status, err)
		}
		cancel()
		smp.pressure = -1
		if p, ok := CPUPressure(); ok {
			smp.pressure = p
		}
		_, smp.accepted = s.acceptedRcpts()
		smp.delivered = s.delivered()
		smp.events = s.hooks.total()
		s.mu.Lock()
		s.samples = append(s.samples, smp)
		s.mu.Unlock()
	}
}

func (s *soak) reportInterval(last *time.Time) {
	now := time.Now()
	span := now.Sub(*last)
	*last = now
	stats := s.rec.takeInterval()
	ir := intervalReport{end: now.Sub(s.loadStart), span: span, kinds: stats}
	for _, k := range Kinds() {
		st, ok := stats[k]
		if !ok {
			continue
		}
		s.logf("%-8s %-10s %9.1f %9.2f %9.2f %9.2f %7d", ir.end.Round(time.Second), k, float64(st.N)/span.Seconds(),
			ms(st.P50), ms(st.P99), ms(st.Max), st.errors)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// drain waits, after the load, until every accepted recipient has been
// delivered and its processed and delivered events posted.
func (s *soak) drain() {
	start := time.Now()
	deadline := start.Add(s.cfg.Drain)
	_, want := s.acceptedRcpts()
	for time.Now().Before(deadline) {
		ev := s.hooks.counts()
		if s.delivered() >= want && ev["delivered"] >= want && ev["processed"] >= want {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	s.drainTook = time.Since(start)
}

func (s *soak) stopServer() {
	if err := s.srv.stop(); err != nil {
		s.fail("%v", err)
	}
}

// finish checks what the run must show and writes the report.
func (s *soak) finish() {
	t := s.t
	span := s.loadEnd.Sub(s.loadStart)

	s.logf("")
	s.logf("overall, %v of load:", span.Round(time.Second))
	s.logf("%-10s %9s %9s %9s %9s %9s %7s", "kind", "requests", "req/s", "p50_ms", "p99_ms", "max_ms", "errors")
	total, totalErr := 0, 0
	all := s.rec.overall()
	for _, k := range Kinds() {
		st, ok := all[k]
		if !ok {
			continue
		}
		total += st.N
		totalErr += st.errors
		s.logf("%-10s %9d %9.1f %9.2f %9.2f %9.2f %7d", k, st.N, float64(st.N)/span.Seconds(), ms(st.P50), ms(st.P99), ms(st.Max), st.errors)
	}
	s.logf("%-10s %9d %9.1f %39d", "all", total, float64(total)/span.Seconds(), totalErr)
	if totalErr > 0 {
		s.fail("%d requests were not answered as they must be; first ones:\n  %s", totalErr, strings.Join(s.rec.errorSamples(), "\n  "))
	}
	if s.cfg.Rate > 0 && float64(total)/span.Seconds() < 0.9*s.cfg.Rate {
		s.logf("note: the clients reached %.0f req/s of the %.0f targeted: requests took longer than the clients' share of the rate allows (server or machine saturated)", float64(total)/span.Seconds(), s.cfg.Rate)
	}

	// Mail: accepted, delivered, still queued, and exactly once.
	messages, want := s.acceptedRcpts()
	delivered := s.delivered()
	s.logf("")
	s.logf("mail: %d messages accepted (202) with %d recipients; %d delivered to the fake MX servers, %d still queued after a drain of %v",
		messages, want, delivered, max(0, want-delivered), s.drainTook.Round(100*time.Millisecond))
	s.checkDeliveries()

	ev := s.hooks.counts()
	s.logf("webhook: %d events received in %d signed posts (%s); %d repeated, %d posts failing signature checks",
		s.hooks.total(), s.hooks.postCount(), formatCounts(ev), s.hooks.repeats(), s.hooks.badSignatures())
	if ev["processed"] != want || ev["delivered"] != want {
		s.fail("webhook: %d processed and %d delivered events, want %d of each", ev["processed"], ev["delivered"], want)
	}
	for _, k := range []string{"bounce", "dropped"} {
		if ev[k] > 0 {
			s.fail("webhook: %d %s events; every recipient accepts every account's mail", ev[k], k)
		}
	}
	if n := s.hooks.badSignatures(); n > 0 {
		s.fail("webhook: %d posts failed signature verification", n)
	}
	if n := s.hooks.unknownPaths(); n > 0 {
		s.fail("webhook: %d posts to an account's wrong URL", n)
	}
	for _, a := range s.accounts {
		s.hooks.mu.Lock()
		ec := maps.Clone(s.hooks.byAccount[a.name])
		s.hooks.mu.Unlock()
		s.logf("  %-9s %s", a.name, formatCounts(ec))
	}

	s.reportResources()
	s.reportServerLogs()

	s.logf("")
	if len(s.failures) == 0 {
		s.logf("RESULT: PASS")
	} else {
		s.logf("RESULT: FAIL")
		for _, f := range s.failures {
			s.logf("  - %s", f)
		}
	}
	if s.cfg.Report != "" {
		if err := os.WriteFile(s.cfg.Report, s.out.Bytes(), 0o644); err != nil {
			t.Errorf("writing the report: %v", err)
		}
	}
	if s.cfg.CSV != "" {
		s.writeCSV()
	}
	for _, f := range s.failures {
		t.Error(f)
	}
}

// checkDeliveries compares what the fake MX servers accepted with what the
// API accepted: every recipient exactly once, strict accounts' mail only
// over TLS, and nothing to a domain the sender's policy would refuse.
func (s *soak) checkDeliveries() {
	s.mu.Lock()
	expected := s.expected
	s.mu.Unlock()
	got := map[string]int{}
	for domain, srv := range s.servers {
		for _, d := range srv.Accepted() {
			sender, _, _ := strings.Cut(d.From, "@")
			for _, rc := range d.To {
				got[rc]++
				if expected[rc] == "" {
					s.fail("%s received mail for %s, which no 202 accepted", domain, rc)
				}
			}
			if sender != "admin" && !d.TLS {
				s.fail("%s received %s's mail without TLS", domain, sender)
			}
		}
	}
	missing, repeated := 0, 0
	var examples []string
	for rc := range expected {
		switch n := got[rc]; {
		case n == 0:
			missing++
			if len(examples) < 5 {
				examples = append(examples, rc)
			}
		case n > 1:
			repeated += n - 1
		}
	}
	if missing > 0 {
		s.fail("%d accepted recipients not delivered after the drain (e.g. %s)", missing, strings.Join(examples, ", "))
	}
	if repeated > 0 {
		s.fail("%d recipients delivered more than once in a run without crashes", repeated)
	}
}

func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range []string{"processed", "delivered", "deferred", "bounce", "dropped"} {
		if m[k] > 0 || k == "processed" || k == "delivered" {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	for k, v := range m {
		switch k {
		case "processed", "delivered", "deferred", "bounce", "dropped":
		default:
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
	}
	return strings.Join(parts, ", ")
}

// reportResources prints the server's resource time series and applies the
// growth rule to RSS, open file descriptors and goroutines.
func (s *soak) reportResources() {
	s.mu.Lock()
	samples := append([]sample(nil), s.samples...)
	s.mu.Unlock()
	s.logf("")
	s.logf("server resources every %v (RSS from /proc/<pid>/status VmRSS; fds from /proc/<pid>/fd; goroutines and heap from /metrics):", s.cfg.Sample)
	s.logf("(cpu_%%: the server's CPU, percent of one core; psi_%%: share of time some task on the machine waited for a CPU, from /proc/pressure/cpu)")
	s.logf("%-8s %8s %9s %6s %10s %7s %9s %9s %8s %6s", "t", "rss_MiB", "heap_MiB", "fds", "goroutines", "cpu_%", "accepted", "delivered", "backlog", "psi_%")
	var rss, fds, gor []float64
	maxBacklog := 0
	for _, m := range samples {
		s.logf("%-8s %8.1f %9.1f %6d %10.0f %7.0f %9d %9d %8d %6.0f", m.at.Round(time.Second), float64(m.rss)/(1<<20), m.heapInuse/(1<<20),
			m.fds, m.goroutines, m.serverCPU, m.accepted, m.delivered, m.accepted-m.delivered, m.pressure)
		rss = append(rss, float64(m.rss))
		fds = append(fds, float64(m.fds))
		gor = append(gor, m.goroutines)
		maxBacklog = max(maxBacklog, m.accepted-m.delivered)
	}
	s.logf("largest delivery backlog seen: %d recipients", maxBacklog)
	s.logf("")
	// Open files and goroutines scale with connections in flight, which
	// jitter under load; their rule is looser than RSS's.
	for _, c := range []struct {
		name  string
		unit  float64
		label string
		v     []float64
		rule  GrowthRule
	}{
		{"RSS", 1 << 20, "MiB", rss, s.cfg.RSS},
		{"open fds", 1, "", fds, GrowthRule{Tolerance: 0.5, Slack: 20}},
		{"goroutines", 1, "", gor, GrowthRule{Tolerance: 0.5, Slack: 50}},
	} {
		g := c.rule.Check(c.v)
		rule := fmt.Sprintf("last third's mean <= middle third's mean x %.2f + %.0f%s", 1+c.rule.Tolerance, c.rule.Slack/c.unit, c.label)
		switch {
		case !g.Judged:
			s.logf("growth check %-10s: not judged, %d samples (need %d): %s", c.name, len(c.v), MinGrowthSamples, rule)
		case g.OK:
			s.logf("growth check %-10s: PASS middle third %.1f, last third %.1f, limit %.1f %s (%s)", c.name, g.Middle/c.unit, g.Last/c.unit, g.Limit/c.unit, c.label, rule)
		default:
			s.logf("growth check %-10s: FAIL middle third %.1f, last third %.1f, limit %.1f %s (%s)", c.name, g.Middle/c.unit, g.Last/c.unit, g.Limit/c.unit, c.label, rule)
			s.fail("%s grew through the run: middle third %.1f, last third %.1f, over the limit %.1f %s", c.name, g.Middle/c.unit, g.Last/c.unit, g.Limit/c.unit, c.label)
		}
	}
}

func (s *soak) reportServerLogs() {
	levels := map[string]int{}
	var firsts []string
	for _, l := range s.srv.logs() {
		var rec struct {
			Level string `json:"level"`
		}
		_ = json.Unmarshal([]byte(l), &rec)
		levels[rec.Level]++
		if (rec.Level == "WARN" || rec.Level == "ERROR") && len(firsts) < 5 {
			firsts = append(firsts, l)
		}
	}
	s.logf("server log lines: %d INFO, %d WARN, %d ERROR", levels["INFO"], levels["WARN"], levels["ERROR"])
	for _, l := range firsts {
		s.logf("  %s", l)
	}
	if levels["ERROR"] > 0 {
		s.fail("the server logged %d errors", levels["ERROR"])
	}
}

func (s *soak) writeCSV() {
	var b bytes.Buffer
	b.WriteString("t_s,rss_bytes,heap_inuse_bytes,open_fds,goroutines,server_cpu_pct,accepted_rcpts,delivered_rcpts,webhook_events,cpu_pressure_pct\n")
	s.mu.Lock()
	for _, m := range s.samples {
		fmt.Fprintf(&b, "%.1f,%d,%.0f,%d,%.0f,%.1f,%d,%d,%d,%.1f\n", m.at.Seconds(), m.rss, m.heapInuse, m.fds, m.goroutines, m.serverCPU, m.accepted, m.delivered, m.events, m.pressure)
	}
	s.mu.Unlock()
	if err := os.WriteFile(s.cfg.CSV, b.Bytes(), 0o644); err != nil {
		s.t.Errorf("writing the CSV: %v", err)
	}
}

// recorder keeps every request's latency, per interval and overall.
type recorder struct {
	mu       sync.Mutex
	interval map[string][]time.Duration
	intErr   map[string]int
	all      map[string][]time.Duration
	allErr   map[string]int
	samples  []string
}

func newRecorder() *recorder {
	return &recorder{interval: map[string][]time.Duration{}, intErr: map[string]int{}, all: map[string][]time.Duration{}, allErr: map[string]int{}}
}

// add records one request; a non-empty problem makes it an error.
func (r *recorder) add(kind string, took time.Duration, problem string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.interval[kind] = append(r.interval[kind], took)
	r.all[kind] = append(r.all[kind], took)
	if problem != "" {
		r.intErr[kind]++
		r.allErr[kind]++
		if len(r.samples) < 10 {
			r.samples = append(r.samples, problem)
		}
	}
}

func (r *recorder) takeInterval() map[string]kindStats {
	r.mu.Lock()
	d, e := r.interval, r.intErr
	r.interval, r.intErr = map[string][]time.Duration{}, map[string]int{}
	r.mu.Unlock()
	out := map[string]kindStats{}
	for k, v := range d {
		out[k] = kindStats{Latency: Summarize(v), errors: e[k]}
	}
	return out
}

func (r *recorder) overall() map[string]kindStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]kindStats{}
	for k, v := range r.all {
		out[k] = kindStats{Latency: Summarize(append([]time.Duration(nil), v...)), errors: r.allErr[k]}
	}
	return out
}

func (r *recorder) errorSamples() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.samples...)
}

// receiver is the accounts' Event Webhook endpoint: /hook/<account>,
// each post checked against that account's signing key.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	keys      map[string]string
	posts     int
	badSig    int
	wrongPath int
	seen      map[string]bool // sg_event_id
	repeated  int
	byKind    map[string]int
	byAccount map[string]map[string]int
	events    int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, keys: map[string]string{}, seen: map[string]bool{}, byKind: map[string]int{}, byAccount: map[string]map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setKey(account, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys[account] = key
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	name, _ := strings.CutPrefix(req.URL.Path, "/hook/")
	r.mu.Lock()
	key := r.keys[name]
	r.mu.Unlock()
	valid := false
	if pk, err := eventwebhook.ConvertPublicKeyBase64ToECDSA(key); err == nil {
		valid, _ = eventwebhook.VerifySignature(pk, body, req.Header.Get(eventwebhook.VerificationHTTPHeader), req.Header.Get(eventwebhook.TimestampHTTPHeader))
	}
	var events []struct {
		Event string `json:"event"`
		ID    string `json:"sg_event_id"`
	}
	if err := json.Unmarshal(body, &events); err != nil {
		r.t.Errorf("a webhook post is not a JSON array of events: %.200s", body)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.posts++
	if !valid {
		r.badSig++
	}
	if key == "" {
		r.wrongPath++
	}
	if r.byAccount[name] == nil {
		r.byAccount[name] = map[string]int{}
	}
	for _, e := range events {
		// A retried post repeats events; count each once.
		if r.seen[e.ID] {
			r.repeated++
			continue
		}
		r.seen[e.ID] = true
		r.events++
		r.byKind[e.Event]++
		r.byAccount[name][e.Event]++
	}
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.byKind)
}

func (r *receiver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events
}

func (r *receiver) postCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.posts
}

func (r *receiver) repeats() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.repeated
}

func (r *receiver) badSignatures() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.badSig
}

func (r *receiver) unknownPaths() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wrongPath
}

// buildBinary builds the real binary without cgo, as it ships.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sealpost")
	build := exec.Command("go", "build", "-o", bin, "github.com/sealpost/sealpost/cmd/sealpost")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// server is a running "sealpost serve".
type server struct {
	cmd  *exec.Cmd
	base string
	key  string

	mu       sync.Mutex
	logLines []string
	logsDone chan struct{}
}

func (p *server) logs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.logLines...)
}

// startServer starts "sealpost serve" configured through the environment
// and waits for it to say where it serves.
func startServer(t *testing.T, bin string, env ...string) *server {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = append(cmd.Environ(), append([]string{"SEALPOST_HTTP_ADDR=127.0.0.1:0", "SEALPOST_LOG_LEVEL=info"}, env...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	p := &server{cmd: cmd, logsDone: make(chan struct{})}
	keyLine := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		keyLine <- strings.TrimSpace(line)
		io.Copy(io.Discard, stdout)
	}()
	addr := make(chan string, 1)
	go func() {
		defer close(p.logsDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.logLines = append(p.logLines, sc.Text())
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "sealpost serving" {
				addr <- rec.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		p.base = "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatalf("no 'sealpost serving' log line:\n%s", strings.Join(p.logs(), "\n"))
	}
	select {
	case p.key = <-keyLine:
	case <-time.After(2 * time.Second):
	}
	return p
}

// stop sends SIGTERM and requires a clean exit.
func (p *server) stop() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signalling the server: %w", err)
	}
	done := make(chan error, 1)
	go func() { <-p.logsDone; done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("serve did not exit cleanly on SIGTERM: %w", err)
		}
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("serve did not stop within 30s of SIGTERM")
	}
}
