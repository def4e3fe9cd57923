package delivery

import (
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// require_valid_cert checks the certificate against the MX host as found in
// DNS: a certificate for the recipient domain, or for another MX of it, is
// not valid for this host, however trusted its issuer.
func TestRequireValidCertNamesTheMXHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		certFor  []string
		wantDone bool
	}{
		{name: "MX host name", certFor: []string{"mx1.certname.test"}, wantDone: true},
		{name: "MX host name in upper case", certFor: []string{"MX1.CERTNAME.TEST"}, wantDone: true},
		{name: "recipient domain only", certFor: []string{"certname.test"}},
		{name: "a sibling MX only", certFor: []string{"mx2.certname.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := mxtest.New(t)
			cert := h.CA().Issue(t, mxtest.Options{DNSNames: tt.certFor})
			mx := h.AddMX("certname.test", 10, mxtest.Behavior{Certificate: &cert})
			if mx.Host() != "mx1.certname.test" {
				t.Fatalf("harness named the MX %q", mx.Host())
			}
			c := &Client{Resolver: NewResolver(h.DNSAddr()), Port: h.Port(), RootCAs: h.CertPool(), Timeout: 10 * time.Second, Destinations: loopbackOnly()}
			res := c.Deliver(t.Context(), sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS12},
				Envelope{From: "a@sealpost.test", Domain: "CertName.test.", Recipients: []string{"b@certname.test"}, Data: []byte("Subject: x\r\n\r\nx\r\n")})
			got := res.Recipients[0].Status
			if tt.wantDone {
				if got != Delivered || mx.AcceptedCount() != 1 {
					t.Errorf("status %v, %d accepted; want delivered once", got, mx.AcceptedCount())
				}
				return
			}
			if got != Blocked || res.TLS.ResultType != sealpost.ResultCertificateHostMismatch || mx.AcceptedCount() != 0 {
				t.Errorf("status %v, result type %q, %d accepted; want blocked for a host mismatch, nothing accepted", got, res.TLS.ResultType, mx.AcceptedCount())
			}
		})
	}
}
