// Package delivery sends queued mail to the recipients' MX hosts over SMTP
// and applies the sending account's Enforced TLS policy to every session.
package delivery

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sealpost/sealpost"
)

// Client delivers mail under an Enforced TLS policy.
//
// With Reuse set, a session that delivered cleanly is kept open for the
// next delivery to the same MX host and address under the very same policy
// and settings (poolKey): a connection opened under one policy never
// carries a message under another, stricter or weaker. Without it, every
// Deliver opens its own connections and closes them before it returns.
// Close ends the sessions kept open.
type Client struct {
	Resolver     Resolver
	Port         int            // 25 when zero
	HeloHostname string         // "localhost" when empty
	RootCAs      *x509.CertPool // nil: the system roots
	// Timeout bounds connecting and each command's reply; 60s when zero.
	// When zero, the reply to the end of the message data gets RFC 5321's
	// 10 minutes instead; ctx's deadline bounds everything.
	Timeout   time.Duration
	LocalAddr net.Addr // optional source address
	// Destinations are the addresses MX hosts may be reached at; the zero
	// value allows public unicast addresses only. A host whose addresses
	// are all refused is skipped; when no host is left, the mail bounces.
	Destinations sealpost.Destinations
	Logger       *slog.Logger     // nil: discard
	Now          func() time.Time // for certificate validity; nil: time.Now
	Reuse        ReuseLimits      // zero: no session is reused
	// MTASTSPort is the HTTPS port of mta-sts.<domain> for MTA-STS policy
	// fetches; 0 is 443, the only port RFC 8461 knows. Tests change it.
	MTASTSPort int
	// VerifyDANE matches a DANE host's certificate chain against its TLSA
	// records; nil: sealpost.VerifyDANE.
	VerifyDANE func(chain []*x509.Certificate, records []sealpost.TLSARecord, names []string, now time.Time) error
	// MTASTS gives recipient domains' MTA-STS policies; nil: MTA-STS is
	// off. A policy in enforce mode raises the requirement on the MX
	// hosts it lists and excludes the others; one in testing mode only
	// has its would-be failures recorded.
	MTASTS MTASTSSource
	// DANE gives MX hosts' DANE requirements; nil: DANE is off. Usable
	// TLSA records make TLS and a matching certificate mandatory for
	// their host, and replace MTA-STS for it.
	DANE DANESource

	poolOnce sync.Once
	pool     *sessionPool
}

// Envelope is one SMTP transaction's worth of mail.
type Envelope struct {
	From       string   // MAIL FROM
	Domain     string   // the recipients' domain
	Recipients []string // all at Domain; delivered in ONE transaction (one MAIL, several RCPT, one DATA)
	Data       []byte   // complete RFC 5322 message, CRLF line ends; dot-stuffed on the wire
	// DomainPolicy is the sending account's own policy for Domain, nil
	// when it has none; it can only raise the account's setting.
	DomainPolicy *sealpost.EnforcedTLS
	// Attempt counts the attempts made before this one (0: the first).
	// A failure only MTA-STS causes is never blocked on the first.
	Attempt int
	// TLSReport: the mail is a TLS report, which RFC 8460 3 has delivered
	// despite any TLS failure: recipients' MTA-STS and DANE policies are
	// not applied to it (nor, by the runner, the account's).
	TLSReport bool
}

// Status is a recipient's outcome of one attempt.
type Status int

const (
	Delivered Status = iota + 1 // the server accepted the message for the recipient
	Deferred                    // a transient failure: try again later
	Bounced                     // a permanent failure
	Blocked                     // no MX host met the Enforced TLS policy
)

func (s Status) String() string {
	switch s {
	case Delivered:
		return "delivered"
	case Deferred:
		return "deferred"
	case Bounced:
		return "bounced"
	case Blocked:
		return "blocked"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// RecipientResult is one recipient's outcome.
type RecipientResult struct {
	Status Status
	// Response is the server's reply as text, e.g. "250 2.0.0 Ok: queued as
	// X", or a description for failures without a reply.
	Response string
	// EnhancedStatus is the RFC 3463 code: the server's, "class.0.0" when it
	// gave none, "5.7.10" for Blocked.
	EnhancedStatus string
}

// Result is the outcome of one delivery attempt.
type Result struct {
	Recipients []RecipientResult // index-aligned with Envelope.Recipients
	// TLS holds the facts of the session the outcome came from: the
	// delivering session; the one that got the 5xx; for Blocked the last MX
	// host tried, with ResultType set; for Deferred the last attempt.
	TLS sealpost.TLSFacts
	// Hosts are the MX hosts the attempt reached (a session got as far as
	// the server's EHLO reply), in the order tried, with what each showed.
	Hosts []HostResult
}

// HostResult is what an attempt learnt of one MX host's TLS.
type HostResult struct {
	Facts sealpost.TLSFacts
	// CertResult is the RFC 8460 type of the certificate's failure when
	// the certificate was checked and not valid.
	CertResult string
	// For TLS reports: the MTA-STS policy and usable TLSA records the host
	// was tried under, and the local address of the session.
	MTASTSPolicy *sealpost.MTASTSPolicy
	TLSARecords  []sealpost.TLSARecord
	SendingIP    string
}

const (
	defaultPort    = 25
	defaultTimeout = 60 * time.Second
	// dataEndTimeout is RFC 5321's (4.5.3.2.6) wait for the reply to the
	// final dot: servers may filter the whole message before answering.
	dataEndTimeout = 10 * time.Minute
	// maxAddrsPerHost bounds the addresses tried for one MX host; the
	// first one that accepts a connection is the host's only session.
	maxAddrsPerHost = 4
	// maxMXHosts bounds the hosts one attempt tries.
	maxMXHosts = 10
)

// Deliver makes one delivery attempt to env.Domain under policy. It never
// returns without a result for every recipient.
func (c *Client) Deliver(ctx context.Context, policy sealpost.EnforcedTLS, env Envelope) Result {
	res := Result{Recipients: make([]RecipientResult, len(env.Recipients))}
	log := c.logger().With(slog.String("domain", env.Domain), slog.Bool("mandatory_tls", policy.Mandatory()))
	if !policy.Version.Valid() {
		if policy.Mandatory() {
			// The floor cannot be known: fail closed rather than guess a
			// lower one.
			log.Warn("invalid minimum TLS version in a mandatory policy; deferring", slog.Any("version", uint16(policy.Version)))
			for i := range res.Recipients {
				res.Recipients[i] = RecipientResult{Status: Deferred, EnhancedStatus: statusSystemFailure,
					Response: fmt.Sprintf("the account's Enforced TLS setting is not valid (version %#04x)", uint16(policy.Version))}
			}
			return res
		}
		// Opportunistic: the version is unused.
		policy.Version = sealpost.DefaultTLSVersion
	}

	if err := checkAddress(env.From, true); err != nil {
		for i := range res.Recipients {
			res.Recipients[i] = RecipientResult{Status: Bounced, Response: "invalid sender address: " + err.Error(), EnhancedStatus: "5.1.7"}
		}
		return res
	}
	var pending []int
	for i, rcpt := range env.Recipients {
		if err := checkAddress(rcpt, false); err != nil {
			res.Recipients[i] = RecipientResult{Status: Bounced, Response: "invalid recipient address: " + err.Error(), EnhancedStatus: "5.1.3"}
			continue
		}
		pending = append(pending, i)
	}
	if len(pending) == 0 {
		return res
	}
	setAll := func(rr RecipientResult) {
		for _, i := range pending {
			res.Recipients[i] = rr
		}
	}
	if err := checkDomain(env.Domain); err != nil {
		setAll(RecipientResult{Status: Bounced, Response: "invalid recipient domain: " + err.Error(), EnhancedStatus: statusBadDestinationDomain})
		return res
	}

	base, fail := basePolicy(policy, env)
	if fail == nil {
		var sts *sealpost.MTASTSPolicy
		if env.TLSReport {
			return c.deliverToHosts(ctx, log, base, nil, env, pending, res)
		}
		if sts, fail = c.domainMTASTS(ctx, env.Domain); fail == nil {
			return c.deliverToHosts(ctx, log, base, sts, env, pending, res)
		}
	}
	log.Warn("recipients' TLS policy cannot be applied; deferring", slog.String("response", fail.Response))
	setAll(*fail)
	return res
}

// deliverToHosts tries env.Domain's MX hosts in order, each under base
// raised by what the domain's MTA-STS policy sts and DANE require of it.
func (c *Client) deliverToHosts(ctx context.Context, log *slog.Logger, base hostPolicy, sts *sealpost.MTASTSPolicy, env Envelope, pending []int, res Result) Result {
	setAll := func(rr RecipientResult) {
		for _, i := range pending {
			res.Recipients[i] = rr
		}
	}
	hosts, fail := c.route(ctx, env.Domain)
	if fail != nil {
		log.Info("no route to domain", slog.String("response", fail.Response))
		setAll(*fail)
		return res
	}

	var (
		transient      *outcome
		policyFailures int
		mtastsFailures int // policy failures only MTA-STS's requirement caused
		refusedHosts   int
	)
	for _, host := range hosts {
		if err := ctx.Err(); err != nil {
			transient = &outcome{kind: outcomeTransient, result: RecipientResult{Status: Deferred, Response: "delivery attempt cut off: " + err.Error(), EnhancedStatus: "4.4.7"}}
			break
		}
		pol, excluded := base, (*outcome)(nil)
		if !env.TLSReport {
			pol, excluded = c.policyForHost(ctx, base, sts, env.Domain, host)
		}
		var out outcome
		if excluded != nil {
			out = *excluded
		} else {
			out = c.tryHost(ctx, log, pol, host, env, pending)
		}
		res.TLS = out.facts
		if out.reached {
			h := HostResult{Facts: out.facts, CertResult: out.certResult, SendingIP: out.sendingIP}
			if pol.mtasts != "" {
				h.MTASTSPolicy = sts
			}
			if pol.dane != nil {
				h.TLSARecords = pol.dane.Records
			}
			res.Hosts = append(res.Hosts, h)
		}
		switch out.kind {
		case outcomeDone:
			for i, rr := range out.perRecipient {
				res.Recipients[i] = rr
			}
			return res
		case outcomeFinal:
			setAll(out.result)
			return res
		case outcomePolicy:
			policyFailures++
			if out.cause == sealpost.PolicySourceMTASTS {
				mtastsFailures++
			}
			log.Info("MX host failed the Enforced TLS policy",
				slog.String("mx_host", out.facts.MXHost), slog.String("mx_ip", out.facts.MXIP),
				slog.String("result_type", out.facts.ResultType), slog.String("detail", out.result.Response))
		case outcomeTransient:
			transient = &out
			log.Info("MX host failed", slog.String("mx_host", out.facts.MXHost), slog.String("mx_ip", out.facts.MXIP),
				slog.String("response", out.result.Response))
		case outcomeRefused:
			refusedHosts++
			log.Warn("MX host skipped: none of its addresses may be connected to", slog.String("mx_host", out.facts.MXHost))
		}
	}
	if transient == nil && policyFailures == 0 && refusedHosts > 0 {
		// Only hosts in places this server does not connect to (loopback,
		// private networks): no later attempt will do better. The reason
		// names no address, since the tenant chose the name and what it
		// resolves to inside the operator's network is not theirs to learn.
		res.TLS = sealpost.TLSFacts{}
		setAll(RecipientResult{Status: Bounced, Response: fmt.Sprintf("no MX host of %s has an address this server may deliver to", env.Domain), EnhancedStatus: statusNoAllowedHost})
		return res
	}
	if transient == nil && mtastsFailures > 0 {
		if block, why := c.confirmMTASTS(ctx, env.Domain, sts, env.Attempt); !block {
			log.Info("MX hosts failed the domain's MTA-STS policy; deferring", slog.String("detail", why))
			setAll(RecipientResult{Status: Deferred, Response: why, EnhancedStatus: "4.7.10"})
			return res
		}
	}
	if transient == nil && policyFailures > 0 {
		// Every host was reached and none could meet the policy.
		setAll(RecipientResult{Status: Blocked, Response: sealpost.BlockedReason, EnhancedStatus: sealpost.BlockedStatus})
		return res
	}
	if transient == nil {
		transient = &outcome{result: RecipientResult{Status: Deferred, Response: "no MX host could be tried", EnhancedStatus: "4.4.4"}}
	}
	setAll(transient.result)
	return res
}

// mxHost is one host to try. implicit marks the domain itself standing in
// for a missing MX record (RFC 5321 5.1).
type mxHost struct {
	name     string // no trailing dot
	pref     uint16
	implicit bool
}

// route returns the hosts to try in order, or the result that ends the
// attempt without any: a null MX, a domain that does not exist, a DNS
// failure.
func (c *Client) route(ctx context.Context, domain string) ([]mxHost, *RecipientResult) {
	mxs, err := c.Resolver.LookupMX(ctx, domain)
	if err != nil {
		if sealpost.IsDNSNotFound(err) {
			return nil, &RecipientResult{Status: Bounced, Response: fmt.Sprintf("domain %s does not exist: %v", domain, err), EnhancedStatus: statusBadDestinationDomain}
		}
		return nil, &RecipientResult{Status: Deferred, Response: fmt.Sprintf("MX lookup for %s failed: %v", domain, err), EnhancedStatus: statusDirectoryFailure}
	}
	if len(mxs) == 0 {
		return []mxHost{{name: strings.TrimSuffix(domain, "."), implicit: true}}, nil
	}
	// RFC 7505: a null MX means the domain accepts no mail. A null MX
	// beside other records is a misconfiguration; the real hosts win.
	var real []*net.MX
	for _, mx := range mxs {
		if mx == nil {
			continue
		}
		if h := strings.TrimSuffix(mx.Host, "."); h != "" {
			real = append(real, mx)
		}
	}
	if len(real) == 0 {
		return nil, &RecipientResult{Status: Bounced, Response: "556 5.1.10 domain " + domain + " does not accept mail (null MX)", EnhancedStatus: "5.1.10"}
	}
	// Randomise among equal preferences (RFC 5321 5.1), then order by
	// preference with a stable sort so the shuffle survives within groups.
	rand.Shuffle(len(real), func(i, j int) { real[i], real[j] = real[j], real[i] })
	slices.SortStableFunc(real, func(a, b *net.MX) int { return cmp.Compare(a.Pref, b.Pref) })
	var hosts []mxHost
	seen := map[string]bool{}
	for _, mx := range real {
		h := strings.ToLower(strings.TrimSuffix(mx.Host, "."))
		// RFC 5321 5.1: an MX names a host, never an address; a literal
		// leaves no host name to check a certificate against.
		if seen[h] || checkDomain(h) != nil || net.ParseIP(h) != nil {
			continue
		}
		seen[h] = true
		hosts = append(hosts, mxHost{name: h, pref: mx.Pref})
		if len(hosts) == maxMXHosts {
			break
		}
	}
	if len(hosts) == 0 {
		return nil, &RecipientResult{Status: Deferred, Response: "no usable MX host names for " + domain, EnhancedStatus: statusDirectoryFailure}
	}
	return hosts, nil
}

type outcomeKind int

const (
	outcomeTransient outcomeKind = iota + 1 // this host failed; a later attempt may reach it
	outcomePolicy                           // this host cannot meet the policy
	outcomeDone                             // a transaction ran: perRecipient is final for this attempt
	outcomeFinal                            // result applies to every recipient, no other host to try
	outcomeRefused                          // every address of this host is one this server does not connect to
)

// outcome is what trying one MX host came to.
type outcome struct {
	kind         outcomeKind
	result       RecipientResult         // outcomeTransient, outcomePolicy, outcomeFinal
	perRecipient map[int]RecipientResult // outcomeDone, keyed by recipient index
	facts        sealpost.TLSFacts
	// reached: the session learnt whether the host offers STARTTLS.
	reached    bool
	certResult string // RFC 8460 type of a failed certificate check
	// cause is the source whose requirement an outcomePolicy host failed.
	cause sealpost.PolicySource
	// sendingIP is the local address of the session, for TLS reports.
	sendingIP string
}

// tryHost delivers to the first reachable address of host.
func (c *Client) tryHost(ctx context.Context, log *slog.Logger, pol hostPolicy, host mxHost, env Envelope, pending []int) outcome {
	facts := sealpost.TLSFacts{MXHost: host.name}
	pol.stamp(&facts)
	addrs, err := c.Resolver.LookupIPAddr(ctx, host.name)
	if err == nil && len(addrs) == 0 {
		err = &net.DNSError{Err: "no address records", Name: host.name, IsNotFound: true}
	}
	if err != nil {
		if host.implicit && sealpost.IsDNSNotFound(err) {
			return outcome{kind: outcomeFinal, facts: facts, result: RecipientResult{Status: Bounced,
				Response: fmt.Sprintf("domain %s has no MX and no address records: %v", host.name, err), EnhancedStatus: statusBadDestinationDomain}}
		}
		return outcome{kind: outcomeTransient, facts: facts, result: RecipientResult{Status: Deferred,
			Response: fmt.Sprintf("address lookup for MX host %s failed: %v", host.name, err), EnhancedStatus: statusDirectoryFailure}}
	}
	addrs = slices.DeleteFunc(addrs, func(a net.IPAddr) bool { return !c.Destinations.AllowsIP(a.IP) })
	if len(addrs) == 0 {
		return outcome{kind: outcomeRefused, facts: facts}
	}
	if len(addrs) > maxAddrsPerHost {
		addrs = addrs[:maxAddrsPerHost]
	}
	var last outcome
	for _, addr := range addrs {
		facts.MXIP = addr.IP.String()
		hlog := log.With(slog.String("mx_host", host.name), slog.String("mx_ip", facts.MXIP))
		key := c.poolKey(host.name, facts.MXIP, pol)
		if c.reuseOn() {
			if s := c.sessions().take(key); s != nil {
				if out, ok := c.reuse(ctx, hlog, s, env, pending); ok {
					out.sendingIP = localIP(s.raw)
					return out
				}
			}
		}
		conn, err := c.dial(ctx, addr)
		if err != nil {
			last = outcome{kind: outcomeTransient, facts: facts, result: RecipientResult{Status: Deferred,
				Response: fmt.Sprintf("cannot connect to %s [%s]: %v", host.name, facts.MXIP, err), EnhancedStatus: statusNoAnswer}}
			continue
		}
		out, retryPlain := c.session(ctx, hlog, conn, key, pol, facts, env, pending, true)
		out.sendingIP = localIP(conn)
		if !retryPlain {
			return out
		}
		// Opportunistic TLS whose handshake failed: the session is
		// unusable, but the host may still take the mail in plaintext.
		hlog.Info("TLS handshake failed; retrying the host in plaintext", slog.String("detail", out.result.Response))
		conn, err = c.dial(ctx, addr)
		if err != nil {
			return outcome{kind: outcomeTransient, facts: facts, result: RecipientResult{Status: Deferred,
				Response: fmt.Sprintf("cannot reconnect to %s [%s]: %v", host.name, facts.MXIP, err), EnhancedStatus: statusNoAnswer}}
		}
		plainFacts := facts
		plainFacts.MTASTSTestingResult = out.facts.MTASTSTestingResult
		out, _ = c.session(ctx, hlog, conn, key, pol, plainFacts, env, pending, false)
		out.sendingIP = localIP(conn)
		return out
	}
	return last
}

// localIP is the address conn was made from; it stays readable after the
// connection is closed.
func localIP(conn net.Conn) string {
	if a, ok := conn.LocalAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}

func (c *Client) dial(ctx context.Context, addr net.IPAddr) (net.Conn, error) {
	return c.dialPort(ctx, addr, c.port())
}

// dialPort is the one place the client connects anywhere: SMTP, and
// MTA-STS policy fetches. Callers filter addresses already; the
// hook keeps the destination rule here, whoever calls.
func (c *Client) dialPort(ctx context.Context, addr net.IPAddr, port int) (net.Conn, error) {
	d := net.Dialer{Timeout: c.timeout(), LocalAddr: c.LocalAddr, Control: c.Destinations.Control}
	return d.DialContext(ctx, "tcp", net.JoinHostPort(addr.String(), strconv.Itoa(port)))
}

func (c *Client) port() int {
	if c.Port == 0 {
		return defaultPort
	}
	return c.Port
}

func (c *Client) timeout() time.Duration {
	if c.Timeout <= 0 {
		return defaultTimeout
	}
	return c.Timeout
}

func (c *Client) dataEndTimeout() time.Duration {
	if c.Timeout <= 0 {
		return dataEndTimeout
	}
	return c.Timeout
}

func (c *Client) helo() string {
	if c.HeloHostname == "" {
		return "localhost"
	}
	return c.HeloHostname
}

func (c *Client) verifyDANE() daneVerifier {
	if c.VerifyDANE == nil {
		return sealpost.VerifyDANE
	}
	return c.VerifyDANE
}

func (c *Client) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

func (c *Client) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// checkAddress refuses what cannot go between the angle brackets of a MAIL
// or RCPT command: anything that could end or extend the command line.
// The empty reverse path (bounces) is allowed for the sender only.
func checkAddress(addr string, sender bool) error {
	if addr == "" {
		if sender {
			return nil
		}
		return errors.New("empty address")
	}
	if len(addr) > 254 {
		return errors.New("address longer than 254 characters")
	}
	for i := range len(addr) {
		if b := addr[i]; b <= ' ' || b == 0x7f || b == '<' || b == '>' {
			return fmt.Errorf("address %q contains a character not allowed in an SMTP path", addr)
		}
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return fmt.Errorf("address %q has no local part or no domain", addr)
	}
	return nil
}

// checkDomain accepts a DNS name made of letters, digits, hyphens,
// underscores and dots (and non-ASCII, for IDNs resolvers may handle).
func checkDomain(d string) error {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 {
		return fmt.Errorf("domain %q has an invalid length", d)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("domain %q has an empty or overlong label", d)
		}
	}
	for _, r := range d {
		ok := r == '.' || r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || r > 0x7f
		if !ok {
			return fmt.Errorf("domain %q contains %q", d, r)
		}
	}
	return nil
}
