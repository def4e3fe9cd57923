package sealpost

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// TLS reporting (RFC 8460): every delivery session to a recipient domain
// is counted per day, policy, MX host, result and receiving IP, so that
// the day's aggregate can be reported to the domains that ask for it.

// RFC 8460 policy types.
const (
	TLSRPTPolicySTS      = "sts"
	TLSRPTPolicyTLSA     = "tlsa"
	TLSRPTPolicyNotFound = "no-policy-found"
)

// TLSReportCategory marks the messages that carry TLS reports. Their
// sessions are never counted, so that no report is ever about the
// delivery of a report (RFC 8460 section 5.3 asks senders to avoid such
// loops).
const TLSReportCategory = "sealpost-tls-report"

// TLSRPTCount is how many sessions of one account to one recipient policy
// domain on one UTC day, under one policy type, to one MX host and
// receiving IP, ended with one result. ResultType "" counts successes.
type TLSRPTCount struct {
	AccountID    int64
	PolicyDomain string
	Day          int64 // RegistryDay
	PolicyType   string
	MXHost       string
	ResultType   string
	ReceivingIP  string
	Sessions     int64
}

// TLSRPTService keeps the session counts TLS reports are made of, and the
// claim that makes each day's reports go once across nodes.
type TLSRPTService interface {
	// TLSRPTCounts lists the counts of day, of every account when accountID
	// is 0, ordered by policy domain, policy type, MX host, result type and
	// receiving IP.
	TLSRPTCounts(ctx context.Context, day int64, accountID int64) ([]TLSRPTCount, error)
	// ClaimTLSRPTRun claims the sending of day's reports for node; it
	// reports false when another claim was first.
	ClaimTLSRPTRun(ctx context.Context, day int64, node string, at time.Time) (bool, error)
}

// TLSRPTSession is how o counts in TLS reports: its policy type and result
// type ("" for a successful session). ok is false for what is not a
// delivery session worth reporting: a probe, or the delivery of a report.
func (o HostObservation) TLSRPTSession() (policyType, resultType string, ok bool) {
	if o.Recipients == 0 || o.TLSReport || o.MXHost == "" {
		return "", "", false
	}
	f := o.Facts
	switch {
	case f.MTASTS != "" || PolicySource(f.PolicySource) == PolicySourceMTASTS ||
		f.ResultType == ResultSTSPolicyFetchError || f.ResultType == ResultSTSPolicyInvalid:
		policyType = TLSRPTPolicySTS
	case f.DANEVerified || PolicySource(f.PolicySource) == PolicySourceDANE ||
		f.ResultType == ResultTLSAInvalid || f.ResultType == ResultDNSSECInvalid:
		policyType = TLSRPTPolicyTLSA
	default:
		policyType = TLSRPTPolicyNotFound
	}
	// A failure an MTA-STS policy in testing mode would have caused is a
	// failure to report: that is what testing mode is for (RFC 8461
	// section 5).
	resultType = cmp.Or(f.ResultType, f.MTASTSTestingResult)
	if resultType == "" && !f.TLS {
		// Mail that went in clear where no policy asked for TLS was
		// delivered, but the session is what RFC 8460 reports a failure.
		resultType = ResultSTARTTLSNotSupported
	}
	return policyType, resultType, true
}

// TLSRPTCountOf is o's count of one session, when o is one to count.
func TLSRPTCountOf(o HostObservation) (TLSRPTCount, bool) {
	pt, rt, ok := o.TLSRPTSession()
	if !ok {
		return TLSRPTCount{}, false
	}
	return TLSRPTCount{AccountID: o.AccountID, PolicyDomain: o.Domain, Day: RegistryDay(o.At), PolicyType: pt,
		MXHost: o.MXHost, ResultType: rt, ReceivingIP: o.Facts.MXIP, Sessions: 1}, true
}

// FoldTLSRPTCounts sums the counts of equal keys, in key order: a store
// writes each row once per batch, and concurrent writers lock rows in the
// same order.
func FoldTLSRPTCounts(obs []HostObservation) []TLSRPTCount {
	var out []TLSRPTCount
	for _, o := range obs {
		if c, ok := TLSRPTCountOf(o); ok {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, compareTLSRPTKeys)
	folded := out[:0]
	for _, c := range out {
		if n := len(folded); n > 0 && compareTLSRPTKeys(folded[n-1], c) == 0 {
			folded[n-1].Sessions += c.Sessions
			continue
		}
		folded = append(folded, c)
	}
	return folded
}

func compareTLSRPTKeys(a, b TLSRPTCount) int {
	return cmp.Or(cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.PolicyDomain, b.PolicyDomain),
		cmp.Compare(a.Day, b.Day), cmp.Compare(a.PolicyType, b.PolicyType), cmp.Compare(a.MXHost, b.MXHost),
		cmp.Compare(a.ResultType, b.ResultType), cmp.Compare(a.ReceivingIP, b.ReceivingIP))
}

// ParseReportDay parses a YYYY-MM-DD UTC date into its RegistryDay.
func ParseReportDay(s string) (int64, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0, Errorf(EINVALID, "date must be YYYY-MM-DD, got %q", s)
	}
	return RegistryDay(t), nil
}

// dayStart is the first instant of the RegistryDay day.
func dayStart(day int64) time.Time {
	return time.Unix(day*86400, 0).UTC()
}

// TLSReport is an RFC 8460 section 4 aggregate report.
type TLSReport struct {
	OrganizationName string            `json:"organization-name"`
	DateRange        TLSReportRange    `json:"date-range"`
	ContactInfo      string            `json:"contact-info"`
	ReportID         string            `json:"report-id"`
	Policies         []TLSReportPolicy `json:"policies"`
}

type TLSReportRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

type TLSReportPolicy struct {
	Policy         TLSReportPolicyDesc `json:"policy"`
	Summary        TLSReportSummary    `json:"summary"`
	FailureDetails []TLSReportFailure  `json:"failure-details,omitempty"`
}

type TLSReportPolicyDesc struct {
	PolicyType   string   `json:"policy-type"`
	PolicyString []string `json:"policy-string,omitempty"`
	PolicyDomain string   `json:"policy-domain"`
	MXHost       string   `json:"mx-host,omitempty"`
}

type TLSReportSummary struct {
	Successful int64 `json:"total-successful-session-count"`
	Failed     int64 `json:"total-failure-session-count"`
}

type TLSReportFailure struct {
	ResultType          string `json:"result-type"`
	SendingMTAIP        string `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname string `json:"receiving-mx-hostname,omitempty"`
	ReceivingIP         string `json:"receiving-ip,omitempty"`
	FailedSessionCount  int64  `json:"failed-session-count"`
}

// TLSReportMeta is what a report says of its sender.
type TLSReportMeta struct {
	OrganizationName string
	ContactInfo      string
	// SendingMTAIP is the address sealpost sends from, when known.
	SendingMTAIP string
	// PolicyStrings gives, per policy type and MX host ("" for any host),
	// the policy's text: the MTA-STS policy's lines, the TLSA records.
	PolicyStrings func(policyType, mxHost string) []string
}

// BuildTLSReports makes one report per policy domain from counts, all of
// one day, in any order. Each report's policies are one per policy type and
// MX host.
func BuildTLSReports(day int64, counts []TLSRPTCount, meta TLSReportMeta) []TLSReport {
	counts = slices.Clone(counts)
	// Several accounts' counts of one key are one in a report.
	for i := range counts {
		counts[i].AccountID = 0
	}
	slices.SortFunc(counts, compareTLSRPTKeys)
	start := dayStart(day)
	var out []TLSReport
	for _, c := range counts {
		if c.Day != day || c.Sessions <= 0 {
			continue
		}
		if n := len(out); n == 0 || out[n-1].Policies[0].Policy.PolicyDomain != c.PolicyDomain {
			out = append(out, TLSReport{
				OrganizationName: meta.OrganizationName,
				DateRange:        TLSReportRange{Start: start, End: start.Add(24*time.Hour - time.Second)},
				ContactInfo:      meta.ContactInfo,
				ReportID:         fmt.Sprintf("%s_%s@%s", start.Format(time.DateOnly), c.PolicyDomain, reportIDHost(meta)),
			})
		}
		r := &out[len(out)-1]
		if n := len(r.Policies); n == 0 || r.Policies[n-1].Policy.PolicyType != c.PolicyType || r.Policies[n-1].Policy.MXHost != c.MXHost {
			p := TLSReportPolicy{Policy: TLSReportPolicyDesc{PolicyType: c.PolicyType, PolicyDomain: c.PolicyDomain, MXHost: c.MXHost}}
			if meta.PolicyStrings != nil && c.PolicyType != TLSRPTPolicyNotFound {
				p.Policy.PolicyString = meta.PolicyStrings(c.PolicyType, c.MXHost)
			}
			r.Policies = append(r.Policies, p)
		}
		p := &r.Policies[len(r.Policies)-1]
		if c.ResultType == "" {
			p.Summary.Successful += c.Sessions
			continue
		}
		p.Summary.Failed += c.Sessions
		p.FailureDetails = append(p.FailureDetails, TLSReportFailure{ResultType: c.ResultType, SendingMTAIP: meta.SendingMTAIP,
			ReceivingMXHostname: c.MXHost, ReceivingIP: c.ReceivingIP, FailedSessionCount: c.Sessions})
	}
	return out
}

func reportIDHost(meta TLSReportMeta) string {
	if _, host, ok := strings.Cut(meta.ContactInfo, "@"); ok && host != "" {
		return host
	}
	return "sealpost"
}
