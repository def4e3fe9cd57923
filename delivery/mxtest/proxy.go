package mxtest

import (
	"bufio"
	"bytes"
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
)

// Proxy is a man in the middle between an SMTP client and a backend server.
// It records everything the client sent it, which is everything an on-path
// attacker learns.
type Proxy struct {
	addr    string
	backend string
	mode    ProxyMode
	ln      net.Listener

	mu     sync.Mutex
	c2s    bytes.Buffer
	s2c    bytes.Buffer
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewProxy listens on addr and forwards each connection to backend; it
// stops when the test ends.
func NewProxy(t testing.TB, addr, backend string, mode ProxyMode) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("mxtest: proxy on %s: %v", addr, err)
	}
	return startProxy(t, ln, backend, mode)
}

func startProxy(t testing.TB, ln net.Listener, backend string, mode ProxyMode) *Proxy {
	p := &Proxy{addr: ln.Addr().String(), backend: backend, mode: mode, ln: ln, conns: make(map[net.Conn]struct{})}
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

// ClientToServer returns every byte clients sent to the proxy, across all
// connections; all of it was forwarded except STARTTLS commands it
// swallowed in StripSTARTTLS mode.
func (p *Proxy) ClientToServer() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.c2s.Bytes())
}

// ServerToClient returns every byte the proxy sent to clients, including
// its own rewriting and replies.
func (p *Proxy) ServerToClient() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.s2c.Bytes())
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
			p.relay(client, server)
		}()
	}
}

func (p *Proxy) relay(client, server net.Conn) {
	c2s := &recorder{p: p, buf: &p.c2s}
	s2c := &recorder{p: p, buf: &p.s2c}
	done := make(chan struct{}, 2)
	hangUp := func() {
		client.Close()
		server.Close()
		done <- struct{}{}
	}
	if p.mode == Passthrough {
		go func() { _, _ = io.Copy(io.MultiWriter(server, c2s), client); hangUp() }()
		go func() { _, _ = io.Copy(io.MultiWriter(client, s2c), server); hangUp() }()
	} else {
		st := &stripper{client: io.MultiWriter(client, s2c)}
		go func() { st.fromClient(bufio.NewReader(io.TeeReader(client, c2s)), server); hangUp() }()
		go func() { st.fromServer(bufio.NewReader(server)); hangUp() }()
	}
	<-done
	<-done
}

type recorder struct {
	p   *Proxy
	buf *bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	return r.buf.Write(b)
}

// stripper rewrites one session in StripSTARTTLS mode. Both directions
// write to the client (replies and the proxy's own 502), hence the lock.
type stripper struct {
	mu     sync.Mutex
	client io.Writer
	inData bool // the server said 354: client lines are message content
}

func (st *stripper) writeClient(b []byte) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, err := st.client.Write(b)
	return err
}

func (st *stripper) fromClient(r *bufio.Reader, server io.Writer) {
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			st.mu.Lock()
			inData := st.inData
			if inData && (string(line) == ".\r\n" || string(line) == ".\n") {
				st.inData = false
			}
			st.mu.Unlock()
			if !inData && bytes.EqualFold(bytes.TrimSpace(line), []byte("STARTTLS")) {
				if st.writeClient([]byte("502 5.5.1 Command not implemented\r\n")) != nil {
					return
				}
				continue
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

func (st *stripper) forwardReply(reply [][]byte) error {
	kept := make([][]byte, 0, len(reply))
	for _, line := range reply {
		if len(line) > 4 && bytes.EqualFold(bytes.TrimSpace(line[4:]), []byte("STARTTLS")) {
			continue
		}
		kept = append(kept, line)
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
