package mxtest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// STARTTLSMode is how a fake MX answers the question "can we encrypt?".
type STARTTLSMode int

const (
	// OfferSTARTTLS advertises STARTTLS and completes the handshake.
	OfferSTARTTLS STARTTLSMode = iota
	// NoSTARTTLS never advertises STARTTLS and refuses the command with 502.
	NoSTARTTLS
	// RejectSTARTTLS advertises STARTTLS but answers the command with 454.
	RejectSTARTTLS
	// BreakHandshake advertises STARTTLS, answers 220, then sends bytes
	// that are not TLS and hangs up: a broken middlebox or TLS stack.
	BreakHandshake
	// AbortHandshake advertises STARTTLS, answers 220, then aborts the
	// handshake with a TLS alert (the server has no usable certificate).
	// The session goes on in plaintext, as go-smtp's does.
	AbortHandshake
)

// CertKind selects the certificate a Harness gives a server.
type CertKind int

const (
	// CertValid is issued by the harness CA for the server's host name.
	CertValid CertKind = iota
	// CertSelfSigned names the host but is signed by its own key.
	CertSelfSigned
	// CertWrongName is issued by the harness CA for another host name.
	CertWrongName
	// CertExpired is issued by the harness CA for the host name, but its
	// validity ended yesterday.
	CertExpired
)

// Behavior is what a fake MX does. The zero value is a well-behaved server
// offering STARTTLS with a certificate the harness CA vouches for.
type Behavior struct {
	STARTTLS STARTTLSMode
	// Cert is used by Harness.AddMX; Certificate, when set, wins over it.
	// NewServer needs Certificate whenever the mode offers STARTTLS.
	Cert        CertKind
	Certificate *tls.Certificate
	// MinVersion, MaxVersion and CipherSuites go into the server's
	// tls.Config unchanged (zero = crypto/tls's defaults).
	MinVersion   uint16
	MaxVersion   uint16
	CipherSuites []uint16
	// TempFailMail answers MAIL with 451 in the first N transactions
	// (counted across all connections); TempFailRcpt does the same to RCPT.
	TempFailMail int
	TempFailRcpt int
	// RejectRcpt are addresses (compared case-insensitively) whose RCPT gets
	// 550 5.1.1.
	RejectRcpt []string
	// DataReply, when non-zero, is the reply code to the end of DATA (for
	// example 554 or 451); the content is still recorded.
	DataReply int
	// REQUIRETLS advertises the REQUIRETLS extension (RFC 8689) once TLS
	// is up, and accepts the MAIL parameter; without it the parameter is
	// refused with 504.
	REQUIRETLS bool
}

// TLS11Only returns a behaviour whose server speaks nothing newer than
// TLS 1.1, with a cipher suite that exists at 1.1 for an ECDSA certificate.
func TLS11Only() Behavior {
	return Behavior{
		MinVersion:   tls.VersionTLS10,
		MaxVersion:   tls.VersionTLS11,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA},
	}
}

// TLS12Only returns a behaviour whose server speaks exactly TLS 1.2.
func TLS12Only() Behavior {
	return Behavior{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}
}

// Delivery is one mail transaction as the server saw it: one per MAIL
// command it accepted.
type Delivery struct {
	Conn int // 1 for the server's first connection, and so on
	// TLS reports whether the transaction ran under TLS; Version,
	// CipherSuite and ServerName (the SNI the client sent) describe it.
	TLS         bool
	Version     uint16
	CipherSuite uint16
	ServerName  string
	From        string
	To          []string // the recipients the server accepted
	Data        []byte   // nil unless DATA content was received
	RequireTLS  bool     // MAIL FROM carried the REQUIRETLS parameter
	Code        int      // reply to the end of DATA; 0 if there was none
}

// Accepted reports whether the server took responsibility for the message.
func (d Delivery) Accepted() bool { return d.Data != nil && d.Code == 250 }

// Server is a fake MX on one address. It records what it really received:
// every transaction (Received) and every byte that reached it unencrypted
// (CleartextBytes).
type Server struct {
	host     string
	addr     string
	behavior Behavior
	smtp     *smtp.Server
	ln       net.Listener

	mu        sync.Mutex
	conns     int
	mails     int // MAIL commands seen, for the TempFail counters
	received  []Delivery
	cleartext bytes.Buffer
}

// NewServer starts a fake MX for host listening on addr ("ip:port"); it
// stops when the test ends.
func NewServer(t testing.TB, addr, host string, b Behavior) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("mxtest: fake MX %s: %v", host, err)
	}
	return serve(t, ln, host, b)
}

func serve(t testing.TB, ln net.Listener, host string, b Behavior) *Server {
	t.Helper()
	s := &Server{host: host, addr: ln.Addr().String(), behavior: b}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = host
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	// Client misbehaviour is what tests look at through the recordings;
	// go-smtp's own log would only add noise after the test has ended.
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.EnableREQUIRETLS = b.REQUIRETLS
	if b.STARTTLS != NoSTARTTLS {
		cfg, err := b.tlsConfig()
		if err != nil {
			ln.Close()
			t.Fatalf("mxtest: fake MX %s: %v", host, err)
		}
		srv.TLSConfig = cfg
	}
	s.smtp = srv
	s.ln = ln
	go func() { _ = srv.Serve(&recordingListener{Listener: ln, server: s}) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

func (b Behavior) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:   b.MinVersion,
		MaxVersion:   b.MaxVersion,
		CipherSuites: b.CipherSuites,
	}
	switch {
	case b.STARTTLS == AbortHandshake:
		cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return nil, errors.New("mxtest: this server aborts every handshake")
		}
	case b.Certificate != nil:
		cfg.Certificates = []tls.Certificate{*b.Certificate}
	case b.STARTTLS == OfferSTARTTLS:
		return nil, errors.New("Behavior.Certificate is required to offer STARTTLS")
	default:
		// The handshake never happens; go-smtp only needs a config to
		// advertise STARTTLS.
	}
	return cfg, nil
}

// Host is the name the server greets with and its certificate is for.
func (s *Server) Host() string { return s.host }

// Addr is "ip:port".
func (s *Server) Addr() string { return s.addr }

// IP is the loopback address the server listens on.
func (s *Server) IP() string {
	host, _, _ := net.SplitHostPort(s.addr)
	return host
}

// Received returns a copy of every transaction so far.
func (s *Server) Received() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, len(s.received))
	for i, d := range s.received {
		d.To = append([]string(nil), d.To...)
		if d.Data != nil {
			d.Data = bytes.Clone(d.Data)
		}
		out[i] = d
	}
	return out
}

// Accepted returns the transactions the server took responsibility for.
func (s *Server) Accepted() []Delivery {
	var out []Delivery
	for _, d := range s.Received() {
		if d.Accepted() {
			out = append(out, d)
		}
	}
	return out
}

// AcceptedCount is len(Accepted()) without copying anything, for callers
// that poll while the server is busy.
func (s *Server) AcceptedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, d := range s.received {
		if d.Accepted() {
			n++
		}
	}
	return n
}

// CleartextBytes returns every byte clients sent that the server read
// outside TLS, across all connections, in the order read.
func (s *Server) CleartextBytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.cleartext.Bytes())
}

// Connections is the number of connections accepted so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	id := 0
	if rc, ok := c.Conn().(*recordingConn); ok {
		id = rc.id
	} else if tc, ok := c.Conn().(*tls.Conn); ok {
		if rc, ok := tc.NetConn().(*recordingConn); ok {
			id = rc.id
		}
	}
	return &session{server: s, conn: c, connID: id, tx: -1}, nil
}

type session struct {
	server *Server
	conn   *smtp.Conn
	connID int
	tx     int // index into server.received of the open transaction, or -1
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	s := ss.server
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mails++
	if s.mails <= s.behavior.TempFailMail {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	}
	d := Delivery{Conn: ss.connID, From: from, RequireTLS: opts != nil && opts.RequireTLS}
	if state, ok := ss.conn.TLSConnectionState(); ok {
		d.TLS = true
		d.Version = state.Version
		d.CipherSuite = state.CipherSuite
		d.ServerName = state.ServerName
	}
	s.received = append(s.received, d)
	ss.tx = len(s.received) - 1
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s := ss.server
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss.tx < 0 {
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "MAIL first"}
	}
	if s.mails <= s.behavior.TempFailMail+s.behavior.TempFailRcpt {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "Mailbox busy, try again later"}
	}
	for _, rejected := range s.behavior.RejectRcpt {
		if strings.EqualFold(rejected, to) {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
		}
	}
	s.received[ss.tx].To = append(s.received[ss.tx].To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	s := ss.server
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || ss.tx < 0 {
		return err
	}
	if data == nil {
		data = []byte{}
	}
	d := &s.received[ss.tx]
	d.Data = data
	d.Code = 250
	if code := s.behavior.DataReply; code != 0 {
		d.Code = code
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 6, 0}, Message: fmt.Sprintf("Message refused (mxtest %d)", code)}
	}
	return nil
}

func (ss *session) Reset()        { ss.tx = -1 }
func (ss *session) Logout() error { return nil }

// recordingListener wraps every accepted connection so that the server
// sees (and records) the bytes before go-smtp does.
type recordingListener struct {
	net.Listener
	server *Server
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	s := l.server
	s.mu.Lock()
	s.conns++
	id := s.conns
	s.mu.Unlock()
	return newRecordingConn(c, s, id), nil
}
