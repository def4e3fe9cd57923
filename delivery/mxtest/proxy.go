package mxtest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// ProxyMode is what an on-path attacker does to the SMTP session.
type ProxyMode int

const (
	// Passthrough forwards every byte unchanged in both directions (an
	// attacker that only watches, or one that will present its own
	// certificate when the backend has none the client trusts).
	Passthrough ProxyMode = iota
	// StripSTARTTLS removes STARTTLS from the server's EHLO reply and
	// answers a STARTTLS command itself with 502, so that the server never
	// sees it: the classic downgrade attack.
	StripSTARTTLS
	// RefuseSTARTTLS leaves STARTTLS in the server's EHLO reply but
	// answers the command itself with 454, never forwarding it: a client
	// that takes a temporary TLS failure as leave to go on in plaintext
	// hands the attacker the message.
	RefuseSTARTTLS
	// DowngradeTLS10 answers STARTTLS itself with 220 and terminates TLS
	// speaking nothing but TLS 1.0, with a certificate the harness CA
	// issued for the MX host name: everything about the session is right
	// except the protocol version.
	DowngradeTLS10
	// ImpersonateWrongName answers STARTTLS itself with 220 and terminates
	// TLS (any version) with a certificate the harness CA issued for
	// another host name: an attacker holding a real certificate, but for a
	// name of its own.
	ImpersonateWrongName
)

// ImpersonatorName is the host name the certificate of an
// ImpersonateWrongName proxy is issued for.
const ImpersonatorName = "attacker.mxtest.invalid"

// String names the mode as tests print it.
func (m ProxyMode) String() string {
	switch m {
	case Passthrough:
		return "passthrough"
	case StripSTARTTLS:
		return "strip STARTTLS"
	case RefuseSTARTTLS:
		return "answer STARTTLS 454"
	case DowngradeTLS10:
		return "terminate TLS 1.0 only"
	case ImpersonateWrongName:
		return "terminate TLS with a certificate for another name"
	}
	return "ProxyMode(?)"
}

// Terminating reports whether the proxy ends the client's TLS itself. Such
// a proxy relays what it decrypted to the backend in plaintext, on the
// connection it opened before the client's STARTTLS: the backend never
// sees a STARTTLS, and what it receives is exactly what the attacker read
// and chose to pass on.
func (m ProxyMode) Terminating() bool { return m == DowngradeTLS10 || m == ImpersonateWrongName }

// Handshake is one TLS handshake a terminating proxy ran with a client.
type Handshake struct {
	Version     uint16 // negotiated; 0 if the handshake failed
	CipherSuite uint16
	ServerName  string // the SNI the client sent
	Err         error  // nil if the handshake completed
}

// Proxy is a man in the middle between an SMTP client and a backend server.
// It records everything the client sent it on the wire (ciphertext
// included), which is everything a passive on-path observer learns; when it
// terminates TLS, also what it decrypted, which is what an active attacker
// learns; and every byte it sent to the backend.
type Proxy struct {
	addr    string
	backend string
	mode    ProxyMode
	tls     *tls.Config // terminating modes only
	ln      net.Listener

	mu         sync.Mutex
	c2s        bytes.Buffer // wire bytes from clients
	s2c        bytes.Buffer // wire bytes to clients
	clear      bytes.Buffer // client bytes read as cleartext SMTP lines
	decrypted  bytes.Buffer // client bytes read inside TLS the proxy terminated
	forwarded  bytes.Buffer // bytes written to the backend
	handshakes []Handshake
	conns      map[net.Conn]struct{}
	closed     bool
	wg         sync.WaitGroup
}

// NewProxy listens on addr and forwards each connection to backend; it
// stops when the test ends. The terminating modes need a certificate: use
// NewTerminatingProxy or Harness.AddProxiedMX for them.
func NewProxy(t testing.TB, addr, backend string, mode ProxyMode) *Proxy {
	t.Helper()
	if mode.Terminating() {
		t.Fatalf("mxtest: proxy mode %v needs a certificate: use NewTerminatingProxy", mode)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("mxtest: proxy on %s: %v", addr, err)
	}
	return startProxy(t, ln, backend, mode, nil)
}

// NewTerminatingProxy is NewProxy for DowngradeTLS10 and
// ImpersonateWrongName: the proxy presents cert to clients, with the
// protocol versions the mode allows.
func NewTerminatingProxy(t testing.TB, addr, backend string, mode ProxyMode, cert tls.Certificate) *Proxy {
	t.Helper()
	if !mode.Terminating() {
		t.Fatalf("mxtest: proxy mode %v does not terminate TLS", mode)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("mxtest: proxy on %s: %v", addr, err)
	}
	return startProxy(t, ln, backend, mode, proxyTLSConfig(mode, cert))
}

// startProxy starts the proxy for the harness, which issues the terminating
// modes' certificates for host (the MX name DNS gives clients) from its CA.
func (h *Harness) startProxy(host, backend string, mode ProxyMode) *Proxy {
	h.t.Helper()
	var cfg *tls.Config
	switch mode {
	case DowngradeTLS10:
		cfg = proxyTLSConfig(mode, h.ca.Issue(h.t, Options{DNSNames: []string{host}}))
	case ImpersonateWrongName:
		cfg = proxyTLSConfig(mode, h.ca.Issue(h.t, Options{DNSNames: []string{ImpersonatorName}}))
	}
	return startProxy(h.t, h.Listen(), backend, mode, cfg)
}

func proxyTLSConfig(mode ProxyMode, cert tls.Certificate) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	if mode == DowngradeTLS10 {
		// crypto/tls speaks TLS 1.0 when told to; with an ECDSA key only
		// the ECDHE-ECDSA CBC suites exist at 1.0.
		cfg.MinVersion = tls.VersionTLS10
		cfg.MaxVersion = tls.VersionTLS10
		cfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}
	}
	return cfg
}

func startProxy(t testing.TB, ln net.Listener, backend string, mode ProxyMode, cfg *tls.Config) *Proxy {
	p := &Proxy{addr: ln.Addr().String(), backend: backend, mode: mode, tls: cfg, ln: ln, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is "ip:port".
func (p *Proxy) Addr() string { return p.addr }

// IP is the loopback address the proxy listens on.
func (p *Proxy) IP() string {
	host, _, _ := net.SplitHostPort(p.addr)
	return host
}

// Mode is what the proxy does to sessions.
func (p *Proxy) Mode() ProxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// SetMode changes what the proxy does to the connections it accepts from
// now on, as an attacker who goes on the path only after a while would;
// connections already open keep their mode. Only modes that do not
// terminate TLS can be switched to and from.
func (p *Proxy) SetMode(t testing.TB, mode ProxyMode) {
	t.Helper()
	if mode.Terminating() || p.Mode().Terminating() {
		t.Fatalf("mxtest: cannot switch a proxy to or from %v", mode)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
}

// ClientToServer returns every byte clients sent to the proxy on the wire,
// across all connections: cleartext SMTP and, after a STARTTLS, TLS
// records. It is what a passive observer of the client's link sees.
func (p *Proxy) ClientToServer() []byte { return p.get(&p.c2s) }

// ServerToClient returns every byte the proxy sent to clients on the wire,
// including its own rewriting and replies.
func (p *Proxy) ServerToClient() []byte { return p.get(&p.s2c) }

// ClientCleartext returns the client bytes the proxy read as SMTP lines
// outside any TLS session: in the rewriting modes, everything before the
// client started a TLS handshake (Passthrough parses nothing and records
// nothing here).
func (p *Proxy) ClientCleartext() []byte { return p.get(&p.clear) }

// Decrypted returns what the proxy read from clients inside TLS sessions it
// terminated: what an active attacker learns beyond ClientToServer.
func (p *Proxy) Decrypted() []byte { return p.get(&p.decrypted) }

// Forwarded returns every byte the proxy sent to the backend.
func (p *Proxy) Forwarded() []byte { return p.get(&p.forwarded) }

// Handshakes returns the TLS handshakes a terminating proxy ran, completed
// or not, in order.
func (p *Proxy) Handshakes() []Handshake {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Handshake(nil), p.handshakes...)
}

func (p *Proxy) get(b *bytes.Buffer) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(b.Bytes())
}

func (p *Proxy) record(b *bytes.Buffer, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b.Write(data)
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// track registers c for closing at cleanup; false means cleanup has begun.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(client) {
			return
		}
		mode := p.Mode()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(client)
			server, err := net.DialTimeout("tcp", p.backend, 5*time.Second)
			if err != nil {
				return
			}
			if !p.track(server) {
				return
			}
			defer p.untrack(server)
			p.relay(mode, &wireConn{Conn: client, p: p, in: &p.c2s, out: &p.s2c}, &wireConn{Conn: server, p: p, out: &p.forwarded})
		}()
	}
}

// wireConn records what is read from (in) and written to (out) a socket.
type wireConn struct {
	net.Conn
	p       *Proxy
	in, out *bytes.Buffer // nil: not recorded
}

func (c *wireConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.in != nil {
		c.p.record(c.in, b[:n])
	}
	return n, err
}

func (c *wireConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 && c.out != nil {
		c.p.record(c.out, b[:n])
	}
	return n, err
}

func (p *Proxy) relay(mode ProxyMode, client, server net.Conn) {
	done := make(chan struct{}, 2)
	hangUp := func() {
		client.Close()
		server.Close()
		done <- struct{}{}
	}
	if mode == Passthrough {
		go func() { _, _ = io.Copy(server, client); hangUp() }()
		go func() { _, _ = io.Copy(client, server); hangUp() }()
	} else {
		st := &stripper{p: p, m: mode, client: client, clientConn: client, out: client}
		go func() { st.fromClient(bufio.NewReader(client), server); hangUp() }()
		go func() { st.fromServer(bufio.NewReader(server)); hangUp() }()
	}
	<-done
	<-done
}

// stripper rewrites one session in every mode but Passthrough. Both
// directions write to the client (replies and the proxy's own answers to
// STARTTLS), hence the lock; out changes to the TLS connection once the
// proxy terminated the client's TLS.
type stripper struct {
	p          *Proxy // nil in unit tests of the rewriting alone
	m          ProxyMode
	client     io.Writer
	clientConn net.Conn // the client's socket, for terminating TLS on it

	mu       sync.Mutex
	out      io.Writer // where replies go: client, or the TLS conn on it
	inData   bool      // the server said 354: client lines are message content
	tlsAfter bool      // the proxy terminated the client's TLS
}

func (st *stripper) writeClient(b []byte) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	w := st.out
	if w == nil {
		w = st.client
	}
	_, err := w.Write(b)
	return err
}

func (st *stripper) mode() ProxyMode {
	if st.p == nil {
		return StripSTARTTLS
	}
	return st.m
}

func (st *stripper) fromClient(r *bufio.Reader, server io.Writer) {
	inTLS := false
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			if st.p != nil {
				if inTLS {
					st.p.record(&st.p.decrypted, line)
				} else {
					st.p.record(&st.p.clear, line)
				}
			}
			st.mu.Lock()
			inData := st.inData
			if inData && (string(line) == ".\r\n" || string(line) == ".\n") {
				st.inData = false
			}
			st.mu.Unlock()
			if !inData && !inTLS && bytes.EqualFold(bytes.TrimSpace(line), []byte("STARTTLS")) {
				switch st.mode() {
				case StripSTARTTLS:
					if st.writeClient([]byte("502 5.5.1 Command not implemented\r\n")) != nil {
						return
					}
					continue
				case RefuseSTARTTLS:
					if st.writeClient([]byte("454 4.7.0 TLS not available\r\n")) != nil {
						return
					}
					continue
				case DowngradeTLS10, ImpersonateWrongName:
					tr, ok := st.terminate(r)
					if !ok {
						return
					}
					r, inTLS = tr, true
					continue
				}
			}
			if _, werr := server.Write(line); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// terminate answers STARTTLS with 220 and runs the server side of the TLS
// handshake on the client's socket. It returns the reader of the decrypted
// stream, or false when the handshake failed and the session is over.
func (st *stripper) terminate(r *bufio.Reader) (*bufio.Reader, bool) {
	// Whatever the client sent after STARTTLS without waiting for the 220
	// is the start of its handshake, already in r's buffer.
	pending, _ := r.Peek(r.Buffered())
	raw := &prefixConn{Conn: st.clientConn, prefix: bytes.Clone(pending)}
	tc := tls.Server(raw, st.p.tls)
	st.mu.Lock()
	_, err := st.client.Write([]byte("220 2.0.0 Ready to start TLS\r\n"))
	st.out = tc
	st.tlsAfter = true
	st.mu.Unlock()
	if err != nil {
		return nil, false
	}
	_ = st.clientConn.SetDeadline(time.Now().Add(10 * time.Second))
	herr := tc.Handshake()
	_ = st.clientConn.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	hs := Handshake{ServerName: cs.ServerName, Err: herr}
	if herr == nil {
		hs.Version, hs.CipherSuite = cs.Version, cs.CipherSuite
	}
	st.p.mu.Lock()
	st.p.handshakes = append(st.p.handshakes, hs)
	st.p.mu.Unlock()
	if herr != nil {
		return nil, false
	}
	return bufio.NewReader(tc), true
}

// prefixConn yields prefix before reading on from the socket.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// fromServer forwards replies whole, so that a STARTTLS line can be removed
// from a multi-line EHLO reply, including when it is the last line.
func (st *stripper) fromServer(r *bufio.Reader) {
	var reply [][]byte
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			reply = append(reply, line)
			if len(line) < 4 || line[3] != '-' {
				if st.forwardReply(reply) != nil {
					return
				}
				reply = nil
			}
		}
		if err != nil {
			return
		}
	}
}

// stripsSTARTTLS reports whether STARTTLS is taken out of replies now: in
// StripSTARTTLS mode always, and in the terminating modes once the client
// is in the proxy's TLS (the backend, still in plaintext, offers it again
// in its reply to the second EHLO).
func (st *stripper) stripsSTARTTLS() bool {
	switch st.mode() {
	case StripSTARTTLS:
		return true
	case DowngradeTLS10, ImpersonateWrongName:
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.tlsAfter
	}
	return false
}

func (st *stripper) forwardReply(reply [][]byte) error {
	kept := reply
	if st.stripsSTARTTLS() {
		kept = make([][]byte, 0, len(reply))
		for _, line := range reply {
			if len(line) > 4 && bytes.EqualFold(bytes.TrimSpace(line[4:]), []byte("STARTTLS")) {
				continue
			}
			kept = append(kept, line)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	last := bytes.Clone(kept[len(kept)-1])
	if len(last) >= 4 && last[3] == '-' {
		last[3] = ' '
	}
	kept[len(kept)-1] = last
	if bytes.HasPrefix(kept[0], []byte("354")) {
		st.mu.Lock()
		st.inData = true
		st.mu.Unlock()
	}
	return st.writeClient(bytes.Join(kept, nil))
}
