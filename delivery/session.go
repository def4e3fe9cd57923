package delivery

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/sealpost/sealpost"
)

// errPlaintextRefused is returned by the command writer when a mandatory
// policy's session would send anything but the TLS negotiation itself
// without a TLS session that meets the policy.
var errPlaintextRefused = errors.New("refusing to send mail commands outside TLS that meets the effective TLS policy")

// session is one SMTP connection to one MX address.
type session struct {
	c    *Client
	ctx  context.Context
	log  *slog.Logger
	pol  hostPolicy
	host string

	raw  net.Conn // the TCP connection, closed when ctx is done
	conn net.Conn // raw, or the TLS connection on top of it
	r    *bufio.Reader
	w    *textproto.Writer

	tls   *tls.ConnectionState // nil until a handshake completed
	check certCheck
	// step is how far STARTTLS got, for the decision table; interrupted:
	// our deadline ended the handshake.
	step        sealpost.TLSStep
	interrupted bool
	ext         map[string]string // EHLO keywords (upper case) and their parameters

	facts sealpost.TLSFacts

	// For reuse: the pool's key, when the session was opened, how many
	// transactions it carried, whether the last one went through without
	// any reply but 2xx, and what ends it when left idle.
	key       poolKey
	stop      func() bool // stops ctx from closing the connection
	opened    time.Time
	messages  int
	reusable  bool
	idleTimer *time.Timer
}

// preTLSVerbs are the only commands a mandatory policy lets through before
// TLS meets it: none of them carries mail.
var preTLSVerbs = map[string]bool{"EHLO": true, "HELO": true, "STARTTLS": true, "QUIT": true}

// session runs one SMTP session on conn and closes it, or leaves it to the
// pool for the next delivery under the same key (finish). retryPlain asks the
// caller to reconnect and run a session without STARTTLS: opportunistic TLS
// failed in a way that leaves this connection unusable.
//
// What the host may be sent is decided by the decision table
// (hostPolicy.decide) alone; the session reports what the host showed at
// each step and carries the verdict out.
func (c *Client) session(ctx context.Context, log *slog.Logger, conn net.Conn, key poolKey, pol hostPolicy, facts sealpost.TLSFacts, env Envelope, pending []int, allowTLS bool) (out outcome, retryPlain bool) {
	s := &session{
		c: c, ctx: ctx, log: log, pol: pol, host: key.host,
		raw: conn, conn: conn,
		r:      bufio.NewReader(conn),
		w:      textproto.NewWriter(bufio.NewWriter(conn)),
		facts:  facts,
		key:    key,
		opened: time.Now(),
	}
	s.stop = context.AfterFunc(ctx, func() { conn.Close() })
	defer s.finish(&out)

	greeting, err := s.read(c.timeout())
	if err != nil {
		return s.transient("reading the greeting", err), false
	}
	if greeting.Class() != 2 {
		s.quit()
		return s.transientReply(greeting), false
	}

	rep, err := s.cmd(c.timeout(), "EHLO "+c.helo())
	switch {
	case err != nil:
		return s.transient("EHLO", err), false
	case rep.Class() == 2:
		s.ext = parseEHLO(rep)
	case rep.Class() == 5:
		// No ESMTP means no STARTTLS.
		s.step = sealpost.TLSNotOffered
		if out, ok, _ := s.follow("EHLO", "server refused EHLO: "+rep.String(), nil, true); !ok {
			return out, false
		}
		rep, err = s.cmd(c.timeout(), "HELO "+c.helo())
		if err != nil {
			return s.transient("HELO", err), false
		}
		if rep.Class() != 2 {
			s.quit()
			return s.transientReply(rep), false
		}
		s.ext = map[string]string{}
	default:
		s.quit()
		return s.transientReply(rep), false
	}

	if _, offered := s.ext["STARTTLS"]; offered && allowTLS {
		if out, failed, retry := s.startTLS(); failed {
			return out, retry
		}
	} else {
		s.step = sealpost.TLSNotOffered
		if out, ok, _ := s.follow("EHLO", "server does not offer STARTTLS", nil, true); !ok {
			return out, false
		}
	}

	if !s.secure() {
		// Every step above follows the verdict; reaching here would be a
		// bug, and the mail must not go.
		s.quit()
		return s.policyFailure(sealpost.ResultValidationFailure, s.pol.source(), "TLS session does not meet the policy"), false
	}
	s.recordTesting()
	done, _ := s.transaction(env, pending, false)
	return done, false
}

// follow carries out the decision table's verdict on what the host showed
// so far: ok means the session goes on. detail describes a failure; step
// and err the step and error behind a transient one; quit says whether the server is in a
// state to hear QUIT.
func (s *session) follow(step, detail string, err error, quit bool) (out outcome, ok, retryPlain bool) {
	v, cause := s.pol.decide(s.seen())
	switch v.Action {
	case sealpost.TLSProceed:
		return outcome{}, true, false
	case sealpost.TLSNextMX:
		if quit {
			s.quit()
		}
		return s.policyFailure(v.ResultType, cause, detail), false, false
	case sealpost.TLSRetryPlain:
		// The plaintext session that follows cannot know what this one
		// saw of the host's TLS.
		s.recordTesting()
		if err == nil {
			err = errors.New(detail)
		}
		return s.transient(step, err), false, true
	}
	// TLSDefer, and anything the table may come to answer.
	if err == nil {
		err = errors.New(detail)
	}
	if quit {
		s.quit()
	}
	return s.transient(step, err), false, false
}

// startTLS negotiates TLS and greets the server again. failed reports an
// outcome that ends the session; retry asks for a plaintext reconnect.
func (s *session) startTLS() (out outcome, failed, retry bool) {
	rep, err := s.cmd(s.c.timeout(), "STARTTLS")
	if err != nil {
		return s.transient("STARTTLS", err), true, false
	}
	if rep.Code != 220 {
		s.step = sealpost.TLSRefused
		out, ok, _ := s.follow("STARTTLS", "server refused STARTTLS: "+rep.String(), nil, true)
		if !ok {
			return out, true, false
		}
		// RFC 3207: a client may go on without TLS after a refusal; the
		// session is still in its pre-STARTTLS state.
		s.log.Info("server refused STARTTLS; continuing in plaintext", slog.String("response", rep.String()))
		return outcome{}, false, false
	}
	if s.r.Buffered() > 0 {
		// Bytes after the 220 arrived in plaintext but would be read as if
		// they came over TLS: an injection (CVE-2011-0411 class).
		s.step = sealpost.TLSFailed
		out, _, retry := s.follow("STARTTLS", "plaintext data after the STARTTLS reply", nil, false)
		return out, true, retry
	}

	cfg := tlsConfig(s.pol, s.host, s.c.RootCAs, s.c.now, s.c.verifyDANE(), &s.check)
	tc := tls.Client(s.raw, cfg)
	s.setDeadline(s.c.timeout())
	if err := tc.HandshakeContext(s.ctx); err != nil {
		s.recordCert()
		s.step = sealpost.TLSFailed
		// Our deadline, not the server's TLS, may have ended the handshake.
		s.interrupted = s.ctx.Err() != nil || isTimeout(err)
		out, _, retry := s.follow("TLS handshake", "TLS handshake failed: "+err.Error(), err, false)
		return out, true, retry
	}
	cs := tc.ConnectionState()
	s.tls = &cs
	s.step = sealpost.TLSEstablished
	s.conn = tc
	s.r = bufio.NewReader(tc)
	s.w = textproto.NewWriter(bufio.NewWriter(tc))
	s.facts.TLS = true
	s.facts.Version = versionName(cs.Version)
	s.facts.Cipher = tls.CipherSuiteName(cs.CipherSuite)
	s.recordCert()
	s.log.Debug("TLS established", slog.String("tls_version", s.facts.Version), slog.String("tls_cipher", s.facts.Cipher),
		slog.Bool("cert_verified", s.facts.Verified), slog.String("cert_error", s.facts.VerifyError))

	detail := "certificate not valid: " + s.facts.VerifyError
	switch {
	case cs.Version < uint16(s.pol.req.Version):
		detail = "negotiated TLS " + s.facts.Version + " is below the policy's " + s.pol.req.Version.String()
	case s.check.daneErr != nil:
		detail = "certificate matches no TLSA record: " + s.check.daneErr.Error()
	}
	if out, ok, _ := s.follow("TLS handshake", detail, nil, true); !ok {
		return out, true, false
	}

	// RFC 3207 4.2: forget everything learnt before TLS and ask again.
	s.ext = nil
	rep, err = s.cmd(s.c.timeout(), "EHLO "+s.c.helo())
	if err != nil {
		return s.transient("EHLO after STARTTLS", err), true, false
	}
	if rep.Class() != 2 {
		s.quit()
		return s.transientReply(rep), true, false
	}
	s.ext = parseEHLO(rep)
	return outcome{}, false, false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// seen is what this session's host showed of its TLS so far.
func (s *session) seen() sealpost.TLSSeen {
	return seenOf(s.step, s.tls, s.check, s.interrupted)
}

func (s *session) recordCert() {
	if !s.check.done {
		return
	}
	s.facts.Verified = s.check.err == nil
	if s.check.err != nil {
		s.facts.VerifyError = s.check.err.Error()
	}
	s.facts.DANEVerified = s.check.daneDone && s.check.daneErr == nil
}

// recordTesting records in the facts the failure that the domain's MTA-STS
// policy in testing mode would have caused on this session.
func (s *session) recordTesting() {
	if s.pol.testing == nil || s.facts.MTASTSTestingResult != "" {
		return
	}
	if s.pol.testingUnlisted {
		s.facts.MTASTSTestingResult = sealpost.ResultValidationFailure
		return
	}
	if v := sealpost.DecideTLS(s.pol.req.Raise(*s.pol.testing), s.seen()); v.Action != sealpost.TLSProceed {
		s.facts.MTASTSTestingResult = v.ResultType
		if s.facts.MTASTSTestingResult == "" {
			s.facts.MTASTSTestingResult = sealpost.ResultValidationFailure
		}
	}
}

// requireTLS reports whether a transaction on this session asks for
// REQUIRETLS (RFC 8689): the effective policy makes TLS mandatory, and the
// server advertised the extension in its EHLO reply over TLS (the only one
// kept once TLS is up). Never to a server that did not advertise it.
func (s *session) requireTLS() bool {
	if !s.pol.req.Mandatory() || s.tls == nil {
		return false
	}
	_, ok := s.ext["REQUIRETLS"]
	return ok
}

// secure reports whether mail may be sent on this session under its
// policy: the decision table says proceed on what the host showed, and
// under a mandatory policy that includes a completed handshake.
func (s *session) secure() bool {
	if s.pol.req.Mandatory() && s.tls == nil {
		return false
	}
	v, _ := s.pol.decide(s.seen())
	return v.Action == sealpost.TLSProceed
}

// transaction sends the message to the pending recipients in one MAIL,
// RCPT..., DATA transaction. Whatever happens from MAIL on is final for
// this attempt: recipients the server has not accepted are deferred.
func (s *session) transaction(env Envelope, pending []int, rset bool) (out outcome, unfit error) {
	results := make(map[int]RecipientResult, len(pending))
	done := func() outcome {
		for _, i := range pending {
			if _, ok := results[i]; !ok {
				results[i] = RecipientResult{Status: Deferred, Response: "no reply from " + s.host, EnhancedStatus: statusBadConnection}
			}
		}
		return outcome{kind: outcomeDone, perRecipient: results, facts: s.facts}
	}
	lost := func(step string, err error) outcome {
		rr := RecipientResult{Status: Deferred, Response: s.describe(step, err), EnhancedStatus: statusBadConnection}
		for _, i := range pending {
			if _, ok := results[i]; !ok {
				results[i] = rr
			}
		}
		return done()
	}
	setFrom := func(idx []int, rep reply) {
		rr := replyResult(rep)
		for _, i := range idx {
			results[i] = rr
		}
	}
	_, pipelining := s.ext["PIPELINING"]

	if rset && !pipelining {
		rep, err := s.cmd(s.c.timeout(), "RSET")
		if err != nil || rep.Code != 250 {
			if err == nil {
				s.quit()
			}
			return outcome{}, unfitError(rep, err)
		}
		rset = false
	}
	mail := "MAIL FROM:<" + env.From + ">"
	if _, ok := s.ext["SIZE"]; ok {
		mail += " SIZE=" + strconv.Itoa(len(env.Data))
	}
	s.facts.RequireTLS = s.requireTLS()
	if s.facts.RequireTLS {
		// RFC 8689: every later hop must meet TLS too, or return the mail.
		mail += " REQUIRETLS"
	}
	// Replies to MAIL and to each RCPT, in order. With PIPELINING (RFC
	// 2920) they are all sent in one write and the replies read after,
	// together with the RSET before them on a reused session and the DATA
	// after them (both may be pipelined, RFC 2920 3.1): a reused session
	// costs two round trips a message, not four. Without, each waits for
	// the one before, and a refused MAIL ends it.
	var lines []string
	if rset {
		lines = append(lines, "RSET")
	}
	lines = append(lines, mail)
	for _, i := range pending {
		lines = append(lines, "RCPT TO:<"+env.Recipients[i]+">")
	}
	if pipelining {
		lines = append(lines, "DATA")
	}
	sent := len(lines)
	var reps []reply
	var err error
	if pipelining {
		// In windows, so that neither side can fill the other's socket
		// buffers while it is not reading (RFC 2920 3.1); a window goes only
		// when the RSET and the MAIL before it were taken.
		fit := func() bool {
			if !rset {
				return len(reps) == 0 || reps[0].Class() == 2
			}
			return len(reps) == 0 || reps[0].Code == 250 && (len(reps) == 1 || reps[1].Class() == 2)
		}
		for len(lines) > 0 && err == nil && fit() {
			n := min(len(lines), pipelineWindow)
			var got []reply
			got, err = s.cmds(s.c.timeout(), lines[:n]...)
			reps = append(reps, got...)
			lines = lines[n:]
		}
		sent -= len(lines)
	} else {
		for k, line := range lines {
			var rep reply
			rep, err = s.cmd(s.c.timeout(), line)
			if err != nil {
				break
			}
			reps = append(reps, rep)
			if k == 0 && rep.Class() != 2 {
				break
			}
		}
	}
	if rset {
		// The session was idle: a refused or unanswered RSET means the
		// server is done with it, and nothing of this delivery counts.
		// Whatever else was pipelined after it dies with the connection,
		// before any message text was sent.
		if len(reps) == 0 || reps[0].Code != 250 {
			var rep reply
			if len(reps) > 0 {
				rep = reps[0]
			}
			return outcome{}, unfitError(rep, err)
		}
		reps, sent = reps[1:], sent-1
	}
	// The DATA pipelined after the RCPTs, when it was sent and answered.
	var dataRep *reply
	if pipelining && sent == 1+len(pending)+1 && len(reps) == sent {
		dataRep = &reps[len(reps)-1]
		reps = reps[:len(reps)-1]
	}
	if len(reps) == 0 {
		return lost("MAIL FROM", err), nil
	}
	if reps[0].Class() != 2 {
		setFrom(pending, reps[0])
		if err == nil && (dataRep == nil || dataRep.Code != 354) {
			s.quit()
		}
		return done(), nil
	}
	var accepted []int
	for k, rep := range reps[1:] {
		i := pending[k]
		if rep.Class() == 2 {
			accepted = append(accepted, i)
			continue
		}
		setFrom([]int{i}, rep)
	}
	if err != nil {
		return lost("RCPT TO", err), nil
	}
	if len(accepted) == 0 {
		// A server that answered the pipelined DATA with 354 anyway waits
		// for message text: closing the connection is the only safe end.
		if dataRep == nil || dataRep.Code != 354 {
			s.quit()
		}
		return done(), nil
	}

	var rep reply
	if dataRep != nil {
		rep = *dataRep
	} else if rep, err = s.cmd(s.c.timeout(), "DATA"); err != nil {
		return lost("DATA", err), nil
	}
	if rep.Code != 354 {
		setFrom(accepted, rep)
		s.quit()
		return done(), nil
	}
	if err := s.writeData(env.Data); err != nil {
		return lost("sending the message", err), nil
	}
	rep, err = s.read(s.c.dataEndTimeout())
	if err != nil {
		// Without the final reply nobody knows whether the server took the
		// message; deferring risks a duplicate, delivering risks a loss.
		return lost("waiting for the reply to the message", err), nil
	}
	setFrom(accepted, rep)
	// A session is kept for the next message only when the server answered
	// every step of this one with 2xx: any refusal may mean it has had
	// enough of this client, and a fresh session costs little.
	if rep.Class() == 2 && len(accepted) == len(pending) {
		s.reusable = true
		return done(), nil
	}
	s.quit()
	return done(), nil
}

// unfitError says why an idle session could not carry a delivery.
func unfitError(rep reply, err error) error {
	if err != nil {
		return fmt.Errorf("RSET: %w", err)
	}
	return fmt.Errorf("RSET answered %s", rep.String())
}

// pipelineWindow is how many commands go in one pipelined write.
const pipelineWindow = 100

// replyResult maps a reply to a transaction command onto a recipient's
// result. Replies outside 2xx/4xx/5xx (a 3xx where none belongs) count as
// transient.
func replyResult(rep reply) RecipientResult {
	rr := RecipientResult{Response: rep.String(), EnhancedStatus: rep.EnhancedOrDerived()}
	switch rep.Class() {
	case 2:
		rr.Status = Delivered
	case 5:
		rr.Status = Bounced
	default:
		rr.Status = Deferred
		if rep.Class() != 4 {
			rr.EnhancedStatus = "4.5.0"
		}
	}
	return rr
}

// cmd sends one command line and reads the reply.
func (s *session) cmd(timeout time.Duration, line string) (reply, error) {
	reps, err := s.cmds(timeout, line)
	if err != nil {
		return reply{}, err
	}
	return reps[0], nil
}

// cmds sends command lines in one write and reads their replies in order
// (RFC 2920 pipelining when there are several); it returns the replies
// read before any error. It is the only way commands reach the wire, and
// it enforces that under a mandatory policy nothing but the TLS
// negotiation goes out before TLS meets the policy: every line is checked
// before any is written.
func (s *session) cmds(timeout time.Duration, lines ...string) ([]reply, error) {
	for _, line := range lines {
		if strings.ContainsAny(line, "\r\n") {
			return nil, fmt.Errorf("command contains a line break: %q", line)
		}
		verb, _, _ := strings.Cut(line, " ")
		if s.pol.req.Mandatory() && !s.secure() && !preTLSVerbs[strings.ToUpper(verb)] {
			return nil, errPlaintextRefused
		}
	}
	s.setDeadline(timeout)
	for _, line := range lines {
		if _, err := s.w.W.WriteString(line + "\r\n"); err != nil {
			return nil, err
		}
	}
	if err := s.w.W.Flush(); err != nil {
		return nil, err
	}
	reps := make([]reply, 0, len(lines))
	for range lines {
		rep, err := s.read(timeout)
		if err != nil {
			return reps, err
		}
		reps = append(reps, rep)
	}
	return reps, nil
}

// writeData sends the message, dot-stuffed, and the final dot.
func (s *session) writeData(data []byte) error {
	if s.pol.req.Mandatory() && !s.secure() {
		return errPlaintextRefused
	}
	dw := s.w.DotWriter()
	// Refresh the deadline per chunk: a large message may take longer than
	// one Timeout as a whole, but no chunk may stall for longer.
	const chunk = 64 << 10
	for len(data) > 0 {
		n := min(chunk, len(data))
		s.setDeadline(s.c.timeout())
		if _, err := dw.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	s.setDeadline(s.c.timeout())
	return dw.Close()
}

func (s *session) read(timeout time.Duration) (reply, error) {
	s.setDeadline(timeout)
	return readReply(s.r)
}

// setDeadline bounds the next reads and writes by timeout and by ctx.
func (s *session) setDeadline(timeout time.Duration) {
	d := time.Now().Add(timeout)
	if cd, ok := s.ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	s.conn.SetDeadline(d)
}

// quit ends the session politely; the reply does not matter.
func (s *session) quit() {
	if _, err := s.cmd(min(s.c.timeout(), 5*time.Second), "QUIT"); err != nil && !errors.Is(err, io.EOF) {
		s.log.Debug("QUIT failed", slog.Any("err", err))
	}
}

func (s *session) describe(step string, err error) string {
	if ctxErr := s.ctx.Err(); ctxErr != nil {
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return fmt.Sprintf("%s [%s]: %s: %v", s.host, s.facts.MXIP, step, err)
}

func (s *session) transient(step string, err error) outcome {
	return outcome{kind: outcomeTransient, facts: s.facts, result: RecipientResult{Status: Deferred, Response: s.describe(step, err), EnhancedStatus: statusBadConnection}}
}

// transientReply is a host-level failure with a server reply (a 4xx or 5xx
// greeting or EHLO): the host is skipped for this attempt, and mail is
// deferred rather than bounced since another host or a later try may work.
func (s *session) transientReply(rep reply) outcome {
	es := rep.EnhancedOrDerived()
	if rep.Class() != 4 {
		es = "4" + strings.TrimLeft(es, "0123456789")
	}
	return outcome{kind: outcomeTransient, facts: s.facts, result: RecipientResult{Status: Deferred, Response: rep.String(), EnhancedStatus: es}}
}

func (s *session) policyFailure(resultType string, cause sealpost.PolicySource, detail string) outcome {
	f := s.facts
	f.ResultType = resultType
	f.PolicySource = string(cause)
	return outcome{kind: outcomePolicy, facts: f, cause: cause, result: RecipientResult{Status: Blocked, Response: s.host + ": " + detail, EnhancedStatus: sealpost.BlockedStatus}}
}

// parseEHLO returns the extensions of an EHLO reply, keyed by upper-case
// keyword. The first line is the server's greeting, not an extension.
func parseEHLO(rep reply) map[string]string {
	ext := make(map[string]string, len(rep.Lines))
	for _, l := range rep.Lines[1:] {
		kw, param, _ := strings.Cut(l, " ")
		if kw != "" {
			ext[strings.ToUpper(kw)] = param
		}
	}
	return ext
}
