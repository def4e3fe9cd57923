// Package tlsrpt sends the daily SMTP TLS reports (RFC 8460) to the
// recipient domains that publish a _smtp._tls record.
package tlsrpt

import (
	"bytes"
	"cmp"
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

	// Retry is the wait after a failed send's nth attempt; nil:
	// RetryBackoff. A report is retried until GiveUpAfter (0: 24 hours)
	// has passed since its day's claim.
	Retry       func(attempts int) time.Duration
	GiveUpAfter time.Duration
	// CatchUpDays is how many days back a run sends the reports of days
	// no node claimed (every node was down); 0: 7.
	CatchUpDays int
	// Lease is how long a send stays this node's while it is attempted;
	// 0: 5 minutes. A post is cut off well before it ends.
	Lease time.Duration
	// LookupTries is how many times a policy domain's TLS-RPT record is
	// looked up, LookupWait apart, when lookups fail for a reason a later
	// one may get past (not NXDOMAIN), before the domain's report for the
	// day is left out; 0: 3 tries, 10 seconds apart.
	LookupTries int
	LookupWait  time.Duration
	Now         func() time.Time
}

// RetryBackoff waits 5 minutes after the first failed attempt, doubling
// up to 2 hours: about fifteen tries in the day a report is retried
// (RFC 8460 5.3 suggests retrying; by then the next day's report is due).
func RetryBackoff(attempts int) time.Duration {
	d := 5 * time.Minute
	for i := 1; i < attempts && d < 2*time.Hour; i++ {
		d *= 2
	}
	return min(d, 2*time.Hour)
}

func (r *Reporter) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

func (r *Reporter) lease() time.Duration {
	return cmp.Or(r.Lease, 5*time.Minute)
}

// Planned is one report and where it goes.
type Planned struct {
	Report sealpost.TLSReport `json:"report"`
	RUA    []string           `json:"rua"`
}

// Plan builds day's reports for the policy domains that publish a TLS-RPT
// record; domains without one (or whose lookups keep failing) get none.
func (r *Reporter) Plan(ctx context.Context, day int64) ([]Planned, error) {
	counts, err := r.Store.TLSRPTCounts(ctx, day, 0)
	if err != nil {
		return nil, err
	}
	var out []Planned
	for _, rep := range sealpost.BuildTLSReports(day, counts, r.Meta) {
		domain := rep.Policies[0].Policy.PolicyDomain
		txts, err := r.lookupRecord(ctx, domain)
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case sealpost.IsDNSNotFound(err):
			r.log().DebugContext(ctx, "no TLS-RPT record", "domain", domain, "err", err)
			continue
		case err != nil:
			r.log().WarnContext(ctx, "TLS-RPT record lookup failed: no report for the domain this day", "domain", domain, "err", err)
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

// lookupRecord looks up domain's TLS-RPT record, again after failures a
// later lookup may get past: a resolver's passing trouble at the moment a
// day is claimed would otherwise cost the domain its day's report.
func (r *Reporter) lookupRecord(ctx context.Context, domain string) ([]string, error) {
	tries := cmp.Or(r.LookupTries, 3)
	for i := 1; ; i++ {
		txts, err := r.Resolver.LookupTXT(ctx, "_smtp._tls."+domain)
		if err == nil || i >= tries || sealpost.IsDNSNotFound(err) {
			return txts, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(cmp.Or(r.LookupWait, 10*time.Second)):
		}
	}
}

// Send sends day's reports to every rua now, once, whether or not the day
// was claimed: "sealpost tlsrpt send" on demand. It claims the day first
// when no node has, so that the daily run does not send it again. A
// failing rua does not keep the others from theirs, and is not retried:
// Send answers the errors joined.
func (r *Reporter) Send(ctx context.Context, day int64) error {
	plans, err := r.Plan(ctx, day)
	if err != nil {
		return err
	}
	if _, err := r.Store.ClaimTLSRPTRun(ctx, day, r.Node, r.now(), nil); err != nil {
		return err
	}
	var errs []error
	for _, p := range plans {
		for _, rua := range p.RUA {
			if err := r.sendTo(ctx, rua, p.Report); err != nil {
				r.log().WarnContext(ctx, "TLS report not sent", "report_id", p.Report.ReportID, "rua", rua, "err", err)
				errs = append(errs, fmt.Errorf("%s to %s: %w", p.Report.ReportID, rua, err))
				continue
			}
			r.log().InfoContext(ctx, "TLS report sent", "report_id", p.Report.ReportID, "rua", rua)
		}
	}
	return errors.Join(errs...)
}

// errPermanent marks a rua that no retry will reach.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

// sendTo posts rep to an https: rua, or queues it to a mailto: one.
func (r *Reporter) sendTo(ctx context.Context, rua string, rep sealpost.TLSReport) error {
	body, err := Gzip(rep)
	if err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(strings.ToLower(rua), "https:"):
		return r.post(ctx, rua, body)
	case strings.HasPrefix(strings.ToLower(rua), "mailto:"):
		return r.mail(ctx, rua, rep, body)
	}
	return errPermanent{fmt.Errorf("unsupported rua %q", rua)}
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
		return errPermanent{errors.New("no --tlsrpt-account to send mailto: reports from")}
	}
	to, _, _ := strings.Cut(rua[len("mailto:"):], "?")
	if !sealpost.ValidEmail(to) {
		return errPermanent{fmt.Errorf("invalid mailto address %q", to)}
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
		Recipients: []sealpost.Recipient{{Email: to, Domain: sealpost.AddressDomain(to), SGMessageID: xid + ".0"}},
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

// Run sends each day's reports once across nodes, and retries failed
// sends, until ctx is done. Shortly after it starts, and after each 00:00
// UTC plus up to maxJitter, it claims and sends every day of the last
// CatchUpDays that no node claimed: the previous day, and days missed
// while every node was down. Every poll it retries the sends that are due,
// whichever node's claim made them.
func (r *Reporter) Run(ctx context.Context, maxJitter, poll time.Duration) error {
	daily := time.NewTimer(Jitter(min(maxJitter, time.Minute)))
	defer daily.Stop()
	retries := time.NewTicker(poll)
	defer retries.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-daily.C:
			_ = r.CatchUp(ctx)
			now := r.now().UTC()
			daily.Reset(now.Truncate(24 * time.Hour).Add(24 * time.Hour).Add(Jitter(maxJitter)).Sub(now))
		case <-retries.C:
			_ = r.SendDue(ctx)
		}
	}
}

// CatchUp claims and sends, oldest first, each day of the last
// CatchUpDays before today that has counts and no claim.
func (r *Reporter) CatchUp(ctx context.Context) error {
	today := sealpost.RegistryDay(r.now())
	days, err := r.Store.UnclaimedTLSRPTDays(ctx, today-int64(cmp.Or(r.CatchUpDays, 7)), today-1)
	if err != nil {
		r.log().WarnContext(ctx, "TLS reports: finding the days to report", "err", err)
		return err
	}
	var errs []error
	for _, day := range days {
		if _, err := r.RunOnce(ctx, day); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RunOnce claims day and, when this node is first, sends its reports. The
// claim stores every report to send with it, before any is sent: a node
// that fails midway leaves the rest to the others' retries, and no node
// sends the day again.
func (r *Reporter) RunOnce(ctx context.Context, day int64) (claimed bool, err error) {
	plans, err := r.Plan(ctx, day)
	if err != nil {
		r.log().WarnContext(ctx, "TLS reports", "day", dayString(day), "err", err)
		return false, err
	}
	now := r.now()
	var sends []sealpost.TLSRPTSend
	for _, p := range plans {
		raw, err := json.Marshal(p.Report)
		if err != nil {
			return false, err
		}
		for _, rua := range p.RUA {
			sends = append(sends, sealpost.TLSRPTSend{Day: day, PolicyDomain: p.Report.Policies[0].Policy.PolicyDomain, RUA: rua,
				Report: raw, NextAttemptAt: now, GiveUpAt: now.Add(cmp.Or(r.GiveUpAfter, 24*time.Hour))})
		}
	}
	claimed, err = r.Store.ClaimTLSRPTRun(ctx, day, r.Node, now, sends)
	if err != nil || !claimed {
		return claimed, err
	}
	r.log().InfoContext(ctx, "TLS reports claimed", "day", dayString(day), "reports", len(plans), "sends", len(sends))
	return true, r.SendDue(ctx)
}

// SendDue attempts every send that is due and not leased to another node.
func (r *Reporter) SendDue(ctx context.Context) error {
	for {
		sends, err := r.Store.ClaimTLSRPTSends(ctx, r.Node, r.now(), r.lease(), 16)
		if err != nil {
			r.log().WarnContext(ctx, "TLS reports: claiming sends", "err", err)
			return err
		}
		if len(sends) == 0 {
			return nil
		}
		for _, s := range sends {
			if err := r.attempt(ctx, s); err != nil {
				return err
			}
		}
	}
}

// attempt sends s once and records the outcome: gone when sent or given
// up, else due again after Retry's wait.
func (r *Reporter) attempt(ctx context.Context, s sealpost.TLSRPTSend) error {
	log := r.log().With("day", dayString(s.Day), "policy_domain", s.PolicyDomain, "rua", s.RUA, "attempt", s.Attempts+1)
	var rep sealpost.TLSReport
	err := json.Unmarshal(s.Report, &rep)
	if err == nil {
		actx, cancel := context.WithTimeout(ctx, r.lease()/2)
		err = r.sendTo(actx, s.RUA, rep)
		cancel()
	}
	done := true
	switch {
	case err == nil:
		log.InfoContext(ctx, "TLS report sent", "report_id", rep.ReportID)
	case errors.As(err, new(errPermanent)):
		log.WarnContext(ctx, "TLS report not sent, not retried", "err", err)
	default:
		s.Attempts++
		s.LastError = err.Error()
		retry := r.Retry
		if retry == nil {
			retry = RetryBackoff
		}
		s.NextAttemptAt = r.now().Add(retry(s.Attempts))
		if s.NextAttemptAt.After(s.GiveUpAt) {
			log.WarnContext(ctx, "TLS report not sent; given up", "err", err)
		} else {
			done = false
			log.InfoContext(ctx, "TLS report not sent; will retry", "err", err, "next_attempt", s.NextAttemptAt)
		}
	}
	if err := r.Store.FinishTLSRPTSend(ctx, r.Node, s, done); err != nil {
		log.WarnContext(ctx, "TLS reports: recording a send", "err", err)
		return err
	}
	return nil
}

func dayString(day int64) string {
	return time.Unix(day*86400, 0).UTC().Format(time.DateOnly)
}
