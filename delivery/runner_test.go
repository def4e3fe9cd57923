package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
	"github.com/sealpost/sealpost/httpapi"
	"github.com/sealpost/sealpost/internal/testclock"
	"github.com/sealpost/sealpost/sqlite"
	"github.com/sealpost/sealpost/storetest"
)

// loopbackOnly allows the mxtest servers' loopback addresses, which the
// default rule refuses.
func loopbackOnly() sealpost.Destinations {
	return sealpost.AllowDestinations(netip.MustParsePrefix("127.0.0.0/8"))
}

// runnerWorld is a SQLite store with one account, a fake MX world, and a
// runner delivering into it.
type runnerWorld struct {
	t       testing.TB
	store   *sqlite.DB
	account *sealpost.Account
	h       *mxtest.Harness
	clock   *testclock.Clock
	runner  *delivery.Runner
}

func newRunnerWorld(t testing.TB) *runnerWorld {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sealpost.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	account := &sealpost.Account{Kind: sealpost.KindUser, Username: "sender", Email: "sender@sealpost.test"}
	if err := store.CreateAccount(ctx, account); err != nil {
		t.Fatal(err)
	}
	// The account's webhook wants every event: the tests read the outcomes
	// from its outbox.
	if _, err := store.UpdateEventWebhookSettings(ctx, account.ID, storetest.SubscribeAll()); err != nil {
		t.Fatal(err)
	}
	h := mxtest.New(t)
	clk := testclock.New(time.Now())
	w := &runnerWorld{t: t, store: store, account: account, h: h, clock: clk}
	w.runner = &delivery.Runner{
		Queue: store,
		Deliverer: &delivery.Client{
			Resolver:     delivery.NewResolver(h.DNSAddr()),
			Port:         h.Port(),
			HeloHostname: "sealpost.test",
			RootCAs:      h.CertPool(),
			Timeout:      5 * time.Second,
			Destinations: loopbackOnly(),
		},
		Owner:   "node-a",
		Workers: 4,
		Backoff: func(int) time.Duration { return time.Minute },
		Now:     clk.Now,
	}
	return w
}

// send enqueues one message as the mail send endpoint does.
func (w *runnerWorld) send(body string) string {
	w.t.Helper()
	ms, err := httpapi.ParseMailSend([]byte(body))
	if err != nil {
		w.t.Fatal(err)
	}
	xid, err := sealpost.NewXMessageID()
	if err != nil {
		w.t.Fatal(err)
	}
	msgs, err := ms.Messages(w.account.ID, xid, w.clock.Now(), "sealpost.test")
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.store.EnqueueMessages(context.Background(), msgs, nil); err != nil {
		w.t.Fatal(err)
	}
	return xid
}

func (w *runnerWorld) drain() {
	w.t.Helper()
	if err := w.runner.Drain(context.Background()); err != nil {
		w.t.Fatal(err)
	}
}

func (w *runnerWorld) setPolicy(p sealpost.EnforcedTLSPatch) {
	w.t.Helper()
	if _, err := w.store.UpdateEnforcedTLS(context.Background(), w.account.ID, p); err != nil {
		w.t.Fatal(err)
	}
}

// events takes every event waiting in the outbox, in order.
func (w *runnerWorld) events() []map[string]any {
	w.t.Helper()
	ctx := context.Background()
	var out []map[string]any
	for {
		b, err := w.store.ClaimEventBatch(ctx, "test", w.clock.Now(), time.Minute, 1000)
		if err != nil {
			w.t.Fatal(err)
		}
		if b == nil {
			return out
		}
		for _, e := range b.Events {
			var m map[string]any
			if err := json.Unmarshal(e.Payload, &m); err != nil {
				w.t.Fatal(err)
			}
			out = append(out, m)
		}
		if err := w.store.AckEventBatch(ctx, b); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *runnerWorld) states(xid string) map[string]sealpost.RecipientState {
	w.t.Helper()
	rs, err := w.store.RecipientStates(context.Background(), w.account.ID, xid)
	if err != nil {
		w.t.Fatal(err)
	}
	m := map[string]sealpost.RecipientState{}
	for _, r := range rs {
		m[r.Email] = r.State
	}
	return m
}

func mailTo(to ...string) string {
	var list []map[string]string
	for _, a := range to {
		list = append(list, map[string]string{"email": a})
	}
	b, _ := json.Marshal(map[string]any{
		"personalizations": []any{map[string]any{"to": list}},
		"from":             map[string]string{"email": "sender@sealpost.test"},
		"subject":          "hello",
		"content":          []any{map[string]string{"type": "text/plain", "value": "the body of the message"}},
		"custom_args":      map[string]string{"order": "42"},
	})
	return string(b)
}

func kinds(events []map[string]any) []string {
	var k []string
	for _, e := range events {
		k = append(k, e["email"].(string)+":"+e["event"].(string))
	}
	return k
}

func TestRunnerDeliversAndRetries(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	good := w.h.AddMX("good.test", 10, mxtest.Behavior{})
	slow := w.h.AddMX("slow.test", 10, mxtest.Behavior{TempFailRcpt: 1})
	xid := w.send(mailTo("a@good.test", "b@good.test", "c@slow.test"))

	w.drain()
	if got := len(good.Accepted()); got != 1 {
		t.Fatalf("good.test accepted %d transactions, want 1 with both recipients", got)
	}
	if to := good.Accepted()[0].To; len(to) != 2 {
		t.Errorf("good.test transaction recipients = %v, want both in one transaction", to)
	}
	st := w.states(xid)
	if st["a@good.test"] != sealpost.StateDelivered || st["b@good.test"] != sealpost.StateDelivered || st["c@slow.test"] != sealpost.StateQueued {
		t.Fatalf("states after the first attempt = %v", st)
	}
	evs := w.events()
	byEmail := map[string]map[string]any{}
	for _, e := range evs {
		byEmail[e["email"].(string)] = e
	}
	if e := byEmail["a@good.test"]; e["event"] != "delivered" || e["tls"] != 1.0 || e["order"] != "42" {
		t.Errorf("event for a@good.test = %v", e)
	}
	if e := byEmail["c@slow.test"]; e["event"] != "deferred" || e["attempt"] != "1" {
		t.Errorf("event for c@slow.test = %v", e)
	}

	// Not due yet: nothing happens.
	w.drain()
	if n := len(slow.Accepted()); n != 0 {
		t.Fatalf("slow.test got mail before its retry was due")
	}
	w.clock.Add(2 * time.Minute)
	w.drain()
	if n := len(slow.Accepted()); n != 1 {
		t.Fatalf("slow.test accepted %d transactions after the retry, want 1", n)
	}
	if st := w.states(xid); st["c@slow.test"] != sealpost.StateDelivered {
		t.Errorf("c@slow.test = %s after the retry", st["c@slow.test"])
	}
	if got := kinds(w.events()); len(got) != 1 || got[0] != "c@slow.test:delivered" {
		t.Errorf("events after the retry = %v", got)
	}
}

// The policy is read for every attempt: a PATCH between two attempts of the
// same message governs the second.
func TestRunnerReadsPolicyPerAttempt(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	plain := w.h.AddMX("plain.test", 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS, TempFailRcpt: 1})
	xid := w.send(mailTo("x@plain.test"))
	w.drain() // deferred under the default policy
	if st := w.states(xid); st["x@plain.test"] != sealpost.StateQueued {
		t.Fatalf("state = %v", st)
	}
	w.setPolicy(sealpost.EnforcedTLSPatch{RequireTLS: ptr(true)})
	w.clock.Add(2 * time.Minute)
	w.drain()
	if st := w.states(xid); st["x@plain.test"] != sealpost.StateBlocked {
		t.Fatalf("state after require_tls = %v, want blocked", st)
	}
	if n := len(plain.Accepted()); n != 0 {
		t.Fatalf("the plaintext server accepted %d messages under require_tls", n)
	}
	evs := w.events()
	last := evs[len(evs)-1]
	if last["event"] != "bounce" || last["type"] != "blocked" || last["reason"] != sealpost.BlockedReason || last["status"] != "5.7.10" || last["tls"] != 0.0 {
		t.Errorf("blocked event = %v", last)
	}
	if sp, _ := last["sealpost"].(map[string]any); sp["result_type"] != sealpost.ResultSTARTTLSNotSupported {
		t.Errorf("blocked event's sealpost facts = %v", last["sealpost"])
	}
	// Blocked is final: nothing is retried.
	w.clock.Add(24 * time.Hour)
	w.drain()
	if evs := w.events(); len(evs) != 0 {
		t.Errorf("a blocked recipient was attempted again: %v", kinds(evs))
	}
}

func TestRunnerBouncesAfterMaxAge(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	w.runner.MaxAge = 10 * time.Minute
	w.h.AddMX("down.test", 10, mxtest.Behavior{TempFailMail: 1000})
	xid := w.send(mailTo("x@down.test"))
	var got []string
	for range 20 {
		w.drain()
		for _, e := range w.events() {
			got = append(got, e["event"].(string))
		}
		if w.states(xid)["x@down.test"].Final() {
			break
		}
		w.clock.Add(2 * time.Minute)
	}
	if st := w.states(xid)["x@down.test"]; st != sealpost.StateBounced {
		t.Fatalf("state = %s, want bounced after MaxAge", st)
	}
	if len(got) < 2 || got[len(got)-1] != "bounce" || got[len(got)-2] != "deferred" {
		t.Errorf("events = %v, want deferrals then one bounce", got)
	}
}

// A node that claimed a delivery and died holds it only until its lease runs
// out; then another node delivers it, and the dead node's late completion
// is refused.
func TestRunnerTakesOverExpiredLease(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	mx := w.h.AddMX("x.test", 10, mxtest.Behavior{})
	xid := w.send(mailTo("y@x.test"))
	ctx := context.Background()
	claimed, err := w.store.ClaimDeliveries(ctx, "dead-node", w.clock.Now(), time.Minute, 10)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim = %v, %v", claimed, err)
	}
	w.drain()
	if len(mx.Accepted()) != 0 {
		t.Fatal("a leased delivery was delivered by another node")
	}
	w.clock.Add(2 * time.Minute)
	w.drain()
	if len(mx.Accepted()) != 1 || w.states(xid)["y@x.test"] != sealpost.StateDelivered {
		t.Fatalf("after the lease ran out: accepted %d, state %v", len(mx.Accepted()), w.states(xid))
	}
	err = w.store.CompleteDelivery(ctx, "dead-node", sealpost.DeliveryCompletion{DeliveryID: claimed[0].ID})
	if sealpost.ErrorCode(err) != sealpost.ECONFLICT {
		t.Errorf("the dead node's completion = %v, want ECONFLICT", err)
	}
}

func ptr[T any](v T) *T { return &v }

// blockingDeliverer delivers nothing until released, and says when an
// attempt has started.
type blockingDeliverer struct {
	started chan struct{}
	release chan struct{}
}

func (b *blockingDeliverer) Deliver(ctx context.Context, _ sealpost.EnforcedTLS, env delivery.Envelope) delivery.Result {
	b.started <- struct{}{}
	<-b.release
	res := delivery.Result{}
	for range env.Recipients {
		res.Recipients = append(res.Recipients, delivery.RecipientResult{Status: delivery.Delivered, Response: "250 ok"})
	}
	return res
}

// On shutdown, work claimed ahead but not started is handed back at once,
// and the attempt in flight is finished and recorded.
func TestRunnerShutdownReleasesClaimedWork(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	bd := &blockingDeliverer{started: make(chan struct{}, 10), release: make(chan struct{})}
	w.runner.Deliverer = bd
	w.runner.Workers = 2
	w.runner.Poll = time.Millisecond
	var xids []string
	for i := range 4 {
		xids = append(xids, w.send(mailTo(fmt.Sprintf("r%d@x.test", i))))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.runner.Run(ctx) }()
	<-bd.started
	<-bd.started // both workers busy
	// The dispatcher claims the other two ahead within a few polls.
	time.Sleep(100 * time.Millisecond)
	cancel()
	close(bd.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	delivered := 0
	for _, x := range xids {
		for _, st := range w.states(x) {
			if st == sealpost.StateDelivered {
				delivered++
			}
		}
	}
	if delivered != 2 {
		t.Errorf("%d delivered, want the 2 attempts in flight", delivered)
	}
	claimed, err := w.store.ClaimDeliveries(context.Background(), "next-node", w.clock.Now(), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) != 2 {
		t.Errorf("another node could claim %d deliveries right after the shutdown, want the 2 not started", len(claimed))
	}
}

// Deferred mail is retried up to MaxAge after acceptance, exactly: the last
// retry is scheduled at MaxAge rather than bouncing a whole backoff early.
func TestRunnerLastRetryAtMaxAge(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	w.runner.MaxAge = 90 * time.Second // backoff is 1 minute
	w.h.AddMX("down.test", 10, mxtest.Behavior{TempFailMail: 1000})
	xid := w.send(mailTo("x@down.test"))
	for _, step := range []struct {
		advance time.Duration
		want    string
	}{
		{0, "deferred"},           // at acceptance
		{time.Minute, "deferred"}, // 60s: the next backoff would pass 90s
		{29 * time.Second, ""},    // 89s: not due yet
		{time.Second, "bounce"},   // 90s: the last attempt, deferred again: final
		{time.Hour, ""},           // nothing after that
	} {
		w.clock.Add(step.advance)
		w.drain()
		var got string
		for _, e := range w.events() {
			got += e["event"].(string)
		}
		if got != step.want {
			t.Fatalf("after +%v: events %q, want %q", step.advance, got, step.want)
		}
	}
	if st := w.states(xid)["x@down.test"]; st != sealpost.StateBounced {
		t.Errorf("state = %s, want bounced", st)
	}
}

// TestRunnerRendersSharedBody: each personalization of a send reaches its
// recipient with its own header and the body they share.
func TestRunnerRendersSharedBody(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	mx := w.h.AddMX("shared.test", 10, mxtest.Behavior{})
	var pzs []any
	for _, to := range []string{"a@shared.test", "b@shared.test", "c@shared.test"} {
		pzs = append(pzs, map[string]any{"to": []any{map[string]string{"email": to}}})
	}
	body, _ := json.Marshal(map[string]any{
		"personalizations": pzs,
		"from":             map[string]string{"email": "sender@sealpost.test"},
		"subject":          "shared",
		"content":          []any{map[string]string{"type": "text/plain", "value": "the shared body"}},
	})
	w.send(string(body))
	w.drain()
	got := map[string]string{}
	for _, d := range mx.Accepted() {
		got[d.To[0]] = string(d.Data)
	}
	if len(got) != 3 {
		t.Fatalf("accepted for %d recipients, want 3", len(got))
	}
	for rcpt, data := range got {
		if !strings.Contains(data, "\r\nTo: <"+rcpt+">\r\n") || strings.Count(data, "\r\nTo: ") != 1 ||
			!strings.Contains(data, "\r\nSubject: shared\r\n") || !strings.HasSuffix(data, "\r\n\r\nthe shared body\r\n") {
			t.Errorf("message to %s:\n%s", rcpt, data)
		}
	}
}

// TestRunnerDefersUnreadableMessage: a message whose stored layout does not
// fit its body is not sent; the attempt is a deferral that says why.
func TestRunnerDefersUnreadableMessage(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	mx := w.h.AddMX("broken.test", 10, mxtest.Behavior{})
	m := &sealpost.Message{
		AccountID: w.account.ID, XMessageID: "broken", SMTPID: "<broken@sealpost.test>", From: "sender@sealpost.test",
		Body:       &sealpost.MessageBody{Data: []byte("short")},
		Layout:     []byte{1, 100}, // 100 bytes of a 5-byte body
		Recipients: []sealpost.Recipient{{Email: "x@broken.test", SGMessageID: "broken.0"}},
		CreatedAt:  w.clock.Now(),
	}
	if err := w.store.EnqueueMessages(context.Background(), []*sealpost.Message{m}, nil); err != nil {
		t.Fatal(err)
	}
	w.drain()
	if n := len(mx.Accepted()); n != 0 {
		t.Errorf("the MX accepted %d messages", n)
	}
	if st := w.states("broken"); st["x@broken.test"] != sealpost.StateQueued {
		t.Errorf("state = %v, want queued", st)
	}
	evs := w.events()
	if len(evs) != 1 || evs[0]["event"] != "deferred" || evs[0]["response"] != "the stored message could not be read" {
		t.Errorf("events = %v, want one deferral saying the message could not be read", evs)
	}
}

// TestRunnerRecordsObservations: an attempt records, with its outcome,
// what each MX host it reached showed; a host it could not connect to and
// a domain whose DNS failed leave no facts (the preview's unknown).
func TestRunnerRecordsObservations(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	w.h.AddServer("mx2.two.test", mxtest.TLS12Only())
	w.h.DNS().SetA("dead.two.test", "127.0.0.254") // nothing listens there
	w.h.DNS().SetMX("two.test", mxtest.MX{Pref: 10, Host: "dead.two.test"}, mxtest.MX{Pref: 20, Host: "mx2.two.test"})
	w.h.AddMX("plain.test", 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	w.h.DNS().SetServFail("nodns.test")
	w.send(mailTo("a@two.test", "b@two.test", "c@plain.test", "d@nodns.test"))
	w.drain()

	got, err := w.store.TLSRegistry(context.Background(), w.account.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	byDomain := map[string]sealpost.RegistryDomain{}
	for _, d := range got {
		byDomain[d.Domain] = d
	}
	two := byDomain["two.test"]
	if two.Recipients != 2 || len(two.Hosts) != 1 || two.Hosts[0].MXHost != "mx2.two.test" ||
		!two.Hosts[0].Facts.TLS || two.Hosts[0].Facts.Version != "1.2" || !two.Hosts[0].Facts.Verified {
		t.Errorf("two.test = %+v, want 2 recipients and mx2 only, TLS 1.2 with a valid certificate", two)
	}
	if two.HighestVersion != "1.2" || !two.ValidCertSeen || !two.LastAttempt.Equal(w.clock.Now()) {
		t.Errorf("two.test summary = %+v, want 1.2, a valid certificate, last attempt %v", two, w.clock.Now())
	}
	plain := byDomain["plain.test"]
	if plain.Recipients != 1 || len(plain.Hosts) != 1 || plain.Hosts[0].Facts.TLS {
		t.Errorf("plain.test = %+v, want one host without TLS", plain)
	}
	if nodns := byDomain["nodns.test"]; nodns.Recipients != 1 || len(nodns.Hosts) != 0 {
		t.Errorf("nodns.test = %+v, want 1 recipient and no facts", nodns)
	}
}

// concurrencyDeliverer delivers after a pause and records how many
// attempts per domain were in flight at most.
type concurrencyDeliverer struct {
	mu       sync.Mutex
	inFlight map[string]int
	most     map[string]int
	overlap  bool // an attempt to one domain ran beside one to another
}

func (c *concurrencyDeliverer) Deliver(ctx context.Context, _ sealpost.EnforcedTLS, env delivery.Envelope) delivery.Result {
	c.mu.Lock()
	c.inFlight[env.Domain]++
	c.most[env.Domain] = max(c.most[env.Domain], c.inFlight[env.Domain])
	if len(c.inFlight) > 1 {
		c.overlap = true
	}
	c.mu.Unlock()
	time.Sleep(30 * time.Millisecond)
	c.mu.Lock()
	if c.inFlight[env.Domain]--; c.inFlight[env.Domain] == 0 {
		delete(c.inFlight, env.Domain)
	}
	c.mu.Unlock()
	res := delivery.Result{}
	for range env.Recipients {
		res.Recipients = append(res.Recipients, delivery.RecipientResult{Status: delivery.Delivered, Response: "250 ok"})
	}
	return res
}

// MaxPerDomain keeps one domain from taking every worker: its mail waits
// its turn, unattempted (no deferral, no attempt counted), while other
// domains' mail goes past it.
func TestRunnerLimitsAttemptsPerDomain(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	cd := &concurrencyDeliverer{inFlight: map[string]int{}, most: map[string]int{}}
	w.runner.Deliverer = cd
	w.runner.Workers = 6
	w.runner.MaxPerDomain = 2
	w.runner.Poll = 5 * time.Millisecond
	w.runner.DomainBusyDelay = 20 * time.Millisecond
	w.runner.Now = time.Now
	var xids []string
	for i := range 30 {
		xids = append(xids, w.send(mailTo(fmt.Sprintf("r%d@big.test", i))))
	}
	for i := range 4 {
		xids = append(xids, w.send(mailTo(fmt.Sprintf("r%d@small.test", i))))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.runner.Run(ctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		delivered := 0
		for _, x := range xids {
			for _, st := range w.states(x) {
				if st == sealpost.StateDelivered {
					delivered++
				}
			}
		}
		if delivered == len(xids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d delivered", delivered, len(xids))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cd.mu.Lock()
	defer cd.mu.Unlock()
	if cd.most["big.test"] > 2 || cd.most["small.test"] > 2 {
		t.Errorf("attempts in flight per domain at most %v, want at most 2", cd.most)
	}
	if !cd.overlap {
		t.Errorf("small.test's mail never went beside big.test's")
	}
	for _, k := range kinds(w.events()) {
		if !strings.HasSuffix(k, ":delivered") {
			t.Errorf("event %s, want only delivered", k)
		}
	}
}

// Scheduled mail is not attempted before its send_at, and its deferrals
// are retried for MaxAge from send_at, not from acceptance.
func TestRunnerScheduledMailMaxAgeFromSendAt(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	w.runner.MaxAge = 10 * time.Minute
	w.h.AddMX("later.test", 10, mxtest.Behavior{TempFailMail: 1000})
	var body map[string]any
	if err := json.Unmarshal([]byte(mailTo("x@later.test")), &body); err != nil {
		t.Fatal(err)
	}
	sendAt := w.clock.Now().Add(30 * time.Minute).Truncate(time.Second)
	body["send_at"] = sendAt.Unix()
	b, _ := json.Marshal(body)
	xid := w.send(string(b))

	w.drain()
	if evs := w.events(); len(evs) != 0 {
		t.Fatalf("attempted before send_at: %v", kinds(evs))
	}
	w.clock.Add(sendAt.Sub(w.clock.Now()))
	w.drain()
	if st := w.states(xid)["x@later.test"]; st != sealpost.StateQueued {
		t.Fatalf("state at send_at = %s, want queued (deferred): MaxAge counts from send_at", st)
	}
	for range 20 {
		if w.states(xid)["x@later.test"].Final() {
			break
		}
		w.clock.Add(2 * time.Minute)
		w.drain()
	}
	if st := w.states(xid)["x@later.test"]; st != sealpost.StateBounced || w.clock.Now().Before(sendAt.Add(10*time.Minute)) {
		t.Fatalf("state %s at %v, want bounced no earlier than send_at+MaxAge %v", st, w.clock.Now(), sendAt.Add(10*time.Minute))
	}
}

// The delivery of a TLS report is never counted in TLS reports, so that no
// report is about the delivery of a report; other mail to the same domain
// is.
func TestRunnerNeverCountsTLSReportDeliveries(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	w.h.AddMX("rua.test", 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	report := &sealpost.Message{AccountID: w.account.ID, XMessageID: "tlsrpt-1", SMTPID: "<tlsrpt-1@sealpost.test>", From: "tlsrpt@sealpost.test",
		Body:       &sealpost.MessageBody{Data: []byte("From: tlsrpt@sealpost.test\r\nTo: r@rua.test\r\nSubject: report\r\n\r\nreport\r\n")},
		Categories: []string{sealpost.TLSReportCategory},
		Recipients: []sealpost.Recipient{{Email: "r@rua.test", Domain: "rua.test", SGMessageID: "tlsrpt-1.0"}},
		CreatedAt:  w.clock.Now()}
	if err := w.store.EnqueueMessages(context.Background(), []*sealpost.Message{report}, nil); err != nil {
		t.Fatal(err)
	}
	w.send(mailTo("someone@rua.test"))
	w.drain()
	counts, err := w.store.TLSRPTCounts(context.Background(), sealpost.RegistryDay(w.clock.Now()), w.account.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 1 || counts[0].Sessions != 1 || counts[0].PolicyDomain != "rua.test" {
		t.Errorf("counts = %+v, want the one session of the ordinary message", counts)
	}
}

// Mail accepted on this node is attempted as soon as the runner is woken,
// not at its next poll; without a wake-up it waits for the poll.
func TestRunnerWakesForNewMail(t *testing.T) {
	t.Parallel()
	for _, wake := range []bool{true, false} {
		t.Run(fmt.Sprintf("wake=%v", wake), func(t *testing.T) {
			t.Parallel()
			w := newRunnerWorld(t)
			bd := &blockingDeliverer{started: make(chan struct{}, 10), release: make(chan struct{})}
			close(bd.release)
			w.runner.Deliverer = bd
			w.runner.Poll = time.Hour
			wakeUp := make(chan struct{}, 1)
			w.runner.Wake = wakeUp
			claims := make(chan int, 10)
			w.runner.Queue = claimWatcher{w.store, claims}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.runner.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()
			// The runner finds the queue empty and waits.
			if n := <-claims; n != 0 {
				t.Fatalf("the first claim found %d deliveries in an empty queue", n)
			}
			w.send(mailTo("r@x.test"))
			if wake {
				wakeUp <- struct{}{}
			}
			select {
			case <-bd.started:
				if !wake {
					t.Error("attempted without a wake-up before the poll came round")
				}
			case <-time.After(5 * time.Second):
				if wake {
					t.Error("not attempted within 5s of the wake-up")
				}
			}
		})
	}
}

// claimWatcher tells how many deliveries each claim found.
type claimWatcher struct {
	*sqlite.DB
	claims chan<- int
}

func (c claimWatcher) ClaimDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]*sealpost.Delivery, error) {
	ds, err := c.DB.ClaimDeliveries(ctx, owner, now, lease, limit)
	select {
	case c.claims <- len(ds):
	default:
	}
	return ds, err
}

// What TLS reports say of a session comes from the attempt: the MTA-STS
// policy's lines and mx patterns for an sts session, the host's TLSA
// records for a tlsa one, and the local address of the session.
func TestRunnerCountsTLSReportPolicies(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	w.h.AddMX("sts.test", 10, mxtest.Behavior{})
	w.h.AddMX("dane.test", 10, mxtest.Behavior{})
	sts := &sealpost.MTASTSPolicy{Mode: "testing", MX: []string{"*.sts.test", "backup.example"}, MaxAge: 86400}
	client := w.runner.Deliverer.(*delivery.Client)
	client.MTASTS = &fakeMTASTS{policy: sts}
	w.send(mailTo("a@sts.test"))
	w.drain()
	client.MTASTS = nil
	client.DANE = fakeDANE{}
	client.VerifyDANE = daneMatchesIssuedBy(t, w.h.CA())
	w.send(mailTo("b@dane.test"))
	w.drain()

	counts, err := w.store.TLSRPTCounts(context.Background(), sealpost.RegistryDay(w.clock.Now()), w.account.ID)
	if err != nil {
		t.Fatal(err)
	}
	byDomain := map[string]sealpost.TLSRPTCount{}
	for _, c := range counts {
		byDomain[c.PolicyDomain] = c
	}
	got := byDomain["sts.test"]
	wantLines := []string{"version: STSv1", "mode: testing", "mx: *.sts.test", "mx: backup.example", "max_age: 86400"}
	if got.PolicyType != "sts" || !slices.Equal(got.PolicyString, wantLines) || !slices.Equal(got.PolicyMX, sts.MX) ||
		got.MXHost == "" || !loopbackIP(got.SendingIP) {
		t.Errorf("sts.test count = %+v, want the policy's lines and patterns, sent from a loopback address", got)
	}
	got = byDomain["dane.test"]
	if got.PolicyType != "tlsa" || !slices.Equal(got.PolicyString, []string{"3 1 1 " + strings.Repeat("00", 32)}) ||
		!slices.Equal(got.PolicyMX, []string{got.MXHost}) || !loopbackIP(got.SendingIP) {
		t.Errorf("dane.test count = %+v, want the host's TLSA record, mx-host the host, sent from a loopback address", got)
	}
}

func loopbackIP(s string) bool {
	ip := net.ParseIP(s)
	return ip != nil && ip.IsLoopback()
}
