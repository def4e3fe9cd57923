package delivery

import (
	"net"
	"slices"
	"testing"

	"github.com/sealpost/sealpost"
)

func TestRoute(t *testing.T) {
	t.Parallel()
	res := &fakeResolver{
		mx: map[string][]*net.MX{
			"ordered.test": {{Host: "c.ordered.test.", Pref: 30}, {Host: "a.ordered.test.", Pref: 10}, {Host: "b.ordered.test.", Pref: 20}, {Host: "A.ordered.test.", Pref: 40}},
			"null.test":    {{Host: ".", Pref: 0}},
			"mixed.test":   {{Host: ".", Pref: 0}, {Host: "mx.mixed.test.", Pref: 10}},
		},
		mxErr: map[string]error{
			"nx.test":       &net.DNSError{Err: "no such host", Name: "nx.test", IsNotFound: true},
			"servfail.test": errServFail("servfail.test"),
		},
	}
	c := &Client{Resolver: res, Destinations: loopbackOnly()}
	tests := []struct {
		domain   string
		hosts    []mxHost
		status   Status
		enhanced string
	}{
		{domain: "ordered.test", hosts: []mxHost{{name: "a.ordered.test", pref: 10}, {name: "b.ordered.test", pref: 20}, {name: "c.ordered.test", pref: 30}}},
		{domain: "implicit.test", hosts: []mxHost{{name: "implicit.test", implicit: true}}},
		{domain: "mixed.test", hosts: []mxHost{{name: "mx.mixed.test", pref: 10}}},
		{domain: "null.test", status: Bounced, enhanced: "5.1.10"},
		{domain: "nx.test", status: Bounced, enhanced: "5.1.2"},
		{domain: "servfail.test", status: Deferred, enhanced: "4.4.3"},
	}
	for _, tt := range tests {
		hosts, fail := c.route(t.Context(), tt.domain)
		if tt.status != 0 {
			if fail == nil || fail.Status != tt.status || fail.EnhancedStatus != tt.enhanced {
				t.Errorf("%s: got %+v %+v, want %v %s", tt.domain, hosts, fail, tt.status, tt.enhanced)
			}
			continue
		}
		if fail != nil || !slices.Equal(hosts, tt.hosts) {
			t.Errorf("%s: got %+v %+v, want %+v", tt.domain, hosts, fail, tt.hosts)
		}
	}
}

func TestRouteShufflesEqualPreferences(t *testing.T) {
	t.Parallel()
	res := &fakeResolver{mx: map[string][]*net.MX{"eq.test": {
		{Host: "z.eq.test.", Pref: 5}, {Host: "x.eq.test.", Pref: 10}, {Host: "y.eq.test.", Pref: 10},
	}}}
	c := &Client{Resolver: res, Destinations: loopbackOnly()}
	seen := map[string]bool{}
	for range 200 {
		hosts, fail := c.route(t.Context(), "eq.test")
		if fail != nil || len(hosts) != 3 || hosts[0].name != "z.eq.test" {
			t.Fatalf("got %+v %+v", hosts, fail)
		}
		seen[hosts[1].name] = true
	}
	if !seen["x.eq.test"] || !seen["y.eq.test"] {
		t.Errorf("equal preferences never swapped: %v", seen)
	}
}

func TestDeliverDNSOutcomes(t *testing.T) {
	t.Parallel()
	res := &fakeResolver{
		mx: map[string][]*net.MX{
			"null.test":   {{Host: ".", Pref: 0}},
			"noaddr.test": {{Host: "mx.noaddr.test.", Pref: 10}},
		},
		mxErr: map[string]error{
			"nx.test":       &net.DNSError{Err: "no such host", Name: "nx.test", IsNotFound: true},
			"servfail.test": errServFail("servfail.test"),
		},
		addrErr: map[string]error{"mx.flaky.test": errServFail("mx.flaky.test")},
	}
	res.mx["flaky.test"] = []*net.MX{{Host: "mx.flaky.test.", Pref: 10}}
	c := &Client{Resolver: res, Logger: testLogger(t), Destinations: loopbackOnly()}
	tests := []struct {
		domain   string
		status   Status
		enhanced string
		response string
	}{
		{domain: "null.test", status: Bounced, enhanced: "5.1.10", response: "556 5.1.10 domain null.test does not accept mail (null MX)"},
		{domain: "nx.test", status: Bounced, enhanced: "5.1.2"},
		{domain: "servfail.test", status: Deferred, enhanced: "4.4.3"},
		// No MX and no address: nowhere to deliver, ever.
		{domain: "implicit-none.test", status: Bounced, enhanced: "5.1.2"},
		// An MX host whose name does not resolve may be fixed later.
		{domain: "noaddr.test", status: Deferred, enhanced: "4.4.3"},
		{domain: "flaky.test", status: Deferred, enhanced: "4.4.3"},
	}
	for _, tt := range tests {
		for _, policy := range []sealpost.EnforcedTLS{sealpost.DefaultEnforcedTLS(), {RequireValidCert: true, Version: sealpost.TLS13}} {
			env := Envelope{From: "a@sealpost.test", Domain: tt.domain, Recipients: []string{"x@" + tt.domain, "y@" + tt.domain}, Data: []byte("x\r\n")}
			out := c.Deliver(t.Context(), policy, env)
			for i, rr := range out.Recipients {
				if rr.Status != tt.status || rr.EnhancedStatus != tt.enhanced || (tt.response != "" && rr.Response != tt.response) {
					t.Errorf("%s %+v recipient %d: %+v, want %v %s %q", tt.domain, policy, i, rr, tt.status, tt.enhanced, tt.response)
				}
			}
		}
	}
}

func TestDeliverImplicitMX(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	port, lns := listenAll(t, "127.0.0.4")
	mx := startMX(t, "example.test", lns[0], mxBehaviour{TLS: serverTLS(ca.validLeaf(t, "example.test"))})
	c := &Client{
		Resolver: &fakeResolver{addrs: map[string][]string{"example.test": {"127.0.0.4"}}},
		Port:     port, RootCAs: ca.pool, Logger: testLogger(t), Destinations: loopbackOnly(),
	}
	res := c.Deliver(t.Context(), sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS12}, testEnvelope("a@example.test"))
	if rr := res.Recipients[0]; rr.Status != Delivered {
		t.Fatalf("got %+v", rr)
	}
	if res.TLS.MXHost != "example.test" || !res.TLS.Verified {
		t.Errorf("facts %+v", res.TLS)
	}
	if trs := mx.transcripts(); len(trs) != 1 || !trs[0].has("MAIL") {
		t.Errorf("transcripts %+v", trs)
	}
}
