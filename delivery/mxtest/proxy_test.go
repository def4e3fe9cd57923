package mxtest_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost/delivery/mxtest"
)

const secret = "the-secret-body-line"

// dialSMTP opens an SMTP client session through the proxy and greets.
func dialSMTP(t *testing.T, address, serverName string) *smtp.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", address, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	c, err := smtp.NewClient(conn, serverName)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.mxtest.invalid"); err != nil {
		t.Fatal(err)
	}
	return c
}

// transact runs MAIL, RCPT, DATA on an open session.
func transact(c *smtp.Client) error {
	if err := c.Mail("a@sender.test"); err != nil {
		return err
	}
	if err := c.Rcpt("b@example.test"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func TestProxyRefusesSTARTTLSItself(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	p, s := h.AddProxiedMX("example.test", 10, mxtest.Behavior{}, mxtest.RefuseSTARTTLS)
	c := dialSMTP(t, addr(p, h), s.Host())
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatalf("STARTTLS not advertised through the proxy: %q", p.ServerToClient())
	}
	err := c.StartTLS(&tls.Config{RootCAs: h.CertPool(), ServerName: s.Host()})
	if err == nil || !strings.HasPrefix(err.Error(), "454 ") {
		t.Fatalf("STARTTLS through the proxy: %v, want the proxy's 454", err)
	}
	if bytes.Contains(s.CleartextBytes(), []byte("STARTTLS")) || bytes.Contains(p.Forwarded(), []byte("STARTTLS")) {
		t.Errorf("the proxy forwarded STARTTLS: %q", p.Forwarded())
	}
	// A client that goes on in plaintext hands the attacker the message.
	if err := transact(c); err != nil {
		t.Fatalf("plaintext after the 454: %v", err)
	}
	if !bytes.Contains(p.ClientToServer(), []byte(secret)) || !bytes.Contains(p.ClientCleartext(), []byte(secret)) {
		t.Errorf("proxy did not record the plaintext body")
	}
	if got := s.Accepted(); len(got) != 1 || got[0].TLS {
		t.Errorf("server accepted %+v", got)
	}
}

func TestProxyDowngradesToTLS10(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	p, s := h.AddProxiedMX("example.test", 10, mxtest.Behavior{}, mxtest.DowngradeTLS10)

	// A client that refuses TLS 1.0 gets no session at all.
	strict := dialSMTP(t, addr(p, h), s.Host())
	if err := strict.StartTLS(&tls.Config{RootCAs: h.CertPool(), ServerName: s.Host(), MinVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("a TLS 1.1 minimum client completed a handshake with the TLS 1.0 proxy")
	}

	// A client that allows TLS 1.0 gets exactly TLS 1.0, with a certificate
	// that verifies for the MX name: only the version is wrong.
	c := dialSMTP(t, addr(p, h), s.Host())
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not advertised through the proxy")
	}
	cfg := &tls.Config{RootCAs: h.CertPool(), ServerName: s.Host(), MinVersion: tls.VersionTLS10}
	if err := c.StartTLS(cfg); err != nil {
		t.Fatalf("STARTTLS at TLS 1.0: %v", err)
	}
	cs, ok := c.TLSConnectionState()
	if !ok || cs.Version != tls.VersionTLS10 {
		t.Fatalf("negotiated %s, want TLS 1.0", tls.VersionName(cs.Version))
	}
	// net/smtp greets again after STARTTLS, inside the proxy's TLS.
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("the proxy let the backend offer STARTTLS again inside its TLS")
	}
	if err := transact(c); err != nil {
		t.Fatalf("transaction inside the proxy's TLS: %v", err)
	}

	hs := p.Handshakes()
	if len(hs) != 2 || hs[0].Err == nil || hs[1].Err != nil || hs[1].Version != tls.VersionTLS10 || hs[1].ServerName != s.Host() {
		t.Errorf("handshakes %+v, want one refused and one at TLS 1.0", hs)
	}
	checkTerminated(t, p, s)
}

func TestProxyImpersonatesWithCertificateForAnotherName(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	p, s := h.AddProxiedMX("example.test", 10, mxtest.Behavior{}, mxtest.ImpersonateWrongName)

	// A client that checks the name refuses the proxy.
	strict := dialSMTP(t, addr(p, h), s.Host())
	err := strict.StartTLS(&tls.Config{RootCAs: h.CertPool(), ServerName: s.Host()})
	var hostErr x509.HostnameError
	if !errors.As(err, &hostErr) {
		t.Fatalf("STARTTLS verifying %s: %v, want a host name mismatch", s.Host(), err)
	}

	// The certificate is a real one from the CA, for the attacker's name.
	c := dialSMTP(t, addr(p, h), s.Host())
	if err := c.StartTLS(&tls.Config{ServerName: s.Host(), InsecureSkipVerify: true}); err != nil {
		t.Fatalf("STARTTLS without verification: %v", err)
	}
	cs, _ := c.TLSConnectionState()
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: h.CertPool(), DNSName: mxtest.ImpersonatorName}); err != nil {
		t.Errorf("the impersonator's certificate does not verify for %s: %v", mxtest.ImpersonatorName, err)
	}
	if cs.Version != tls.VersionTLS13 {
		t.Errorf("negotiated %s, want TLS 1.3", tls.VersionName(cs.Version))
	}
	if err := transact(c); err != nil {
		t.Fatalf("transaction inside the proxy's TLS: %v", err)
	}
	checkTerminated(t, p, s)
}

// checkTerminated asserts what a terminating proxy saw of one transaction
// that went through it: ciphertext on the client's wire, the message in
// the clear inside the proxy, and the message relayed in plaintext.
func checkTerminated(t *testing.T, p *mxtest.Proxy, s *mxtest.Server) {
	t.Helper()
	if bytes.Contains(p.ClientToServer(), []byte(secret)) || bytes.Contains(p.ClientCleartext(), []byte(secret)) {
		t.Error("the body crossed the client's wire in clear")
	}
	if bytes.Contains(p.ClientToServer(), []byte("MAIL FROM")) {
		t.Error("MAIL FROM crossed the client's wire in clear")
	}
	if !bytes.Contains(p.ClientCleartext(), []byte("STARTTLS")) {
		t.Errorf("cleartext before TLS %q lacks STARTTLS", p.ClientCleartext())
	}
	for name, b := range map[string][]byte{"decrypted": p.Decrypted(), "forwarded": p.Forwarded(), "backend cleartext": s.CleartextBytes()} {
		if !bytes.Contains(b, []byte(secret)) || !bytes.Contains(b, []byte("MAIL FROM:<a@sender.test>")) {
			t.Errorf("%s lacks the transaction: %q", name, b)
		}
	}
	if bytes.Contains(p.Forwarded(), []byte("STARTTLS")) {
		t.Errorf("the proxy forwarded STARTTLS: %q", p.Forwarded())
	}
	if got := s.Accepted(); len(got) != 1 || got[0].TLS {
		t.Errorf("backend accepted %+v, want the message once, in plaintext from the proxy", got)
	}
}
