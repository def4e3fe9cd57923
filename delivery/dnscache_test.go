package delivery

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/sealpost/sealpost"
)

// countingDNS answers MX for cached.test with the given TTL, and SERVFAIL
// for failing.test, counting the questions it gets.
func countingDNS(t *testing.T, ttl uint32) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		n.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch q.Name {
		case "cached.test.":
			m.Answer = []dns.RR{&dns.MX{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: ttl}, Preference: 10, Mx: "mx.cached.test."}}
		case "nodata.test.":
			m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl}, Ns: "ns.test.", Mbox: "h.test.", Minttl: ttl}}
		case "nxdomain.test.":
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl}, Ns: "ns.test.", Mbox: "h.test.", Minttl: ttl}}
		case "nxdomain-nosoa.test.":
			m.Rcode = dns.RcodeNameError
		default:
			m.Rcode = dns.RcodeServerFailure
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: handler}
	var started sync.WaitGroup
	started.Add(1)
	srv.NotifyStartedFunc = started.Done
	go srv.ActivateAndServe()
	started.Wait()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String(), &n
}

func TestResolverCachesForTTL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		domain    string
		ttl       uint32
		advance   time.Duration
		wantAsked int64 // questions after two lookups
	}{
		{"within the TTL", "cached.test", 60, 30 * time.Second, 1},
		{"after the TTL", "cached.test", 60, 61 * time.Second, 2},
		{"TTL 0 is not cached", "cached.test", 0, 0, 2},
		{"capped at five minutes", "cached.test", 86400, 6 * time.Minute, 2},
		{"NODATA for its negative TTL", "nodata.test", 60, 30 * time.Second, 1},
		{"NXDOMAIN for its negative TTL", "nxdomain.test", 60, 30 * time.Second, 1},
		{"NXDOMAIN after its negative TTL", "nxdomain.test", 60, 61 * time.Second, 2},
		{"NXDOMAIN without SOA is not cached", "nxdomain-nosoa.test", 60, 0, 2},
		{"failures are not cached", "failing.test", 60, 0, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, asked := countingDNS(t, tc.ttl)
			now := time.Now()
			var mu sync.Mutex
			r := &dnsResolver{server: addr, cache: newDNSCache(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })}
			first, err1 := r.LookupMX(context.Background(), tc.domain)
			mu.Lock()
			now = now.Add(tc.advance)
			mu.Unlock()
			second, err2 := r.LookupMX(context.Background(), tc.domain)
			if got := asked.Load(); got != tc.wantAsked {
				t.Errorf("the server was asked %d times, want %d", got, tc.wantAsked)
			}
			if (err1 == nil) != (err2 == nil) || len(first) != len(second) || sealpost.IsDNSNotFound(err1) != sealpost.IsDNSNotFound(err2) {
				t.Errorf("a cached answer differs: %v %v / %v %v", first, err1, second, err2)
			}
		})
	}
}
