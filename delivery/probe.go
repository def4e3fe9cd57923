package delivery

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/sealpost/sealpost"
)

// Prober asks a recipient domain's MX hosts about their TLS exactly as
// Client would deliver to them (same resolver, routing, dialler, trusted
// roots and TLS configuration), but sends nothing beyond EHLO, STARTTLS
// and QUIT. Its verdicts come from sealpost.DecideTLS, the decision table
// delivery decides every session with, so the probe and delivery cannot
// disagree.
type Prober struct {
	Client *Client
	// DNSServer ("host:port") answers the TXT and TLSA queries; "" is the
	// first nameserver of /etc/resolv.conf. MX and address records come
	// from Client.Resolver, as for delivery.
	DNSServer string
	// MTASTSPort is the HTTPS port of mta-sts.<domain>; 0 is 443.
	MTASTSPort int
	// StepTimeout bounds each step: a connection, a reply, a handshake, a
	// DNS query, the policy fetch. 0: Client.Timeout, at most 4 seconds.
	StepTimeout time.Duration
	// Deadline bounds the whole probe of a domain; 0: 9 seconds. Hosts,
	// and the versions of each host, are probed at once, so a dead host
	// costs one step timeout, not one per connection.
	Deadline time.Duration
}

const (
	defaultProbeStep     = 4 * time.Second
	defaultProbeDeadline = 9 * time.Second
)

// probeVersions are tried one connection each, oldest first.
var probeVersions = []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13}

func (p *Prober) step() time.Duration {
	if p.StepTimeout > 0 {
		return p.StepTimeout
	}
	return min(p.Client.timeout(), defaultProbeStep)
}

// Probe probes domain. A domain that cannot be probed at all is a report
// with Error set.
func (p *Prober) Probe(ctx context.Context, domain string) (*sealpost.TLSProbe, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if err := checkDomain(domain); err != nil {
		return nil, err
	}
	deadline := p.Deadline
	if deadline <= 0 {
		deadline = defaultProbeDeadline
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()

	rep := &sealpost.TLSProbe{
		Domain: domain, ProbedAt: p.Client.now().UTC().Truncate(time.Second),
		MXHosts: []sealpost.ProbedHost{}, Verdicts: []sealpost.ProbeVerdict{},
		Policies: sealpost.PublishedPolicies{TLSRPT: sealpost.TLSRPTFinding{RUA: []string{}}},
	}
	hosts, fail := p.Client.route(ctx, domain)
	if fail != nil {
		rep.Error = fail.Response
		return rep, nil
	}
	rep.ImplicitMX = hosts[0].implicit

	// Recipients' policy sources, as delivery would apply them.
	sts, stsFail := p.Client.domainMTASTS(ctx, domain)

	probed := make([]hostProbe, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() {
			probed[i] = p.probeHost(ctx, h)
			p.applySources(ctx, &probed[i], domain, h, sts, stsFail)
		})
	}
	wg.Go(func() { rep.Policies = p.policies(ctx, domain) })
	wg.Wait()

	if rep.ImplicitMX && probed[0].notFound {
		rep.Error = fmt.Sprintf("domain %s does not exist: it has no MX and no address records", domain)
		return rep, nil
	}
	for _, h := range probed {
		rep.MXHosts = append(rep.MXHosts, h.report)
	}
	for _, policy := range sealpost.ProbePolicies() {
		rep.Verdicts = append(rep.Verdicts, verdict(policy, probed))
	}
	return rep, nil
}

// hostProbe is one host's report and what the verdicts need of it.
type hostProbe struct {
	report   sealpost.ProbedHost
	notFound bool // the host name does not exist
	// disallowed: every address is one this server may not connect to.
	disallowed bool
	reached    bool // a session got past the greeting and EHLO (or HELO)
	ehlo       bool // the server speaks ESMTP
	refused    bool // it answered STARTTLS with something but 220
	versions   []uint16
	cert       certCheck // at the newest version
	// inconclusive are the versions whose try failed for want of an
	// answer (a timeout, a lost connection), not by the server's choice.
	inconclusive []uint16
	chain        []*x509.Certificate // presented at the newest version

	// sources are what recipients' policy sources beyond the account add
	// (hostPolicy's layers after the first); excluded: MTA-STS in enforce
	// mode does not list the host; unknown: a source cannot be known now.
	sources  []policyLayer
	excluded bool
	unknown  bool
}

// applySources records what MTA-STS and DANE require of host, as
// policyForHost gives it to delivery, and matches the host's certificate
// against its TLSA records when DANE applies.
func (p *Prober) applySources(ctx context.Context, h *hostProbe, domain string, host mxHost, sts *sealpost.MTASTSPolicy, stsFail *RecipientResult) {
	h.report.Requirements = []sealpost.SourceRequirement{}
	if stsFail != nil {
		h.unknown = true
		h.report.Requirements = append(h.report.Requirements, sealpost.SourceRequirement{Source: sealpost.PolicySourceMTASTS, Error: stsFail.Response})
		return
	}
	pol, out := p.Client.policyForHost(ctx, accountPolicy(sealpost.DefaultEnforcedTLS()), sts, domain, host)
	h.sources = pol.layers[1:]
	for _, l := range h.sources {
		r := sealpost.SourceRequirement{Source: l.source, Requirement: &l.req}
		if l.source == sealpost.PolicySourceMTASTS {
			r.Mode = pol.mtasts
		}
		if out != nil && out.kind == outcomePolicy {
			h.excluded = true
			r.Requirement, r.Excluded = nil, true
		}
		h.report.Requirements = append(h.report.Requirements, r)
	}
	switch {
	case out != nil && out.kind == outcomeTransient:
		h.unknown = true
		h.report.Requirements = append(h.report.Requirements, sealpost.SourceRequirement{Source: sealpost.PolicySourceDANE, Error: out.result.Response})
	case pol.testing != nil:
		h.report.Requirements = append(h.report.Requirements, sealpost.SourceRequirement{Source: sealpost.PolicySourceMTASTS, Mode: pol.mtasts})
	}
	if pol.dane != nil && len(h.chain) > 0 {
		h.cert.daneDone = true
		h.cert.daneErr = p.Client.verifyDANE()(h.chain, pol.dane.Records, pol.dane.Names, p.Client.now())
	}
}

// requirement is what delivery under policy would require of h.
func (h hostProbe) requirement(policy sealpost.EnforcedTLS) sealpost.TLSRequirement {
	req := sealpost.RequirementOf(policy)
	for _, l := range h.sources {
		req = req.Raise(l.req)
	}
	return req
}

// unsettledUnder reports whether a session under policy might have ended
// at one of the inconclusive versions: delivery would take that failure
// as transient, and so must the verdict.
func (h hostProbe) unsettledUnder(policy sealpost.TLSRequirement) bool {
	if !policy.Mandatory() || len(h.inconclusive) == 0 {
		return false
	}
	worst := slices.Max(h.inconclusive)
	return worst >= uint16(policy.Version) && (len(h.versions) == 0 || worst > slices.Max(h.versions))
}

// seenUnder is what a delivery session under policy would find at h:
// crypto/tls offers the policy's version up to 1.3, and the server picks
// the newest it accepts; a server accepting none of them ends the
// handshake before any certificate is checked.
func (h hostProbe) seenUnder(policy sealpost.TLSRequirement) sealpost.TLSSeen {
	offered := h.ehlo && h.report.STARTTLS
	switch {
	case !offered:
		return sealpost.TLSSeen{Step: sealpost.TLSNotOffered}
	case h.refused:
		return sealpost.TLSSeen{Step: sealpost.TLSRefused}
	case len(h.versions) == 0:
		return sealpost.TLSSeen{Step: sealpost.TLSFailed}
	}
	newest := slices.Max(h.versions)
	if policy.Mandatory() && newest < uint16(policy.Version) {
		return sealpost.TLSSeen{Step: sealpost.TLSFailed}
	}
	cs := &tls.ConnectionState{HandshakeComplete: true, Version: newest}
	return seenOf(sealpost.TLSEstablished, cs, h.cert, false)
}

// verdict is what Client.Deliver under policy would come to with these
// hosts, tried in order: the first reachable host that meets the policy
// takes the mail; if none does, the mail is blocked when every host was
// reached or refused by the destination rules, bounced when every host was
// refused, deferred otherwise. An opportunistic session that cannot
// negotiate TLS goes on in plaintext, so any reachable host takes it.
func verdict(policy sealpost.EnforcedTLS, hosts []hostProbe) sealpost.ProbeVerdict {
	v := sealpost.ProbeVerdict{Policy: policy}
	unreached, disallowed := false, false
	lastFailure := ""
	for _, h := range hosts {
		if h.disallowed {
			disallowed = true
			continue
		}
		if h.excluded {
			// Never connected to: as a host that fails the policy.
			lastFailure = sealpost.ResultValidationFailure
			continue
		}
		req := h.requirement(policy)
		if !h.reached || h.unknown || h.unsettledUnder(req) {
			unreached = true
			continue
		}
		d := sealpost.DecideTLS(req, h.seenUnder(req))
		if d.Action == sealpost.TLSProceed || d.Action == sealpost.TLSRetryPlain {
			v.Delivered = true
			v.Outcome = sealpost.ProbeDelivered
			return v
		}
		if d.Action == sealpost.TLSDefer {
			unreached = true
			continue
		}
		lastFailure = d.ResultType
	}
	if !unreached && lastFailure == "" && disallowed {
		v.Outcome = sealpost.ProbeBounced
		return v
	}
	if unreached || lastFailure == "" {
		v.Outcome = sealpost.ProbeDeferred
		return v
	}
	v.Outcome = sealpost.ProbeBlocked
	v.ResultType = lastFailure
	return v
}

func (p *Prober) probeHost(ctx context.Context, host mxHost) (h hostProbe) {
	h = hostProbe{report: sealpost.ProbedHost{Host: host.name, Preference: host.pref, Addresses: []string{}, TLSVersions: []string{}, Errors: []sealpost.ProbeFailed{}}}
	fail := func(step string, err error) {
		h.report.Errors = append(h.report.Errors, sealpost.ProbeFailed{Step: step, Error: err.Error()})
	}
	var (
		tlsaDone  sync.WaitGroup
		tlsaCount int
		tlsaErr   error
	)
	tlsaDone.Go(func() { tlsaCount, tlsaErr = p.countTLSA(ctx, host.name) })
	defer func() {
		tlsaDone.Wait()
		h.report.TLSA = tlsaCount > 0
		if tlsaErr != nil {
			fail("tlsa", tlsaErr)
		}
	}()

	actx, cancel := context.WithTimeout(ctx, p.step())
	addrs, err := p.Client.Resolver.LookupIPAddr(actx, host.name)
	cancel()
	if err == nil && len(addrs) == 0 {
		err = &net.DNSError{Err: "no address records", Name: host.name, IsNotFound: true}
	}
	if err != nil {
		h.notFound = sealpost.IsDNSNotFound(err)
		fail("address", err)
		return h
	}
	// Addresses the destination rules refuse stay out of the report, as
	// out of delivery's messages: where a tenant's name points inside the
	// operator's network is not the tenant's to learn.
	addrs = slices.DeleteFunc(addrs, func(a net.IPAddr) bool { return !p.Client.Destinations.AllowsIP(a.IP) })
	if len(addrs) == 0 {
		h.disallowed = true
		fail("address", errors.New("no address of this host is one this server may connect to"))
		return h
	}
	for _, a := range addrs {
		h.report.Addresses = append(h.report.Addresses, a.IP.String())
	}
	if len(addrs) > maxAddrsPerHost {
		addrs = addrs[:maxAddrsPerHost]
	}

	// The first address that takes a connection is the host's, as for
	// delivery; every later connection goes to it too.
	var first *probeSession
	for _, a := range addrs {
		s, err := p.open(ctx, host.name, a)
		if err != nil {
			fail("connect", fmt.Errorf("%s: %w", a.IP, err))
			continue
		}
		first = s
		h.report.Address = a.IP.String()
		break
	}
	if first == nil {
		return h
	}
	addr := net.IPAddr{IP: net.ParseIP(h.report.Address)}
	step, err := first.greet()
	first.close()
	if err != nil {
		fail(step, err)
		return h
	}
	h.reached = true
	h.ehlo = first.ehlo
	_, h.report.STARTTLS = first.ext["STARTTLS"]
	if !first.ehlo {
		fail("ehlo", errors.New(first.ehloReply))
	}
	if !h.ehlo || !h.report.STARTTLS {
		return h
	}

	tries := make([]versionTry, len(probeVersions))
	var wg sync.WaitGroup
	for i, v := range probeVersions {
		wg.Go(func() { tries[i] = p.tryVersion(ctx, host.name, addr, v) })
	}
	wg.Wait()
	for _, t := range tries {
		if t.refused {
			h.refused = true
		}
		if t.err != nil {
			fail(t.step, t.err)
			if t.inconclusive {
				h.inconclusive = append(h.inconclusive, t.version)
			}
			continue
		}
		h.versions = append(h.versions, t.version)
		h.report.TLSVersions = append(h.report.TLSVersions, versionName(t.version))
		// tries are oldest first: the last success is the newest.
		h.report.Cipher = tls.CipherSuiteName(t.cs.CipherSuite)
		h.cert = t.check
		h.chain = t.cs.PeerCertificates
		h.report.Certificate = describeCert(t.cs, t.check)
	}
	return h
}

func describeCert(cs tls.ConnectionState, check certCheck) *sealpost.ProbedCertificate {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	leaf := cs.PeerCertificates[0]
	c := &sealpost.ProbedCertificate{
		SubjectNames: append([]string{}, leaf.DNSNames...),
		Issuer:       leaf.Issuer.String(),
		NotAfter:     leaf.NotAfter.UTC(),
		Valid:        check.done && check.err == nil,
	}
	if len(c.SubjectNames) == 0 && leaf.Subject.CommonName != "" {
		c.SubjectNames = []string{leaf.Subject.CommonName}
	}
	if check.err != nil {
		c.Error = check.err.Error()
		c.ResultType = certResultType(check.err)
	}
	return c
}

// versionTry is one connection negotiating TLS at exactly one version.
type versionTry struct {
	version uint16
	refused bool
	cs      tls.ConnectionState
	check   certCheck
	step    string // where err happened
	err     error
	// inconclusive: err is no answer (a timeout, a lost connection)
	// rather than the server refusing the version.
	inconclusive bool
}

func (p *Prober) tryVersion(ctx context.Context, host string, addr net.IPAddr, v uint16) versionTry {
	t := versionTry{version: v, step: "tls" + versionName(v)}
	s, err := p.open(ctx, host, addr)
	if err != nil {
		t.err, t.inconclusive = fmt.Errorf("connect: %w", err), true
		return t
	}
	defer s.close()
	if step, err := s.greet(); err != nil {
		t.err, t.inconclusive = fmt.Errorf("%s: %w", step, err), true
		return t
	}
	rep, err := s.cmd(p.step(), "STARTTLS")
	if err != nil {
		t.err, t.inconclusive = fmt.Errorf("STARTTLS: %w", err), true
		return t
	}
	if rep.Code != 220 {
		t.refused = true
		t.err = fmt.Errorf("server refused STARTTLS: %s", rep.String())
		s.quit()
		return t
	}
	// Delivery's own configuration under a mandatory policy at v (its
	// cipher suites, which differ from opportunistic ones), pinned to v: a
	// version counts as accepted when a mandatory session could use it,
	// which is what the verdicts need. The certificate is only recorded.
	cfg := tlsConfig(accountPolicy(sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLSVersion(v)}), host, p.Client.RootCAs, p.Client.now, p.Client.verifyDANE(), &t.check)
	cfg.MinVersion, cfg.MaxVersion = v, v
	tc := tls.Client(s.raw, cfg)
	s.setDeadline(p.step())
	if err := tc.HandshakeContext(s.ctx); err != nil {
		// As in delivery: our deadline ending the handshake says nothing
		// about the server's TLS.
		t.err, t.inconclusive = err, s.ctx.Err() != nil || isTimeout(err)
		return t
	}
	t.cs = tc.ConnectionState()
	s.conn = tc
	s.r = bufio.NewReader(tc)
	s.w = textproto.NewWriter(bufio.NewWriter(tc))
	s.quit()
	return t
}

// probeSession is a delivery session that never gets to a transaction:
// its commands go through session.cmd like every other SMTP command.
type probeSession struct {
	*session
	step      time.Duration
	stop      func() bool
	ehlo      bool
	ehloReply string
}

func (p *Prober) open(ctx context.Context, host string, addr net.IPAddr) (*probeSession, error) {
	dctx, cancel := context.WithTimeout(ctx, p.step())
	conn, err := p.Client.dial(dctx, addr)
	cancel()
	if err != nil {
		return nil, err
	}
	s := &session{
		c: p.Client, ctx: ctx, log: p.Client.logger(), pol: accountPolicy(sealpost.DefaultEnforcedTLS()), host: host,
		raw: conn, conn: conn,
		r: bufio.NewReader(conn),
		w: textproto.NewWriter(bufio.NewWriter(conn)),
	}
	return &probeSession{session: s, step: p.step(), stop: context.AfterFunc(ctx, func() { conn.Close() })}, nil
}

func (s *probeSession) close() {
	s.stop()
	s.conn.Close()
}

// greet reads the greeting and says EHLO, or HELO when the server refuses
// EHLO as delivery does. It reports the step that failed.
func (s *probeSession) greet() (string, error) {
	greeting, err := s.read(s.step)
	if err != nil {
		return "greeting", err
	}
	if greeting.Class() != 2 {
		s.quit()
		return "greeting", errors.New(greeting.String())
	}
	rep, err := s.cmd(s.step, "EHLO "+s.c.helo())
	if err != nil {
		return "ehlo", err
	}
	switch rep.Class() {
	case 2:
		s.ehlo = true
		s.ext = parseEHLO(rep)
		return "", nil
	case 5:
		s.ehloReply = rep.String()
		rep, err = s.cmd(s.step, "HELO "+s.c.helo())
		if err != nil {
			return "helo", err
		}
		if rep.Class() == 2 {
			s.ext = map[string]string{}
			return "", nil
		}
	}
	s.quit()
	return "ehlo", errors.New(rep.String())
}

// countTLSA returns how many TLSA records _25._tcp.<host> has.
func (p *Prober) countTLSA(ctx context.Context, host string) (int, error) {
	in, err := p.query(ctx, "_25._tcp."+host, dns.TypeTLSA)
	if err != nil {
		if sealpost.IsDNSNotFound(err) {
			return 0, nil
		}
		return 0, err
	}
	n := 0
	for _, rr := range in.Answer {
		if _, ok := rr.(*dns.TLSA); ok {
			n++
		}
	}
	return n, nil
}

// txt returns name's TXT records, each one's strings joined; none for a
// name that does not exist.
func (p *Prober) txt(ctx context.Context, name string) ([]string, error) {
	in, err := p.query(ctx, name, dns.TypeTXT)
	if err != nil {
		if sealpost.IsDNSNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return txtRecords(in), nil
}

// query asks the probe's DNS server one question, as delivery's own
// resolver would.
func (p *Prober) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	server := p.DNSServer
	if server == "" {
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(conf.Servers) == 0 {
			return nil, fmt.Errorf("no DNS server to ask for %s records: %v", dns.TypeToString[qtype], err)
		}
		server = net.JoinHostPort(conf.Servers[0], conf.Port)
	}
	qctx, cancel := context.WithTimeout(ctx, p.step())
	defer cancel()
	return (&dnsResolver{server: server}).exchange(qctx, name, qtype)
}
