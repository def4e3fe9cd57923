package mxtest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/sealpost/sealpost/internal/dnssectest"
)

// MX is one MX record: the exchange host name and its preference.
type MX struct {
	Pref uint16
	Host string
}

// DNS is an authoritative DNS server (MX, A, AAAA, TXT and TLSA records)
// for whatever names a test gives it, listening on 127.0.0.1 with the same
// port for UDP and TCP (so one "host:port" serves both, as sealpost's
// --dns-server expects). Names it was not told about are NXDOMAIN; a known
// name without records of the asked type is NOERROR with no answers
// (NODATA). Records may change while it serves.
type DNS struct {
	addr string

	mu    sync.Mutex
	names map[string]*dnsName
}

type dnsName struct {
	mx       []MX
	nullMX   bool
	a        []net.IP
	aaaa     []net.IP
	txt      [][]string
	tlsa     []dns.TLSA
	servFail bool
}

// NewDNS starts a DNS server; it stops when the test ends.
func NewDNS(t testing.TB) *DNS {
	t.Helper()
	d := &DNS{names: make(map[string]*dnsName)}
	d.addr = dnssectest.ServeDNS(t, dns.HandlerFunc(d.serve))
	return d
}

// Addr is the server's "127.0.0.1:port", for delivery.NewResolver and
// sealpost serve --dns-server.
func (d *DNS) Addr() string { return d.addr }

// SetMX replaces domain's MX records. No records at all makes the domain
// exist without MX (the client must fall back to its A records).
func (d *DNS) SetMX(domain string, mx ...MX) {
	d.update(domain, func(n *dnsName) {
		n.mx = append([]MX(nil), mx...)
		n.nullMX = false
	})
}

// SetNullMX gives domain the RFC 7505 null MX ("0 ."): it accepts no mail.
func (d *DNS) SetNullMX(domain string) {
	d.update(domain, func(n *dnsName) {
		n.mx = nil
		n.nullMX = true
	})
}

// SetA replaces host's address records; IPv6 addresses become AAAA records.
// It panics on a malformed address, which is a mistake in the test itself.
func (d *DNS) SetA(host string, ips ...string) {
	var v4, v6 []net.IP
	for _, s := range ips {
		ip := net.ParseIP(s)
		switch {
		case ip == nil:
			panic("mxtest: SetA: not an IP address: " + s)
		case ip.To4() != nil:
			v4 = append(v4, ip.To4())
		default:
			v6 = append(v6, ip)
		}
	}
	d.update(host, func(n *dnsName) { n.a, n.aaaa = v4, v6 })
}

// SetTXT replaces name's TXT records. Each record is given as its
// character-strings; a long MTA-STS or TLS-RPT record may be split into
// several, which receivers join.
func (d *DNS) SetTXT(name string, records ...[]string) {
	d.update(name, func(n *dnsName) { n.txt = append([][]string(nil), records...) })
}

// SetTLSA replaces name's TLSA records (name is "_25._tcp.<mx host>" for
// DANE); headers are filled in when answering.
func (d *DNS) SetTLSA(name string, records ...dns.TLSA) {
	d.update(name, func(n *dnsName) { n.tlsa = append([]dns.TLSA(nil), records...) })
}

// SetServFail makes every query for name fail with SERVFAIL, the answer of a
// broken or unreachable authoritative server: a transient error.
func (d *DNS) SetServFail(name string) {
	d.update(name, func(n *dnsName) { n.servFail = true })
}

// Remove forgets name: it becomes NXDOMAIN again.
func (d *DNS) Remove(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.names, canonical(name))
}

func (d *DNS) update(name string, f func(*dnsName)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := canonical(name)
	n := d.names[key]
	if n == nil {
		n = &dnsName{}
		d.names[key] = n
	}
	f(n)
}

func canonical(name string) string { return dns.Fqdn(strings.ToLower(name)) }

func (d *DNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	d.mu.Lock()
	n, ok := d.names[canonical(q.Name)]
	var answers []dns.RR
	if ok && !n.servFail {
		answers = n.answers(q)
	}
	servFail := ok && n.servFail
	d.mu.Unlock()

	hdr := func(rrtype uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: 60}
	}
	switch {
	case servFail:
		resp.Authoritative = false
		resp.Rcode = dns.RcodeServerFailure
	case !ok:
		resp.Rcode = dns.RcodeNameError
		resp.Ns = []dns.RR{soa(q.Name)}
	case len(answers) == 0:
		resp.Ns = []dns.RR{soa(q.Name)}
	default:
		for _, rr := range answers {
			*rr.Header() = hdr(rr.Header().Rrtype)
		}
		resp.Answer = answers
	}
	_ = w.WriteMsg(resp)
}

// answers returns the records of q's type, headers left for the caller.
func (n *dnsName) answers(q dns.Question) []dns.RR {
	var rrs []dns.RR
	switch q.Qtype {
	case dns.TypeMX:
		if n.nullMX {
			return []dns.RR{&dns.MX{Hdr: dns.RR_Header{Rrtype: dns.TypeMX}, Preference: 0, Mx: "."}}
		}
		for _, mx := range n.mx {
			rrs = append(rrs, &dns.MX{Hdr: dns.RR_Header{Rrtype: dns.TypeMX}, Preference: mx.Pref, Mx: canonical(mx.Host)})
		}
	case dns.TypeA:
		for _, ip := range n.a {
			rrs = append(rrs, &dns.A{Hdr: dns.RR_Header{Rrtype: dns.TypeA}, A: ip})
		}
	case dns.TypeAAAA:
		for _, ip := range n.aaaa {
			rrs = append(rrs, &dns.AAAA{Hdr: dns.RR_Header{Rrtype: dns.TypeAAAA}, AAAA: ip})
		}
	case dns.TypeTXT:
		for _, t := range n.txt {
			rrs = append(rrs, &dns.TXT{Hdr: dns.RR_Header{Rrtype: dns.TypeTXT}, Txt: t})
		}
	case dns.TypeTLSA:
		for _, t := range n.tlsa {
			t.Hdr.Rrtype = dns.TypeTLSA
			rrs = append(rrs, &t)
		}
	}
	return rrs
}

// soa is the authority record that makes NXDOMAIN and NODATA answers
// cacheable (RFC 2308); some resolvers treat an answer without it as lame.
func soa(name string) dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns:      "ns.mxtest.invalid.",
		Mbox:    "hostmaster.mxtest.invalid.",
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  60,
	}
}
