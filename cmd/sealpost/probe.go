package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/sealpost/sealpost"
)

const tlsUsage = "usage: sealpost tls probe DOMAIN... [--json] [--dns-server HOST:PORT] [--smtp-port N] [--tls-ca-file PEM] [--helo-hostname NAME] [--smtp-timeout D] [--allow-destinations CIDR,...]\n"

// runTLSProbe asks each domain's mail servers about their TLS, as
// delivery from this host would reach them, and prints what it found. It
// exits 0 when every probe ran (whatever it found), 1 when one could not
// (the domain does not exist), 2 on bad arguments.
func runTLSProbe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg := DefaultConfig()
	fs := newFlagSet("sealpost tls probe", getenv, stderr)
	cfg.registerOutbound(fs)
	asJSON := false
	fs.Bool(&asJSON, "json", "print each probe as JSON, as POST /v3/tls/probe answers it, one per line")
	domains, err := fs.parseInterspersed(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "sealpost tls probe: %v\n", err)
		return 2
	}
	problems := cfg.validateOutbound()
	if len(domains) == 0 {
		problems = append(problems, "no domain given")
	}
	for _, d := range domains {
		if fe := sealpost.ValidateProbeDomain("domain", d); fe != nil {
			problems = append(problems, fmt.Sprintf("%q: %s", d, fe.Message))
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "sealpost tls probe: %s\n", strings.Join(problems, "; "))
		return 2
	}
	dests, err := cfg.destinations()
	if err != nil {
		fmt.Fprintf(stderr, "sealpost tls probe: %v\n", err)
		return 2
	}
	client, err := cfg.smtpClient(dests, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintf(stderr, "sealpost tls probe: %v\n", err)
		return 2
	}
	prober := cfg.prober(client)

	code := 0
	for i, d := range domains {
		rep, err := prober.Probe(ctx, strings.ToLower(strings.TrimSuffix(d, ".")))
		if err != nil {
			fmt.Fprintf(stderr, "sealpost tls probe: %s: %v\n", d, err)
			code = 1
			continue
		}
		if rep.Error != "" {
			fmt.Fprintf(stderr, "sealpost tls probe: %s: could not probe: %s\n", rep.Domain, rep.Error)
			code = 1
		}
		if asJSON {
			b, err := json.Marshal(rep)
			if err != nil {
				fmt.Fprintf(stderr, "sealpost tls probe: %s: %v\n", d, err)
				return 1
			}
			fmt.Fprintf(stdout, "%s\n", b)
			continue
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printProbe(stdout, rep)
	}
	return code
}

// parseInterspersed parses flags that may come before, between and after
// the positional arguments ("probe a.example --json b.example"), and
// returns the positional ones.
func (f *envFlagSet) parseInterspersed(args []string) ([]string, error) {
	var positional []string
	for {
		if err := f.Parse(args); err != nil {
			return nil, err
		}
		if f.NArg() == 0 {
			break
		}
		positional = append(positional, f.Arg(0))
		args = f.Args()[1:]
	}
	if len(f.errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(f.errs, "; "))
	}
	return positional, nil
}

// printProbe writes the report as a table: one line per MX host, then the
// published policies, then one line per policy.
func printProbe(w io.Writer, rep *sealpost.TLSProbe) {
	fmt.Fprintf(w, "%s  probed %s\n", rep.Domain, rep.ProbedAt.Format("2006-01-02 15:04:05 MST"))
	if rep.Error != "" {
		fmt.Fprintf(w, "  could not probe: %s\n", rep.Error)
		return
	}
	if rep.ImplicitMX {
		fmt.Fprintln(w, "  no MX records: the domain's own address stands in (implicit MX)")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PREF\tMX HOST\tADDRESS\tSTARTTLS\tTLS VERSIONS\tCIPHER\tCERTIFICATE\tTLSA\tERRORS")
	for _, h := range rep.MXHosts {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Preference, h.Host, orDash(h.Address), yesNo(h.STARTTLS),
			orDash(strings.Join(h.TLSVersions, " ")), orDash(h.Cipher), certSummary(h.Certificate), yesNo(h.TLSA), errorSummary(h))
	}
	tw.Flush()

	sts := rep.Policies.MTASTS
	switch {
	case !sts.Published && sts.Error == "":
		fmt.Fprintln(w, "  MTA-STS: none published")
	case sts.Policy != nil:
		fmt.Fprintf(w, "  MTA-STS: id %s, mode %s, mx %s, max_age %d\n", sts.ID, sts.Policy.Mode, strings.Join(sts.Policy.MX, " "), sts.Policy.MaxAge)
	default:
		fmt.Fprintf(w, "  MTA-STS: %s\n", sts.Error)
	}
	rpt := rep.Policies.TLSRPT
	switch {
	case !rpt.Published && rpt.Error == "":
		fmt.Fprintln(w, "  TLS-RPT: none published")
	case rpt.Error != "":
		fmt.Fprintf(w, "  TLS-RPT: %s\n", rpt.Error)
	default:
		fmt.Fprintf(w, "  TLS-RPT: rua %s\n", strings.Join(rpt.RUA, " "))
	}

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  POLICY\tVERDICT")
	for _, v := range rep.Verdicts {
		verdict := v.Outcome
		if v.ResultType != "" {
			verdict += " (" + v.ResultType + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", policyName(v.Policy), verdict)
	}
	tw.Flush()
}

func policyName(p sealpost.EnforcedTLS) string {
	switch {
	case p.RequireValidCert:
		return "require_valid_cert " + p.Version.String()
	case p.RequireTLS:
		return "require_tls " + p.Version.String()
	}
	return "default (opportunistic)"
}

func certSummary(c *sealpost.ProbedCertificate) string {
	switch {
	case c == nil:
		return "-"
	case c.Valid:
		return "valid until " + c.NotAfter.Format("2006-01-02")
	}
	return "invalid: " + c.ResultType
}

// errorSummary lists a host's failed steps. The versions a server refuses
// are in its TLS VERSIONS column already: their handshake errors are left
// to the JSON unless no version worked.
func errorSummary(h sealpost.ProbedHost) string {
	var parts []string
	for _, e := range h.Errors {
		if len(h.TLSVersions) > 0 && strings.HasPrefix(e.Step, "tls") {
			continue
		}
		parts = append(parts, e.Step+": "+e.Error)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
