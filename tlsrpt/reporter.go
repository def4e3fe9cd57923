// Package tlsrpt sends the daily SMTP TLS reports (RFC 8460) to the
// recipient domains that publish a _smtp._tls record.
package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/sealpost/sealpost"
)

// Resolver looks up TXT records, as delivery.Client does with --dns-server.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Store is what the reporter needs of sealpost's store.
type Store interface {
	sealpost.TLSRPTService
	EnqueueMessages(ctx context.Context, msgs []*sealpost.Message, events []sealpost.Event) error
}

// Reporter builds and sends one day's reports.
type Reporter struct {
	Store    Store
	Resolver Resolver
	// Client posts to https: rua; it must enforce the destination rules
	// (webhook.NewClient does).
	Client *http.Client
	Meta   sealpost.TLSReportMeta
	// From is the operator's address mailto: reports are sent from, and
	// FromAccountID the account whose queue they go through. Without them
	// mailto: rua are skipped.
	From          string
	FromAccountID int64
	Node          string
	Logger        *slog.Logger
}

// Planned is one report and where it goes.
type Planned struct {
	Report sealpost.TLSReport `json:"report"`
	RUA    []string           `json:"rua"`
}

// Plan builds day's reports for the policy domains that publish a TLS-RPT
// record; domains without one (or whose lookup fails) get none.
func (r *Reporter) Plan(ctx context.Context, day int64) ([]Planned, error) {
	counts, err := r.Store.TLSRPTCounts(ctx, day, 0)
	if err != nil {
		return nil, err
	}
	var out []Planned
	for _, rep := range sealpost.BuildTLSReports(day, counts, r.Meta) {
		domain := rep.Policies[0].Policy.PolicyDomain
		txts, err := r.Resolver.LookupTXT(ctx, "_smtp._tls."+domain)
		if err != nil {
			r.log().DebugContext(ctx, "no TLS-RPT record", "domain", domain, "err", err)
			continue
		}
		rec, err := sealpost.FindTLSRPTRecord(txts)
		if err != nil {
			r.log().DebugContext(ctx, "no usable TLS-RPT record", "domain", domain, "err", err)
			continue
		}
		out = append(out, Planned{Report: rep, RUA: rec.RUA})
	}
	return out, nil
}

// Send sends day's reports to every rua; a failing rua does not keep the
// others from theirs. It answers the errors joined.
func (r *Reporter) Send(ctx context.Context, day int64) error {
	plans, err := r.Plan(ctx, day)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range plans {
		body, err := Gzip(p.Report)
		if err != nil {
			return err
		}
		for _, rua := range p.RUA {
			switch {
			case strings.HasPrefix(strings.ToLower(rua), "https:"):
				err = r.post(ctx, rua, body)
			case strings.HasPrefix(strings.ToLower(rua), "mailto:"):
				err = r.mail(ctx, rua, p.Report, body)
			default:
				err = fmt.Errorf("unsupported rua %q", rua)
			}
			if err != nil {
				r.log().WarnContext(ctx, "TLS report not sent", "report_id", p.Report.ReportID, "rua", rua, "err", err)
				errs = append(errs, fmt.Errorf("%s to %s: %w", p.Report.ReportID, rua, err))
				continue
			}
			r.log().InfoContext(ctx, "TLS report sent", "report_id", p.Report.ReportID, "rua", rua)
		}
	}
	return errors.Join(errs...)
}

func (r *Reporter) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// Gzip is the report's JSON, gzipped as RFC 8460 section 5 sends it.
func Gzip(rep sealpost.TLSReport) ([]byte, error) {
	raw, err := json.Marshal(rep)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (r *Reporter) post(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/tlsrpt+gzip")
	resp, err := r.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("rua answered %s", resp.Status)
	}
	return nil
}

func (r *Reporter) mail(ctx context.Context, rua string, rep sealpost.TLSReport, gz []byte) error {
	if r.From == "" || r.FromAccountID == 0 {
		return errors.New("no --tlsrpt-from account to send mailto: reports from")
	}
	to, _, _ := strings.Cut(rua[len("mailto:"):], "?")
	if !sealpost.ValidEmail(to) {
		return fmt.Errorf("invalid mailto address %q", to)
	}
	xid, err := sealpost.NewXMessageID()
	if err != nil {
		return err
	}
	smtpID := "<" + xid + "@" + domainOf(r.From) + ">"
	raw, subject, err := ComposeMessage(rep, r.From, to, smtpID, time.Now(), gz)
	if err != nil {
		return err
	}
	msg := &sealpost.Message{
		AccountID: r.FromAccountID, XMessageID: xid, SMTPID: smtpID, From: r.From, Subject: subject,
		Body:       &sealpost.MessageBody{Data: raw},
		Categories: []string{sealpost.TLSReportCategory},
		Recipients: []sealpost.Recipient{{Email: to, Domain: strings.ToLower(domainOf(to)), SGMessageID: xid + ".0"}},
		CreatedAt:  time.Now().UTC(),
	}
	return r.Store.EnqueueMessages(ctx, []*sealpost.Message{msg}, nil)
}

func domainOf(addr string) string { return addr[strings.LastIndexByte(addr, '@')+1:] }

// ComposeMessage is the RFC 8460 section 5.3 message carrying rep: a
// multipart/report of report-type tlsrpt with a text part and the gzipped
// JSON, and the TLS-Report-Domain and TLS-Report-Submitter fields.
func ComposeMessage(rep sealpost.TLSReport, from, to, messageID string, now time.Time, gz []byte) (raw []byte, subject string, err error) {
	domain := rep.Policies[0].Policy.PolicyDomain
	submitter := domainOf(from)
	subject = fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", domain, submitter, rep.ReportID)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	text, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/plain; charset=utf-8"}})
	if err != nil {
		return nil, "", err
	}
	fmt.Fprintf(text, "This is an aggregate TLS report from %s for %s.\r\n", rep.OrganizationName, domain)
	name := fmt.Sprintf("%s!%s!%d!%d.json.gz", submitter, domain, rep.DateRange.Start.Unix(), rep.DateRange.End.Unix())
	att, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {`application/tlsrpt+gzip; name="` + name + `"`},
		"Content-Disposition":       {`attachment; filename="` + name + `"`},
		"Content-Transfer-Encoding": {"base64"},
	})
	if err != nil {
		return nil, "", err
	}
	writeBase64Lines(att, gz)
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	var msg bytes.Buffer
	for _, f := range [][2]string{
		{"From", from}, {"To", to}, {"Subject", subject}, {"Date", now.UTC().Format(time.RFC1123Z)},
		{"Message-ID", messageID}, {"MIME-Version", "1.0"},
		{"TLS-Report-Domain", domain}, {"TLS-Report-Submitter", submitter},
		{"Content-Type", `multipart/report; report-type="tlsrpt"; boundary="` + mw.Boundary() + `"`},
	} {
		fmt.Fprintf(&msg, "%s: %s\r\n", f[0], f[1])
	}
	msg.WriteString("\r\n")
	msg.Write(body.Bytes())
	return msg.Bytes(), subject, nil
}

func writeBase64Lines(w io.Writer, data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		fmt.Fprintf(w, "%s\r\n", enc[:76])
		enc = enc[76:]
	}
	fmt.Fprintf(w, "%s\r\n", enc)
}

// Jitter is a random delay up to max, so that nodes and senders spread.
func Jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64(max)))
	if err != nil {
		return 0
	}
	return time.Duration(n.Int64())
}

// Run sends each day's reports once across nodes: after 00:00 UTC plus up
// to maxJitter, the node that claims the previous day sends its reports.
func (r *Reporter) Run(ctx context.Context, maxJitter time.Duration) error {
	for {
		now := time.Now().UTC()
		next := now.Truncate(24 * time.Hour).Add(24 * time.Hour).Add(Jitter(maxJitter))
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		r.RunOnce(ctx, sealpost.RegistryDay(next)-1)
	}
}

// RunOnce claims day and, when this node is first, sends its reports.
// The claim comes before sending: a node that fails midway does not make
// another send the same reports again.
func (r *Reporter) RunOnce(ctx context.Context, day int64) (claimed bool, err error) {
	claimed, err = r.Store.ClaimTLSRPTRun(ctx, day, r.Node, time.Now())
	if err != nil || !claimed {
		return claimed, err
	}
	if err := r.Send(ctx, day); err != nil {
		r.log().WarnContext(ctx, "TLS reports", "err", err)
		return true, err
	}
	return true, nil
}
