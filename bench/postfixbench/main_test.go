package main

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// The bench zone must send every bench domain to the receiver, and answer
// nothing else, so that no delivery can leave loopback.
func TestBenchZone(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: benchZone{zone: "bench.test.", mxIP: net.IPv4(127, 0, 0, 10).To4()}}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })

	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer string // the one answer's data, "" for none
	}{
		{"bench.test.", dns.TypeMX, dns.RcodeSuccess, "mx.bench.test."},
		{"D17.bench.test.", dns.TypeMX, dns.RcodeSuccess, "mx.bench.test."},
		{"mx.bench.test.", dns.TypeA, dns.RcodeSuccess, "127.0.0.10"},
		{"mx.bench.test.", dns.TypeAAAA, dns.RcodeSuccess, ""},
		{"d1.bench.test.", dns.TypeTXT, dns.RcodeSuccess, ""},
		{"_mta-sts.d1.bench.test.", dns.TypeTXT, dns.RcodeNameError, ""},
		{"example.com.", dns.TypeMX, dns.RcodeNameError, ""},
		{"notbench.test.", dns.TypeMX, dns.RcodeNameError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name+dns.TypeToString[tt.qtype], func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion(tt.name, tt.qtype)
			resp, err := dns.Exchange(m, pc.LocalAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			if resp.Rcode != tt.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tt.rcode])
			}
			var got string
			if len(resp.Answer) > 1 {
				t.Fatalf("%d answers: %v", len(resp.Answer), resp.Answer)
			}
			if len(resp.Answer) == 1 {
				switch rr := resp.Answer[0].(type) {
				case *dns.MX:
					got = rr.Mx
				case *dns.A:
					got = rr.A.String()
				default:
					got = rr.String()
				}
			}
			if got != tt.answer {
				t.Fatalf("answer %q, want %q", got, tt.answer)
			}
		})
	}
}
