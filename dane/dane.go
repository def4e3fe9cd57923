// Package dane finds what DANE for SMTP (RFC 7672) requires of recipients'
// MX hosts, from DNSSEC-validated answers of a resolver the operator trusts.
package dane

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/sealpost/sealpost"
)

// Resolver looks up TLSA records through one DNSSEC-validating resolver.
// Only that resolver's AD bit is believed, so it must be one the operator
// runs or trusts, reached over a path an attacker cannot change (loopback,
// typically). It keeps no cache: the validating resolver has one.
type Resolver struct {
	server  string
	timeout time.Duration
}

// exchangeTimeout bounds one DNS exchange when ctx allows more.
const exchangeTimeout = 5 * time.Second

// NewResolver returns a Resolver asking the validating resolver at server
// ("host:port", UDP and TCP).
func NewResolver(server string) *Resolver {
	return &Resolver{server: server, timeout: exchangeTimeout}
}

// Policy is what DANE requires of one MX host.
type Policy struct {
	// Records are the usable TLSA records (sealpost.UsableTLSA). Empty
	// means the host published TLSA records securely but none is usable:
	// RFC 7672 2.2 still requires TLS, without authentication.
	Records []sealpost.TLSARecord
	// Names are the reference identifiers a DANE-TA certificate must carry
	// (RFC 7672 3.2.3), without trailing dots: the TLSA base domain (the MX
	// host, or the name its secure CNAME chain led to), the MX host as
	// given, and the recipient domain, whose MX records were found secure
	// (and the name its CNAME chain led to, if any).
	Names []string
}

// HostPolicy returns what DANE requires of mxHost, one of domain's MX hosts
// (or domain itself when it has no MX records): nil when DANE does not
// apply because domain's MX records, the host's addresses or its TLSA
// records are not DNSSEC-secure, or the host has no TLSA records. An error
// means an answer was bogus, or the resolver failed or could not be reached:
// the host must not be used now, as RFC 7672 2.2 requires.
func (r *Resolver) HostPolicy(ctx context.Context, domain, mxHost string) (*Policy, error) {
	domain, mxHost = canonical(domain), canonical(mxHost)

	// RFC 7672 2.2.1: DANE applies to the hosts of a secure MX RRset, and
	// to the domain itself when it securely has none.
	mx, err := r.lookup(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	if !mx.secure {
		return nil, nil
	}
	if len(mx.records) == 0 {
		if mxHost != domain {
			return nil, fmt.Errorf("dane: %s has no MX records in DNSSEC-validated DNS, yet %s was to be used", trim(domain), trim(mxHost))
		}
	} else if !slices.ContainsFunc(mx.records, func(rr dns.RR) bool { return canonical(rr.(*dns.MX).Mx) == mxHost }) {
		// The host came from another, unvalidated lookup that disagrees:
		// perhaps forged, so it may not be used without DANE.
		return nil, fmt.Errorf("dane: %s is not among the DNSSEC-validated MX hosts of %s", trim(mxHost), trim(domain))
	}

	// RFC 7672 2.2.2: the host's addresses must be secure too, or an
	// attacker could send the connection elsewhere.
	base := mxHost
	found := false
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		addr, err := r.lookup(ctx, mxHost, qtype)
		if err != nil {
			return nil, err
		}
		if !addr.secure {
			return nil, nil
		}
		if len(addr.records) > 0 {
			found = true
			base = addr.target
		}
	}
	if !found {
		return nil, fmt.Errorf("dane: %s has no address records in DNSSEC-validated DNS", trim(mxHost))
	}

	// RFC 7672 2.2.3: TLSA records are looked for at the end of the host's
	// CNAME chain first, then at the host name itself.
	candidates := []string{base}
	if base != mxHost {
		candidates = append(candidates, mxHost)
	}
	for _, candidate := range candidates {
		tlsa, err := r.lookup(ctx, "_25._tcp."+candidate, dns.TypeTLSA)
		if err != nil {
			return nil, err
		}
		if !tlsa.secure || len(tlsa.records) == 0 {
			continue
		}
		var records []sealpost.TLSARecord
		for _, rr := range tlsa.records {
			t := rr.(*dns.TLSA)
			data, err := hex.DecodeString(t.Certificate)
			if err != nil {
				// A record that cannot be read is unusable, like any other.
				continue
			}
			records = append(records, sealpost.TLSARecord{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
		}
		return &Policy{Records: sealpost.UsableTLSA(records), Names: names(candidate, mxHost, domain, mx.target)}, nil
	}
	return nil, nil
}

// names lists the reference identifiers once each, without trailing dots.
func names(all ...string) []string {
	var out []string
	for _, n := range all {
		if n = trim(n); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// answer is what the resolver said about one name and type.
type answer struct {
	secure  bool     // the AD bit: DNSSEC-validated, denials included
	records []dns.RR // of the type asked, at the end of any CNAME chain
	target  string   // the name at the end of the CNAME chain
}

// lookup asks one question. NOERROR and NXDOMAIN are answers; anything
// else, SERVFAIL for a bogus answer included, is an error.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) (answer, error) {
	resp, err := r.exchange(ctx, name, qtype)
	if err != nil {
		return answer{}, fmt.Errorf("dane: %s %s: asking %s: %w", trim(name), dns.TypeToString[qtype], r.server, err)
	}
	if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		return answer{}, fmt.Errorf("dane: %s %s: %s answered %s%s", trim(name), dns.TypeToString[qtype], r.server,
			dns.RcodeToString[resp.Rcode], extendedError(resp))
	}
	a := answer{secure: resp.AuthenticatedData, target: name}
	// The resolver follows aliases; the chain it returns leads from name
	// to the records.
	for range 16 {
		next := ""
		for _, rr := range resp.Answer {
			if c, ok := rr.(*dns.CNAME); ok && canonical(c.Hdr.Name) == a.target {
				next = canonical(c.Target)
			}
		}
		if next == "" {
			break
		}
		a.target = next
	}
	for _, rr := range resp.Answer {
		if rr.Header().Rrtype == qtype && canonical(rr.Header().Name) == a.target {
			a.records = append(a.records, rr)
		}
	}
	return a, nil
}

// exchange asks the question with the DO bit, UDP first, TCP when the
// answer was truncated.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	// DO asks for DNSSEC; AD in a query asks for the AD bit in the answer
	// (RFC 6840 5.7).
	m.SetEdns0(1232, true)
	m.AuthenticatedData = true

	timeout := r.timeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = max(time.Until(d), time.Millisecond)
	}
	udp := &dns.Client{Net: "udp", Timeout: timeout}
	resp, _, err := udp.ExchangeContext(ctx, m, r.server)
	if err == nil && resp.Truncated {
		tcp := &dns.Client{Net: "tcp", Timeout: timeout}
		resp, _, err = tcp.ExchangeContext(ctx, m, r.server)
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("timed out: %w", err)
		}
		return nil, err
	}
	return resp, nil
}

// extendedError is the resolver's reason for a failure (RFC 8914), such as
// "DNSSEC Bogus", when it gave one.
func extendedError(resp *dns.Msg) string {
	opt := resp.IsEdns0()
	if opt == nil {
		return ""
	}
	for _, o := range opt.Option {
		if ede, ok := o.(*dns.EDNS0_EDE); ok {
			reason := dns.ExtendedErrorCodeToString[ede.InfoCode]
			if ede.ExtraText != "" {
				reason += ": " + ede.ExtraText
			}
			return " (" + reason + ")"
		}
	}
	return ""
}

func canonical(name string) string { return dns.Fqdn(strings.ToLower(name)) }

func trim(name string) string { return strings.TrimSuffix(name, ".") }
