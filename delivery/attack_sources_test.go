package delivery_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// Recipients' policies against an attacker on the path, with an account
// that asks for nothing (opportunistic): the recipient's policy alone must
// keep the message from the attacker. Checked at the attacker: what
// sealpost put on the wire, what the attacker decrypted, and what reached
// the real MX.

const attackSourcesDomain = "attacked-sources.test"

type attackSource struct {
	name      string
	configure func(t *testing.T, c *delivery.Client, env *delivery.Envelope, backend *x509.Certificate)
}

var attackSources = []attackSource{
	{"MTA-STS enforce", func(_ *testing.T, c *delivery.Client, _ *delivery.Envelope, _ *x509.Certificate) {
		c.MTASTS = enforceMTASTS("*." + attackSourcesDomain)
	}},
	{"DANE", func(_ *testing.T, c *delivery.Client, _ *delivery.Envelope, backend *x509.Certificate) {
		c.DANE = fakeDANE{}
		// A DANE-EE record of the real MX's certificate: only it matches.
		c.VerifyDANE = func(chain []*x509.Certificate, _ []sealpost.TLSARecord, _ []string, _ time.Time) error {
			if len(chain) > 0 && bytes.Equal(chain[0].Raw, backend.Raw) {
				return nil
			}
			return errors.New("no TLSA record matches the certificate")
		}
	}},
	{"domain require_valid_cert", func(_ *testing.T, _ *delivery.Client, env *delivery.Envelope, _ *x509.Certificate) {
		env.DomainPolicy = &sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS12}
	}},
}

func TestRecipientPoliciesUnderAttack(t *testing.T) {
	t.Parallel()
	attacks := []struct {
		mode mxtest.ProxyMode
		// resultType per source, in attackSources' order.
		resultTypes [3]string
	}{
		{mxtest.StripSTARTTLS, [3]string{noSTARTTLS, noSTARTTLS, noSTARTTLS}},
		{mxtest.RefuseSTARTTLS, [3]string{failure, failure, failure}},
		{mxtest.DowngradeTLS10, [3]string{failure, failure, failure}},
		{mxtest.ImpersonateWrongName, [3]string{mismatch, sealpost.ResultTLSAInvalid, mismatch}},
	}
	for _, a := range attacks {
		for i, src := range attackSources {
			t.Run(a.mode.String()+"/"+src.name, func(t *testing.T) {
				t.Parallel()
				h := mxtest.New(t)
				cert := h.CA().Issue(t, mxtest.Options{DNSNames: []string{"mx1." + attackSourcesDomain}})
				backend, err := x509.ParseCertificate(cert.Certificate[0])
				if err != nil {
					t.Fatal(err)
				}
				proxy, mx := h.AddProxiedMX(attackSourcesDomain, 10, mxtest.Behavior{Certificate: &cert}, a.mode)
				c := sourcesClient(h)
				const marker = "attack-sources-marker"
				env := delivery.Envelope{From: "sender@sealpost.test", Domain: attackSourcesDomain,
					Recipients: []string{"rcpt@" + attackSourcesDomain}, Data: []byte("Subject: " + marker + "\r\n\r\n" + marker + "\r\n")}
				src.configure(t, c, &env, backend)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()

				// Two attempts: under MTA-STS the first defers and the
				// second blocks; the attacker sees nothing of either.
				res := c.Deliver(ctx, sealpost.DefaultEnforcedTLS(), env)
				env.Attempt = 1
				res = c.Deliver(ctx, sealpost.DefaultEnforcedTLS(), env)
				if r := res.Recipients[0]; r.Status != delivery.Blocked || res.TLS.ResultType != a.resultTypes[i] {
					t.Errorf("%v %q result type %q, want blocked %q", r.Status, r.Response, res.TLS.ResultType, a.resultTypes[i])
				}
				attackerSawNothing(t, proxy, mx, marker)
			})
		}
	}
}

// attackerSawNothing: neither the wire, nor what the attacker decrypted,
// nor the real MX holds the message or its envelope.
func attackerSawNothing(t *testing.T, proxy *mxtest.Proxy, mx *mxtest.Server, marker string) {
	t.Helper()
	for name, seen := range map[string][]byte{
		"the wire": proxy.ClientToServer(), "the attacker's decryption": proxy.Decrypted(), "the MX": mx.CleartextBytes(),
	} {
		upper := bytes.ToUpper(seen)
		if bytes.Contains(seen, []byte(marker)) || bytes.Contains(upper, []byte("MAIL FROM")) || bytes.Contains(upper, []byte("RCPT TO")) {
			t.Errorf("%s saw the message or its envelope: %q", name, seen)
		}
	}
	if n := len(mx.Received()); n != 0 {
		t.Errorf("the MX saw %d transactions", n)
	}
}

// The control: without any source, the opportunistic account's mail goes
// to the stripping attacker in clear, so the checks above can see a leak.
func TestStrippedWithoutSourcesLeaks(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	proxy, _ := h.AddProxiedMX(attackSourcesDomain, 10, mxtest.Behavior{}, mxtest.StripSTARTTLS)
	c := sourcesClient(h)
	env := delivery.Envelope{From: "sender@sealpost.test", Domain: attackSourcesDomain,
		Recipients: []string{"rcpt@" + attackSourcesDomain}, Data: []byte("Subject: control-marker\r\n\r\ncontrol-marker\r\n")}
	res := c.Deliver(context.Background(), sealpost.DefaultEnforcedTLS(), env)
	if r := res.Recipients[0]; r.Status != delivery.Delivered || !bytes.Contains(proxy.ClientToServer(), []byte("control-marker")) {
		t.Errorf("%v %q: want delivered in clear through the attacker", r.Status, r.Response)
	}
}

// TLSA records that are all unusable require TLS but authenticate nothing
// (RFC 7672 2.2): an attacker who strips, refuses or downgrades STARTTLS
// gets nothing, while one who terminates TLS with any certificate reads
// the mail, as it would under require_tls. The last case is the limit
// RELIABILITY.md states, proven here so it cannot silently change.
func TestUnusableDANEUnderAttack(t *testing.T) {
	t.Parallel()
	attacks := []struct {
		mode mxtest.ProxyMode
		// resultType of the block; "" when the attacker gets the mail.
		resultType string
	}{
		{mxtest.StripSTARTTLS, noSTARTTLS},
		{mxtest.RefuseSTARTTLS, failure},
		{mxtest.DowngradeTLS10, failure},
		{mxtest.ImpersonateWrongName, ""},
	}
	for _, a := range attacks {
		t.Run(a.mode.String(), func(t *testing.T) {
			t.Parallel()
			h := mxtest.New(t)
			proxy, mx := h.AddProxiedMX(attackSourcesDomain, 10, mxtest.Behavior{}, a.mode)
			c := sourcesClient(h)
			c.DANE = fakeDANE{unusable: true}
			const marker = "unusable-dane-marker"
			env := delivery.Envelope{From: "sender@sealpost.test", Domain: attackSourcesDomain,
				Recipients: []string{"rcpt@" + attackSourcesDomain}, Data: []byte("Subject: " + marker + "\r\n\r\n" + marker + "\r\n")}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res := c.Deliver(ctx, sealpost.DefaultEnforcedTLS(), env)
			r := res.Recipients[0]
			if a.resultType == "" {
				if r.Status != delivery.Delivered || !bytes.Contains(proxy.Decrypted(), []byte(marker)) || res.TLS.DANEVerified {
					t.Errorf("%v %q, facts %+v: want delivered through the attacker, who decrypted it", r.Status, r.Response, res.TLS)
				}
				if bytes.Contains(proxy.ClientToServer(), []byte(marker)) {
					t.Errorf("the message went on the wire in clear")
				}
				return
			}
			if r.Status != delivery.Blocked || res.TLS.ResultType != a.resultType || res.TLS.PolicySource != string(sealpost.PolicySourceDANE) {
				t.Errorf("%v %q result type %q source %q, want blocked %q by dane", r.Status, r.Response, res.TLS.ResultType, res.TLS.PolicySource, a.resultType)
			}
			attackerSawNothing(t, proxy, mx, marker)
		})
	}
}
