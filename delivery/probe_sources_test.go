package delivery_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// The probe reports what each recipients' policy source requires of each
// MX host, and its verdicts, raised by them, are what delivery under the
// same sources comes to.
func TestProbeReportsSourcesAndAgreesWithDelivery(t *testing.T) {
	t.Parallel()
	const domain = "probe-sources.test"
	mtasts := sealpost.PolicySourceMTASTS
	dane := sealpost.PolicySourceDANE
	tests := []struct {
		name      string
		behavior  mxtest.Behavior
		configure func(*testing.T, *mxtest.Harness, *delivery.Client)
		// want is mx1's requirements: source, mode, excluded, error set.
		want []sealpost.SourceRequirement
		// outcomes under sealpost.ProbePolicies, for both the probe and
		// a delivery that is not the first attempt (the first defers what
		// MTA-STS alone blocks).
		outcomes [7]string
	}{
		{"MTA-STS enforce, TLS 1.2 only", mxtest.TLS12Only(),
			func(_ *testing.T, _ *mxtest.Harness, c *delivery.Client) { c.MTASTS = enforceMTASTS("mx1." + domain) },
			[]sealpost.SourceRequirement{{Source: mtasts, Mode: "enforce", Requirement: &sealpost.TLSRequirement{RequireTLS: true, RequireValidCert: true, Version: sealpost.TLS12}}},
			[7]string{"delivered", "delivered", "delivered", "blocked", "delivered", "delivered", "blocked"}},
		{"MTA-STS enforce, host not listed", mxtest.Behavior{},
			func(_ *testing.T, _ *mxtest.Harness, c *delivery.Client) { c.MTASTS = enforceMTASTS("mx9." + domain) },
			[]sealpost.SourceRequirement{{Source: mtasts, Mode: "enforce", Excluded: true}},
			[7]string{"blocked", "blocked", "blocked", "blocked", "blocked", "blocked", "blocked"}},
		{"MTA-STS testing, no STARTTLS", mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS},
			func(_ *testing.T, _ *mxtest.Harness, c *delivery.Client) { c.MTASTS = testingMTASTS("*." + domain) },
			[]sealpost.SourceRequirement{{Source: mtasts, Mode: "testing"}},
			[7]string{"delivered", "blocked", "blocked", "blocked", "blocked", "blocked", "blocked"}},
		{"DANE matching a certificate for another name", mxtest.Behavior{Cert: mxtest.CertWrongName},
			func(t *testing.T, h *mxtest.Harness, c *delivery.Client) {
				c.DANE = fakeDANE{}
				c.VerifyDANE = daneMatchesIssuedBy(t, h.CA())
			},
			[]sealpost.SourceRequirement{{Source: dane, Requirement: &sealpost.TLSRequirement{RequireTLS: true, DANE: true, Version: sealpost.TLS11}}},
			[7]string{"delivered", "delivered", "delivered", "delivered", "blocked", "blocked", "blocked"}},
		{"DANE records all unusable, no STARTTLS", mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS},
			func(_ *testing.T, _ *mxtest.Harness, c *delivery.Client) { c.DANE = fakeDANE{unusable: true} },
			[]sealpost.SourceRequirement{{Source: dane, Requirement: &sealpost.TLSRequirement{RequireTLS: true, Version: sealpost.TLS11}}},
			[7]string{"blocked", "blocked", "blocked", "blocked", "blocked", "blocked", "blocked"}},
		{"DANE records all unusable, self-signed", mxtest.Behavior{Cert: mxtest.CertSelfSigned},
			func(_ *testing.T, _ *mxtest.Harness, c *delivery.Client) { c.DANE = fakeDANE{unusable: true} },
			[]sealpost.SourceRequirement{{Source: dane, Requirement: &sealpost.TLSRequirement{RequireTLS: true, Version: sealpost.TLS11}}},
			[7]string{"delivered", "delivered", "delivered", "delivered", "blocked", "blocked", "blocked"}},
		{"DANE lookup failing", mxtest.Behavior{},
			func(_ *testing.T, _ *mxtest.Harness, c *delivery.Client) { c.DANE = fakeDANE{err: errors.New("bogus")} },
			[]sealpost.SourceRequirement{{Source: dane, Error: "set"}},
			[7]string{"deferred", "deferred", "deferred", "deferred", "deferred", "deferred", "deferred"}},
	}
	policies := sealpost.ProbePolicies()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := mxtest.New(t)
			h.AddMX(domain, 10, tc.behavior)
			c := &delivery.Client{Resolver: delivery.NewResolver(h.DNSAddr()), Port: h.Port(), RootCAs: h.CertPool(), Timeout: 3 * time.Second, Destinations: loopbackOnly()}
			tc.configure(t, h, c)
			rep, err := (&delivery.Prober{Client: c, DNSServer: h.DNSAddr()}).Probe(t.Context(), domain)
			if err != nil || rep.Error != "" || len(rep.MXHosts) != 1 {
				t.Fatalf("probe: %v %+v", err, rep)
			}
			got := rep.MXHosts[0].Requirements
			if len(got) != len(tc.want) {
				t.Fatalf("requirements %+v, want %+v", got, tc.want)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Source != w.Source || g.Mode != w.Mode || g.Excluded != w.Excluded || (g.Error != "") != (w.Error != "") ||
					(g.Requirement == nil) != (w.Requirement == nil) || (w.Requirement != nil && *g.Requirement != *w.Requirement) {
					t.Errorf("requirement %d: %+v (%+v), want %+v (%+v)", i, g, g.Requirement, w, w.Requirement)
				}
			}
			delivered := make([]string, len(policies))
			var wg sync.WaitGroup
			for i, policy := range policies {
				wg.Go(func() {
					res := c.Deliver(t.Context(), policy, delivery.Envelope{From: "sender@example.com", Domain: domain,
						Recipients: []string{"someone@" + domain}, Data: []byte("Subject: probe\r\n\r\nhello\r\n"), Attempt: 1})
					delivered[i] = res.Recipients[0].Status.String()
				})
			}
			wg.Wait()
			for i, want := range tc.outcomes {
				if v := rep.Verdicts[i]; v.Outcome != want {
					t.Errorf("probe verdict under %+v: %+v, want %s", policies[i], v, want)
				}
				if delivered[i] != want {
					t.Errorf("delivery under %+v: %s, want %s", policies[i], delivered[i], want)
				}
			}
		})
	}
}
