package mxtest_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sealpost/sealpost/delivery/mxtest"
)

const body = "Subject: mxtest\r\n\r\nthe-secret-body-line\r\n"

// send runs one SMTP transaction against addr. With cfg non-nil it insists
// on STARTTLS first; the returned stage names where it failed.
func send(t *testing.T, addr string, cfg *tls.Config, from string, to ...string) (stage string, err error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "dial", err
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := smtp.NewClient(conn, "mxtest")
	if err != nil {
		conn.Close()
		return "greeting", err
	}
	defer c.Close()
	if err := c.Hello("client.mxtest.invalid"); err != nil {
		return "ehlo", err
	}
	if cfg != nil {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return "ehlo", errors.New("STARTTLS not advertised")
		}
		if err := c.StartTLS(cfg); err != nil {
			return "starttls", err
		}
	}
	if err := c.Mail(from); err != nil {
		return "mail", err
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return "rcpt", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "data", err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return "data", err
	}
	if err := w.Close(); err != nil {
		return "data-end", err
	}
	return "", c.Quit()
}

func addr(s interface{ IP() string }, h *mxtest.Harness) string {
	return net.JoinHostPort(s.IP(), fmt.Sprint(h.Port()))
}

func TestServerRecordsTLSAndPlaintext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		behavior    mxtest.Behavior
		clientMin   uint16
		wantVersion uint16 // 0: plaintext
	}{
		{"no STARTTLS", mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS}, 0, 0},
		{"default TLS", mxtest.Behavior{}, tls.VersionTLS12, tls.VersionTLS13},
		{"TLS 1.2 only", mxtest.TLS12Only(), tls.VersionTLS12, tls.VersionTLS12},
		{"TLS 1.1 only", mxtest.TLS11Only(), tls.VersionTLS11, tls.VersionTLS11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := mxtest.New(t)
			s := h.AddMX("example.test", 10, tt.behavior)
			var cfg *tls.Config
			if tt.wantVersion != 0 {
				cfg = &tls.Config{RootCAs: h.CertPool(), ServerName: s.Host(), MinVersion: tt.clientMin}
			}
			if stage, err := send(t, addr(s, h), cfg, "a@sender.test", "b@example.test"); err != nil {
				t.Fatalf("send failed at %s: %v", stage, err)
			}
			got := s.Accepted()
			if len(got) != 1 {
				t.Fatalf("accepted %d transactions, want 1: %+v", len(got), s.Received())
			}
			d := got[0]
			if d.TLS != (tt.wantVersion != 0) || d.Version != tt.wantVersion {
				t.Errorf("TLS=%v version=%#x, want version %#x", d.TLS, d.Version, tt.wantVersion)
			}
			if d.From != "a@sender.test" || len(d.To) != 1 || d.To[0] != "b@example.test" || string(d.Data) != body {
				t.Errorf("recorded %+v", d)
			}
			clear := s.CleartextBytes()
			if !bytes.Contains(clear, []byte("EHLO client.mxtest.invalid")) {
				t.Errorf("cleartext lacks the EHLO: %q", clear)
			}
			inClear := bytes.Contains(clear, []byte("the-secret-body-line"))
			if inClear != (tt.wantVersion == 0) {
				t.Errorf("body in cleartext = %v, want %v: %q", inClear, tt.wantVersion == 0, clear)
			}
			if tt.wantVersion != 0 {
				if d.ServerName != s.Host() {
					t.Errorf("SNI %q, want %q", d.ServerName, s.Host())
				}
				if bytes.Contains(bytes.ToUpper(clear), []byte("MAIL FROM")) {
					t.Errorf("MAIL FROM recorded as cleartext: %q", clear)
				}
			}
		})
	}
}

func TestTLS11OnlyRefusesModernClient(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	s := h.AddMX("example.test", 10, mxtest.TLS11Only())
	cfg := &tls.Config{RootCAs: h.CertPool(), ServerName: s.Host(), MinVersion: tls.VersionTLS12}
	stage, err := send(t, addr(s, h), cfg, "a@sender.test", "b@example.test")
	if stage != "starttls" || err == nil {
		t.Fatalf("stage %q err %v, want a STARTTLS failure", stage, err)
	}
	if n := len(s.Received()); n != 0 {
		t.Errorf("%d transactions recorded", n)
	}
}

func TestCertificateKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind  mxtest.CertKind
		check func(error) bool
	}{
		{mxtest.CertValid, func(err error) bool { return err == nil }},
		{mxtest.CertSelfSigned, func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) }},
		{mxtest.CertWrongName, func(err error) bool { var e x509.HostnameError; return errors.As(err, &e) }},
		{mxtest.CertExpired, func(err error) bool {
			var e x509.CertificateInvalidError
			return errors.As(err, &e) && e.Reason == x509.Expired
		}},
	}
	h := mxtest.New(t)
	for i, tt := range tests {
		domain := fmt.Sprintf("cert%d.test", i)
		s := h.AddMX(domain, 10, mxtest.Behavior{Cert: tt.kind})
		cfg := &tls.Config{RootCAs: h.CertPool(), ServerName: s.Host()}
		_, err := send(t, addr(s, h), cfg, "a@sender.test", "b@"+domain)
		if !tt.check(err) {
			t.Errorf("cert kind %d: unexpected result %v", tt.kind, err)
		}
	}
}

func TestSTARTTLSFailures(t *testing.T) {
	t.Parallel()
	for _, mode := range []mxtest.STARTTLSMode{mxtest.RejectSTARTTLS, mxtest.BreakHandshake, mxtest.AbortHandshake} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			t.Parallel()
			h := mxtest.New(t)
			s := h.AddMX("example.test", 10, mxtest.Behavior{STARTTLS: mode})
			cfg := &tls.Config{RootCAs: h.CertPool(), ServerName: s.Host()}
			stage, err := send(t, addr(s, h), cfg, "a@sender.test", "b@example.test")
			if stage != "starttls" || err == nil {
				t.Fatalf("stage %q err %v, want a STARTTLS failure", stage, err)
			}
			if mode == mxtest.RejectSTARTTLS && !strings.Contains(err.Error(), "454") {
				t.Errorf("error %v, want 454", err)
			}
			// A fresh plaintext connection still delivers: what an
			// opportunistic client falls back to.
			if stage, err := send(t, addr(s, h), nil, "a@sender.test", "b@example.test"); err != nil {
				t.Fatalf("plaintext retry failed at %s: %v", stage, err)
			}
			got := s.Accepted()
			if len(got) != 1 || got[0].TLS || got[0].Conn != 2 {
				t.Errorf("accepted %+v, want one plaintext delivery on connection 2", got)
			}
		})
	}
}

func TestReplies(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	tests := []struct {
		name     string
		behavior mxtest.Behavior
		stages   []string // per attempt, "" = delivered
		codes    []string
	}{
		{"4xx to MAIL twice", mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS, TempFailMail: 2}, []string{"mail", "mail", ""}, []string{"451", "451", ""}},
		{"4xx to RCPT once", mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS, TempFailRcpt: 1}, []string{"rcpt", ""}, []string{"451", ""}},
		{"5xx to RCPT", mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS, RejectRcpt: []string{"B@example.test"}}, []string{"rcpt", "rcpt"}, []string{"550", "550"}},
		{"5xx at end of DATA", mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS, DataReply: 554}, []string{"data-end"}, []string{"554"}},
		{"4xx at end of DATA", mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS, DataReply: 451}, []string{"data-end"}, []string{"451"}},
	}
	for i, tt := range tests {
		domain := fmt.Sprintf("replies%d.test", i)
		s := h.AddMX(domain, 10, tt.behavior)
		for attempt, want := range tt.stages {
			stage, err := send(t, addr(s, h), nil, "a@sender.test", "b@example.test")
			if stage != want || (err != nil) != (want != "") || (err != nil && !strings.Contains(err.Error(), tt.codes[attempt])) {
				t.Errorf("%s attempt %d: stage %q err %v, want stage %q code %s", tt.name, attempt+1, stage, err, want, tt.codes[attempt])
			}
		}
		if tt.behavior.DataReply != 0 {
			got := s.Received()
			if len(got) != 1 || got[0].Code != tt.behavior.DataReply || got[0].Accepted() || string(got[0].Data) != body {
				t.Errorf("%s: recorded %+v", tt.name, got)
			}
		}
	}
}

func TestProxyStripsSTARTTLS(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	p, s := h.AddProxiedMX("example.test", 10, mxtest.Behavior{}, mxtest.StripSTARTTLS)
	cfg := &tls.Config{RootCAs: h.CertPool(), ServerName: s.Host()}
	stage, err := send(t, addr(p, h), cfg, "a@sender.test", "b@example.test")
	if stage != "ehlo" || err == nil {
		t.Fatalf("stage %q err %v, want STARTTLS missing from EHLO", stage, err)
	}
	if bytes.Contains(p.ServerToClient(), []byte("STARTTLS")) {
		t.Errorf("client saw STARTTLS: %q", p.ServerToClient())
	}

	// A client sending STARTTLS anyway is answered by the proxy, not the server.
	conn, err := net.Dial("tcp", addr(p, h))
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClient(conn, s.Host())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.mxtest.invalid"); err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(cfg); err == nil || !strings.Contains(err.Error(), "502") {
		t.Errorf("STARTTLS through the proxy: %v, want 502", err)
	}
	if bytes.Contains(s.CleartextBytes(), []byte("STARTTLS")) {
		t.Errorf("server received STARTTLS: %q", s.CleartextBytes())
	}

	// A downgraded client that goes on in plaintext reaches the server.
	if stage, err := send(t, addr(p, h), nil, "a@sender.test", "b@example.test"); err != nil {
		t.Fatalf("plaintext through the proxy failed at %s: %v", stage, err)
	}
	if !bytes.Contains(p.ClientToServer(), []byte("the-secret-body-line")) {
		t.Errorf("proxy did not record the plaintext body")
	}
	if got := s.Accepted(); len(got) != 1 || got[0].TLS {
		t.Errorf("server accepted %+v", got)
	}
}

func TestProxyPassthroughSeesOnlyCiphertext(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	p, s := h.AddProxiedMX("example.test", 10, mxtest.Behavior{}, mxtest.Passthrough)
	cfg := &tls.Config{RootCAs: h.CertPool(), ServerName: s.Host()}
	if stage, err := send(t, addr(p, h), cfg, "a@sender.test", "b@example.test"); err != nil {
		t.Fatalf("send through passthrough failed at %s: %v", stage, err)
	}
	if got := s.Accepted(); len(got) != 1 || !got[0].TLS {
		t.Fatalf("server accepted %+v", got)
	}
	c2s := p.ClientToServer()
	if !bytes.Contains(c2s, []byte("STARTTLS")) || bytes.Contains(c2s, []byte("the-secret-body-line")) {
		t.Errorf("proxy recording %q", c2s)
	}
}

func TestHarnessSharesOnePortAcrossAddresses(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	a := h.AddMX("multi.test", 20, mxtest.Behavior{})
	b := h.AddMX("multi.test", 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	if a.Host() != "mx1.multi.test" || b.Host() != "mx2.multi.test" {
		t.Errorf("hosts %q %q", a.Host(), b.Host())
	}
	if a.IP() == b.IP() {
		t.Errorf("both servers on %s", a.IP())
	}
	for _, s := range []*mxtest.Server{a, b} {
		_, port, _ := net.SplitHostPort(s.Addr())
		if port != fmt.Sprint(h.Port()) {
			t.Errorf("%s listens on %s, harness port %d", s.Host(), s.Addr(), h.Port())
		}
	}
	mx := query(t, h.DNSAddr(), "udp", "multi.test", dns.TypeMX)
	if mx.Rcode != dns.RcodeSuccess || len(mx.Answer) != 2 {
		t.Fatalf("MX answer %v", mx)
	}
	got := map[string]uint16{}
	for _, rr := range mx.Answer {
		m := rr.(*dns.MX)
		got[m.Mx] = m.Preference
	}
	if got["mx1.multi.test."] != 20 || got["mx2.multi.test."] != 10 {
		t.Errorf("MX records %v", got)
	}
	aRec := query(t, h.DNSAddr(), "tcp", "mx2.multi.test", dns.TypeA)
	if len(aRec.Answer) != 1 || aRec.Answer[0].(*dns.A).A.String() != b.IP() {
		t.Errorf("A answer %v, want %s", aRec, b.IP())
	}
	if path := h.CAFile(); path == "" || path != h.CAFile() {
		t.Errorf("CAFile %q", path)
	}
}

func TestDNSAnswers(t *testing.T) {
	t.Parallel()
	d := mxtest.NewDNS(t)
	d.SetMX("mx.test", mxtest.MX{Pref: 5, Host: "mail.mx.test"})
	d.SetA("mail.mx.test", "127.0.0.9", "::1")
	d.SetA("implicit.test", "127.0.0.10")
	d.SetNullMX("null.test")
	d.SetServFail("broken.test")
	tests := []struct {
		name    string
		qtype   uint16
		rcode   int
		answers int
	}{
		{"mx.test", dns.TypeMX, dns.RcodeSuccess, 1},
		{"MX.Test.", dns.TypeMX, dns.RcodeSuccess, 1},
		{"mail.mx.test", dns.TypeA, dns.RcodeSuccess, 1},
		{"mail.mx.test", dns.TypeAAAA, dns.RcodeSuccess, 1},
		{"implicit.test", dns.TypeMX, dns.RcodeSuccess, 0},
		{"implicit.test", dns.TypeAAAA, dns.RcodeSuccess, 0},
		{"null.test", dns.TypeMX, dns.RcodeSuccess, 1},
		{"broken.test", dns.TypeMX, dns.RcodeServerFailure, 0},
		{"unknown.test", dns.TypeMX, dns.RcodeNameError, 0},
		{"unknown.test", dns.TypeA, dns.RcodeNameError, 0},
	}
	for _, tt := range tests {
		for _, network := range []string{"udp", "tcp"} {
			r := query(t, d.Addr(), network, tt.name, tt.qtype)
			if r.Rcode != tt.rcode || len(r.Answer) != tt.answers {
				t.Errorf("%s %s over %s: rcode %s, %d answers; want %s, %d", tt.name, dns.TypeToString[tt.qtype], network,
					dns.RcodeToString[r.Rcode], len(r.Answer), dns.RcodeToString[tt.rcode], tt.answers)
			}
		}
	}
	if r := query(t, d.Addr(), "udp", "null.test", dns.TypeMX); len(r.Answer) == 1 && r.Answer[0].(*dns.MX).Mx != "." {
		t.Errorf("null MX answered %v", r.Answer[0])
	}
	// Changes apply to a running server.
	d.Remove("mx.test")
	if r := query(t, d.Addr(), "udp", "mx.test", dns.TypeMX); r.Rcode != dns.RcodeNameError {
		t.Errorf("after Remove: %s", dns.RcodeToString[r.Rcode])
	}
}

func query(t *testing.T, server, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("query %s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return r
}
