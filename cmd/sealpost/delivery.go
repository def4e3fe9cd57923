package main

import (
	"context"
	cryptorand "crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/mtasts"
	"github.com/sealpost/sealpost/webhook"
)

// nodeID names this process in leases: unique per process, readable in logs.
func nodeID(configured string) string {
	if configured != "" {
		return configured
	}
	var b [4]byte
	_, _ = cryptorand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", defaultHostname(), os.Getpid(), hex.EncodeToString(b[:]))
}

// rootCAs is the trust store for MX certificates: the system roots plus the
// --tls-ca-file ones.
func rootCAs(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, nil // the client then uses the system roots
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca-file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca-file %s: no PEM certificate found", caFile)
	}
	return pool, nil
}

// exponential returns a backoff that starts at initial, doubles after each
// attempt up to most, and adds up to 10% jitter.
func exponential(initial, most time.Duration) func(int) time.Duration {
	return func(attempts int) time.Duration {
		d := initial
		for i := 1; i < attempts && d < most; i++ {
			d *= 2
		}
		d = min(d, most)
		return d + time.Duration(rand.Int64N(int64(d/10)+1))
	}
}

// smtpClient is how this process reaches recipients' mail servers: for
// delivery and for probes alike.
func (c Config) smtpClient(dests sealpost.Destinations, logger *slog.Logger) (*delivery.Client, error) {
	roots, err := rootCAs(c.TLSCAFile)
	if err != nil {
		return nil, err
	}
	return &delivery.Client{
		Resolver:     delivery.NewResolver(c.DNSServer),
		Port:         c.SMTPPort,
		HeloHostname: c.HeloHostname,
		RootCAs:      roots,
		Timeout:      c.SMTPTimeout,
		Destinations: dests,
		Logger:       logger,
	}, nil
}

// prober probes recipient domains as client delivers to them.
func (c Config) prober(client *delivery.Client) *delivery.Prober {
	return &delivery.Prober{Client: client, DNSServer: c.DNSServer}
}

// mtastsSource gives delivery recipient domains' MTA-STS policies, found
// with client (its resolver, roots and destination rules) and cached in
// store for every node; nil when --mta-sts=false. An interface, so that off
// is a nil source, not a nil *mtasts.Source inside one.
func (m *Main) mtastsSource(client *delivery.Client, store sealpost.Store) delivery.MTASTSSource {
	if !m.Config.MTASTS {
		return nil
	}
	return &mtasts.Source{Resolver: client, Fetcher: client, Cache: store, Logger: m.Logger.With("component", "mta-sts")}
}

// newRunner makes the delivery runner and the client it delivers with,
// whose idle sessions are closed once the runner stops; Open gives the
// runner its Queue once the store is open.
func (m *Main) newRunner(node string, dests sealpost.Destinations, reg prometheus.Registerer) (*delivery.Runner, *delivery.Client, error) {
	client, err := m.Config.smtpClient(dests, m.Logger.With("component", "smtp"))
	if err != nil {
		return nil, nil, err
	}
	// As many sessions may stay idle per MX address as attempts to one
	// domain may be in flight: fewer would close some after every burst.
	client.Reuse = delivery.ReuseLimits{MaxMessages: m.Config.SMTPSessionMaxMessages, Idle: m.Config.SMTPSessionIdle,
		MaxIdlePerHost: m.Config.SMTPMaxPerDomain}
	return &delivery.Runner{
		Deliverer:    newMeasuredDeliverer(client, reg),
		Owner:        node,
		Workers:      m.Config.DeliveryWorkers,
		MaxPerDomain: m.Config.SMTPMaxPerDomain,
		Lease:        m.Config.DeliveryLease,
		MaxAge:       m.Config.MaxDeliveryAge,
		Backoff:      exponential(m.Config.RetryInitial, m.Config.RetryMax),
		Grace:        m.Config.ShutdownTimeout,
		Logger:       m.Logger.With("component", "delivery"),
		Outage:       m.outage,
	}, client, nil
}

func (m *Main) newPoster(store sealpost.Store, node string, dests sealpost.Destinations, reg prometheus.Registerer) *webhook.Poster {
	p := &webhook.Poster{
		Store:        store,
		Owner:        node,
		Destinations: dests,
		Workers:      m.Config.WebhookWorkers,
		MaxPosts:     m.Config.WebhookMaxPosts,
		Interval:     m.Config.WebhookInterval,
		Lease:        m.Config.WebhookLease,
		Backoff:      exponential(m.Config.WebhookRetry, 10*time.Minute),
		Logger:       m.Logger.With("component", "webhook"),
		Outage:       m.outage,
		Recorder:     store,
	}
	registerPosterMetrics(reg, p)
	return p
}

// webhookSigner gives the HTTP API the webhook package's keys and test
// post. Its client must come from webhook.NewClient, which keeps the
// destination rule.
type webhookSigner struct{ client *http.Client }

func (webhookSigner) GenerateKey() ([]byte, string, error) { return webhook.GenerateKey() }

func (webhookSigner) PublicKey(key []byte) (string, error) { return webhook.PublicKey(key) }

func (w webhookSigner) SendTest(ctx context.Context, url string, key []byte) (int, error) {
	return webhook.SendTest(ctx, w.client, url, key, time.Now())
}
