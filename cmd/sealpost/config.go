package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/sqlite"
)

// DefaultDatabase is a SQLite file in the working directory, so that
// "sealpost serve" works on a fresh machine with no setup.
const DefaultDatabase = "sqlite:sealpost.db"

// Config is everything serve can be told.
type Config struct {
	TLSRPT            TLSRPTConfig
	HTTPAddr          string
	Database          string
	RateLimit         int
	RateLimitWindow   time.Duration
	RateLimitSync     time.Duration
	LogLevel          slog.Level
	LogFormat         string
	BootstrapUsername string
	ShutdownTimeout   time.Duration
	// SQLiteSynchronous is "full" (a commit survives a power failure) or
	// "normal" (faster; the last commits can be lost on power failure).
	SQLiteSynchronous string
	// HTTPMaxConnections caps the HTTP connections open at once, so that a
	// flood of connections cannot use up the process's file descriptors.
	HTTPMaxConnections int
	// HTTP server timeouts, so that slow or stalled clients cannot hold
	// connections and handlers: the request headers, the whole request,
	// the response, and an idle keep-alive connection.
	HTTPReadHeaderTimeout time.Duration
	HTTPReadTimeout       time.Duration
	HTTPWriteTimeout      time.Duration
	HTTPIdleTimeout       time.Duration

	// What one tenant may take: mail sends per sending account per
	// RateLimitWindow, and child accounts of each kind per parent.
	MailSendRateLimit int
	MaxSubusers       int
	// TLSProbeRateLimit is probes per acting account per RateLimitWindow.
	TLSProbeRateLimit int

	// AllowDestinations is "CIDR[,CIDR...]": ranges beyond public
	// addresses that MX hosts and Event Webhook URLs may be reached at.
	AllowDestinations string

	// Delivery.
	NodeID          string
	DNSServer       string
	SMTPPort        int
	TLSCAFile       string
	HeloHostname    string
	DeliveryWorkers int
	DeliveryLease   time.Duration
	SMTPTimeout     time.Duration
	// SMTP session reuse and the per-domain limit of attempts in flight.
	SMTPSessionMaxMessages int
	SMTPSessionIdle        time.Duration
	SMTPMaxPerDomain       int
	RetryInitial           time.Duration
	RetryMax               time.Duration
	MaxDeliveryAge         time.Duration
	// DNSSECResolver is the "host:port" of the DNSSEC-validating resolver
	// whose answers decide DANE (RFC 7672); empty turns DANE off.
	DNSSECResolver string
	// TLSRegistryRetention is how long the registry of recipient domains
	// keeps what deliveries and probes learnt.
	TLSRegistryRetention time.Duration
	// MTASTS honours recipient domains' MTA-STS policies (RFC 8461).
	MTASTS bool
	// ActivityRetention is how long the Email Activity API lists a
	// message after its last event, and keeps its events.
	ActivityRetention time.Duration
	// Console serves the web console at /console/.
	Console bool
	// RequireAuthenticatedSender refuses mail sends from a domain the
	// account has not authenticated and validated.
	RequireAuthenticatedSender bool

	// Event Webhook.
	WebhookWorkers  int
	WebhookMaxPosts int
	WebhookInterval time.Duration
	WebhookRetry    time.Duration
	WebhookLease    time.Duration
}

// DefaultConfig returns serve's defaults.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:          "127.0.0.1:8080",
		Database:          DefaultDatabase,
		RateLimit:         600,
		RateLimitWindow:   time.Minute,
		RateLimitSync:     250 * time.Millisecond,
		MailSendRateLimit: 60000,
		TLSProbeRateLimit: 10,
		MaxSubusers:       100,
		LogLevel:          slog.LevelInfo,
		LogFormat:         "json",
		BootstrapUsername: "admin",
		ShutdownTimeout:   10 * time.Second,
		SQLiteSynchronous: string(sqlite.SynchronousFull),

		HTTPMaxConnections: 1024,

		HTTPReadHeaderTimeout: 10 * time.Second,
		HTTPReadTimeout:       60 * time.Second,
		HTTPWriteTimeout:      60 * time.Second,
		HTTPIdleTimeout:       120 * time.Second,

		SMTPPort:        25,
		HeloHostname:    defaultHostname(),
		DeliveryWorkers: 16,
		DeliveryLease:   10 * time.Minute,
		SMTPTimeout:     time.Minute,

		SMTPSessionMaxMessages: 100,
		SMTPSessionIdle:        30 * time.Second,
		SMTPMaxPerDomain:       8,
		RetryInitial:           time.Minute,
		RetryMax:               time.Hour,
		MaxDeliveryAge:         72 * time.Hour,

		TLSRegistryRetention: 30 * 24 * time.Hour,
		MTASTS:               true,
		ActivityRetention:    sealpost.DefaultActivityRetention,
		Console:              true,

		WebhookWorkers:  4,
		WebhookMaxPosts: 64,
		WebhookInterval: 200 * time.Millisecond,
		WebhookRetry:    5 * time.Second,
		WebhookLease:    time.Minute,
	}
}

// envFlagSet is a FlagSet whose flags take their defaults from SEALPOST_*
// environment variables, so every flag has an environment equivalent.
type envFlagSet struct {
	*flag.FlagSet
	getenv func(string) string
	stderr io.Writer
	errs   []string
}

// newFlagSet makes the flag set of a command. The flag package's own
// reporting is silenced: on a bad flag it prints the error and then every
// flag, and the caller would print the error again. Only -h prints the
// flags, to stderr (see parse).
func newFlagSet(name string, getenv func(string) string, stderr io.Writer) *envFlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &envFlagSet{FlagSet: fs, getenv: getenv, stderr: stderr}
}

// usageError is how every command reports a bad flag or argument: one line
// on stderr, naming what is wrong and where to read about the flags, and
// exit code 2.
func usageError(stderr io.Writer, command string, err error) int {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	fmt.Fprintf(stderr, "%s: %s (see \"%s --help\")\n", command, msg, command)
	return 2
}

func envName(flagName string) string {
	return "SEALPOST_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (f *envFlagSet) env(name string) (string, bool) {
	v := f.getenv(envName(name))
	return v, v != ""
}

func (f *envFlagSet) String(p *string, name, usage string) {
	if v, ok := f.env(name); ok {
		*p = v
	}
	f.StringVar(p, name, *p, usage+" ("+envName(name)+")")
}

func (f *envFlagSet) Int(p *int, name, usage string) {
	if v, ok := f.env(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q: not an integer", envName(name), v))
		}
		*p = n
	}
	f.IntVar(p, name, *p, usage+" ("+envName(name)+")")
}

func (f *envFlagSet) Bool(p *bool, name, usage string) {
	if v, ok := f.env(name); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q: not true or false", envName(name), v))
		}
		*p = b
	}
	f.BoolVar(p, name, *p, usage+" ("+envName(name)+")")
}

func (f *envFlagSet) Duration(p *time.Duration, name, usage string) {
	if v, ok := f.env(name); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q: not a duration", envName(name), v))
		}
		*p = d
	}
	f.DurationVar(p, name, *p, usage+" ("+envName(name)+")")
}

func (f *envFlagSet) Level(p *slog.Level, name, usage string) {
	v := (*levelValue)(p)
	if s, ok := f.env(name); ok {
		if err := v.Set(s); err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q: %v", envName(name), s, err))
		}
	}
	f.Var(v, name, usage+" ("+envName(name)+")")
}

// levelValue is a log level flag whose error names the accepted values,
// where slog's says only "unknown name".
type levelValue slog.Level

func (l *levelValue) String() string { return strings.ToLower((*slog.Level)(l).String()) }

func (l *levelValue) Set(s string) error {
	if err := (*slog.Level)(l).UnmarshalText([]byte(s)); err != nil {
		return errors.New("not a log level; use debug, info, warn or error")
	}
	return nil
}

// parse parses args and reports environment and flag errors together.
func (f *envFlagSet) parse(args []string) error {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(f.stderr, "usage of %s:\n", f.Name())
			f.SetOutput(f.stderr)
			f.PrintDefaults()
		}
		return err
	}
	if f.NArg() > 0 {
		f.errs = append(f.errs, fmt.Sprintf("unexpected argument %q", f.Arg(0)))
	}
	if len(f.errs) > 0 {
		return fmt.Errorf("%s", strings.Join(f.errs, "; "))
	}
	return nil
}

func (c *Config) register(fs *envFlagSet) {
	c.TLSRPT.register(fs)
	fs.String(&c.HTTPAddr, "http-addr", "host:port to serve the HTTP API on")
	fs.String(&c.Database, "database", "sqlite:PATH, a file path, or a postgres:// URL")
	fs.Int(&c.RateLimit, "rate-limit", "requests allowed per API key per window on non-mail endpoints")
	fs.Duration(&c.RateLimitWindow, "rate-limit-window", "rate limit window, for --rate-limit and --mail-send-rate-limit")
	fs.Int(&c.MailSendRateLimit, "mail-send-rate-limit", "mail sends allowed per sending account (a parent and each subuser apart) per window")
	fs.Int(&c.MaxSubusers, "max-subusers", "subusers one account may own, and separately customer accounts")
	fs.Duration(&c.RateLimitSync, "rate-limit-sync", "on PostgreSQL, how often nodes share their rate limit counts")
	fs.Level(&c.LogLevel, "log-level", "`level` of the least important lines logged: debug, info (the default), warn or error")
	fs.String(&c.LogFormat, "log-format", "json or text")
	fs.String(&c.BootstrapUsername, "bootstrap-username", "on an empty database, create this account and print its key (empty: don't)")
	fs.Duration(&c.ShutdownTimeout, "shutdown-timeout", "how long to wait for requests in flight on SIGINT/SIGTERM")
	fs.String(&c.SQLiteSynchronous, "sqlite-synchronous", "full: a 202 survives a power failure; normal: faster, but the last commits before a power failure can be lost")
	fs.Int(&c.HTTPMaxConnections, "http-max-connections", "HTTP connections open at once; past it, connections still waiting for a request are closed to make room, or else the new one is")
	fs.Duration(&c.HTTPReadHeaderTimeout, "http-read-header-timeout", "how long a client may take to send a request's headers")
	fs.Duration(&c.HTTPReadTimeout, "http-read-timeout", "how long a client may take to send a whole request, body included")
	fs.Duration(&c.HTTPWriteTimeout, "http-write-timeout", "how long the server may take to send a response, counted from the end of the request headers")
	fs.Duration(&c.HTTPIdleTimeout, "http-idle-timeout", "how long an idle keep-alive connection is kept open")

	fs.Int(&c.TLSProbeRateLimit, "tls-probe-rate-limit", "POST /v3/tls/probe calls allowed per acting account per --rate-limit-window")
	c.registerOutbound(fs)
	fs.String(&c.NodeID, "node-id", "this node's name in queue leases; must differ between nodes (empty: host name, process id and a random suffix)")
	fs.String(&c.DNSSECResolver, "dnssec-resolver", "host:port of a DNSSEC-validating resolver you run or trust, whose AD bit alone decides DANE (RFC 7672) for MX hosts; empty: DANE is off")
	fs.Int(&c.DeliveryWorkers, "delivery-workers", "deliveries attempted at once by this node (0 turns delivery off on this node)")
	fs.Int(&c.SMTPMaxPerDomain, "smtp-max-per-domain", "deliveries to one recipient domain attempted at once by this node, so that one domain cannot take every worker (0: no limit)")
	fs.Int(&c.SMTPSessionMaxMessages, "smtp-session-max-messages", "messages one SMTP session may carry before it is closed; a session is reused only for the same MX host and address under the same Enforced TLS policy (1: no reuse)")
	fs.Duration(&c.SMTPSessionIdle, "smtp-session-idle", "how long an SMTP session is kept open for the next message before QUIT (at most 4m, below servers' idle timeout)")
	fs.Duration(&c.DeliveryLease, "delivery-lease", "how long a claimed delivery stays this node's before another node may take it over")
	fs.Duration(&c.RetryInitial, "retry-initial", "wait before retrying deferred mail the first time; it doubles after each attempt")
	fs.Duration(&c.RetryMax, "retry-max", "longest wait between retries of deferred mail")
	fs.Duration(&c.MaxDeliveryAge, "max-delivery-age", "how long deferred mail is retried before it bounces")
	fs.Bool(&c.MTASTS, "mta-sts", "honour recipient domains' MTA-STS policies (RFC 8461), fetched over HTTPS and cached in the database for every node; --mta-sts=false ignores them")
	fs.Bool(&c.RequireAuthenticatedSender, "require-authenticated-sender", "refuse mail sends whose From domain the account has not authenticated and validated (POST /v3/whitelabel/domains); recommended for any shared deployment")
	fs.Bool(&c.Console, "console", "serve the web console at /console/ (--console=false turns it off)")
	fs.Duration(&c.ActivityRetention, "activity-retention", "how long the Email Activity API (GET /v3/messages) lists a message after its last event, and keeps its events")
	fs.Duration(&c.TLSRegistryRetention, "tls-registry-retention", "how long the TLS facts and recipient counts of recipient domains are kept; the Enforced TLS preview looks back at most this far")

	fs.Int(&c.WebhookWorkers, "webhook-workers", "Event Webhook workers on this node: they claim batches and start their posts, never waiting on a receiver (0 turns posting off on this node)")
	fs.Int(&c.WebhookMaxPosts, "webhook-max-posts", "Event Webhook posts in flight at once on this node; accounts whose last post failed may hold at most half of them")
	fs.Duration(&c.WebhookInterval, "webhook-interval", "how often to look for events to post when idle")
	fs.Duration(&c.WebhookLease, "webhook-lease", "how long a claimed Event Webhook batch stays this node's; after a crash, another node posts it once this has passed (a post is cut off at half of it)")
	fs.Duration(&c.WebhookRetry, "webhook-retry", "wait before re-posting a failed Event Webhook batch the first time; it doubles after each failure, up to 10 minutes")
}

// registerOutbound registers how sealpost reaches recipients' mail
// servers: serve's delivery and "sealpost tls probe" share them.
func (c *Config) registerOutbound(fs *envFlagSet) {
	fs.String(&c.AllowDestinations, "allow-destinations", "CIDR[,CIDR...] that MX hosts and Event Webhook URLs may also be reached at; by default only public addresses are, never loopback, private or link-local ones (e.g. 127.0.0.0/8 for a local test setup)")
	fs.String(&c.DNSServer, "dns-server", "host:port of a DNS server to ask for MX, address and MTA-STS records instead of the system resolver")
	fs.Int(&c.SMTPPort, "smtp-port", "TCP port of recipients' mail servers")
	fs.String(&c.TLSCAFile, "tls-ca-file", "PEM file of extra trusted root certificates for validating MX certificates and MTA-STS policy hosts")
	fs.String(&c.HeloHostname, "helo-hostname", "host name sent in EHLO and used in Message-ID headers")
	fs.Duration(&c.SMTPTimeout, "smtp-timeout", "timeout for connecting and for each SMTP command")
}

// validateOutbound checks what registerOutbound registers.
func (c Config) validateOutbound() []string {
	var problems []string
	if c.SMTPPort < 1 || c.SMTPPort > 65535 {
		problems = append(problems, "--smtp-port must be between 1 and 65535")
	}
	if c.HeloHostname == "" || strings.ContainsAny(c.HeloHostname, " \r\n\t<>") {
		problems = append(problems, "--helo-hostname must be a host name")
	}
	if c.SMTPTimeout <= 0 {
		problems = append(problems, "--smtp-timeout must be positive")
	}
	if _, err := c.destinations(); err != nil {
		problems = append(problems, err.Error())
	}
	if c.DNSServer != "" {
		if err := checkHostPort(c.DNSServer, false); err != nil {
			problems = append(problems, "--dns-server: "+err.Error())
		}
	}
	if _, err := rootCAs(c.TLSCAFile); err != nil {
		problems = append(problems, err.Error())
	}
	return problems
}

// validate checks every setting, so that a bad one stops serve before it
// opens anything, and before an empty database is given its first account
// (whose key is shown only once). A new flag gets its check here; the test
// of every flag (TestEveryFlagIsValidated) fails for a flag without one.
func (c Config) validate() error {
	var problems []string
	if err := checkHostPort(c.HTTPAddr, true); err != nil {
		problems = append(problems, "--http-addr: "+err.Error())
	}
	if _, _, err := storeKind(c.Database); err != nil {
		problems = append(problems, err.Error())
	}
	if c.BootstrapUsername != "" {
		if p := sealpost.ValidateUsername("--bootstrap-username", c.BootstrapUsername); p != nil {
			problems = append(problems, p.Message)
		}
	}
	if c.ShutdownTimeout <= 0 {
		problems = append(problems, "--shutdown-timeout must be positive")
	}
	if _, err := sqlite.ParseSynchronous(c.SQLiteSynchronous); err != nil {
		problems = append(problems, "--sqlite-synchronous: "+err.Error())
	}
	if c.HTTPMaxConnections < 1 {
		problems = append(problems, "--http-max-connections must be at least 1")
	}
	if strings.ContainsFunc(c.NodeID, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) || len(c.NodeID) > 200 {
		problems = append(problems, "--node-id must be at most 200 characters without spaces")
	}
	problems = append(problems, c.validateOutbound()...)
	problems = append(problems, c.TLSRPT.validate()...)
	if c.DNSSECResolver != "" {
		if err := checkHostPort(c.DNSSECResolver, false); err != nil {
			problems = append(problems, "--dnssec-resolver: "+err.Error())
		}
	}
	if c.TLSProbeRateLimit < 1 {
		problems = append(problems, "--tls-probe-rate-limit must be at least 1")
	}
	if c.RateLimit < 1 {
		problems = append(problems, "--rate-limit must be at least 1")
	}
	if c.MailSendRateLimit < 1 {
		problems = append(problems, "--mail-send-rate-limit must be at least 1")
	}
	if c.MaxSubusers < 1 {
		problems = append(problems, "--max-subusers must be at least 1")
	}
	if c.RateLimitWindow < time.Second {
		problems = append(problems, "--rate-limit-window must be at least 1s")
	}
	if c.RateLimitSync < 10*time.Millisecond {
		problems = append(problems, "--rate-limit-sync must be at least 10ms")
	}
	if c.HTTPReadHeaderTimeout <= 0 || c.HTTPReadTimeout <= 0 || c.HTTPWriteTimeout <= 0 || c.HTTPIdleTimeout <= 0 {
		// Zero would mean no limit at all to net/http.
		problems = append(problems, "--http-read-header-timeout, --http-read-timeout, --http-write-timeout and --http-idle-timeout must be positive")
	}
	if c.DeliveryWorkers < 0 || c.WebhookWorkers < 0 {
		problems = append(problems, "--delivery-workers and --webhook-workers must not be negative")
	}
	if c.SMTPMaxPerDomain < 0 {
		problems = append(problems, "--smtp-max-per-domain must not be negative")
	}
	if c.SMTPSessionMaxMessages < 1 || c.SMTPSessionMaxMessages > 10000 {
		problems = append(problems, "--smtp-session-max-messages must be between 1 and 10000")
	}
	if c.SMTPSessionIdle < time.Second || c.SMTPSessionIdle > 4*time.Minute {
		// RFC 5321 4.5.3.2.7: servers wait at least 5 minutes for a
		// command; past that the next RSET would meet a closed connection.
		problems = append(problems, "--smtp-session-idle must be between 1s and 4m")
	}
	if c.WebhookMaxPosts < 1 {
		problems = append(problems, "--webhook-max-posts must be at least 1")
	}
	if c.DeliveryLease < 10*time.Second {
		problems = append(problems, "--delivery-lease must be at least 10s")
	}
	if c.WebhookLease < 10*time.Second {
		problems = append(problems, "--webhook-lease must be at least 10s")
	}
	if c.SMTPTimeout > c.DeliveryLease/2 {
		problems = append(problems, "--smtp-timeout must be at most half of --delivery-lease")
	}
	if c.RetryInitial <= 0 || c.RetryMax < c.RetryInitial {
		problems = append(problems, "--retry-initial must be positive and --retry-max at least --retry-initial")
	}
	if c.MaxDeliveryAge <= 0 || c.WebhookInterval <= 0 || c.WebhookRetry <= 0 {
		problems = append(problems, "--max-delivery-age, --webhook-interval and --webhook-retry must be positive")
	}
	if c.TLSRegistryRetention <= 0 {
		problems = append(problems, "--tls-registry-retention must be positive")
	}
	if c.ActivityRetention <= 0 || c.ActivityRetention < c.MaxDeliveryAge {
		// Shorter, a message still being retried would lose its first
		// events from the detail.
		problems = append(problems, "--activity-retention must be positive and at least --max-delivery-age")
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		problems = append(problems, "--log-format must be json or text")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// destinations is where delivery and webhook posts may connect.
func (c Config) destinations() (sealpost.Destinations, error) {
	d, err := sealpost.ParseDestinations(c.AllowDestinations)
	if err != nil {
		return sealpost.Destinations{}, fmt.Errorf("--allow-destinations: %w", err)
	}
	return d, nil
}

// checkHostPort checks a host:port flag value; port 0 (any free port) is
// allowed only for a listening address.
func checkHostPort(addr string, listen bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if !listen && host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !listen) {
		return fmt.Errorf("%q: port must be a number from 1 to 65535", addr)
	}
	return nil
}

func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func defaultHostname() string {
	name, err := os.Hostname()
	if err != nil || name == "" {
		return "localhost"
	}
	return name
}
