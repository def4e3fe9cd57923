package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/console"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/dkim"
	"github.com/sealpost/sealpost/httpapi"
	"github.com/sealpost/sealpost/ratelimit"
	"github.com/sealpost/sealpost/tlsrpt"
	"github.com/sealpost/sealpost/webhook"
)

// Main is a running sealpost service: what "sealpost serve" starts, and what
// end-to-end tests start on port 0.
type Main struct {
	Config Config
	Logger *slog.Logger
	// Stdout receives the bootstrap API key, and nothing else.
	Stdout io.Writer
	// Middleware, when set, wraps the API handler: end-to-end tests check
	// every response against SendGrid's documents with it.
	Middleware func(http.Handler) http.Handler

	// mtastsPort, when set, is the HTTPS port policies are fetched from
	// instead of 443: end-to-end tests serve them on loopback, where a
	// fixed port cannot be shared by tests running in parallel.
	mtastsPort int

	store    sealpost.Store
	stop     context.CancelFunc // ends background work
	shared   chan struct{}      // closed when rate limit sharing has stopped
	workers  sync.WaitGroup     // delivery and webhook posting
	listener net.Listener
	outage   *sealpost.OutageLog
	wake     chan struct{} // mail accepted here: this node's delivery looks now
	server   *http.Server
	done     chan error
}

// wakeDelivery tells this node's delivery runner that mail was accepted; a
// wake-up already pending covers this one too.
func (m *Main) wakeDelivery() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Open opens the store, takes the listening address, bootstraps an empty
// database, and starts serving. The address is taken before the bootstrap
// so that a port already in use cannot cost the one showing of the first key.
func (m *Main) Open(ctx context.Context) error {
	if m.Logger == nil {
		m.Logger = slog.New(slog.DiscardHandler)
	}
	if m.Stdout == nil {
		m.Stdout = io.Discard
	}
	// One for everything on the database, so that an outage is logged
	// once, not by every worker and every request.
	m.outage = sealpost.NewOutageLog(m.Logger, "database")
	m.wake = make(chan struct{}, 1)
	// Everything that can fail on a flag or a file comes before the
	// bootstrap: its key is shown only once, so a start that prints it and
	// then fails would leave nobody holding it.
	dests, err := m.Config.destinations()
	if err != nil {
		return err
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	node := nodeID(m.Config.NodeID)
	var (
		runner   *delivery.Runner
		sessions *delivery.Client
	)
	if m.Config.DeliveryWorkers > 0 {
		if runner, sessions, err = m.newRunner(node, dests, registry); err != nil {
			return err
		}
	}
	probeClient, err := m.Config.smtpClient(dests, m.Logger.With("component", "probe"))
	if err != nil {
		return err
	}
	// DANE for SMTP (RFC 7672): nil, off, without --dnssec-resolver. The
	// probe applies the same sources as delivery, so that it reports what
	// delivery would do.
	daneSource := m.Config.daneSource()
	probeClient.DANE = daneSource
	if sessions != nil {
		sessions.DANE = daneSource
	}
	store, kind, err := openStore(ctx, m.Config.Database, true, m.Config.SQLiteSynchronous)
	if err != nil {
		return err
	}
	m.store = store
	ln, err := listen(m.Config.HTTPAddr, m.Config.HTTPMaxConnections, m.Logger)
	if err != nil {
		store.Close()
		return fmt.Errorf("listening on %s: %w", m.Config.HTTPAddr, err)
	}
	m.listener = ln
	if err := m.bootstrap(ctx); err != nil {
		ln.Close()
		store.Close()
		return err
	}
	// The operator account is looked up now, so that a wrong
	// --tlsrpt-account stops serve instead of every night's mailto: reports.
	var reporter *tlsrpt.Reporter
	if m.Config.TLSRPT.Enabled {
		if reporter, err = m.Config.tlsrptReporter(ctx, store, probeClient, dests, node, m.Logger.With("component", "tlsrpt")); err != nil {
			ln.Close()
			store.Close()
			return err
		}
	}

	limiter := ratelimit.New(m.Config.RateLimit, m.Config.RateLimitWindow)
	// The same window for both: nodes forget counts of windows that ended
	// before the one they report, so counts of different windows must not
	// share the table.
	mailLimiter := ratelimit.New(m.Config.MailSendRateLimit, m.Config.RateLimitWindow)
	probeLimit := m.Config.TLSProbeRateLimit
	if probeLimit <= 0 {
		probeLimit = DefaultConfig().TLSProbeRateLimit
	}
	probeLimiter := ratelimit.New(probeLimit, m.Config.RateLimitWindow)
	var background context.Context
	background, m.stop = context.WithCancel(context.WithoutCancel(ctx))
	if counter, ok := store.(sealpost.RateCounter); ok {
		// Several nodes on one database apply one limit per key and per
		// sending account.
		m.shared = make(chan struct{})
		go func() {
			defer close(m.shared)
			var sharing sync.WaitGroup
			sharing.Go(func() { mailLimiter.Share(background, counter, m.Config.RateLimitSync, m.Logger) })
			sharing.Go(func() { probeLimiter.Share(background, counter, m.Config.RateLimitSync, m.Logger) })
			limiter.Share(background, counter, m.Config.RateLimitSync, m.Logger)
			sharing.Wait()
		}()
	}

	// MTA-STS (RFC 8461): nil, off, with --mta-sts=false. One cache, in the
	// database, for every node and for the probe.
	probeClient.MTASTS = m.mtastsSource(probeClient, store)
	probeClient.MTASTSPort = m.mtastsPort
	if runner != nil {
		sessions.MTASTSPort = m.mtastsPort
		runner.Queue = store
		runner.DomainPolicies = store
		runner.Signer = &dkim.Signer{Domains: store}
		runner.Wake = m.wake
		sessions.MTASTS = m.mtastsSource(sessions, store)
		m.workers.Go(func() {
			_ = runner.Run(background)
			// Idle SMTP sessions end with QUIT, not a dropped connection.
			_ = sessions.Close()
		})
	}
	retention := orDefault(m.Config.TLSRegistryRetention, DefaultConfig().TLSRegistryRetention)
	m.workers.Go(func() { pruneTLSRegistry(background, store, retention, tlsRegistryPruneEvery, m.Logger) })
	activityRetention := orDefault(m.Config.ActivityRetention, DefaultConfig().ActivityRetention)
	m.workers.Go(func() { pruneActivity(background, store, activityRetention, activityPruneEvery, m.Logger) })
	if m.Config.WebhookWorkers > 0 {
		poster := m.newPoster(store, node, dests, registry)
		m.workers.Go(func() { _ = poster.Run(background) })
	}
	if m.Config.TLSRPT.Enabled {
		m.workers.Go(func() { _ = reporter.Run(background, tlsrptJitter, tlsrptRetryPoll) })
	}

	var handler http.Handler = httpapi.New(httpapi.Config{
		Store:        store,
		RateLimiter:  limiter,
		Logger:       m.Logger,
		Registry:     registry,
		Webhooks:     webhookSigner{client: webhook.NewClient(dests)},
		Destinations: dests,
		Hostname:     m.Config.HeloHostname,
		Outage:       m.outage,

		MailSendLimiter:   mailLimiter,
		MaxSubusers:       m.Config.MaxSubusers,
		RegistryRetention: retention,
		ActivityRetention: activityRetention,

		Prober: m.Config.prober(probeClient),
		DNS:    probeClient,

		RequireAuthenticatedSender: m.Config.RequireAuthenticatedSender,
		Enqueued:                   m.wakeDelivery,
		ProbeLimiter:               probeLimiter,
		Observations:               store,
	})
	if m.Middleware != nil {
		handler = m.Middleware(handler)
	}
	if m.Config.Console {
		if handler, err = withConsole(handler, store, m.Logger); err != nil {
			return err
		}
	}

	// A Config built without DefaultConfig must not mean no timeouts:
	// net/http takes zero as none.
	defaults := DefaultConfig()
	m.server = &http.Server{
		Handler:           serving(handler),
		ConnContext:       connContext,
		ReadHeaderTimeout: orDefault(m.Config.HTTPReadHeaderTimeout, defaults.HTTPReadHeaderTimeout),
		ReadTimeout:       orDefault(m.Config.HTTPReadTimeout, defaults.HTTPReadTimeout),
		WriteTimeout:      orDefault(m.Config.HTTPWriteTimeout, defaults.HTTPWriteTimeout),
		IdleTimeout:       orDefault(m.Config.HTTPIdleTimeout, defaults.HTTPIdleTimeout),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	m.done = make(chan error, 1)
	go func() { m.done <- m.server.Serve(ln) }()
	m.Logger.Info("sealpost serving", "addr", ln.Addr().String(), "store", kind, "node", node,
		"delivery_workers", m.Config.DeliveryWorkers, "webhook_workers", m.Config.WebhookWorkers,
		"allow_destinations", m.Config.AllowDestinations, "dnssec_resolver", m.Config.DNSSECResolver)
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// bootstrap creates the first account of an empty database and prints its
// key, so that a fresh "sealpost serve" is usable without a second command.
func (m *Main) bootstrap(ctx context.Context) error {
	if m.Config.BootstrapUsername == "" {
		return nil
	}
	n, err := m.store.CountAccounts(ctx)
	if err != nil {
		return fmt.Errorf("counting accounts: %w", err)
	}
	if n > 0 {
		return nil
	}
	account, token, err := createAccount(ctx, m.store, m.Config.BootstrapUsername, "")
	if sealpost.ErrorCode(err) == sealpost.ECONFLICT {
		return nil // another node bootstrapped the same database first
	} else if err != nil {
		return fmt.Errorf("creating the first account: %w", err)
	}
	m.Logger.Info("created the first account; its API key is printed once on stdout", "username", account.Username, "account_id", account.ID)
	fmt.Fprintln(m.Stdout, token)
	return nil
}

// Addr is the address the API listens on.
func (m *Main) Addr() string { return m.listener.Addr().String() }

// URL is the API's base URL.
func (m *Main) URL() string { return "http://" + m.Addr() }

// Store is the open store, for tests that need to look behind the API.
func (m *Main) Store() sealpost.Store { return m.store }

// Close stops accepting requests, waits up to the shutdown timeout for those
// in flight, and closes the store.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
	defer cancel()
	var errs []error
	if m.server != nil {
		if err := m.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutting down HTTP: %w", err))
		}
		if err := <-m.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	m.stopBackground()
	if m.store != nil {
		if err := m.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// stopBackground ends rate limit sharing, delivery and webhook posting, and
// waits for them, so that none uses a closed store. Deliveries in flight
// finish and are recorded first.
func (m *Main) stopBackground() {
	if m.stop != nil {
		m.stop()
	}
	if m.shared != nil {
		<-m.shared
	}
	m.workers.Wait()
}

// Wait blocks until the server stops by itself (a failed listener).
func (m *Main) Wait() <-chan error { return m.done }

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg := DefaultConfig()
	fs := newFlagSet("sealpost serve", getenv, stderr)
	cfg.register(fs)
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return usageError(stderr, "sealpost serve", err)
	}
	if err := cfg.validate(); err != nil {
		return usageError(stderr, "sealpost serve", err)
	}
	logger := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	m := &Main{Config: cfg, Logger: logger, Stdout: stdout}
	if err := m.Open(ctx); err != nil {
		logger.Error("starting sealpost", "err", err)
		return 1
	}
	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case serveErr = <-m.done:
		m.done <- serveErr // Close reads it again
		logger.Error("HTTP server stopped", "err", serveErr)
	}
	if err := m.Close(); err != nil {
		logger.Error("shutdown", "err", err)
		return 1
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return 1
	}
	return 0
}

// withConsole serves the web console at console.Prefix and the API
// everywhere else. The console acts only through api, so it is held to the
// API's own checks.
func withConsole(api http.Handler, store sealpost.Store, log *slog.Logger) (http.Handler, error) {
	c, err := console.New(console.Config{API: api, Sessions: store, Logger: log})
	if err != nil {
		return nil, err
	}
	// Not a ServeMux: it would redirect paths the API answers as unknown.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case strings.HasPrefix(p, console.Prefix):
			c.ServeHTTP(w, r)
		case p == strings.TrimSuffix(console.Prefix, "/") && r.Method == http.MethodGet:
			http.Redirect(w, r, console.Prefix, http.StatusSeeOther)
		default:
			api.ServeHTTP(w, r)
		}
	}), nil
}
