package delivery_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// The Enforced TLS matrix: every server behaviour against every policy, each
// cell's outcome derived from the decision table in the delivery spec and
// checked against what the fake servers really received.

const matrixDomain = "matrix.test"

// matrixPolicies are the columns, in the order of each row's cells.
var matrixPolicies = []struct {
	name   string
	policy sealpost.EnforcedTLS
}{
	{"default", sealpost.EnforcedTLS{Version: sealpost.TLS11}},
	{"require_tls", sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS11}},
	{"require_valid_cert", sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS11}},
	{"require_valid_cert_1.2", sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS12}},
	{"require_valid_cert_1.3", sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS13}},
	{"require_tls_1.2", sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS12}},
	{"require_tls_1.3", sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS13}},
}

// cell is the expected outcome of one delivery under one policy.
type cell struct {
	status delivery.Status
	// tls is the event's tls field: whether the session the outcome came
	// from ran under TLS.
	tls bool
	// via is the server ("mx1", "mx2") that must have accepted the
	// message, at version (0 = in plaintext); "" means none may have.
	via     string
	version uint16
	// resultType is the RFC 8460 result type of a Blocked outcome.
	resultType string
	// deferredFirst: the first attempt must be Deferred, and this cell
	// describes the second.
	deferredFirst bool
}

func plain(via string) cell { return cell{status: delivery.Delivered, via: via} }

func overTLS(via string, version uint16) cell {
	return cell{status: delivery.Delivered, tls: true, via: via, version: version}
}

func blocked(resultType string) cell { return cell{status: delivery.Blocked, resultType: resultType} }

func bouncedOverTLS() cell { return cell{status: delivery.Bounced, tls: true} }

func deferredThen(c cell) cell {
	c.deferredFirst = true
	return c
}

// world is what a row builds in its harness.
type world struct {
	servers map[string]*mxtest.Server
	proxy   *mxtest.Proxy
}

const (
	tls11 = tls.VersionTLS11
	tls12 = tls.VersionTLS12
	tls13 = tls.VersionTLS13

	noSTARTTLS = sealpost.ResultSTARTTLSNotSupported
	notTrusted = sealpost.ResultCertificateNotTrusted
	mismatch   = sealpost.ResultCertificateHostMismatch
	expired    = sealpost.ResultCertificateExpired
	failure    = sealpost.ResultValidationFailure
)

const rcpt = "someone@" + matrixDomain

func oneMX(b mxtest.Behavior) func(*mxtest.Harness) world {
	return func(h *mxtest.Harness) world {
		return world{servers: map[string]*mxtest.Server{"mx1": h.AddMX(matrixDomain, 10, b)}}
	}
}

func proxied(b mxtest.Behavior, mode mxtest.ProxyMode) func(*mxtest.Harness) world {
	return func(h *mxtest.Harness) world {
		p, s := h.AddProxiedMX(matrixDomain, 10, b, mode)
		return world{servers: map[string]*mxtest.Server{"mx1": s}, proxy: p}
	}
}

var matrixRows = []struct {
	name  string
	setup func(*mxtest.Harness) world
	// badCert: the certificate does not verify, so no delivery over TLS
	// may claim it was verified.
	badCert bool
	// reconnect: an opportunistic plaintext delivery must come on a new
	// connection, after the failed STARTTLS one.
	reconnect bool
	//          default, require_tls, rvc, rvc 1.2, rvc 1.3, rt 1.2, rt 1.3
	cells [7]cell
}{
	{
		name:  "no STARTTLS",
		setup: oneMX(mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS}),
		cells: [7]cell{plain("mx1"), blocked(noSTARTTLS), blocked(noSTARTTLS), blocked(noSTARTTLS), blocked(noSTARTTLS), blocked(noSTARTTLS), blocked(noSTARTTLS)},
	},
	{
		name:  "STARTTLS valid certificate",
		setup: oneMX(mxtest.Behavior{}),
		cells: [7]cell{overTLS("mx1", tls13), overTLS("mx1", tls13), overTLS("mx1", tls13), overTLS("mx1", tls13), overTLS("mx1", tls13), overTLS("mx1", tls13), overTLS("mx1", tls13)},
	},
	{
		name:    "STARTTLS self-signed",
		setup:   oneMX(mxtest.Behavior{Cert: mxtest.CertSelfSigned}),
		badCert: true,
		cells:   [7]cell{overTLS("mx1", tls13), overTLS("mx1", tls13), blocked(notTrusted), blocked(notTrusted), blocked(notTrusted), overTLS("mx1", tls13), overTLS("mx1", tls13)},
	},
	{
		name:    "STARTTLS wrong host name",
		setup:   oneMX(mxtest.Behavior{Cert: mxtest.CertWrongName}),
		badCert: true,
		cells:   [7]cell{overTLS("mx1", tls13), overTLS("mx1", tls13), blocked(mismatch), blocked(mismatch), blocked(mismatch), overTLS("mx1", tls13), overTLS("mx1", tls13)},
	},
	{
		name:    "STARTTLS expired certificate",
		setup:   oneMX(mxtest.Behavior{Cert: mxtest.CertExpired}),
		badCert: true,
		cells:   [7]cell{overTLS("mx1", tls13), overTLS("mx1", tls13), blocked(expired), blocked(expired), blocked(expired), overTLS("mx1", tls13), overTLS("mx1", tls13)},
	},
	{
		name:  "TLS 1.1 only",
		setup: oneMX(mxtest.TLS11Only()),
		cells: [7]cell{overTLS("mx1", tls11), overTLS("mx1", tls11), overTLS("mx1", tls11), blocked(failure), blocked(failure), blocked(failure), blocked(failure)},
	},
	{
		name:  "TLS 1.2 only",
		setup: oneMX(mxtest.TLS12Only()),
		cells: [7]cell{overTLS("mx1", tls12), overTLS("mx1", tls12), overTLS("mx1", tls12), overTLS("mx1", tls12), blocked(failure), overTLS("mx1", tls12), blocked(failure)},
	},
	{
		name:      "STARTTLS advertised, handshake answered with garbage",
		setup:     oneMX(mxtest.Behavior{STARTTLS: mxtest.BreakHandshake}),
		reconnect: true,
		cells:     [7]cell{plain("mx1"), blocked(failure), blocked(failure), blocked(failure), blocked(failure), blocked(failure), blocked(failure)},
	},
	{
		name:      "STARTTLS advertised, handshake aborted by an alert",
		setup:     oneMX(mxtest.Behavior{STARTTLS: mxtest.AbortHandshake}),
		reconnect: true,
		cells:     [7]cell{plain("mx1"), blocked(failure), blocked(failure), blocked(failure), blocked(failure), blocked(failure), blocked(failure)},
	},
	{
		name:  "STARTTLS answered 454",
		setup: oneMX(mxtest.Behavior{STARTTLS: mxtest.RejectSTARTTLS}),
		cells: [7]cell{plain("mx1"), blocked(failure), blocked(failure), blocked(failure), blocked(failure), blocked(failure), blocked(failure)},
	},
	{
		name:  "man in the middle strips STARTTLS",
		setup: proxied(mxtest.Behavior{}, mxtest.StripSTARTTLS),
		cells: [7]cell{plain("mx1"), blocked(noSTARTTLS), blocked(noSTARTTLS), blocked(noSTARTTLS), blocked(noSTARTTLS), blocked(noSTARTTLS), blocked(noSTARTTLS)},
	},
	{
		name:  "man in the middle only relays",
		setup: proxied(mxtest.Behavior{}, mxtest.Passthrough),
		cells: [7]cell{overTLS("mx1", tls13), overTLS("mx1", tls13), overTLS("mx1", tls13), overTLS("mx1", tls13), overTLS("mx1", tls13), overTLS("mx1", tls13), overTLS("mx1", tls13)},
	},
	{
		name: "first MX without TLS, second MX valid TLS",
		setup: func(h *mxtest.Harness) world {
			return world{servers: map[string]*mxtest.Server{
				"mx1": h.AddMX(matrixDomain, 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS}),
				"mx2": h.AddMX(matrixDomain, 20, mxtest.Behavior{}),
			}}
		},
		cells: [7]cell{plain("mx1"), overTLS("mx2", tls13), overTLS("mx2", tls13), overTLS("mx2", tls13), overTLS("mx2", tls13), overTLS("mx2", tls13), overTLS("mx2", tls13)},
	},
	{
		name:  "4xx to RCPT once, then success",
		setup: oneMX(mxtest.Behavior{TempFailRcpt: 1}),
		cells: [7]cell{
			deferredThen(overTLS("mx1", tls13)), deferredThen(overTLS("mx1", tls13)), deferredThen(overTLS("mx1", tls13)), deferredThen(overTLS("mx1", tls13)),
			deferredThen(overTLS("mx1", tls13)), deferredThen(overTLS("mx1", tls13)), deferredThen(overTLS("mx1", tls13)),
		},
	},
	{
		name:  "5xx to RCPT",
		setup: oneMX(mxtest.Behavior{RejectRcpt: []string{rcpt}}),
		cells: [7]cell{bouncedOverTLS(), bouncedOverTLS(), bouncedOverTLS(), bouncedOverTLS(), bouncedOverTLS(), bouncedOverTLS(), bouncedOverTLS()},
	},
}

func TestEnforcedTLSMatrix(t *testing.T) {
	t.Parallel()
	for _, row := range matrixRows {
		for col, pol := range matrixPolicies {
			want := row.cells[col]
			t.Run(row.name+"/"+pol.name, func(t *testing.T) {
				t.Parallel()
				h := mxtest.New(t)
				w := row.setup(h)
				marker := fmt.Sprintf("matrix-body-%d-%d-%d", time.Now().UnixNano(), len(row.name), col)
				env := delivery.Envelope{
					From:       "sender@sealpost.test",
					Domain:     matrixDomain,
					Recipients: []string{rcpt},
					Data:       []byte("From: sender@sealpost.test\r\nTo: " + rcpt + "\r\nSubject: matrix\r\n\r\n" + marker + "\r\n"),
				}
				c := &delivery.Client{
					Resolver:     delivery.NewResolver(h.DNSAddr()),
					Port:         h.Port(),
					HeloHostname: "sender.sealpost.test",
					RootCAs:      h.CertPool(),
					Timeout:      10 * time.Second,
					Destinations: loopbackOnly(),
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()

				res := c.Deliver(ctx, pol.policy, env)
				if want.deferredFirst {
					checkDeferred(t, res)
					res = c.Deliver(ctx, pol.policy, env)
				}
				checkResult(t, want, res, w, pol.policy, row.badCert)
				checkServers(t, want, w, marker)
				if row.reconnect && want.status == delivery.Delivered && !want.tls {
					for _, d := range w.servers[want.via].Accepted() {
						if d.Conn < 2 {
							t.Errorf("plaintext delivery came on connection %d; want a fresh one after the failed STARTTLS", d.Conn)
						}
					}
				}
				if pol.policy.Mandatory() || want.status == delivery.Blocked {
					checkNothingInClear(t, w, marker)
				}
				if t.Failed() {
					t.Logf("result: %+v", res)
				}
			})
		}
	}
}

func checkDeferred(t *testing.T, res delivery.Result) {
	t.Helper()
	if len(res.Recipients) != 1 {
		t.Fatalf("first attempt: %d results, want 1", len(res.Recipients))
	}
	r := res.Recipients[0]
	if r.Status != delivery.Deferred || !strings.Contains(r.Response, "451") || !strings.HasPrefix(r.EnhancedStatus, "4.") {
		t.Errorf("first attempt: %v %q %q, want deferred with the server's 451", r.Status, r.Response, r.EnhancedStatus)
	}
}

func checkResult(t *testing.T, want cell, res delivery.Result, w world, policy sealpost.EnforcedTLS, badCert bool) {
	t.Helper()
	if len(res.Recipients) != 1 {
		t.Fatalf("%d results, want 1", len(res.Recipients))
	}
	r := res.Recipients[0]
	if r.Status != want.status {
		t.Errorf("status %v (%q, %s), want %v", r.Status, r.Response, r.EnhancedStatus, want.status)
	}
	if res.TLS.TLS != want.tls {
		t.Errorf("tls %v, want %v", res.TLS.TLS, want.tls)
	}
	switch want.status {
	case delivery.Delivered:
		if !strings.HasPrefix(r.Response, "250") {
			t.Errorf("response %q, want the server's 250", r.Response)
		}
		if host := w.servers[want.via].Host(); res.TLS.MXHost != host {
			t.Errorf("mx_host %q, want %q", res.TLS.MXHost, host)
		}
		if want.tls && res.TLS.Version != versionName(want.version) {
			t.Errorf("tls_version %q, want %q", res.TLS.Version, versionName(want.version))
		}
		// Only require_valid_cert must verify, but no policy may call an
		// unverifiable certificate verified.
		if want.tls && policy.RequireValidCert && !res.TLS.Verified {
			t.Errorf("delivered under require_valid_cert without cert_verified")
		}
		if want.tls && badCert && (res.TLS.Verified || res.TLS.VerifyError == "") {
			t.Errorf("cert_verified %v, cert_error %q for a certificate that cannot verify", res.TLS.Verified, res.TLS.VerifyError)
		}
	case delivery.Blocked:
		if r.Response != sealpost.BlockedReason || r.EnhancedStatus != sealpost.BlockedStatus {
			t.Errorf("blocked with %q %q, want %q %q", r.Response, r.EnhancedStatus, sealpost.BlockedReason, sealpost.BlockedStatus)
		}
		if res.TLS.ResultType != want.resultType {
			t.Errorf("result type %q, want %q", res.TLS.ResultType, want.resultType)
		}
	case delivery.Bounced:
		if !strings.Contains(r.Response, "550") || r.EnhancedStatus != "5.1.1" {
			t.Errorf("bounced with %q %q, want the server's 550 5.1.1", r.Response, r.EnhancedStatus)
		}
	}
}

// checkServers compares what each server accepted with the cell.
func checkServers(t *testing.T, want cell, w world, marker string) {
	t.Helper()
	for name, s := range w.servers {
		accepted := s.Accepted()
		if name != want.via {
			if len(accepted) != 0 {
				t.Errorf("%s accepted %d messages, want none", name, len(accepted))
			}
			continue
		}
		if len(accepted) != 1 {
			t.Errorf("%s accepted %d messages, want 1 (all transactions: %+v)", name, len(accepted), s.Received())
			continue
		}
		d := accepted[0]
		if d.TLS != (want.version != 0) || d.Version != want.version {
			t.Errorf("%s received the message with TLS=%v version %s, want version %s", name, d.TLS, versionName(d.Version), versionName(want.version))
		}
		if d.TLS && d.ServerName != s.Host() {
			t.Errorf("%s saw SNI %q, want %q", name, d.ServerName, s.Host())
		}
		if !bytes.Contains(d.Data, []byte(marker)) || d.From != "sender@sealpost.test" || len(d.To) != 1 || d.To[0] != rcpt {
			t.Errorf("%s received from %q to %q: %q", name, d.From, d.To, d.Data)
		}
		inClear := bytes.Contains(s.CleartextBytes(), []byte(marker))
		if inClear != !d.TLS {
			t.Errorf("%s: message body in cleartext = %v, but TLS = %v", name, inClear, d.TLS)
		}
	}
	if want.status == delivery.Blocked || want.status == delivery.Bounced {
		for name, s := range w.servers {
			for _, d := range s.Received() {
				if d.Data != nil {
					t.Errorf("%s received message data: %+v", name, d)
				}
			}
		}
	}
	if want.status == delivery.Blocked {
		for name, s := range w.servers {
			if n := len(s.Received()); n != 0 {
				t.Errorf("%s saw %d MAIL transactions under a policy it failed", name, n)
			}
		}
	}
}

// checkNothingInClear is the invariant of every mandatory policy: no server
// and no on-path observer ever sees the message or a MAIL command in clear.
func checkNothingInClear(t *testing.T, w world, marker string) {
	t.Helper()
	observed := map[string][]byte{}
	for name, s := range w.servers {
		observed[name] = s.CleartextBytes()
	}
	if w.proxy != nil {
		observed["proxy"] = w.proxy.ClientToServer()
	}
	for name, clear := range observed {
		if bytes.Contains(clear, []byte(marker)) {
			t.Errorf("%s saw the message body in cleartext", name)
		}
		if bytes.Contains(bytes.ToUpper(clear), []byte("MAIL FROM")) {
			t.Errorf("%s saw a MAIL command in cleartext: %q", name, clear)
		}
		if bytes.Contains(bytes.ToUpper(clear), []byte("RCPT TO")) {
			t.Errorf("%s saw a RCPT command in cleartext: %q", name, clear)
		}
	}
}

func versionName(v uint16) string {
	switch v {
	case 0:
		return "plaintext"
	case tls.VersionTLS10:
		return "1.0"
	case tls.VersionTLS11:
		return "1.1"
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return fmt.Sprintf("%#04x", v)
}
