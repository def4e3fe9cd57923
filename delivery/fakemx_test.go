package delivery

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// testCA is a certificate authority made up for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sealpost test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf issues a server certificate for names valid from notBefore to
// notAfter.
func (ca *testCA) leaf(t testing.TB, notBefore, notAfter time.Time, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// rsaLeaf issues a valid RSA server certificate, for the key exchanges
// TLS 1.0 and 1.1 servers commonly use (ECDHE-RSA).
func (ca *testCA) rsaLeaf(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (ca *testCA) validLeaf(t testing.TB, names ...string) tls.Certificate {
	return ca.leaf(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), names...)
}

// mxBehaviour scripts a fake MX server.
type mxBehaviour struct {
	Greeting string      // default "220 <name> ESMTP"
	TLS      *tls.Config // nil: STARTTLS not advertised
	// EHLOReply replaces the EHLO answer (e.g. "502 5.5.1 no").
	EHLOReply     string
	Size          bool   // advertise SIZE
	STARTTLSReply string // default "220 2.0.0 ready"
	// BreakHandshake answers the client's ClientHello with garbage.
	BreakHandshake bool
	// InjectAfterSTARTTLS sends a plaintext reply right behind the 220, in
	// the same packet, as an on-path attacker injecting commands would.
	InjectAfterSTARTTLS bool
	// SizeBeforeTLSOnly advertises SIZE before STARTTLS but not after.
	SizeBeforeTLSOnly bool
	MailReply         string
	RcptReplies       map[string]string // by address; default 250
	DataReply         string            // default "354 go ahead"
	EndReply          string            // default "250 2.0.0 Ok: queued as X"
	// DropBeforeEnd closes the connection after the message instead of
	// answering it.
	DropBeforeEnd bool
	// DropAfterEnd closes the connection right after accepting a message,
	// as a server does that ends idle sessions early.
	DropAfterEnd bool
	RSETReply    string // default "250 2.0.0 ok"
	NoPipelining bool   // leave PIPELINING out of the EHLO reply
	// WatchPipelining holds back the reply to MAIL for a moment to see
	// whether the RCPTs come without waiting for it (transcript.Pipelined).
	WatchPipelining bool
}

// transcript is what one connection to a fake MX saw.
type transcript struct {
	Commands []string // client lines, plus "<TLS 1.x>" where TLS started
	Data     string   // the DATA section as received, dot-stuffing included
	Messages int      // messages accepted
	// Pipelined: a RCPT arrived before the server had answered MAIL.
	Pipelined bool
	// RSETPipelined counts the RSETs that had more commands behind them
	// in the same write.
	RSETPipelined int
}

func (tr transcript) has(prefix string) bool {
	for _, c := range tr.Commands {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

type fakeMX struct {
	name string
	ln   net.Listener
	b    mxBehaviour
	wg   sync.WaitGroup

	mu       sync.Mutex
	sessions []*transcript
}

// listenAll listens on every ip at one common port, as MX hosts all serve
// one port (Client.Port).
func listenAll(t testing.TB, ips ...string) (int, []net.Listener) {
	t.Helper()
	for try := 0; try < 20; try++ {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(ips) {
			return port, lns
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	t.Fatal("no common free port")
	return 0, nil
}

func startMX(t testing.TB, name string, ln net.Listener, b mxBehaviour) *fakeMX {
	m := &fakeMX{name: name, ln: ln, b: b}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			tr := &transcript{}
			m.mu.Lock()
			m.sessions = append(m.sessions, tr)
			m.mu.Unlock()
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.serve(conn, tr)
			}()
		}
	}()
	t.Cleanup(m.stop)
	return m
}

// stop closes the listener and waits for every session to end.
func (m *fakeMX) stop() {
	m.ln.Close()
	m.wg.Wait()
}

// transcripts stops the server and returns what each connection saw.
func (m *fakeMX) transcripts() []transcript {
	m.stop()
	return m.snapshot()
}

// snapshot is what each connection saw so far, the server still running.
func (m *fakeMX) snapshot() []transcript {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]transcript, len(m.sessions))
	for i, s := range m.sessions {
		out[i] = *s
	}
	return out
}

func (m *fakeMX) serve(conn net.Conn, tr *transcript) {
	defer func() { conn.Close() }()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	add := func(s string) {
		m.mu.Lock()
		tr.Commands = append(tr.Commands, s)
		m.mu.Unlock()
	}
	say := func(def, override string) {
		s := def
		if override != "" {
			s = override
		}
		io.WriteString(conn, s+"\r\n")
	}
	// sentAlong reports whether the command just read came with more in
	// the same write: a client that waits for the reply sends nothing more
	// in this time.
	sentAlong := func() bool {
		conn.SetReadDeadline(time.Now().Add(time.Second))
		r.Peek(1)
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		return r.Buffered() > 0
	}
	say("220 "+m.name+" ESMTP", m.b.Greeting)
	secure := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		add(line)
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			if m.b.EHLOReply != "" {
				say(m.b.EHLOReply, "")
				continue
			}
			lines := []string{m.name + " greets " + arg, "ENHANCEDSTATUSCODES"}
			if !m.b.NoPipelining {
				lines = append(lines, "PIPELINING")
			}
			if m.b.Size || (m.b.SizeBeforeTLSOnly && !secure) {
				lines = append(lines, "SIZE 10240000")
			}
			if m.b.TLS != nil && !secure {
				lines = append(lines, "STARTTLS")
			}
			lines = append(lines, "8BITMIME")
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				io.WriteString(conn, "250"+sep+l+"\r\n")
			}
		case "HELO":
			say("250 "+m.name, "")
		case "STARTTLS":
			if m.b.TLS == nil || secure {
				say("502 5.5.1 not here", "")
				continue
			}
			if m.b.InjectAfterSTARTTLS {
				io.WriteString(conn, "220 2.0.0 ready\r\n250 2.0.0 injected\r\n")
				add("<injected>")
				return
			}
			say("220 2.0.0 ready", m.b.STARTTLSReply)
			if m.b.STARTTLSReply != "" && !strings.HasPrefix(m.b.STARTTLSReply, "220") {
				continue
			}
			if m.b.BreakHandshake {
				buf := make([]byte, 512)
				conn.Read(buf)
				io.WriteString(conn, "this is not TLS\r\n")
				add("<broken handshake>")
				return
			}
			tc := tls.Server(conn, m.b.TLS)
			if err := tc.Handshake(); err != nil {
				add("<handshake failed: " + err.Error() + ">")
				return
			}
			conn = tc
			r = bufio.NewReader(tc)
			secure = true
			add("<TLS " + versionName(tc.ConnectionState().Version) + ">")
		case "MAIL":
			// A client that pipelined sent its RCPTs in the same write.
			if m.b.WatchPipelining && sentAlong() {
				m.mu.Lock()
				tr.Pipelined = true
				m.mu.Unlock()
			}
			say("250 2.1.0 ok", m.b.MailReply)
		case "RCPT":
			addr := strings.TrimSuffix(strings.TrimPrefix(arg, "TO:<"), ">")
			say("250 2.1.5 ok", m.b.RcptReplies[addr])
		case "DATA":
			say("354 go ahead", m.b.DataReply)
			if m.b.DataReply != "" && !strings.HasPrefix(m.b.DataReply, "354") {
				continue
			}
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(l)
			}
			m.mu.Lock()
			tr.Data = data.String()
			m.mu.Unlock()
			if m.b.DropBeforeEnd {
				return
			}
			say("250 2.0.0 Ok: queued as X", m.b.EndReply)
			if m.b.EndReply == "" || strings.HasPrefix(m.b.EndReply, "2") {
				m.mu.Lock()
				tr.Messages++
				m.mu.Unlock()
			}
			if m.b.DropAfterEnd {
				return
			}
		case "RSET":
			// On a reused session the MAIL, RCPTs and DATA come with it.
			if m.b.WatchPipelining && sentAlong() {
				m.mu.Lock()
				tr.RSETPipelined++
				m.mu.Unlock()
			}
			say("250 2.0.0 ok", m.b.RSETReply)
		case "QUIT":
			say("221 2.0.0 bye", "")
			return
		default:
			say("502 5.5.2 what?", "")
		}
	}
}

// fakeResolver answers from maps; hosts absent from both are NXDOMAIN.
type fakeResolver struct {
	mu      sync.Mutex
	mx      map[string][]*net.MX
	mxErr   map[string]error
	addrs   map[string][]string
	addrErr map[string]error
	calls   int
}

func (f *fakeResolver) LookupMX(_ context.Context, domain string) ([]*net.MX, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err := f.mxErr[domain]; err != nil {
		return nil, err
	}
	var out []*net.MX
	for _, mx := range f.mx[domain] {
		c := *mx
		out = append(out, &c)
	}
	return out, nil
}

func (f *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err := f.addrErr[host]; err != nil {
		return nil, err
	}
	ips, ok := f.addrs[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []net.IPAddr
	for _, ip := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(ip)})
	}
	return out, nil
}

// loopbackOnly allows the fake MX servers' loopback addresses, which the
// default rule refuses.
func loopbackOnly() sealpost.Destinations {
	return sealpost.AllowDestinations(netip.MustParsePrefix("127.0.0.0/8"))
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func errServFail(name string) error {
	return &net.DNSError{Err: "server answered SERVFAIL", Name: name, IsTemporary: true}
}
