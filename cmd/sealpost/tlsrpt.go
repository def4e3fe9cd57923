package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/tlsrpt"
	"github.com/sealpost/sealpost/webhook"
)

// tlsrptJitter spreads the daily reports over the first hour of the day,
// so that sealpost's reports do not arrive with everyone else's at 00:00.
const tlsrptJitter = time.Hour

// tlsrptRetryPoll is how often a node looks for failed report sends due
// again; retries wait minutes to hours, so a minute late is nothing.
const tlsrptRetryPoll = time.Minute

const tlsrptUsage = "usage: sealpost tlsrpt send --date YYYY-MM-DD [--dry-run] [flags]\n"

// TLSRPTConfig is how sealpost sends TLS reports (RFC 8460).
type TLSRPTConfig struct {
	Enabled      bool
	Organization string
	Contact      string
	From         string
	Account      string
}

func (c *TLSRPTConfig) register(fs *envFlagSet) {
	fs.Bool(&c.Enabled, "tlsrpt", "send daily SMTP TLS reports (RFC 8460) to recipient domains that publish a _smtp._tls record (needs --tlsrpt-organization)")
	fs.String(&c.Organization, "tlsrpt-organization", "organization-name of the TLS reports")
	fs.String(&c.Contact, "tlsrpt-contact", "contact-info of the TLS reports (empty: --tlsrpt-from)")
	fs.String(&c.From, "tlsrpt-from", "address TLS reports to mailto: rua are sent from (empty: the --tlsrpt-account's email)")
	fs.String(&c.Account, "tlsrpt-account", "username of the operator account whose queue sends TLS reports to mailto: rua (empty: mailto: rua get none)")
}

func (c TLSRPTConfig) validate() []string {
	var problems []string
	for _, f := range []struct{ name, v string }{{"--tlsrpt-organization", c.Organization}, {"--tlsrpt-contact", c.Contact}} {
		if strings.ContainsFunc(f.v, unicode.IsControl) || len(f.v) > 200 {
			problems = append(problems, f.name+" must be at most 200 characters without control characters")
		}
	}
	if c.From != "" && !sealpost.ValidEmail(c.From) {
		problems = append(problems, "--tlsrpt-from must be an email address")
	}
	if c.Account != "" {
		if p := sealpost.ValidateUsername("--tlsrpt-account", c.Account); p != nil {
			problems = append(problems, p.Message)
		}
	}
	if c.Enabled && strings.TrimSpace(c.Organization) == "" {
		problems = append(problems, "--tlsrpt needs --tlsrpt-organization")
	}
	return problems
}

// reporter makes the TLS reporter: https: rua are posted to under the
// destination rules, like Event Webhooks.
func (c Config) tlsrptReporter(ctx context.Context, store sealpost.Store, resolver *delivery.Client, dests sealpost.Destinations, node string, logger *slog.Logger) (*tlsrpt.Reporter, error) {
	client, err := c.reportClient(dests)
	if err != nil {
		return nil, err
	}
	r := &tlsrpt.Reporter{
		Store: store, Resolver: resolver, Client: client, Node: node, Logger: logger,
		From: c.TLSRPT.From,
		Meta: sealpost.TLSReportMeta{OrganizationName: c.TLSRPT.Organization, ContactInfo: c.TLSRPT.Contact},
	}
	if c := c.TLSRPT; c.Account != "" {
		a, err := store.AccountByUsername(ctx, c.Account)
		if err != nil {
			return nil, fmt.Errorf("--tlsrpt-account %q: %w", c.Account, err)
		}
		r.FromAccountID = a.ID
		if r.From == "" {
			r.From = a.Email
		}
	}
	if r.Meta.ContactInfo == "" {
		r.Meta.ContactInfo = r.From
	}
	return r, nil
}

// reportClient is the Event Webhook client (destination rules, no proxy,
// no redirects) that resolves https: rua hosts as MX hosts are resolved
// (--dns-server) and trusts --tls-ca-file's roots too, as MTA-STS does.
func (c Config) reportClient(dests sealpost.Destinations) (*http.Client, error) {
	client := webhook.NewClient(dests)
	roots, err := rootCAs(c.TLSCAFile)
	if err != nil {
		return nil, err
	}
	t := client.Transport.(*http.Transport)
	if roots != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	if c.DNSServer != "" {
		server := c.DNSServer
		dialer := &net.Dialer{Timeout: 30 * time.Second, Control: dests.Control, Resolver: &net.Resolver{PreferGo: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, server)
			}}}
		t.DialContext = dialer.DialContext
	}
	return client, nil
}

func runTLSRPTSend(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	const command = "sealpost tlsrpt send"
	cfg := DefaultConfig()
	fs := newFlagSet(command, getenv, stderr)
	fs.String(&cfg.Database, "database", "sqlite:PATH, a file path, or a postgres:// URL")
	cfg.registerOutbound(fs)
	cfg.TLSRPT.register(fs)
	var date string
	var dryRun bool
	fs.StringVar(&date, "date", "", "the UTC day to report, YYYY-MM-DD (required)")
	fs.BoolVar(&dryRun, "dry-run", false, "print the reports that would be sent, as JSON, and send nothing")
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return usageError(stderr, command, err)
	}
	problems := append(cfg.validateOutbound(), cfg.TLSRPT.validate()...)
	day, err := sealpost.ParseReportDay(date)
	if err != nil {
		problems = append(problems, "--date must be YYYY-MM-DD")
	}
	if _, _, err := storeKind(cfg.Database); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "%s: %s\n", command, strings.Join(problems, "; "))
		return 2
	}
	dests, err := cfg.destinations()
	if err != nil {
		return usageError(stderr, command, err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	client, err := cfg.smtpClient(dests, logger)
	if err != nil {
		return usageError(stderr, command, err)
	}
	store, _, err := openStore(ctx, cfg.Database, false, "")
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", command, err)
		return 1
	}
	defer store.Close()
	r, err := cfg.tlsrptReporter(ctx, store, client, dests, "cli", logger)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", command, err)
		return 1
	}
	if dryRun {
		plans, err := r.Plan(ctx, day)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", command, err)
			return 1
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if plans == nil {
			plans = []tlsrpt.Planned{}
		}
		if err := enc.Encode(plans); err != nil {
			return 1
		}
		return 0
	}
	if err := r.Send(ctx, day); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", command, err)
		return 1
	}
	return 0
}
