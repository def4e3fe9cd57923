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
