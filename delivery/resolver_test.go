package delivery

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/sealpost/sealpost"
)

// startDNS serves a small zone on 127.0.0.1, over UDP and TCP on one port.
// "big.test." answers MX over UDP truncated, so only TCP gets the records.
func startDNS(t *testing.T) string {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		q := r.Question[0]
		_, udp := w.RemoteAddr().(*net.UDPAddr)
		rr := func(s string) dns.RR {
			x, err := dns.NewRR(s)
			if err != nil {
				panic(err)
			}
			return x
		}
		switch {
		case q.Name == "example.test." && q.Qtype == dns.TypeMX:
			m.Answer = []dns.RR{rr("example.test. 60 IN MX 20 mx2.example.test."), rr("example.test. 60 IN MX 10 mx1.example.test.")}
		case q.Name == "mx1.example.test." && q.Qtype == dns.TypeA:
			m.Answer = []dns.RR{rr("mx1.example.test. 60 IN A 192.0.2.1")}
		case q.Name == "mx1.example.test." && q.Qtype == dns.TypeAAAA:
			m.Answer = []dns.RR{rr("mx1.example.test. 60 IN AAAA 2001:db8::1")}
		case q.Name == "v4only.test." && q.Qtype == dns.TypeA:
			m.Answer = []dns.RR{rr("v4only.test. 60 IN A 192.0.2.7")}
		case q.Name == "v4only.test.", q.Name == "nomx.test.":
			// NOERROR, no data.
		case q.Name == "null.test." && q.Qtype == dns.TypeMX:
			m.Answer = []dns.RR{rr("null.test. 60 IN MX 0 .")}
		case q.Name == "big.test." && q.Qtype == dns.TypeMX:
			if udp {
				m.Truncated = true
			} else {
				m.Answer = []dns.RR{rr("big.test. 60 IN MX 5 mx.big.test.")}
			}
		case q.Name == "servfail.test.":
			m.Rcode = dns.RcodeServerFailure
		case q.Name == "silent.test.":
			return // no answer: the client times out
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	for try := 0; try < 20; try++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			pc.Close()
			continue
		}
		var wg sync.WaitGroup
		udpSrv := &dns.Server{PacketConn: pc, Handler: handler}
		tcpSrv := &dns.Server{Listener: ln, Handler: handler}
		for _, s := range []*dns.Server{udpSrv, tcpSrv} {
			started := make(chan struct{})
			s.NotifyStartedFunc = func() { close(started) }
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.ActivateAndServe()
			}()
			<-started
		}
		t.Cleanup(func() {
			udpSrv.Shutdown()
			tcpSrv.Shutdown()
			wg.Wait()
		})
		return pc.LocalAddr().String()
	}
	t.Fatal("no free port for both UDP and TCP")
	return ""
}

func TestNewResolverMX(t *testing.T) {
	t.Parallel()
	r := NewResolver(startDNS(t))
	ctx := t.Context()
	tests := []struct {
		domain   string
		want     []string // "pref host"
		notFound bool
		temp     bool
	}{
		{domain: "example.test", want: []string{"20 mx2.example.test.", "10 mx1.example.test."}},
		{domain: "nomx.test", want: nil},
		{domain: "null.test", want: []string{"0 ."}},
		{domain: "big.test", want: []string{"5 mx.big.test."}},
		{domain: "nx.test", notFound: true},
		{domain: "servfail.test", temp: true},
	}
	for _, tt := range tests {
		mxs, err := r.LookupMX(ctx, tt.domain)
		if tt.notFound || tt.temp {
			var de *net.DNSError
			if !errors.As(err, &de) || de.IsNotFound != tt.notFound || de.IsTemporary != tt.temp {
				t.Errorf("%s: err %#v, want notFound=%v temporary=%v", tt.domain, err, tt.notFound, tt.temp)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.domain, err)
			continue
		}
		var got []string
		for _, mx := range mxs {
			got = append(got, strconv.Itoa(int(mx.Pref))+" "+mx.Host)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.domain, got, tt.want)
		}
	}
}

func TestNewResolverAddresses(t *testing.T) {
	t.Parallel()
	r := NewResolver(startDNS(t))
	ctx := t.Context()
	addrs, err := r.LookupIPAddr(ctx, "mx1.example.test")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.IP.String())
	}
	if !slices.Equal(got, []string{"192.0.2.1", "2001:db8::1"}) {
		t.Errorf("mx1: %q", got)
	}
	addrs, err = r.LookupIPAddr(ctx, "v4only.test")
	if err != nil || len(addrs) != 1 || addrs[0].IP.String() != "192.0.2.7" {
		t.Errorf("v4only: %v %v", addrs, err)
	}
	for _, tt := range []struct {
		host           string
		notFound, temp bool
	}{
		{host: "nx.test", notFound: true},
		{host: "nomx.test", notFound: true}, // exists, no addresses
		{host: "servfail.test", temp: true},
	} {
		_, err := r.LookupIPAddr(ctx, tt.host)
		var de *net.DNSError
		if !errors.As(err, &de) || de.IsNotFound != tt.notFound || de.IsTemporary != tt.temp {
			t.Errorf("%s: err %#v, want notFound=%v temporary=%v", tt.host, err, tt.notFound, tt.temp)
		}
	}
}

func TestNewResolverTimeout(t *testing.T) {
	t.Parallel()
	r := NewResolver(startDNS(t))
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.LookupMX(ctx, "silent.test")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsTemporary || de.IsNotFound {
		t.Errorf("err %#v, want a temporary DNS error", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
}

// TestSystemResolverNoData checks the net.Resolver-based Resolver against
// the same zone: NODATA is (nil, nil), and a missing domain shows up as
// not found when its addresses are looked up.
func TestSystemResolverNoData(t *testing.T) {
	t.Parallel()
	server := startDNS(t)
	r := systemResolver{r: &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}}
	ctx := t.Context()
	mxs, err := r.LookupMX(ctx, "example.test")
	if err != nil || len(mxs) != 2 {
		t.Errorf("example.test: %v %v", mxs, err)
	}
	if mxs, err := r.LookupMX(ctx, "nomx.test"); err != nil || mxs != nil {
		t.Errorf("nomx.test: %v %v, want nil, nil", mxs, err)
	}
	if _, err := r.LookupIPAddr(ctx, "nx.test"); !sealpost.IsDNSNotFound(err) {
		t.Errorf("nx.test addresses: %v, want not found", err)
	}
	if _, err := r.LookupMX(ctx, "servfail.test"); err == nil || sealpost.IsDNSNotFound(err) {
		t.Errorf("servfail.test: %v, want a temporary error", err)
	}
}
