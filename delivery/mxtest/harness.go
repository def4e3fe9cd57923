package mxtest

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Harness is one test's mail world: a DNS server, a CA, and any number of
// fake MX servers and proxies, all on one TCP port, each on its own
// loopback address inside a /24 of 127.0.0.0/8 picked at random so that
// parallel tests (and parallel test binaries) do not collide. Its methods
// may be called from any goroutine, but failures are reported with the
// testing.TB given to New, so servers are added from that test.
type Harness struct {
	t    testing.TB
	ca   *CA
	dns  *DNS
	port int
	net  [3]byte // 127.x.y

	mu       sync.Mutex
	reserved net.Listener // holds the port until the first server takes it
	nextHost int
	domains  map[string][]MX
	caFile   string
}

// New starts the harness's DNS server and picks its port; everything stops
// when the test ends.
func New(t testing.TB) *Harness {
	t.Helper()
	h := &Harness{t: t, ca: NewCA(t), dns: NewDNS(t), domains: make(map[string][]MX), nextHost: 1}
	var lastErr error
	for range 20 {
		h.net = [3]byte{127, byte(1 + randN(t, 254)), byte(randN(t, 256))}
		ln, err := net.Listen("tcp", h.ip(1)+":0")
		if err != nil {
			lastErr = err
			continue
		}
		h.reserved = ln
		h.port = ln.Addr().(*net.TCPAddr).Port
		t.Cleanup(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.reserved != nil {
				h.reserved.Close()
			}
		})
		return h
	}
	t.Fatalf("mxtest: no loopback address to listen on: %v", lastErr)
	return nil
}

func randN(t testing.TB, n int64) int64 {
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		t.Fatalf("mxtest: random: %v", err)
	}
	return v.Int64()
}

func (h *Harness) ip(host int) string {
	return fmt.Sprintf("%d.%d.%d.%d", h.net[0], h.net[1], h.net[2], host)
}

// Port is the one TCP port every server and proxy of the harness listens
// on: the client's SMTP port (sealpost serve --smtp-port).
func (h *Harness) Port() int { return h.port }

// DNSAddr is the DNS server's "127.0.0.1:port" (sealpost serve
// --dns-server, delivery.NewResolver).
func (h *Harness) DNSAddr() string { return h.dns.Addr() }

// DNS gives direct access to the records, for null MX, SERVFAIL and the like.
func (h *Harness) DNS() *DNS { return h.dns }

// CA is the authority that issues the harness's valid certificates.
func (h *Harness) CA() *CA { return h.ca }

// CertPool trusts the harness CA and nothing else.
func (h *Harness) CertPool() *x509.CertPool { return h.ca.CertPool() }

// CAFile is the CA's PEM file (sealpost serve --tls-ca-file), written once.
func (h *Harness) CAFile() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.caFile == "" {
		h.caFile = h.ca.WriteFile(h.t)
	}
	return h.caFile
}

// Listen returns a listener on a fresh loopback address of the harness and
// its shared port, for servers a test writes itself.
func (h *Harness) Listen() net.Listener {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reserved != nil {
		ln := h.reserved
		h.reserved = nil
		h.nextHost = 2
		return ln
	}
	var lastErr error
	for h.nextHost < 255 {
		addr := net.JoinHostPort(h.ip(h.nextHost), fmt.Sprint(h.port))
		h.nextHost++
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return ln
		}
		lastErr = err
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	h.t.Fatalf("mxtest: no free loopback address for port %d: %v", h.port, lastErr)
	return nil
}

// AddMX starts a fake MX behaving as b, names it mxN.domain (N counting the
// domain's MX hosts from 1), publishes its A record and adds it to domain's
// MX records with preference pref.
func (h *Harness) AddMX(domain string, pref uint16, b Behavior) *Server {
	h.t.Helper()
	host := h.nextMXName(domain)
	s := h.AddServer(host, b)
	h.addMXRecord(domain, pref, host)
	return s
}

// AddServer starts a fake MX behaving as b for host and publishes its A
// record, without any MX record: give it the domain's own name to test the
// implicit MX of RFC 5321 section 5.1.
func (h *Harness) AddServer(host string, b Behavior) *Server {
	h.t.Helper()
	b = h.withCertificate(host, b)
	s := serve(h.t, h.Listen(), host, b)
	h.dns.SetA(host, s.IP())
	return s
}

// AddProxiedMX starts a fake MX behaving as b for mxN.domain, and in front
// of it a proxy in mode: DNS sends clients to the proxy, as an on-path
// attacker would arrange. The backend keeps its certificate for mxN.domain;
// a terminating proxy gets its own from the harness CA (see ProxyMode).
func (h *Harness) AddProxiedMX(domain string, pref uint16, b Behavior, mode ProxyMode) (*Proxy, *Server) {
	h.t.Helper()
	host := h.nextMXName(domain)
	b = h.withCertificate(host, b)
	s := serve(h.t, h.Listen(), host, b)
	p := h.startProxy(host, s.Addr(), mode)
	h.dns.SetA(host, p.IP())
	h.addMXRecord(domain, pref, host)
	return p, s
}

func (h *Harness) nextMXName(domain string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	n := len(h.domains[domain]) + 1
	// Reserve the slot now so that concurrent AddMX calls get distinct names.
	h.domains[domain] = append(h.domains[domain], MX{})
	return fmt.Sprintf("mx%d.%s", n, domain)
}

func (h *Harness) addMXRecord(domain string, pref uint16, host string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	records := h.domains[domain]
	for i := range records {
		if records[i].Host == "" {
			records[i] = MX{Pref: pref, Host: host}
			break
		}
	}
	var published []MX
	for _, r := range records {
		if r.Host != "" {
			published = append(published, r)
		}
	}
	h.dns.SetMX(domain, published...)
}

func (h *Harness) withCertificate(host string, b Behavior) Behavior {
	if b.Certificate != nil || b.STARTTLS != OfferSTARTTLS {
		return b
	}
	var cert tls.Certificate
	switch b.Cert {
	case CertValid:
		cert = h.ca.Issue(h.t, Options{DNSNames: []string{host}})
	case CertSelfSigned:
		cert = SelfSigned(h.t, host)
	case CertWrongName:
		cert = h.ca.Issue(h.t, Options{DNSNames: []string{"wrong-host.mxtest.invalid"}})
	case CertExpired:
		now := time.Now()
		cert = h.ca.Issue(h.t, Options{DNSNames: []string{host}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
	default:
		h.t.Fatalf("mxtest: unknown CertKind %d", b.Cert)
	}
	b.Certificate = &cert
	return b
}
