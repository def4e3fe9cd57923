// Package dnssectest is a DNSSEC world for tests: zones signed with real
// keys (or left unsigned, or with broken signatures), served by an
// authoritative server on loopback, and a real validating resolver —
// Debian's unbound — in front of them, so that the AD bit a test sees comes
// from DNSSEC validation, not from a mock.
//
//	auth := dnssectest.NewServer(t)
//	z := auth.AddZone("example.test.", dnssectest.Signed)
//	z.AddMX("example.test.", 10, "mx.example.test.")
//	z.AddA("mx.example.test.", "127.0.0.1")
//	z.AddTLSA("mx.example.test.", 3, 1, 1, cert)
//	resolver := dnssectest.StartUnbound(t, auth) // skips when unbound is missing
//	... query resolver.Addr() with the DO bit ...
//
// Zones must not nest (no zone is below another one), and every zone is
// added before StartUnbound, which trusts each signed zone's key. Records
// may change later, but unbound caches answers for their TTL.
//
// With the fake MX servers of delivery/mxtest, a test publishes a server in a
// signed zone with the certificate it gave the server:
//
//	cert := h.CA().Issue(t, mxtest.Options{DNSNames: []string{"mx1.dane.test"}})
//	mx := h.AddMX("dane.test", 10, mxtest.Behavior{Certificate: &cert})
//	z := auth.AddZone(t, "dane.test.", dnssectest.Signed)
//	z.AddMX("dane.test.", 10, mx.Host())
//	z.AddA(mx.Host(), mx.IP())
//	z.AddTLSA(mx.Host(), 3, 1, 1, cert.Leaf)
//
// and gives unbound's address to both the delivery resolver and DANE, so
// that the two agree.
package dnssectest

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// TTL of every record the zones serve, and of negative answers: short, so
// that a test reading unbound's cache never waits long.
const TTL = 30

// Security is how a zone is published.
type Security int

const (
	// Signed zones have keys, signatures and NSEC records, and unbound is
	// given their key as trust anchor: their answers are secure.
	Signed Security = iota
	// Unsigned zones have no DNSSEC at all: their answers are insecure.
	Unsigned
)

// Zone is one zone of a Server. Its methods may be called while it serves.
type Zone struct {
	origin   string
	security Security
	ksk, zsk *dns.DNSKEY
	kskKey   crypto.Signer
	zskKey   crypto.Signer

	mu       sync.Mutex
	records  []dns.RR
	corrupt  map[string]bool // owner names whose signatures are broken
	snapshot *zoneData       // nil when records changed since it was built
}

// newZone creates a zone with its SOA and NS records and, when signed, its
// keys (ECDSA P-256 with SHA-256, algorithm 13).
func newZone(origin string, security Security) (*Zone, error) {
	origin = canonical(origin)
	z := &Zone{origin: origin, security: security, corrupt: make(map[string]bool)}
	z.records = []dns.RR{
		&dns.SOA{Hdr: header(origin, dns.TypeSOA), Ns: "ns." + origin, Mbox: "hostmaster." + origin,
			Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: TTL},
		&dns.NS{Hdr: header(origin, dns.TypeNS), Ns: "ns." + origin},
		&dns.A{Hdr: header("ns."+origin, dns.TypeA), A: net.IPv4(127, 0, 0, 1).To4()},
	}
	if security != Signed {
		return z, nil
	}
	var err error
	if z.ksk, z.kskKey, err = newKey(origin, dns.SEP|dns.ZONE); err != nil {
		return nil, err
	}
	if z.zsk, z.zskKey, err = newKey(origin, dns.ZONE); err != nil {
		return nil, err
	}
	z.records = append(z.records, z.ksk, z.zsk)
	return z, nil
}

func newKey(origin string, flags uint16) (*dns.DNSKEY, crypto.Signer, error) {
	key := &dns.DNSKEY{Hdr: header(origin, dns.TypeDNSKEY), Flags: flags, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	priv, err := key.Generate(256)
	if err != nil {
		return nil, nil, fmt.Errorf("dnssectest: generating a key for %s: %w", origin, err)
	}
	return key, priv.(crypto.Signer), nil
}

// Origin is the zone's name, fully qualified.
func (z *Zone) Origin() string { return z.origin }

// TrustAnchor is the DS record of the zone's key-signing key, as a
// resolver is given it; "" for an unsigned zone.
func (z *Zone) TrustAnchor() string {
	if z.ksk == nil {
		return ""
	}
	return strings.Join(strings.Fields(z.ksk.ToDS(dns.SHA256).String()), " ")
}

// Add adds records given in zone file syntax with absolute names, e.g.
// "mx.example.test. 30 IN A 127.0.0.1". It panics on a malformed record or
// one outside the zone, mistakes in the test itself.
func (z *Zone) Add(records ...string) {
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil || rr == nil {
			panic(fmt.Sprintf("dnssectest: record %q: %v", s, err))
		}
		z.addRR(rr)
	}
}

func (z *Zone) addRR(rr dns.RR) {
	rr.Header().Name = canonical(rr.Header().Name)
	if !dns.IsSubDomain(z.origin, rr.Header().Name) {
		panic(fmt.Sprintf("dnssectest: %s is not in zone %s", rr.Header().Name, z.origin))
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.records = append(z.records, rr)
	z.snapshot = nil
}

// AddMX adds an MX record of domain.
func (z *Zone) AddMX(domain string, pref uint16, host string) {
	z.addRR(&dns.MX{Hdr: header(domain, dns.TypeMX), Preference: pref, Mx: canonical(host)})
}

// AddA adds address records of host: A or AAAA by the address's family. It
// panics on a malformed address.
func (z *Zone) AddA(host string, ips ...string) {
	for _, s := range ips {
		ip := net.ParseIP(s)
		switch {
		case ip == nil:
			panic("dnssectest: not an IP address: " + s)
		case ip.To4() != nil:
			z.addRR(&dns.A{Hdr: header(host, dns.TypeA), A: ip.To4()})
		default:
			z.addRR(&dns.AAAA{Hdr: header(host, dns.TypeAAAA), AAAA: ip})
		}
	}
}

// AddCNAME makes name an alias of target.
func (z *Zone) AddCNAME(name, target string) {
	z.addRR(&dns.CNAME{Hdr: header(name, dns.TypeCNAME), Target: canonical(target)})
}

// AddTLSA adds the TLSA record of cert for SMTP at mxHost, at
// "_25._tcp.<mxHost>".
func (z *Zone) AddTLSA(mxHost string, usage, selector, matchingType uint8, cert *x509.Certificate) {
	rr := &dns.TLSA{Hdr: header("_25._tcp."+canonical(mxHost), dns.TypeTLSA)}
	if err := rr.Sign(int(usage), int(selector), int(matchingType), cert); err != nil {
		panic(fmt.Sprintf("dnssectest: TLSA %d %d %d: %v", usage, selector, matchingType, err))
	}
	z.addRR(rr)
}

// CorruptSignatures breaks every signature over the records at name, as a
// forger without the zone's key would: a validating resolver finds them
// bogus and answers SERVFAIL.
func (z *Zone) CorruptSignatures(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.corrupt[canonical(name)] = true
	z.snapshot = nil
}

// data returns the zone as served now, signing it afresh after a change.
func (z *Zone) data() (*zoneData, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.snapshot == nil {
		d, err := z.build(time.Now())
		if err != nil {
			return nil, err
		}
		z.snapshot = d
	}
	return z.snapshot, nil
}

type rrsetKey struct {
	name   string
	rrtype uint16
}

// zoneData is a zone ready to answer from: its RRsets, their signatures and
// the NSEC chain, in canonical order.
type zoneData struct {
	origin string
	signed bool
	rrsets map[rrsetKey][]dns.RR
	sigs   map[rrsetKey][]dns.RR
	owners []string // canonical order, apex first
	nsec   map[string]*dns.NSEC
}

func (z *Zone) build(now time.Time) (*zoneData, error) {
	d := &zoneData{
		origin: z.origin,
		signed: z.security == Signed,
		rrsets: make(map[rrsetKey][]dns.RR),
		sigs:   make(map[rrsetKey][]dns.RR),
		nsec:   make(map[string]*dns.NSEC),
	}
	types := make(map[string][]uint16)
	for _, rr := range z.records {
		h := rr.Header()
		key := rrsetKey{h.Name, h.Rrtype}
		if len(d.rrsets[key]) == 0 {
			types[h.Name] = append(types[h.Name], h.Rrtype)
		}
		d.rrsets[key] = append(d.rrsets[key], dns.Copy(rr))
	}
	for name := range types {
		d.owners = append(d.owners, name)
	}
	slices.SortFunc(d.owners, compareNames)
	if !d.signed {
		return d, nil
	}
	// RFC 4034 4: each owner's NSEC names the next owner, the last one the
	// apex, and lists the types present, these two included.
	for i, name := range d.owners {
		bitmap := append(slices.Clone(types[name]), dns.TypeRRSIG, dns.TypeNSEC)
		slices.Sort(bitmap)
		nsec := &dns.NSEC{Hdr: header(name, dns.TypeNSEC), NextDomain: d.owners[(i+1)%len(d.owners)], TypeBitMap: bitmap}
		d.nsec[name] = nsec
		d.rrsets[rrsetKey{name, dns.TypeNSEC}] = []dns.RR{nsec}
	}
	for key, rrset := range d.rrsets {
		signer, signerKey := z.zsk, z.zskKey
		if key.rrtype == dns.TypeDNSKEY {
			signer, signerKey = z.ksk, z.kskKey
		}
		sig := &dns.RRSIG{
			Algorithm:  signer.Algorithm,
			Expiration: uint32(now.Add(7 * 24 * time.Hour).Unix()),
			Inception:  uint32(now.Add(-time.Hour).Unix()),
			KeyTag:     signer.KeyTag(),
			SignerName: z.origin,
		}
		if err := sig.Sign(signerKey, rrset); err != nil {
			return nil, fmt.Errorf("dnssectest: signing %s %s: %w", key.name, dns.TypeToString[key.rrtype], err)
		}
		if z.corrupt[key.name] && key.rrtype != dns.TypeDNSKEY {
			b := []byte(sig.Signature)
			// Base64 text: changing one character keeps it well-formed.
			if b[0] == 'A' {
				b[0] = 'B'
			} else {
				b[0] = 'A'
			}
			sig.Signature = string(b)
		}
		d.sigs[key] = []dns.RR{sig}
	}
	return d, nil
}

// compareNames orders names canonically (RFC 4034 6.1): by their labels
// from the right, each compared as lower-case octets.
func compareNames(a, b string) int {
	la, lb := dns.SplitDomainName(strings.ToLower(a)), dns.SplitDomainName(strings.ToLower(b))
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if c := strings.Compare(la[i], lb[j]); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}

func header(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: canonical(name), Rrtype: rrtype, Class: dns.ClassINET, Ttl: TTL}
}

func canonical(name string) string { return dns.Fqdn(strings.ToLower(name)) }
