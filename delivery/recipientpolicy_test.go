package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// Recipients' policy sources beyond the matrix: what happens when a source
// cannot be known, is invalid, or changes, and how MTA-STS's refresh rule
// (RFC 8461 5) and the session pool treat them.

const sourcesDomain = "sources.test"

func sourcesClient(h *mxtest.Harness) *delivery.Client {
	return &delivery.Client{
		Resolver:     delivery.NewResolver(h.DNSAddr()),
		Port:         h.Port(),
		HeloHostname: "sender.sealpost.test",
		RootCAs:      h.CertPool(),
		Timeout:      10 * time.Second,
		Destinations: loopbackOnly(),
	}
}

func sourcesEnvelope() delivery.Envelope {
	return delivery.Envelope{From: "sender@sealpost.test", Domain: sourcesDomain, Recipients: []string{"rcpt@" + sourcesDomain},
		Data: []byte("Subject: sources\r\n\r\nsources-marker\r\n")}
}

func deliverOnce(t *testing.T, c *delivery.Client, policy sealpost.EnforcedTLS, env delivery.Envelope) delivery.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := c.Deliver(ctx, policy, env)
	if len(res.Recipients) != 1 {
		t.Fatalf("%d results, want 1", len(res.Recipients))
	}
	return res
}

func TestSourcesThatCannotBeKnownDefer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		configure func(*delivery.Client, *delivery.Envelope)
		// response: part of the deferral's response.
		response string
	}{
		{"MTA-STS policy cannot be fetched", func(c *delivery.Client, _ *delivery.Envelope) {
			c.MTASTS = &fakeMTASTS{err: errors.New("cache unreachable")}
		}, "MTA-STS policy of sources.test cannot be known"},
		{"MTA-STS enforce without any mx", func(c *delivery.Client, _ *delivery.Envelope) {
			c.MTASTS = &fakeMTASTS{policy: &sealpost.MTASTSPolicy{Mode: "enforce", MaxAge: 60}}
		}, "MTA-STS policy of sources.test is not valid"},
		{"MTA-STS mode unknown", func(c *delivery.Client, _ *delivery.Envelope) {
			c.MTASTS = &fakeMTASTS{policy: &sealpost.MTASTSPolicy{Mode: "strict", MX: []string{"*.sources.test"}, MaxAge: 60}}
		}, "MTA-STS policy of sources.test is not valid"},
		{"DANE lookup bogus", func(c *delivery.Client, _ *delivery.Envelope) {
			c.DANE = fakeDANE{err: errors.New("bogus signature")}
		}, "DANE TLSA lookup for MX host mx1.sources.test failed"},
		{"domain policy with an invalid version", func(_ *delivery.Client, env *delivery.Envelope) {
			env.DomainPolicy = &sealpost.EnforcedTLS{RequireTLS: true, Version: 0x0300}
		}, "TLS policy for sources.test is not valid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := mxtest.New(t)
			mx := h.AddMX(sourcesDomain, 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
			c := sourcesClient(h)
			env := sourcesEnvelope()
			tc.configure(c, &env)
			res := deliverOnce(t, c, sealpost.DefaultEnforcedTLS(), env)
			r := res.Recipients[0]
			if r.Status != delivery.Deferred || !strings.HasPrefix(r.EnhancedStatus, "4.") || !strings.Contains(r.Response, tc.response) {
				t.Errorf("got %v %q %q, want deferred with %q", r.Status, r.Response, r.EnhancedStatus, tc.response)
			}
			// Fail closed: the opportunistic account alone would have sent
			// this in plaintext.
			if n := len(mx.Received()); n != 0 {
				t.Errorf("the MX saw %d transactions", n)
			}
			if clear := mx.CleartextBytes(); strings.Contains(strings.ToUpper(string(clear)), "MAIL FROM") {
				t.Errorf("MAIL in clear: %q", clear)
			}
		})
	}
}

func TestMTASTSEnforceRefreshesBeforeBlocking(t *testing.T) {
	t.Parallel()
	listed := &sealpost.MTASTSPolicy{Mode: "enforce", MX: []string{"mx9.sources.test"}, MaxAge: 86400}
	tests := []struct {
		name       string
		refreshed  *sealpost.MTASTSPolicy
		refreshErr error
		want       delivery.Status
	}{
		{"the fresh policy is the same: blocked", nil, nil, delivery.Blocked},
		{"the fresh policy differs: deferred for the next attempt", &sealpost.MTASTSPolicy{Mode: "enforce", MX: []string{"*.sources.test"}, MaxAge: 86400}, nil, delivery.Deferred},
		{"the policy cannot be refreshed: deferred", nil, errors.New("HTTPS fetch failed"), delivery.Deferred},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := mxtest.New(t)
			// A valid TLS host, but not the one the policy lists: an
			// attacker's MX record, as far as MTA-STS can tell.
			mx := h.AddMX(sourcesDomain, 10, mxtest.Behavior{})
			c := sourcesClient(h)
			sts := &fakeMTASTS{policy: listed, refreshed: tc.refreshed, refreshErr: tc.refreshErr}
			c.MTASTS = sts
			env := sourcesEnvelope()
			// The first attempt defers whatever the fresh policy says.
			if r := deliverOnce(t, c, sealpost.DefaultEnforcedTLS(), env).Recipients[0]; r.Status != delivery.Deferred {
				t.Errorf("first attempt: %v (%q), want deferred", r.Status, r.Response)
			}
			env.Attempt = 1
			res := deliverOnce(t, c, sealpost.DefaultEnforcedTLS(), env)
			r := res.Recipients[0]
			if r.Status != tc.want {
				t.Errorf("second attempt: %v (%q), want %v", r.Status, r.Response, tc.want)
			}
			if sts.Refreshes() != 2 {
				t.Errorf("%d refreshes, want one per attempt", sts.Refreshes())
			}
			if tc.want == delivery.Blocked && (r.Response != sealpost.BlockedReason || res.TLS.PolicySource != "mta-sts" || res.TLS.ResultType != sealpost.ResultValidationFailure) {
				t.Errorf("blocked with %q, facts %+v", r.Response, res.TLS)
			}
			// An unlisted host is never even connected to.
			if n := mx.Connections(); n != 0 {
				t.Errorf("the unlisted MX got %d connections", n)
			}
		})
	}
}

// A failure the account's own setting causes is SendGrid's block at once:
// MTA-STS's refresh is for failures only MTA-STS causes.
func TestMTASTSNoRefreshForTheAccountsFailure(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	h.AddMX(sourcesDomain, 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	c := sourcesClient(h)
	sts := enforceMTASTS("*.sources.test")
	c.MTASTS = sts
	res := deliverOnce(t, c, sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS11}, sourcesEnvelope())
	if r := res.Recipients[0]; r.Status != delivery.Blocked || res.TLS.PolicySource != "account" {
		t.Errorf("got %v, source %q; want blocked by the account", r.Status, res.TLS.PolicySource)
	}
	if sts.Refreshes() != 0 {
		t.Errorf("%d refreshes, want none", sts.Refreshes())
	}
}

// The default DANE verifier (sealpost.VerifyDANE) is the one a DANE host
// gets when none is injected, and while it cannot match anything the host
// gets nothing.
func TestDANEUsesTheRootVerifierByDefault(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	mx := h.AddMX(sourcesDomain, 10, mxtest.Behavior{})
	c := sourcesClient(h)
	c.DANE = fakeDANE{}
	res := deliverOnce(t, c, sealpost.DefaultEnforcedTLS(), sourcesEnvelope())
	if r := res.Recipients[0]; r.Status != delivery.Blocked || res.TLS.ResultType != sealpost.ResultTLSAInvalid {
		t.Errorf("got %v %q, facts %+v; want blocked tlsa-invalid", r.Status, r.Response, res.TLS)
	}
	if n := len(mx.Received()); n != 0 {
		t.Errorf("the MX saw %d transactions", n)
	}
}

// A session opened under one effective policy never carries mail under
// another, even when the account's own setting is the same.
func TestReuseKeysOnTheEffectivePolicy(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	mx := h.AddMX(sourcesDomain, 10, mxtest.Behavior{})
	c := sourcesClient(h)
	c.Reuse = delivery.ReuseLimits{MaxMessages: 10}
	t.Cleanup(func() { c.Close() })
	strict := &sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS13}

	steps := []struct {
		domainPolicy *sealpost.EnforcedTLS
		connections  int
	}{
		{nil, 1},
		{strict, 2}, // a stricter requirement: a new session
		{strict, 2}, // the same again: reused
		{nil, 2},    // back to the first: its session is still idle
	}
	for i, st := range steps {
		env := sourcesEnvelope()
		env.DomainPolicy = st.domainPolicy
		res := deliverOnce(t, c, sealpost.DefaultEnforcedTLS(), env)
		if r := res.Recipients[0]; r.Status != delivery.Delivered {
			t.Fatalf("step %d: %v %q", i, r.Status, r.Response)
		}
		if got := mx.Connections(); got != st.connections {
			t.Errorf("step %d: %d connections, want %d", i, got, st.connections)
		}
	}
}

// A host whose TLSA records are all unusable requires TLS of its own, so
// its sessions are never shared with deliveries DANE does not apply to.
func TestReuseKeysOnUnusableDANE(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	mx := h.AddMX(sourcesDomain, 10, mxtest.Behavior{})
	c := sourcesClient(h)
	c.Reuse = delivery.ReuseLimits{MaxMessages: 10}
	t.Cleanup(func() { c.Close() })

	steps := []struct {
		dane        delivery.DANESource
		connections int
	}{
		{nil, 1},
		{fakeDANE{unusable: true}, 2}, // TLS now required: a new session
		{fakeDANE{unusable: true}, 2}, // the same again: reused
		{nil, 2},                      // back to no DANE: the first session
	}
	for i, st := range steps {
		c.DANE = st.dane
		res := deliverOnce(t, c, sealpost.DefaultEnforcedTLS(), sourcesEnvelope())
		if r := res.Recipients[0]; r.Status != delivery.Delivered {
			t.Fatalf("step %d: %v %q", i, r.Status, r.Response)
		}
		if got := mx.Connections(); got != st.connections {
			t.Errorf("step %d: %d connections, want %d", i, got, st.connections)
		}
	}
}

func TestRunnerAppliesDomainPolicies(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	plain := w.h.AddMX("plain.test", 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	other := w.h.AddMX("other.test", 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	w.runner.DomainPolicies = fakeDomainPolicies{policies: map[string]sealpost.EnforcedTLS{
		"plain.test": {RequireTLS: true, Version: sealpost.TLS12},
	}}
	xid := w.send(mailTo("a@plain.test", "b@other.test"))
	w.drain()

	st := w.states(xid)
	if st["a@plain.test"] != sealpost.StateBlocked || st["b@other.test"] != sealpost.StateDelivered {
		t.Fatalf("states %v: want plain.test blocked by its domain policy, other.test delivered", st)
	}
	if n := len(plain.Received()); n != 0 {
		t.Errorf("plain.test saw %d transactions", n)
	}
	if n := len(other.Accepted()); n != 1 {
		t.Errorf("other.test accepted %d messages", n)
	}
	for _, e := range w.events() {
		sp, _ := e["sealpost"].(map[string]any)
		switch e["email"] {
		case "a@plain.test":
			if e["event"] != "bounce" || e["type"] != "blocked" || e["reason"] != sealpost.BlockedReason || sp["policy_source"] != "domain" {
				t.Errorf("blocked recipient's event %v", e)
			}
			if pol, _ := sp["policy"].(map[string]any); pol["require_tls"] != true || pol["version"] != 1.2 {
				t.Errorf("effective policy %v, want require_tls at 1.2", sp["policy"])
			}
		case "b@other.test":
			if e["event"] != "delivered" || sp["policy_source"] != "account" {
				t.Errorf("delivered recipient's event %v", e)
			}
		}
	}
}

func TestRunnerDefersWhenTheDomainPolicyCannotBeRead(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	mx := w.h.AddMX("plain.test", 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	w.runner.DomainPolicies = fakeDomainPolicies{err: sealpost.Errorf(sealpost.EUNAVAILABLE, "database down")}
	xid := w.send(mailTo("a@plain.test"))
	w.drain()
	if st := w.states(xid); st["a@plain.test"] != sealpost.StateQueued {
		t.Fatalf("state %v, want queued (deferred)", st)
	}
	if n := mx.Connections(); n != 0 {
		t.Errorf("the MX got %d connections", n)
	}
	evs := w.events()
	if len(evs) != 1 || evs[0]["event"] != "deferred" {
		t.Errorf("events %v, want one deferred", kinds(evs))
	}
}

// REQUIRETLS (RFC 8689) goes with the MAIL command exactly when the
// effective policy makes TLS mandatory and the server advertised it over
// TLS; the servers record what they got.
func TestREQUIRETLS(t *testing.T) {
	t.Parallel()
	requireTLS := sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS12}
	tests := []struct {
		name       string
		advertised bool
		policy     sealpost.EnforcedTLS
		mtasts     bool
		want       bool
	}{
		{"mandatory, advertised", true, requireTLS, false, true},
		{"mandatory through MTA-STS, advertised", true, sealpost.DefaultEnforcedTLS(), true, true},
		{"opportunistic, advertised", true, sealpost.DefaultEnforcedTLS(), false, false},
		{"mandatory, not advertised", false, requireTLS, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := mxtest.New(t)
			mx := h.AddMX(sourcesDomain, 10, mxtest.Behavior{REQUIRETLS: tc.advertised})
			c := sourcesClient(h)
			if tc.mtasts {
				c.MTASTS = enforceMTASTS("*." + sourcesDomain)
			}
			res := deliverOnce(t, c, tc.policy, sourcesEnvelope())
			if r := res.Recipients[0]; r.Status != delivery.Delivered {
				t.Fatalf("%v %q, want delivered", r.Status, r.Response)
			}
			got := mx.Accepted()
			if len(got) != 1 || got[0].RequireTLS != tc.want || !got[0].TLS {
				t.Fatalf("the MX accepted %+v, want one transaction over TLS with REQUIRETLS=%v", got, tc.want)
			}
			if res.TLS.RequireTLS != tc.want {
				t.Errorf("facts requiretls %v, want %v", res.TLS.RequireTLS, tc.want)
			}
		})
	}
}

// MTA-STS in testing mode changes nothing about delivery, and the failure
// it would have caused reaches the event and the registry's host facts,
// for TLS reporting.
func TestRunnerRecordsMTASTSTestingFailures(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	mx := w.h.AddMX("testing.test", 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	w.runner.Deliverer.(*delivery.Client).MTASTS = testingMTASTS("*.testing.test")
	xid := w.send(mailTo("a@testing.test"))
	w.drain()
	if st := w.states(xid); st["a@testing.test"] != sealpost.StateDelivered || len(mx.Accepted()) != 1 {
		t.Fatalf("state %v, accepted %d: want delivered as without MTA-STS", st, len(mx.Accepted()))
	}
	var delivered map[string]any
	for _, e := range w.events() {
		if e["event"] == "delivered" {
			delivered = e
		}
	}
	sp, _ := delivered["sealpost"].(map[string]any)
	if sp["mta_sts"] != "testing" || sp["mta_sts_testing_result"] != sealpost.ResultSTARTTLSNotSupported || sp["policy_source"] != "account" {
		t.Errorf("delivered event's sealpost object %v", sp)
	}
	reg, err := w.store.TLSRegistry(context.Background(), w.account.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(reg) != 1 || len(reg[0].Hosts) != 1 || reg[0].Hosts[0].Facts.MTASTSTestingResult != sealpost.ResultSTARTTLSNotSupported {
		t.Errorf("registry %+v, want the host's testing failure kept", reg)
	}
}

// An account setting that makes TLS mandatory with a version that is not
// one of SendGrid's cannot say how high the floor is: fail closed rather
// than guess a lower one. Opportunistic, the version is unused.
func TestInvalidAccountVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		policy sealpost.EnforcedTLS
		want   delivery.Status
	}{
		{sealpost.EnforcedTLS{RequireTLS: true, Version: 0x0399}, delivery.Deferred},
		{sealpost.EnforcedTLS{Version: 0}, delivery.Delivered},
	}
	for _, tc := range tests {
		h := mxtest.New(t)
		mx := h.AddMX(sourcesDomain, 10, mxtest.TLS11Only())
		res := deliverOnce(t, sourcesClient(h), tc.policy, sourcesEnvelope())
		if r := res.Recipients[0]; r.Status != tc.want {
			t.Errorf("%+v: %v %q, want %v", tc.policy, r.Status, r.Response, tc.want)
		}
		if tc.want == delivery.Deferred && mx.Connections() != 0 {
			t.Errorf("%+v: the MX got %d connections", tc.policy, mx.Connections())
		}
	}
}

// Through the runner: a recipient that fails only the domain's MTA-STS
// policy is deferred on the first attempt and blocked on the next, with
// SendGrid's blocked event; the cause is under sealpost.
func TestRunnerMTASTSDefersThenBlocks(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	mx := w.h.AddMX("sts.test", 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	sts := enforceMTASTS("*.sts.test")
	w.runner.Deliverer.(*delivery.Client).MTASTS = sts
	xid := w.send(mailTo("a@sts.test"))

	w.drain()
	if st := w.states(xid); st["a@sts.test"] != sealpost.StateQueued {
		t.Fatalf("after the first attempt: %v, want queued", st)
	}
	w.clock.Add(2 * time.Minute)
	w.drain()
	if st := w.states(xid); st["a@sts.test"] != sealpost.StateBlocked {
		t.Fatalf("after the second attempt: %v, want blocked", st)
	}
	if n := len(mx.Received()); n != 0 || sts.Refreshes() != 2 {
		t.Errorf("the MX saw %d transactions, %d refreshes; want none and 2", n, sts.Refreshes())
	}
	var got []string
	for _, e := range w.events() {
		sp, _ := e["sealpost"].(map[string]any)
		got = append(got, fmt.Sprintf("%v/%v/%v/%v", e["event"], e["type"], sp["policy_source"], sp["result_type"]))
		if e["event"] == "bounce" && (e["reason"] != sealpost.BlockedReason || e["status"] != sealpost.BlockedStatus) {
			t.Errorf("bounce event %v", e)
		}
	}
	want := []string{"deferred/<nil>/mta-sts/starttls-not-supported", "bounce/blocked/mta-sts/starttls-not-supported"}
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}
