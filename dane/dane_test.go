package dane_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/dane"
	"github.com/sealpost/sealpost/delivery/mxtest"
	"github.com/sealpost/sealpost/internal/dnssectest"
)

// world is a signed zone, an unsigned one and unbound validating them.
type world struct {
	resolver *dane.Resolver
	ca       *mxtest.CA
	mxCert   tls.Certificate // the certificate mx.secure.test serves
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ca := mxtest.NewCA(t)
	mxCert := ca.Issue(t, mxtest.Options{DNSNames: []string{"mx.secure.test"}})
	other := ca.Issue(t, mxtest.Options{DNSNames: []string{"mx.secure.test"}})

	auth := dnssectest.NewServer(t)
	z := auth.AddZone(t, "secure.test.", dnssectest.Signed)
	for _, host := range []string{"mx", "notlsa", "pkixonly", "alias", "fallback", "forged-tlsa", "mismatch", "ta"} {
		z.AddMX("secure.test.", 10, host+".secure.test.")
	}
	z.AddA("mx.secure.test.", "127.0.0.1")
	z.AddTLSA("mx.secure.test.", 3, 1, 1, mxCert.Leaf)
	// An unusable record beside it changes nothing.
	z.AddTLSA("mx.secure.test.", 1, 1, 1, mxCert.Leaf)

	z.AddA("notlsa.secure.test.", "127.0.0.2")

	z.AddA("pkixonly.secure.test.", "127.0.0.3")
	z.AddTLSA("pkixonly.secure.test.", 1, 1, 1, mxCert.Leaf)
	z.AddTLSA("pkixonly.secure.test.", 0, 0, 1, mxCert.Leaf)

	// alias is a CNAME: the TLSA records at its target come first.
	z.AddCNAME("alias.secure.test.", "target.secure.test.")
	z.AddA("target.secure.test.", "127.0.0.4")
	z.AddTLSA("target.secure.test.", 3, 1, 2, mxCert.Leaf)
	z.AddTLSA("alias.secure.test.", 3, 0, 1, other.Leaf)

	// fallback is a CNAME to a target without TLSA records: those at the
	// name itself apply.
	z.AddCNAME("fallback.secure.test.", "bare.secure.test.")
	z.AddA("bare.secure.test.", "127.0.0.5")
	z.AddTLSA("fallback.secure.test.", 3, 0, 1, mxCert.Leaf)

	z.AddA("forged-tlsa.secure.test.", "127.0.0.6")
	z.AddTLSA("forged-tlsa.secure.test.", 3, 1, 1, mxCert.Leaf)
	z.CorruptSignatures("_25._tcp.forged-tlsa.secure.test.")

	// mismatch pins a key its server does not have.
	z.AddA("mismatch.secure.test.", "127.0.0.1")
	z.AddTLSA("mismatch.secure.test.", 3, 1, 1, other.Leaf)

	// ta trusts the test CA as its anchor (DANE-TA).
	z.AddA("ta.secure.test.", "127.0.0.1")
	z.AddTLSA("ta.secure.test.", 2, 0, 1, ca.Certificate())

	// A domain that is an alias of another has the other's MX hosts.
	z.AddCNAME("aliased.secure.test.", "secure.test.")

	// A domain without MX records is its own host.
	z.AddA("nomx.secure.test.", "127.0.0.7")
	z.AddTLSA("nomx.secure.test.", 3, 1, 1, mxCert.Leaf)

	// Secure MX records pointing into an unsigned zone.
	z.AddMX("outsourced.secure.test.", 10, "mx.plain.test.")
	// Forged MX records.
	z.AddMX("forged-mx.secure.test.", 10, "mx.secure.test.")
	z.CorruptSignatures("forged-mx.secure.test.")

	plain := auth.AddZone(t, "plain.test.", dnssectest.Unsigned)
	plain.AddMX("plain.test.", 10, "mx.plain.test.")
	plain.AddA("mx.plain.test.", "127.0.0.8")
	plain.AddTLSA("mx.plain.test.", 3, 1, 1, mxCert.Leaf)

	u := dnssectest.StartUnbound(t, auth)
	return &world{resolver: dane.NewResolver(u.Addr()), ca: ca, mxCert: mxCert}
}

func TestHostPolicyThroughUnbound(t *testing.T) {
	w := newWorld(t)
	eeSPKI256 := tlsaOf(t, 3, 1, 1, w.mxCert.Leaf)
	tests := []struct {
		name, domain, mxHost string
		want                 *dane.Policy // nil: DANE does not apply
		wantErr              string       // a part of the error; the host may not be used
	}{
		{name: "matching TLSA", domain: "secure.test", mxHost: "mx.secure.test",
			want: &dane.Policy{Records: []sealpost.TLSARecord{eeSPKI256}, Names: []string{"mx.secure.test", "secure.test"}}},
		{name: "names are case-insensitive, dots optional", domain: "Secure.Test.", mxHost: "MX.secure.test.",
			want: &dane.Policy{Records: []sealpost.TLSARecord{eeSPKI256}, Names: []string{"mx.secure.test", "secure.test"}}},
		{name: "domain is an alias", domain: "aliased.secure.test", mxHost: "mx.secure.test",
			want: &dane.Policy{Records: []sealpost.TLSARecord{eeSPKI256}, Names: []string{"mx.secure.test", "aliased.secure.test", "secure.test"}}},
		{name: "no TLSA records", domain: "secure.test", mxHost: "notlsa.secure.test"},
		{name: "only unusable TLSA records", domain: "secure.test", mxHost: "pkixonly.secure.test",
			want: &dane.Policy{Names: []string{"pkixonly.secure.test", "secure.test"}}},
		{name: "CNAME target's TLSA records", domain: "secure.test", mxHost: "alias.secure.test",
			want: &dane.Policy{Records: []sealpost.TLSARecord{tlsaOf(t, 3, 1, 2, w.mxCert.Leaf)},
				Names: []string{"target.secure.test", "alias.secure.test", "secure.test"}}},
		{name: "CNAME target without TLSA: the host's own", domain: "secure.test", mxHost: "fallback.secure.test",
			want: &dane.Policy{Records: []sealpost.TLSARecord{tlsaOf(t, 3, 0, 1, w.mxCert.Leaf)},
				Names: []string{"fallback.secure.test", "secure.test"}}},
		{name: "implicit MX", domain: "nomx.secure.test", mxHost: "nomx.secure.test",
			want: &dane.Policy{Records: []sealpost.TLSARecord{eeSPKI256}, Names: []string{"nomx.secure.test"}}},
		{name: "unsigned zone", domain: "plain.test", mxHost: "mx.plain.test"},
		{name: "secure MX, insecure host", domain: "outsourced.secure.test", mxHost: "mx.plain.test"},
		{name: "bogus TLSA signatures", domain: "secure.test", mxHost: "forged-tlsa.secure.test", wantErr: "DNSSEC Bogus"},
		{name: "bogus MX signatures", domain: "forged-mx.secure.test", mxHost: "mx.secure.test", wantErr: "DNSSEC Bogus"},
		{name: "host not among the secure MX hosts", domain: "secure.test", mxHost: "mx.plain.test", wantErr: "not among the DNSSEC-validated MX hosts"},
		{name: "no MX records and another host", domain: "nomx.secure.test", mxHost: "mx.secure.test", wantErr: "has no MX records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got, err := w.resolver.HostPolicy(ctx, tt.domain, tt.mxHost)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("HostPolicy = %+v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("HostPolicy: %v", err)
			}
			if !samePolicy(got, tt.want) {
				t.Errorf("HostPolicy = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestHostPolicyVerifiesRealServer checks the records and names found
// through unbound against what real TLS servers present. A certificate the
// test CA vouches for, but whose key is not pinned, is refused.
func TestHostPolicyVerifiesRealServer(t *testing.T) {
	w := newWorld(t)
	withCA := func(c tls.Certificate) tls.Certificate {
		c.Certificate = append(c.Certificate, w.ca.Certificate().Raw)
		return c
	}
	issue := func(name string) tls.Certificate { return w.ca.Issue(t, mxtest.Options{DNSNames: []string{name}}) }
	tests := []struct {
		name   string
		mxHost string
		cert   tls.Certificate
		ok     bool
	}{
		{"DANE-EE, the pinned key", "mx.secure.test", w.mxCert, true},
		{"DANE-EE, another key", "mismatch.secure.test", w.mxCert, false},
		{"DANE-TA, the MX host's name", "ta.secure.test", withCA(issue("ta.secure.test")), true},
		{"DANE-TA, the recipient domain's name", "ta.secure.test", withCA(issue("secure.test")), true},
		{"DANE-TA, another name", "ta.secure.test", withCA(issue("elsewhere.test")), false},
		{"DANE-TA, anchor not presented", "ta.secure.test", issue("ta.secure.test"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p, err := w.resolver.HostPolicy(ctx, "secure.test", tt.mxHost)
			if err != nil || p == nil {
				t.Fatalf("HostPolicy = %+v, %v; want a policy", p, err)
			}
			chain := serverChain(t, tt.cert)
			// Each certificate is valid by the usual rules for some name.
			if _, err := chain[0].Verify(x509.VerifyOptions{Roots: w.ca.CertPool()}); err != nil {
				t.Fatalf("the test certificate does not verify: %v", err)
			}
			err = sealpost.VerifyDANE(chain, p.Records, p.Names, time.Now())
			if tt.ok && err != nil {
				t.Errorf("VerifyDANE: %v", err)
			}
			if !tt.ok && !errors.Is(err, sealpost.ErrDANENoMatch) {
				t.Errorf("VerifyDANE: %v, want ErrDANENoMatch", err)
			}
		})
	}
}

func TestHostPolicyResolverUnreachable(t *testing.T) {
	// A port nothing listens on: the lookup fails, it does not say "no DANE".
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := dane.NewResolver(addr).HostPolicy(ctx, "secure.test", "mx.secure.test")
	if err == nil {
		t.Fatalf("HostPolicy with no resolver = %+v, nil; want an error", p)
	}
}

// serverChain is what a client sees of a TLS server serving cert.
func serverChain(t *testing.T, cert tls.Certificate) []*x509.Certificate {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.(*tls.Conn).Handshake()
	}()
	// The certificate is checked by DANE, not by the usual rules.
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates
}

// tlsaOf is the record of cert, as miekg/dns computes it.
func tlsaOf(t *testing.T, usage, selector, matching uint8, cert *x509.Certificate) sealpost.TLSARecord {
	t.Helper()
	s, err := dns.CertificateToDANE(selector, matching, cert)
	if err != nil {
		t.Fatal(err)
	}
	data, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return sealpost.TLSARecord{Usage: usage, Selector: selector, MatchingType: matching, Data: data}
}

func samePolicy(a, b *dane.Policy) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Names, b.Names) && slices.EqualFunc(a.Records, b.Records, func(x, y sealpost.TLSARecord) bool {
		return x.Usage == y.Usage && x.Selector == y.Selector && x.MatchingType == y.MatchingType && string(x.Data) == string(y.Data)
	})
}
