package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/miekg/dns"
	"github.com/sealpost/sealpost"
)

// Resolver finds MX hosts and their addresses.
type Resolver interface {
	// LookupMX returns domain's MX records. No MX records at all
	// (NOERROR/NODATA) returns (nil, nil): the caller falls back to the
	// domain itself (RFC 5321 implicit MX). A null MX (one record with host
	// ".") is returned as is.
	LookupMX(ctx context.Context, domain string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// dnsTimeout bounds one DNS exchange when ctx allows more.
const dnsTimeout = 5 * time.Second

// NewResolver returns a Resolver asking the DNS server at server
// ("host:port") directly, or the system's resolver when server is "".
// Failures are *net.DNSError: IsNotFound for NXDOMAIN (the domain does not
// exist, a permanent condition) and IsTemporary for everything a later
// attempt may get past (SERVFAIL, REFUSED, timeouts, network errors).
func NewResolver(server string) Resolver {
	if server == "" {
		return systemResolver{r: net.DefaultResolver}
	}
	return &dnsResolver{server: server, cache: newDNSCache(time.Now)}
}

// systemResolver adapts net.Resolver to the NODATA convention of Resolver.
type systemResolver struct{ r *net.Resolver }

func (s systemResolver) LookupMX(ctx context.Context, domain string) ([]*net.MX, error) {
	mxs, err := s.r.LookupMX(ctx, domain)
	if sealpost.IsDNSNotFound(err) {
		// net reports NODATA and NXDOMAIN alike. Falling back to the
		// domain's addresses tells them apart: a domain that does not exist
		// has none either, and its address lookup fails as not found.
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(mxs) == 0 {
		return nil, nil
	}
	return mxs, nil
}

func (s systemResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	return s.r.LookupIPAddr(ctx, host)
}

// dnsResolver asks one DNS server with github.com/miekg/dns: UDP first, TCP
// when the answer was truncated. Answers are cached for their TTL, as any
// resolver an MTA sits behind would: a busy domain costs no DNS round trips
// per message.
type dnsResolver struct {
	server string
	cache  *dnsCache
}

func (r *dnsResolver) LookupMX(ctx context.Context, domain string) ([]*net.MX, error) {
	in, err := r.query(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var mxs []*net.MX
	for _, rr := range in.Answer {
		if mx, ok := rr.(*dns.MX); ok {
			mxs = append(mxs, &net.MX{Host: mx.Mx, Pref: mx.Preference})
		}
	}
	return mxs, nil
}

func (r *dnsResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	var addrs []net.IPAddr
	var firstErr error
	found := false
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		in, err := r.query(ctx, host, qtype)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		found = true
		for _, rr := range in.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				addrs = append(addrs, net.IPAddr{IP: rr.A})
			case *dns.AAAA:
				addrs = append(addrs, net.IPAddr{IP: rr.AAAA})
			}
		}
	}
	if len(addrs) > 0 {
		return addrs, nil
	}
	if !found {
		return nil, firstErr
	}
	// The name exists but has no address of either family: as permanent as
	// NXDOMAIN for our purpose, unless the other family's query failed.
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, &net.DNSError{Err: "no address records", Name: host, Server: r.server, IsNotFound: true}
}

// query sends one question and maps the answer's rcode to a *net.DNSError.
// Answers and NXDOMAIN are cached (RFC 2308: negative answers for as long
// as their SOA says), so that a domain without an MTA-STS record or an MX
// host without IPv6 costs no round trip per message.
func (r *dnsResolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	in := r.cache.get(name, qtype)
	if in == nil {
		var err error
		if in, err = r.exchange(ctx, name, qtype); err != nil {
			return nil, err
		}
		if in.Rcode == dns.RcodeSuccess || in.Rcode == dns.RcodeNameError {
			r.cache.put(name, qtype, in)
		}
	}
	return r.answer(name, in)
}

// exchange asks the server one question; the answer's rcode is left to
// answer.
func (r *dnsResolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, false)

	timeout := dnsTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = max(time.Until(d), time.Millisecond)
	}
	udp := &dns.Client{Net: "udp", Timeout: timeout}
	in, _, err := udp.ExchangeContext(ctx, m, r.server)
	if err == nil && in.Truncated {
		tcp := &dns.Client{Net: "tcp", Timeout: timeout}
		in, _, err = tcp.ExchangeContext(ctx, m, r.server)
	}
	if err != nil {
		var ne net.Error
		timedOut := errors.As(err, &ne) && ne.Timeout()
		return nil, &net.DNSError{
			Err:         fmt.Sprintf("%s query failed: %v", dns.TypeToString[qtype], err),
			Name:        name,
			Server:      r.server,
			IsTimeout:   timedOut,
			IsTemporary: true,
		}
	}
	return in, nil
}

// answer maps in's rcode to a *net.DNSError.
func (r *dnsResolver) answer(name string, in *dns.Msg) (*dns.Msg, error) {
	switch in.Rcode {
	case dns.RcodeSuccess:
		return in, nil
	case dns.RcodeNameError:
		return nil, &net.DNSError{Err: "no such host (NXDOMAIN)", Name: name, Server: r.server, IsNotFound: true}
	default:
		return nil, &net.DNSError{
			Err:         fmt.Sprintf("server answered %s", dns.RcodeToString[in.Rcode]),
			Name:        name,
			Server:      r.server,
			IsTemporary: true,
		}
	}
}

// LookupMX finds domain's MX records with c's resolver (--dns-server), as
// the validation of an authenticated domain's return path needs.
func (c *Client) LookupMX(ctx context.Context, domain string) ([]*net.MX, error) {
	return c.Resolver.LookupMX(ctx, domain)
}
