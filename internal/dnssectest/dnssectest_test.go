package dnssectest_test

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sealpost/sealpost/internal/dnssectest"
)

// TestUnboundValidates checks the harness itself: unbound, trusting only
// the test zones' keys, finds signed answers secure (AD), unsigned ones
// insecure, and corrupted signatures bogus.
func TestUnboundValidates(t *testing.T) {
	auth := dnssectest.NewServer(t)
	signed := auth.AddZone(t, "signed.test.", dnssectest.Signed)
	signed.AddMX("signed.test.", 10, "mx.signed.test.")
	signed.AddA("mx.signed.test.", "127.0.0.10")
	signed.AddA("alias-target.signed.test.", "127.0.0.12")
	signed.AddCNAME("alias.signed.test.", "alias-target.signed.test.")
	signed.Add("_25._tcp.mx.signed.test. 30 IN TLSA 3 1 1 " + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	signed.AddA("forged.signed.test.", "127.0.0.66")
	signed.CorruptSignatures("forged.signed.test.")
	plain := auth.AddZone(t, "plain.test.", dnssectest.Unsigned)
	plain.AddA("mx.plain.test.", "127.0.0.11")
	resolver := dnssectest.StartUnbound(t, auth)

	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		ad     bool
		answer int // records of qtype in the answer
	}{
		{"signed.test.", dns.TypeMX, dns.RcodeSuccess, true, 1},
		{"mx.signed.test.", dns.TypeA, dns.RcodeSuccess, true, 1},
		{"_25._tcp.mx.signed.test.", dns.TypeTLSA, dns.RcodeSuccess, true, 1},
		{"alias.signed.test.", dns.TypeA, dns.RcodeSuccess, true, 1},
		{"mx.signed.test.", dns.TypeAAAA, dns.RcodeSuccess, true, 0},            // NODATA
		{"_tcp.mx.signed.test.", dns.TypeTLSA, dns.RcodeSuccess, true, 0},       // empty non-terminal
		{"_25._tcp.signed.test.", dns.TypeTLSA, dns.RcodeNameError, true, 0},    // NXDOMAIN
		{"nothing.signed.test.", dns.TypeA, dns.RcodeNameError, true, 0},        // NXDOMAIN
		{"forged.signed.test.", dns.TypeA, dns.RcodeServerFailure, false, 0},    // bogus
		{"mx.plain.test.", dns.TypeA, dns.RcodeSuccess, false, 1},               // insecure
		{"_25._tcp.mx.plain.test.", dns.TypeTLSA, dns.RcodeNameError, false, 0}, // insecure denial
		{"elsewhere.example.", dns.TypeA, dns.RcodeServerFailure, false, 0},     // outside the world
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+dns.TypeToString[tt.qtype], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			m := new(dns.Msg)
			m.SetQuestion(tt.name, tt.qtype)
			m.SetEdns0(1232, true)
			m.AuthenticatedData = true
			resp, err := dnssectest.Exchange(ctx, resolver.Addr(), m)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, rr := range resp.Answer {
				if rr.Header().Rrtype == tt.qtype {
					n++
				}
			}
			if resp.Rcode != tt.rcode || resp.AuthenticatedData != tt.ad || n != tt.answer {
				t.Errorf("rcode %s, AD %v, %d answers; want %s, AD %v, %d answers\n%v",
					dns.RcodeToString[resp.Rcode], resp.AuthenticatedData, n,
					dns.RcodeToString[tt.rcode], tt.ad, tt.answer, resp)
			}
		})
	}
}
