package delivery_test

import (
	"context"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// TestPreviewAgreesWithMatrix judges what an opportunistic attempt learnt
// of each matrix row's hosts under every policy, as the readiness preview
// does, and holds the verdict to the row's cells: what delivery really
// does under that policy. The preview knows only the hosts an attempt
// reached, so where opportunistic delivery stopped at a first MX without
// TLS it cannot know the second one: it may then say blocked where
// delivery would not, never the other way round.
func TestPreviewAgreesWithMatrix(t *testing.T) {
	t.Parallel()
	for _, row := range matrixRows {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			h := mxtest.New(t)
			w := row.setup(h)
			c := &delivery.Client{
				Resolver:     delivery.NewResolver(h.DNSAddr()),
				Port:         h.Port(),
				HeloHostname: "sender.sealpost.test",
				RootCAs:      h.CertPool(),
				Timeout:      10 * time.Second,
				Destinations: loopbackOnly(),
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res := c.Deliver(ctx, sealpost.DefaultEnforcedTLS(), delivery.Envelope{
				From: "sender@sealpost.test", Domain: matrixDomain, Recipients: []string{rcpt},
				Data: []byte("Subject: preview\r\n\r\nbody\r\n"),
			})
			if len(res.Hosts) == 0 {
				t.Fatalf("no host reached: %+v", res)
			}
			dom := sealpost.RegistryDomain{Domain: matrixDomain, Recipients: 1}
			for _, hr := range res.Hosts {
				dom.Hosts = append(dom.Hosts, sealpost.HostFacts{MXHost: hr.Facts.MXHost, Facts: hr.Facts, CertResult: hr.CertResult})
			}
			onlyFirstMX := len(res.Hosts) < len(w.servers)
			for col, pol := range matrixPolicies {
				want := row.cells[col]
				p := sealpost.PreviewPolicy(pol.policy, 30, []sealpost.RegistryDomain{dom})
				blocked := p.WouldBlock.Domains == 1
				switch {
				case blocked == (want.status == delivery.Blocked):
				case onlyFirstMX && blocked:
					continue // the unknown second MX: the cautious answer
				default:
					t.Errorf("%s: preview blocked=%v, delivery %v", pol.name, blocked, want.status)
					continue
				}
				// A host that offered STARTTLS but never completed a
				// handshake leaves no TLS in its facts: the preview calls
				// it starttls-not-supported where the session says
				// validation-failure. Every other type must match.
				if blocked && !onlyFirstMX && p.Domains[0].ResultType != want.resultType &&
					(res.Hosts[0].Facts.TLS || want.resultType == sealpost.ResultSTARTTLSNotSupported) {
					t.Errorf("%s: preview result_type %q, delivery %q", pol.name, p.Domains[0].ResultType, want.resultType)
				}
			}
		})
	}
}
