package sealpost

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
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
// domain on one UTC day, under one policy, to one MX host and receiving
// IP from one sending IP, ended with one result. ResultType "" counts
// successes.
type TLSRPTCount struct {
	AccountID    int64
	PolicyDomain string
	Day          int64 // RegistryDay
	PolicyType   string
	// PolicyString is the policy as RFC 8460 4.3 reports it: the MTA-STS
	// policy's lines, or the TLSA records of the host in presentation
	// format. PolicyMX is its mx-host: the MTA-STS policy's mx patterns,
	// or the MX host the TLSA records belong to.
	PolicyString []string
	PolicyMX     []string
	MXHost       string // the host the session went to
	ResultType   string
	ReceivingIP  string
	SendingIP    string
	Sessions     int64
}

// PolicyKey identifies the count's policy (type, text and mx-host) in a
// fixed-size key, so that stores can index counts by it whatever the
// policy's length.
func (c TLSRPTCount) PolicyKey() string {
	h := sha256.New()
	// NUL ends each field: policy text has no control characters.
	write := func(fields ...string) {
		for _, f := range fields {
			h.Write([]byte(f))
			h.Write([]byte{0})
		}
	}
	write(c.PolicyType)
	write(c.PolicyString...)
	h.Write([]byte{1})
	write(c.PolicyMX...)
	return hex.EncodeToString(h.Sum(nil))
}

// MTASTSPolicyLines are p's lines for a TLS report's policy-string: as
// fetched, or for a policy cached without them, its fields in RFC 8461
// 3.2's order.
func MTASTSPolicyLines(p *MTASTSPolicy) []string {
	if p == nil {
		return nil
	}
	if len(p.Lines) > 0 {
		return slices.Clone(p.Lines)
	}
	lines := []string{"version: STSv1", "mode: " + p.Mode}
	for _, mx := range p.MX {
		lines = append(lines, "mx: "+mx)
	}
	return append(lines, "max_age: "+strconv.FormatInt(p.MaxAge, 10))
}

// TLSARecordStrings are records in presentation format (RFC 6698 2.2):
// usage, selector, matching type and the data in hexadecimal.
func TLSARecordStrings(records []TLSARecord) []string {
	var out []string
	for _, r := range records {
		out = append(out, fmt.Sprintf("%d %d %d %X", r.Usage, r.Selector, r.MatchingType, r.Data))
	}
	return out
}

// TLSRPTService keeps the session counts TLS reports are made of, the
// claim that makes each day's reports go once across nodes, and the
// reports still to send.
type TLSRPTService interface {
	// TLSRPTCounts lists the counts of day, of every account when accountID
	// is 0, ordered by policy domain, policy type, policy (its PolicyKey),
	// MX host, result type, receiving and sending IP.
	TLSRPTCounts(ctx context.Context, day int64, accountID int64) ([]TLSRPTCount, error)
	// ClaimTLSRPTRun claims the sending of day's reports for node and,
	// in the same transaction, adds sends, the reports to send; it
	// reports false, and adds nothing, when another claim was first.
	ClaimTLSRPTRun(ctx context.Context, day int64, node string, at time.Time, sends []TLSRPTSend) (bool, error)
	// UnclaimedTLSRPTDays lists, in order, the days from first to last
	// (inclusive) that have counts and no claim.
	UnclaimedTLSRPTDays(ctx context.Context, first, last int64) ([]int64, error)
	// ClaimTLSRPTSends leases to node, until now+lease, up to max sends
	// whose next attempt is due at now and that no lease holds.
	ClaimTLSRPTSends(ctx context.Context, node string, now time.Time, lease time.Duration, max int) ([]TLSRPTSend, error)
	// FinishTLSRPTSend ends node's lease on s: done deletes it (sent, or
	// given up); otherwise s's Attempts, NextAttemptAt and LastError are
	// kept for the next attempt. A lease lost to another node is ECONFLICT.
	FinishTLSRPTSend(ctx context.Context, node string, s TLSRPTSend, done bool) error
}

// TLSRPTSend is a report to send to one rua, kept until it is sent or
// given up, so that a failed send is retried, on any node.
type TLSRPTSend struct {
	Day          int64
	PolicyDomain string
	RUA          string
	Report       []byte // the report's JSON
	Attempts     int
	// NextAttemptAt is when it is due; GiveUpAt when it is no longer
	// retried.
	NextAttemptAt time.Time
	GiveUpAt      time.Time
	LastError     string
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
	c := TLSRPTCount{AccountID: o.AccountID, PolicyDomain: o.Domain, Day: RegistryDay(o.At), PolicyType: pt,
		MXHost: o.MXHost, ResultType: rt, ReceivingIP: o.Facts.MXIP, SendingIP: o.SendingIP, Sessions: 1}
	switch pt {
	case TLSRPTPolicySTS:
		if o.MTASTSPolicy != nil {
			c.PolicyString = MTASTSPolicyLines(o.MTASTSPolicy)
			c.PolicyMX = slices.Clone(o.MTASTSPolicy.MX)
		}
	case TLSRPTPolicyTLSA:
		c.PolicyString = TLSARecordStrings(o.TLSARecords)
		c.PolicyMX = []string{o.MXHost}
	}
	return c, true
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

// compareTLSRPTKeys orders counts by account, domain, day and policy
// first, so that a report's policies are runs of counts.
func compareTLSRPTKeys(a, b TLSRPTCount) int {
	return cmp.Or(cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.PolicyDomain, b.PolicyDomain),
		cmp.Compare(a.Day, b.Day), comparePolicies(a, b), cmp.Compare(a.MXHost, b.MXHost),
		cmp.Compare(a.ResultType, b.ResultType), cmp.Compare(a.ReceivingIP, b.ReceivingIP), cmp.Compare(a.SendingIP, b.SendingIP))
}

func comparePolicies(a, b TLSRPTCount) int {
	return cmp.Or(cmp.Compare(a.PolicyType, b.PolicyType), slices.Compare(a.PolicyString, b.PolicyString), slices.Compare(a.PolicyMX, b.PolicyMX))
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
	// MXHost is a list, as in RFC 8460's example (erratum 6241 settles
	// the text's string on it): the MTA-STS policy's mx patterns, or the
	// one host of TLSA records.
	MXHost []string `json:"mx-host,omitempty"`
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
}

// BuildTLSReports makes one report per policy domain from counts, all of
// one day, in any order. Each report has one policy object per policy
// (type, text and mx-host), and one failure detail per result, host,
// receiving and sending IP.
func BuildTLSReports(day int64, counts []TLSRPTCount, meta TLSReportMeta) []TLSReport {
	counts = slices.Clone(counts)
	// Several accounts' counts of one key are one in a report.
	for i := range counts {
		counts[i].AccountID = 0
	}
	slices.SortFunc(counts, compareTLSRPTKeys)
	start := dayStart(day)
	var out []TLSReport
	var last TLSRPTCount // of the policy object being filled
	for _, c := range counts {
		if c.Day != day || c.Sessions <= 0 {
			continue
		}
		if n := len(out); n == 0 || last.PolicyDomain != c.PolicyDomain {
			out = append(out, TLSReport{
				OrganizationName: meta.OrganizationName,
				DateRange:        TLSReportRange{Start: start, End: start.Add(24*time.Hour - time.Second)},
				ContactInfo:      meta.ContactInfo,
				ReportID:         fmt.Sprintf("%s_%s@%s", start.Format(time.DateOnly), c.PolicyDomain, reportIDHost(meta)),
			})
		}
		r := &out[len(out)-1]
		if len(r.Policies) == 0 || comparePolicies(last, c) != 0 {
			r.Policies = append(r.Policies, TLSReportPolicy{Policy: TLSReportPolicyDesc{PolicyType: c.PolicyType,
				PolicyString: c.PolicyString, PolicyDomain: c.PolicyDomain, MXHost: c.PolicyMX}})
		}
		last = c
		p := &r.Policies[len(r.Policies)-1]
		if c.ResultType == "" {
			p.Summary.Successful += c.Sessions
			continue
		}
		p.Summary.Failed += c.Sessions
		f := TLSReportFailure{ResultType: c.ResultType, SendingMTAIP: c.SendingIP,
			ReceivingMXHostname: c.MXHost, ReceivingIP: c.ReceivingIP, FailedSessionCount: c.Sessions}
		if n := len(p.FailureDetails); n > 0 && p.FailureDetails[n-1].sameSession(f) {
			p.FailureDetails[n-1].FailedSessionCount += c.Sessions
			continue
		}
		p.FailureDetails = append(p.FailureDetails, f)
	}
	return out
}

func (f TLSReportFailure) sameSession(g TLSReportFailure) bool {
	f.FailedSessionCount, g.FailedSessionCount = 0, 0
	return f == g
}

func reportIDHost(meta TLSReportMeta) string {
	if _, host, ok := strings.Cut(meta.ContactInfo, "@"); ok && host != "" {
		return host
	}
	return "sealpost"
}

// JoinPolicyLines is the stored form of a list of policy lines (an MTA-STS
// policy's, a count's policy string or mx patterns): one entry per line,
// since none of them can hold a line break. SplitPolicyLines undoes it.
func JoinPolicyLines(l []string) string { return strings.Join(l, "\n") }

// SplitPolicyLines is the list JoinPolicyLines stored; nil for none.
func SplitPolicyLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
