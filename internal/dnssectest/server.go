package dnssectest

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Server is an authoritative DNS server for its zones, on 127.0.0.1 with the
// same port for UDP and TCP. Names outside its zones are REFUSED.
type Server struct {
	addr    string
	queries atomic.Int64

	mu    sync.Mutex
	zones []*Zone
}

// NewServer starts a server with no zones; it stops when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	s.addr = ServeDNS(t, dns.HandlerFunc(s.serve))
	return s
}

// ServeDNS serves handler on 127.0.0.1, UDP and TCP on the same port (so one
// "host:port" reaches both, as resolvers expect), until the test ends, and
// returns that address.
func ServeDNS(t testing.TB, handler dns.Handler) string {
	t.Helper()
	pc, ln := listenUDPAndTCP(t)
	servers := []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}}
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() {
			// The error after Shutdown is the expected "server closed".
			_ = srv.ActivateAndServe()
		}()
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatalf("dnssectest: DNS server did not start")
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, srv := range servers {
			_ = srv.ShutdownContext(ctx)
		}
	})
	return ln.Addr().String()
}

// listenUDPAndTCP finds a port free for both protocols on 127.0.0.1.
func listenUDPAndTCP(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	var lastErr error
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("dnssectest: TCP listen: %v", err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			return pc, ln
		}
		ln.Close()
		lastErr = err
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	t.Fatalf("dnssectest: no port free for both UDP and TCP: %v", lastErr)
	return nil, nil
}

// Addr is the server's "127.0.0.1:port".
func (s *Server) Addr() string { return s.addr }

// Queries is how many queries the server has answered.
func (s *Server) Queries() int64 { return s.queries.Load() }

// AddZone adds an empty zone (SOA, NS and, when signed, its keys).
func (s *Server) AddZone(t testing.TB, origin string, security Security) *Zone {
	t.Helper()
	z, err := newZone(origin, security)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zones = append(s.zones, z)
	return z
}

// zoneList returns the zones in the order they were added.
func (s *Server) zoneList() []*Zone {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Zone(nil), s.zones...)
}

// zoneFor returns the zone name is in, or nil.
func (s *Server) zoneFor(name string) *Zone {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *Zone
	for _, z := range s.zones {
		if dns.IsSubDomain(z.origin, name) && (best == nil || len(z.origin) > len(best.origin)) {
			best = z
		}
	}
	return best
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	resp := new(dns.Msg)
	resp.SetReply(req)
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	q.Name = canonical(q.Name)
	opt := req.IsEdns0()
	dnssecOK := opt != nil && opt.Do()
	z := s.zoneFor(q.Name)
	var data *zoneData
	var err error
	if z != nil {
		data, err = z.data()
	}
	switch {
	case z == nil:
		resp.Rcode = dns.RcodeRefused
	case err != nil:
		resp.Rcode = dns.RcodeServerFailure
	default:
		resp.Authoritative = true
		data.answer(resp, q, dnssecOK)
	}
	size := dns.MinMsgSize
	if opt != nil {
		resp.SetEdns0(max(opt.UDPSize(), dns.MinMsgSize), dnssecOK)
		size = int(max(opt.UDPSize(), dns.MinMsgSize))
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		resp.Truncate(size)
	}
	_ = w.WriteMsg(resp)
}

// answer fills resp for q: the RRset, an alias, or a denial of existence
// with its NSEC proof.
func (d *zoneData) answer(resp *dns.Msg, q dns.Question, dnssecOK bool) {
	withSigs := func(rrs []dns.RR, key rrsetKey) []dns.RR {
		if dnssecOK && d.signed {
			rrs = append(rrs, d.sigs[key]...)
		}
		return rrs
	}
	if rrs, ok := d.rrsets[rrsetKey{q.Name, q.Qtype}]; ok {
		resp.Answer = withSigs(append([]dns.RR(nil), rrs...), rrsetKey{q.Name, q.Qtype})
		return
	}
	if rrs, ok := d.rrsets[rrsetKey{q.Name, dns.TypeCNAME}]; ok {
		// The resolver follows the alias itself.
		resp.Answer = withSigs(append([]dns.RR(nil), rrs...), rrsetKey{q.Name, dns.TypeCNAME})
		return
	}
	soaKey := rrsetKey{d.origin, dns.TypeSOA}
	resp.Ns = withSigs(append([]dns.RR(nil), d.rrsets[soaKey]...), soaKey)
	var proofs []string // owners of the NSEC records that prove the denial
	if d.exists(q.Name) {
		// NODATA: the name's own NSEC lists its types; an empty
		// non-terminal's is the one covering it.
		proofs = []string{d.covering(q.Name)}
	} else {
		resp.Rcode = dns.RcodeNameError
		// NXDOMAIN: the name is covered, and so is the wildcard that could
		// have made it exist (RFC 4035 3.1.3.2).
		proofs = []string{d.covering(q.Name), d.covering("*." + d.closestEncloser(q.Name))}
		if proofs[1] == proofs[0] {
			proofs = proofs[:1]
		}
	}
	if dnssecOK && d.signed {
		for _, owner := range proofs {
			key := rrsetKey{owner, dns.TypeNSEC}
			resp.Ns = append(resp.Ns, withSigs([]dns.RR{d.nsec[owner]}, key)...)
		}
	}
}

// exists reports whether name owns records or is an empty non-terminal
// above names that do.
func (d *zoneData) exists(name string) bool {
	for _, owner := range d.owners {
		if dns.IsSubDomain(name, owner) {
			return true
		}
	}
	return false
}

// covering returns the owner whose NSEC covers or matches name: the last
// owner not after it in canonical order.
func (d *zoneData) covering(name string) string {
	found := d.owners[0]
	for _, owner := range d.owners {
		if compareNames(owner, name) > 0 {
			break
		}
		found = owner
	}
	return found
}

// closestEncloser is the longest existing ancestor of name.
func (d *zoneData) closestEncloser(name string) string {
	for {
		i, end := dns.NextLabel(name, 0)
		if end || name == d.origin {
			return d.origin
		}
		name = name[i:]
		if d.exists(name) {
			return name
		}
	}
}
