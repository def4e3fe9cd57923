package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// fakeProber answers every domain with one reachable host, except
// "nowhere.example", which does not exist.
type fakeProber struct {
	mu    sync.Mutex
	asked []string
}

func (p *fakeProber) Probe(_ context.Context, domain string) (*sealpost.TLSProbe, error) {
	p.mu.Lock()
	p.asked = append(p.asked, domain)
	p.mu.Unlock()
	rep := &sealpost.TLSProbe{Domain: domain, ProbedAt: time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC), MXHosts: []sealpost.ProbedHost{}, Verdicts: []sealpost.ProbeVerdict{}}
	if domain == "nowhere.example" {
		rep.Error = "domain nowhere.example does not exist: no such host (NXDOMAIN)"
		return rep, nil
	}
	rep.MXHosts = append(rep.MXHosts, sealpost.ProbedHost{
		Host: "mx1." + domain, Preference: 10, Addresses: []string{"192.0.2.1"}, Address: "192.0.2.1",
		STARTTLS: true, TLSVersions: []string{"1.2", "1.3"}, Cipher: "TLS_AES_128_GCM_SHA256",
		Certificate: &sealpost.ProbedCertificate{SubjectNames: []string{"mx1." + domain}, Valid: true},
	})
	for _, policy := range sealpost.ProbePolicies() {
		rep.Verdicts = append(rep.Verdicts, sealpost.ProbeVerdict{Policy: policy, Delivered: true, Outcome: sealpost.ProbeDelivered})
	}
	return rep, nil
}

// fakeRegistry keeps what it is told.
type fakeRegistry struct {
	mu  sync.Mutex
	obs []sealpost.HostObservation
}

func (r *fakeRegistry) RecordObservations(_ context.Context, obs []sealpost.HostObservation) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.obs = append(r.obs, obs...)
	return nil
}

func (r *fakeRegistry) recorded() []sealpost.HostObservation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sealpost.HostObservation(nil), r.obs...)
}

const pathProbe = "/v3/tls/probe"

func TestProbeEndpoint(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		prober := &fakeProber{}
		registry := &fakeRegistry{}
		e := newEnv(t, open, func(c *Config) {
			c.Prober = prober
			c.Observations = registry
			c.ProbeLimiter = newFixedWindow(3, time.Hour)
		})
		parent := e.user("prober")
		sub := e.subuser(parent, "prober-sub")
		token := e.key(parent)

		res := e.do(request{method: http.MethodPost, path: pathProbe, token: token, body: `{"domain":"Example.COM."}`})
		res.want(t, "probe", http.StatusOK, "")
		var rep sealpost.TLSProbe
		if err := json.Unmarshal([]byte(res.body), &rep); err != nil || rep.Domain != "example.com" || len(rep.Verdicts) != 7 {
			t.Fatalf("body %s: %v", res.body, err)
		}
		for _, field := range []string{`"mx_hosts":[{"host":"mx1.example.com"`, `"tls_versions":["1.2","1.3"]`, `"verdicts":[{"policy":{"require_tls":false,"require_valid_cert":false,"version":1.1},"delivered":true,"outcome":"delivered"}`, `"mta_sts":{"published":false,"policy":null}`} {
			if !strings.Contains(res.body, field) {
				t.Errorf("body lacks %s:\n%s", field, res.body)
			}
		}
		if obs := registry.recorded(); len(obs) != 1 || obs[0].AccountID != parent.ID || obs[0].Domain != "example.com" || obs[0].MXHost != "mx1.example.com" || obs[0].Facts.Version != "1.3" || !obs[0].Facts.Verified {
			t.Errorf("observations %+v, want mx1's facts for the parent", obs)
		}

		// On behalf of a subuser: the subuser's registry, and its own count.
		res = e.do(request{method: http.MethodPost, path: pathProbe, token: token, obo: sub.Username, body: `{"domain":"example.org"}`})
		res.want(t, "probe on behalf of", http.StatusOK, "")
		if obs := registry.recorded(); len(obs) != 2 || obs[1].AccountID != sub.ID {
			t.Errorf("observations %+v, want the second for the subuser", obs)
		}

		// A domain that does not exist: the probe ran, and says so.
		res = e.do(request{method: http.MethodPost, path: pathProbe, token: token, body: `{"domain":"nowhere.example"}`})
		res.want(t, "nonexistent domain", http.StatusOK, "")
		if !strings.Contains(res.body, `"error":"domain nowhere.example does not exist`) {
			t.Errorf("body %s, want the error said", res.body)
		}
		if n := len(registry.recorded()); n != 2 {
			t.Errorf("%d observations after a probe that reached nothing, want 2", n)
		}

		// Three probes per account: the parent's fourth is refused with
		// SendGrid's 429, the subuser still has two.
		res = e.do(request{method: http.MethodPost, path: pathProbe, token: token, body: `{"domain":"example.net"}`})
		res.want(t, "third probe", http.StatusOK, "")
		res = e.do(request{method: http.MethodPost, path: pathProbe, token: token, body: `{"domain":"example.net"}`})
		res.want(t, "fourth probe", http.StatusTooManyRequests, wantTooMany)
		if got := exactHeader(res.header, headerRateLimit); got != "3" {
			t.Errorf("X-RateLimit-Limit %q, want 3", got)
		}
		res = e.do(request{method: http.MethodPost, path: pathProbe, token: token, obo: sub.Username, body: `{"domain":"example.net"}`})
		res.want(t, "subuser's second probe", http.StatusOK, "")

		// The scope gates it; full access includes it.
		res = e.do(request{method: http.MethodPost, path: pathProbe, token: e.key(parent, sealpost.ScopeMailSend), body: `{"domain":"example.com"}`})
		res.want(t, "without tls.probe", http.StatusForbidden, wantForbidden)
		res = e.do(request{method: http.MethodGet, path: pathProbe, token: token})
		res.want(t, "GET", http.StatusMethodNotAllowed, wantMethod)
	})
}

func TestProbeEndpointRefusesBadDomains(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		prober := &fakeProber{}
		e := newEnv(t, open, func(c *Config) { c.Prober = prober })
		token := e.key(e.user("u"))
		for _, tt := range []struct {
			body string
			want string
		}{
			{`{}`, `{"errors":[{"field":"domain","message":"domain is required"}]}`},
			{`{"domain":""}`, `{"errors":[{"field":"domain","message":"domain is required"}]}`},
			{`{"domain":7}`, `{"errors":[{"field":"domain","message":"domain must be a string"}]}`},
			{`{"domain":"localhost"}`, `{"errors":[{"field":"domain","message":"domain must be a domain name such as example.com"}]}`},
			{`{"domain":"127.0.0.1"}`, `{"errors":[{"field":"domain","message":"domain must be a domain name, not an IP address"}]}`},
			{`{"domain":"a b.example"}`, ""},
			{`{"domain":"-x.example"}`, ""},
			{`{"domain":"b\u00fccher.example"}`, ""},
			{`["example.com"]`, ""},
		} {
			res := e.do(request{method: http.MethodPost, path: pathProbe, token: token, body: tt.body})
			res.want(t, tt.body, http.StatusBadRequest, tt.want)
		}
		if len(prober.asked) != 0 {
			t.Errorf("bad requests reached the prober: %v", prober.asked)
		}
	})
}

func TestProbeEndpointWithoutProber(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite)
	res := e.do(request{method: http.MethodPost, path: pathProbe, token: e.key(e.user("u")), body: `{"domain":"example.com"}`})
	res.want(t, "no prober", http.StatusInternalServerError, wantInternal)
}
