package delivery

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// stallingTLSServer advertises STARTTLS, answers it with 220 and then never
// takes part in the handshake: a server that is slow or a network that
// loses packets, not one whose TLS is broken. It records every line it read
// before the STARTTLS.
type stallingTLSServer struct {
	mu    sync.Mutex
	lines []string
}

func (s *stallingTLSServer) serve(t *testing.T, ln net.Listener) {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				// The connection lives until the client gives up or the test
				// ends, whichever comes first.
				stop := context.AfterFunc(t.Context(), func() { c.Close() })
				defer stop()
				r := bufio.NewReader(c)
				io.WriteString(c, "220 stall.test ESMTP\r\n")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					s.mu.Lock()
					s.lines = append(s.lines, strings.TrimSpace(line))
					s.mu.Unlock()
					verb, _, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(line)), " ")
					switch verb {
					case "EHLO":
						io.WriteString(c, "250-stall.test\r\n250 STARTTLS\r\n")
					case "STARTTLS":
						io.WriteString(c, "220 2.0.0 go ahead\r\n")
						io.Copy(io.Discard, r) // swallow the ClientHello, answer nothing
						return
					default:
						io.WriteString(c, "502 5.5.2 unexpected\r\n")
					}
				}
			})
		}
	})
}

// A TLS handshake that did not finish because our own timeout or the
// attempt's deadline ran out says nothing about whether the server can meet
// the policy: it is a timeout, which the spec makes transient. Counting it
// as a policy failure turned a slow network, or a shutdown cutting attempts
// off, into a permanent "blocked" and lost the mail.
func TestMandatoryHandshakeCutOffIsDeferredNotBlocked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		clientTimeout time.Duration
		ctxTimeout    time.Duration
	}{
		{name: "handshake times out", clientTimeout: 300 * time.Millisecond, ctxTimeout: 20 * time.Second},
		{name: "attempt cut off during the handshake", clientTimeout: 20 * time.Second, ctxTimeout: 500 * time.Millisecond},
	}
	policies := []sealpost.EnforcedTLS{
		{RequireTLS: true, Version: sealpost.TLS12},
		{RequireValidCert: true, Version: sealpost.TLS11},
	}
	for _, tt := range tests {
		for _, policy := range policies {
			t.Run(tt.name+"/"+policyName(policy), func(t *testing.T) {
				t.Parallel()
				h := mxtest.New(t)
				ln := h.Listen()
				srv := &stallingTLSServer{}
				srv.serve(t, ln)
				ip, _, _ := net.SplitHostPort(ln.Addr().String())
				h.DNS().SetMX("stall.test", mxtest.MX{Pref: 10, Host: "mx.stall.test"})
				h.DNS().SetA("mx.stall.test", ip)

				c := &Client{Resolver: NewResolver(h.DNSAddr()), Port: h.Port(), RootCAs: h.CertPool(), Timeout: tt.clientTimeout, Logger: testLogger(t), Destinations: loopbackOnly()}
				ctx, cancel := context.WithTimeout(t.Context(), tt.ctxTimeout)
				defer cancel()
				res := c.Deliver(ctx, policy, Envelope{From: "a@sealpost.test", Domain: "stall.test", Recipients: []string{"b@stall.test"}, Data: []byte("Subject: x\r\n\r\nx\r\n")})
				if got := res.Recipients[0]; got.Status != Deferred {
					t.Errorf("status %v (%s, %q), want Deferred", got.Status, got.EnhancedStatus, got.Response)
				}
				if res.TLS.ResultType != "" {
					t.Errorf("result type %q for a handshake that never got an answer", res.TLS.ResultType)
				}
				srv.mu.Lock()
				defer srv.mu.Unlock()
				for _, l := range srv.lines {
					if v, _, _ := strings.Cut(strings.ToUpper(l), " "); v != "EHLO" && v != "STARTTLS" {
						t.Errorf("server read %q in plaintext under a mandatory policy", l)
					}
				}
			})
		}
	}
}

func policyName(p sealpost.EnforcedTLS) string {
	if p.RequireValidCert {
		return "require_valid_cert_" + p.Version.String()
	}
	return "require_tls_" + p.Version.String()
}

// RFC 5321 5.1 makes an MX record's value a host name; an IP address there
// is a misconfiguration (Postfix refuses it too). Following it would check
// the certificate against an address instead of a host name found in DNS,
// and with the system resolver, which "resolves" an IP literal to itself,
// send mail to wherever the record points without any name to verify.
func TestRouteSkipsIPLiteralMXHosts(t *testing.T) {
	t.Parallel()
	res := &fakeResolver{mx: map[string][]*net.MX{
		"literal.test": {{Host: "192.0.2.1.", Pref: 10}, {Host: "mx.literal.test.", Pref: 20}},
		"onlyip.test":  {{Host: "192.0.2.1", Pref: 10}, {Host: "2001:db8::1", Pref: 20}},
	}}
	c := &Client{Resolver: res, Destinations: loopbackOnly()}

	hosts, fail := c.route(t.Context(), "literal.test")
	if fail != nil || len(hosts) != 1 || hosts[0].name != "mx.literal.test" {
		t.Errorf("literal.test: got %+v %+v, want only mx.literal.test", hosts, fail)
	}
	hosts, fail = c.route(t.Context(), "onlyip.test")
	if fail == nil || fail.Status != Deferred || len(hosts) != 0 {
		t.Errorf("onlyip.test: got %+v %+v, want no hosts and a deferral", hosts, fail)
	}
}

// policyUnreadableQueue is a queue whose Enforced TLS setting cannot be
// read (the account is gone, or the database is down); it records
// completions.
type policyUnreadableQueue struct {
	Queue // nil: only the methods below are called
	mu    sync.Mutex
	done  []sealpost.DeliveryCompletion
}

func (q *policyUnreadableQueue) EnforcedTLS(context.Context, int64) (sealpost.EnforcedTLS, error) {
	return sealpost.EnforcedTLS{}, sealpost.Errorf(sealpost.ENOTFOUND, "account not found")
}

func (q *policyUnreadableQueue) CompleteDelivery(_ context.Context, _ string, c sealpost.DeliveryCompletion) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.done = append(q.done, c)
	return nil
}

type mustNotDeliver struct{ t *testing.T }

func (m mustNotDeliver) Deliver(context.Context, sealpost.EnforcedTLS, Envelope) Result {
	m.t.Error("delivered without a policy")
	return Result{}
}

// Without its policy a delivery may not be attempted, but it is still
// deferred: each time with a deferred event, and at most for MaxAge like
// any other deferral. It used to be retried silently and forever.
func TestRunnerPolicyUnreadableDefersAndExpires(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		age   time.Duration
		state sealpost.RecipientState
		event string
	}{
		{name: "young: deferred with an event", age: time.Minute, state: sealpost.StateQueued, event: "deferred"},
		{name: "older than MaxAge: bounced", age: 80 * time.Hour, state: sealpost.StateBounced, event: "bounce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := &policyUnreadableQueue{}
			r := &Runner{Queue: q, Deliverer: mustNotDeliver{t}, Owner: "n1", Now: func() time.Time { return now }}
			r.defaults()
			d := &sealpost.Delivery{ID: 7, Domain: "example.test", Attempts: 3, Message: &sealpost.Message{
				AccountID: 1, From: "a@sealpost.test", SMTPID: "<x@sealpost.test>", CreatedAt: now.Add(-tt.age),
				Recipients: []sealpost.Recipient{{ID: 11, Email: "b@example.test", Domain: "example.test", SGMessageID: "x.1"}},
			}}
			r.attempt(t.Context(), d)
			if len(q.done) != 1 {
				t.Fatalf("%d completions, want 1", len(q.done))
			}
			c := q.done[0]
			if len(c.Recipients) != 1 || c.Recipients[0].State != tt.state {
				t.Errorf("recipient updates %+v, want state %s", c.Recipients, tt.state)
			}
			if len(c.Events) != 1 {
				t.Fatalf("%d events, want 1", len(c.Events))
			}
			if c.Events[0].Kind != sealpost.EventKind(tt.event) {
				t.Errorf("event %s, want %s", c.Events[0].Kind, tt.event)
			}
			if tt.state == sealpost.StateQueued && !c.NextAttemptAt.After(now) {
				t.Errorf("next attempt at %v, want after %v", c.NextAttemptAt, now)
			}
		})
	}
}

// require_valid_cert checks the certificate against the MX host as found in
// DNS: a certificate for the recipient domain, or for another MX of it, is
// not valid for this host, however trusted its issuer.
func TestRequireValidCertNamesTheMXHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		certFor  []string
		wantDone bool
	}{
		{name: "MX host name", certFor: []string{"mx1.certname.test"}, wantDone: true},
		{name: "MX host name in upper case", certFor: []string{"MX1.CERTNAME.TEST"}, wantDone: true},
		{name: "recipient domain only", certFor: []string{"certname.test"}},
		{name: "a sibling MX only", certFor: []string{"mx2.certname.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := mxtest.New(t)
			cert := h.CA().Issue(t, mxtest.Options{DNSNames: tt.certFor})
			mx := h.AddMX("certname.test", 10, mxtest.Behavior{Certificate: &cert})
			if mx.Host() != "mx1.certname.test" {
				t.Fatalf("harness named the MX %q", mx.Host())
			}
			c := &Client{Resolver: NewResolver(h.DNSAddr()), Port: h.Port(), RootCAs: h.CertPool(), Timeout: 10 * time.Second, Destinations: loopbackOnly()}
			res := c.Deliver(t.Context(), sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS12},
				Envelope{From: "a@sealpost.test", Domain: "CertName.test.", Recipients: []string{"b@certname.test"}, Data: []byte("Subject: x\r\n\r\nx\r\n")})
			got := res.Recipients[0].Status
			if tt.wantDone {
				if got != Delivered || mx.AcceptedCount() != 1 {
					t.Errorf("status %v, %d accepted; want delivered once", got, mx.AcceptedCount())
				}
				return
			}
			if got != Blocked || res.TLS.ResultType != sealpost.ResultCertificateHostMismatch || mx.AcceptedCount() != 0 {
				t.Errorf("status %v, result type %q, %d accepted; want blocked for a host mismatch, nothing accepted", got, res.TLS.ResultType, mx.AcceptedCount())
			}
		})
	}
}
