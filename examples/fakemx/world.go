package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"mime"
	"net"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"
)

type config struct {
	DNSAddr          string // host:port; port 0 picks a free one
	SMTPPort         int    // shared by every MX host; 0 picks a free one
	WebhookAddr      string // host:port; port 0 picks a free one
	WebhookPublicKey string // base64 PKIX ECDSA key; empty: signatures go unchecked
	Dir              string // where ca.pem is written
}

// domain is one recipient domain of the world and the server behind it.
type domain struct {
	Name     string
	MXHost   string
	IP       string
	STARTTLS bool
	// MaxVersion caps the server's TLS version; 0 leaves crypto/tls's
	// default (TLS 1.3).
	MaxVersion uint16
	// CertName is the name the server's certificate is issued for; it
	// differs from MXHost where a name mismatch is the point.
	CertName string
	Addr     string // ip:port, once listening
}

// Describe says what a sender will find at the domain's server.
func (d domain) Describe() string {
	if !d.STARTTLS {
		return "no STARTTLS"
	}
	version := "TLS up to 1.3"
	if d.MaxVersion == tls.VersionTLS12 {
		version = "TLS up to 1.2"
	}
	if d.CertName != d.MXHost {
		return "STARTTLS, " + version + ", certificate for " + d.CertName + " (name mismatch)"
	}
	return "STARTTLS, " + version + ", valid certificate"
}

func demoDomains() []domain {
	return []domain{
		{Name: "tls13.example", MXHost: "mx.tls13.example", IP: "127.0.0.2", STARTTLS: true, CertName: "mx.tls13.example"},
		{Name: "tls12.example", MXHost: "mx.tls12.example", IP: "127.0.0.3", STARTTLS: true, MaxVersion: tls.VersionTLS12, CertName: "mx.tls12.example"},
		{Name: "plain.example", MXHost: "mx.plain.example", IP: "127.0.0.4"},
		{Name: "wrongname.example", MXHost: "mx.wrongname.example", IP: "127.0.0.5", STARTTLS: true, CertName: "other.example"},
	}
}

// world is every server of the tool, running.
type world struct {
	DNSAddr    string
	SMTPPort   int
	WebhookURL string
	CAFile     string
	Domains    []domain

	closers []func(context.Context) error
	wg      sync.WaitGroup
}

// startWorld starts every server; on error nothing is left running.
func startWorld(ctx context.Context, cfg config, out io.Writer, log *slog.Logger) (*world, error) {
	w := &world{Domains: demoDomains()}
	if err := w.start(ctx, cfg, out, log); err != nil {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		return nil, errors.Join(err, w.Close(shutdownCtx))
	}
	return w, nil
}

func (w *world) start(ctx context.Context, cfg config, out io.Writer, log *slog.Logger) error {
	var webhookKey *ecdsa.PublicKey
	if cfg.WebhookPublicKey != "" {
		k, err := parseWebhookKey(cfg.WebhookPublicKey)
		if err != nil {
			return fmt.Errorf("-webhook-public-key: %w", err)
		}
		webhookKey = k
	}

	now := time.Now()
	w.CAFile = filepath.Join(cfg.Dir, "ca.pem")
	ca, err := loadOrNewCA(w.CAFile, filepath.Join(cfg.Dir, "ca-key.pem"), now, log)
	if err != nil {
		return err
	}

	if err := w.startDNS(ctx, cfg.DNSAddr, log); err != nil {
		return err
	}
	if err := w.startSMTP(ctx, cfg.SMTPPort, ca, now, out, log); err != nil {
		return err
	}
	return w.startWebhook(ctx, cfg.WebhookAddr, webhookKey, out, log)
}

// Close stops every server, waiting for sessions in flight until ctx ends.
func (w *world) Close(ctx context.Context) error {
	var errs []error
	for i := len(w.closers) - 1; i >= 0; i-- {
		errs = append(errs, w.closers[i](ctx))
	}
	w.closers = nil
	w.wg.Wait()
	return errors.Join(errs...)
}

func (w *world) goServe(log *slog.Logger, what string, serve func() error, closed ...error) {
	w.wg.Go(func() {
		err := serve()
		for _, c := range closed {
			if errors.Is(err, c) {
				return
			}
		}
		if err != nil {
			log.Error("server failed", slog.String("server", what), slog.Any("err", err))
		}
	})
}

// freePortAttempts bounds retries when a free port picked on one listener
// turns out to be taken on another that must share it.
const freePortAttempts = 20

// --- DNS ---

func (w *world) startDNS(ctx context.Context, addr string, log *slog.Logger) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-dns %q: %w", addr, err)
	}
	var lc net.ListenConfig
	var (
		pc net.PacketConn
		ln net.Listener
	)
	// UDP and TCP must share one port; with port 0, the one UDP got may be
	// taken for TCP, so try again.
	for attempt := 0; ; attempt++ {
		pc, err = lc.ListenPacket(ctx, "udp", net.JoinHostPort(host, port))
		if err != nil {
			return fmt.Errorf("DNS over UDP: %w", err)
		}
		ln, err = lc.Listen(ctx, "tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if port != "0" || attempt == freePortAttempts {
			return fmt.Errorf("DNS over TCP: %w", err)
		}
	}
	w.DNSAddr = pc.LocalAddr().String()

	handler := newZone(w.Domains)
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: handler},
		{Listener: ln, Handler: handler},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		w.goServe(log, "dns", srv.ActivateAndServe)
		// ShutdownContext refuses a server that has not started yet.
		select {
		case <-started:
		case <-ctx.Done():
			pc.Close()
			ln.Close()
			return ctx.Err()
		}
		w.closers = append(w.closers, srv.ShutdownContext)
	}
	return nil
}

// zone answers authoritatively for the world's names only.
type zone map[string][]dns.RR

const dnsTTL = 60

func newZone(domains []domain) zone {
	z := zone{}
	for _, d := range domains {
		name, mx := dns.Fqdn(d.Name), dns.Fqdn(d.MXHost)
		z[name] = append(z[name], &dns.MX{
			Hdr:        dns.RR_Header{Name: name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: dnsTTL},
			Preference: 10,
			Mx:         mx,
		})
		z[mx] = append(z[mx], &dns.A{
			Hdr: dns.RR_Header{Name: mx, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: dnsTTL},
			A:   net.ParseIP(d.IP).To4(),
		})
	}
	return z
}

func (z zone) ServeDNS(rw dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	switch {
	case req.Opcode != dns.OpcodeQuery:
		resp.Rcode = dns.RcodeNotImplemented
	case len(req.Question) != 1:
		resp.Rcode = dns.RcodeFormatError
	default:
		q := req.Question[0]
		rrs, ok := z[strings.ToLower(q.Name)]
		if !ok {
			resp.Rcode = dns.RcodeNameError
		}
		for _, rr := range rrs {
			if q.Qtype == rr.Header().Rrtype || q.Qtype == dns.TypeANY {
				answer := dns.Copy(rr)
				answer.Header().Name = q.Name
				resp.Answer = append(resp.Answer, answer)
			}
		}
	}
	rw.WriteMsg(resp)
}

// --- SMTP ---

func (w *world) startSMTP(ctx context.Context, port int, ca *certAuthority, now time.Time, out io.Writer, log *slog.Logger) error {
	if port < 0 || port > 65535 {
		return fmt.Errorf("-smtp-port %d: out of range", port)
	}
	listeners, err := listenShared(ctx, w.Domains, port)
	if err != nil {
		return err
	}
	w.SMTPPort = listeners[0].Addr().(*net.TCPAddr).Port
	for i := range w.Domains {
		d := &w.Domains[i]
		d.Addr = listeners[i].Addr().String()
		srv := smtp.NewServer(&mailbox{domain: d.Name, out: out})
		srv.Domain = d.MXHost
		srv.ReadTimeout = time.Minute
		srv.WriteTimeout = time.Minute
		srv.MaxMessageBytes = 32 << 20
		srv.MaxRecipients = 1000
		srv.ErrorLog = smtpLog{log.With(slog.String("server", d.MXHost))}
		if d.STARTTLS {
			cert, err := ca.issue(d.CertName, now)
			if err != nil {
				for _, l := range listeners[i:] {
					l.Close()
				}
				return err
			}
			srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: d.MaxVersion}
		}
		l := listeners[i]
		w.goServe(log, d.MXHost, func() error { return srv.Serve(l) }, smtp.ErrServerClosed, net.ErrClosed)
		// Shutdown knows only the listeners Serve has started on: a world
		// closed right after it started (a quick restart) would otherwise
		// leave Serve accepting on l for ever.
		w.closers = append(w.closers, func(ctx context.Context) error {
			err := srv.Shutdown(ctx)
			l.Close()
			return err
		})
	}
	return nil
}

// listenShared listens on every domain's IP on one port; with port 0 it
// tries free ports until one is free on all of them.
func listenShared(ctx context.Context, domains []domain, port int) ([]net.Listener, error) {
	var lc net.ListenConfig
	for attempt := 0; ; attempt++ {
		listeners := make([]net.Listener, 0, len(domains))
		p := port
		var err error
		for _, d := range domains {
			var l net.Listener
			l, err = lc.Listen(ctx, "tcp", net.JoinHostPort(d.IP, strconv.Itoa(p)))
			if err != nil {
				err = fmt.Errorf("SMTP server for %s: %w", d.Name, err)
				break
			}
			p = l.Addr().(*net.TCPAddr).Port
			listeners = append(listeners, l)
		}
		if err == nil {
			return listeners, nil
		}
		for _, l := range listeners {
			l.Close()
		}
		if port != 0 || len(listeners) == 0 || attempt == freePortAttempts {
			return nil, err
		}
	}
}

// mailbox accepts any mail for one domain and prints a line per message.
type mailbox struct {
	domain string
	out    io.Writer
}

func (m *mailbox) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{box: m, conn: c}, nil
}

type session struct {
	box   *mailbox
	conn  *smtp.Conn
	from  string
	rcpts []string
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from, s.rcpts = from, nil
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	msg, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	tlsDesc := "none"
	if state, ok := s.conn.TLSConnectionState(); ok {
		tlsDesc = tls.VersionName(state.Version) + " " + tls.CipherSuiteName(state.CipherSuite)
	}
	fmt.Fprintf(s.box.out, "smtp: %s from=%s to=%s tls=%q subject=%q\n",
		s.box.domain, s.from, strings.Join(s.rcpts, ","), tlsDesc, subjectOf(msg))
	return nil
}

func (s *session) Reset()        { s.from, s.rcpts = "", nil }
func (s *session) Logout() error { return nil }

func subjectOf(msg []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return ""
	}
	subject := m.Header.Get("Subject")
	if decoded, err := new(mime.WordDecoder).DecodeHeader(subject); err == nil {
		return decoded
	}
	return subject
}

// smtpLog sends go-smtp's connection errors to slog.
type smtpLog struct{ log *slog.Logger }

func (l smtpLog) Printf(format string, v ...any) { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l smtpLog) Println(v ...any)               { l.log.Warn(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

// --- Event Webhook ---

func (w *world) startWebhook(ctx context.Context, addr string, key *ecdsa.PublicKey, out io.Writer, log *slog.Logger) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("starting the Event Webhook receiver: %w", err)
	}
	w.WebhookURL = "http://" + ln.Addr().String() + "/events"
	srv := &http.Server{
		Handler:           &webhookReceiver{out: out, key: key},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	w.goServe(log, "webhook", func() error { return srv.Serve(ln) }, http.ErrServerClosed)
	w.closers = append(w.closers, srv.Shutdown)
	return nil
}

// parseWebhookKey reads the key the way SendGrid's helper does, but reports
// a key that is not ECDSA instead of panicking on it.
func parseWebhookKey(b64 string) (*ecdsa.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("not a PKIX public key: %w", err)
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an ECDSA public key", pub)
	}
	return k, nil
}

// maxWebhookBody is far above any batch sealpost posts.
const maxWebhookBody = 16 << 20

// webhookReceiver prints the events of every POST and always answers 200,
// so that the sender never retries because of the receiver.
type webhookReceiver struct {
	out io.Writer
	key *ecdsa.PublicKey // nil: signatures go unchecked
}

func (h *webhookReceiver) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		fmt.Fprintln(rw, "fakemx Event Webhook receiver: POST events to any path")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxWebhookBody))
	if err != nil {
		fmt.Fprintf(h.out, "webhook: POST %s: reading the body: %v\n", r.URL.Path, err)
		rw.WriteHeader(http.StatusOK)
		return
	}
	sig := h.checkSignature(r.Header, body)
	var events []map[string]any
	if err := json.Unmarshal(body, &events); err != nil {
		fmt.Fprintf(h.out, "webhook: POST %s: %d bytes, not a JSON array of events (%v) [%s]\n", r.URL.Path, len(body), err, sig)
		rw.WriteHeader(http.StatusOK)
		return
	}
	for _, ev := range events {
		fmt.Fprintf(h.out, "webhook: %s [%s]\n", describeEvent(ev), sig)
	}
	rw.WriteHeader(http.StatusOK)
}

func (h *webhookReceiver) checkSignature(hdr http.Header, body []byte) string {
	sig := hdr.Get(eventwebhook.VerificationHTTPHeader)
	if sig == "" {
		return "unsigned"
	}
	if h.key == nil {
		return "signed (no key given to check)"
	}
	ok, err := eventwebhook.VerifySignature(h.key, body, sig, hdr.Get(eventwebhook.TimestampHTTPHeader))
	switch {
	case err != nil:
		return "signature INVALID: " + err.Error()
	case !ok:
		return "signature INVALID"
	}
	return "signature verified"
}

// describeEvent renders the fields that tell what happened to a message
// and over what TLS.
func describeEvent(ev map[string]any) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v %v", field(ev, "event"), field(ev, "email"))
	for _, k := range []string{"type", "reason", "tls"} {
		if v, ok := ev[k]; ok {
			fmt.Fprintf(&b, " %s=%s", k, compact(v))
		}
	}
	if facts, ok := ev["sealpost"].(map[string]any); ok {
		for _, k := range []string{"tls_version", "tls_cipher", "result_type"} {
			if v, ok := facts[k]; ok {
				fmt.Fprintf(&b, " %s=%s", k, compact(v))
			}
		}
	}
	return b.String()
}

func field(ev map[string]any, k string) any {
	if v, ok := ev[k]; ok {
		return v
	}
	return "-"
}

func compact(v any) string {
	switch v := v.(type) {
	case string:
		if strings.ContainsAny(v, " \t\"") || v == "" {
			return strconv.Quote(v)
		}
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// syncWriter keeps lines printed by concurrent sessions whole: fmt.Fprintf
// hands each line over in one Write.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// --- certificates ---

// certAuthority issues the servers' certificates.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// certLifetime is long enough for any trial run; server certificates are
// made afresh at every start, by a CA kept in -dir across restarts.
const certLifetime = 30 * 24 * time.Hour

func newCA(now time.Time) (*certAuthority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "fakemx demo CA " + now.UTC().Format(time.RFC3339)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the CA certificate: %w", err)
	}
	return &certAuthority{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// loadOrNewCA loads the CA kept in certFile and keyFile, or makes one and
// keeps it there. A restart with the same -dir (to add -webhook-public-key,
// say) then keeps the CA that a running sealpost was told to trust with
// --tls-ca-file; a new one would make it refuse every certificate. A CA
// that is unreadable, mismatched or about to expire is replaced.
func loadOrNewCA(certFile, keyFile string, now time.Time, log *slog.Logger) (*certAuthority, error) {
	if ca, err := loadCA(certFile, keyFile, now); err == nil {
		return ca, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		log.Warn("making a new CA; a sealpost already running must be restarted to trust it", slog.Any("reason", err))
	}
	ca, err := newCA(now)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("encoding the CA key: %w", err)
	}
	// The key first: a ca.pem without its key would be replaced next time.
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, fmt.Errorf("writing the CA key: %w", err)
	}
	if err := os.WriteFile(certFile, ca.pem, 0o644); err != nil {
		return nil, fmt.Errorf("writing the CA certificate: %w", err)
	}
	return ca, nil
}

func loadCA(certFile, keyFile string, now time.Time) (*certAuthority, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, errors.New("ca.pem or ca-key.pem holds no PEM block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", certFile, err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", keyFile, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("ca-key.pem is not the key of ca.pem")
	}
	if now.Add(certLifetime / 2).After(cert.NotAfter) {
		return nil, errors.New("the CA expires soon")
	}
	return &certAuthority{cert: cert, key: key, pem: certPEM}, nil
}

// issue makes a server certificate for name.
func (ca *certAuthority) issue(name string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating a key for %s: %w", name, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing a certificate for %s: %w", name, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating a serial number: %w", err)
	}
	return serial, nil
}
