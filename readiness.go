package sealpost

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// HostObservation is what one delivery attempt or one probe learned of the
// TLS of one MX host of a recipient domain, for one account. The registry
// of recipient domains (what the readiness preview judges policies by) is
// built from these.
type HostObservation struct {
	AccountID int64
	Domain    string // lower case, as Recipient.Domain
	MXHost    string
	At        time.Time
	// Facts as delivery records them; for a probe, Version is the highest
	// version the host accepted.
	Facts TLSFacts
	// Recipients is how many recipients the attempt was for; 0 for a probe.
	Recipients int
	// CertResult is the RFC 8460 result type of the certificate's failure
	// when the certificate was not valid; see CertResultOf.
	CertResult string
	// TLSReport: the attempt delivered a TLS report, which TLS reports never
	// count (see TLSReportCategory).
	TLSReport bool
	// What TLS reports say of the session beyond Facts: the recipient
	// domain's MTA-STS policy that applied to it, the host's usable TLSA
	// records, and the local address the session came from.
	MTASTSPolicy *MTASTSPolicy
	TLSARecords  []TLSARecord
	SendingIP    string
}

// TLSRegistryService keeps, per account and recipient domain, the latest
// TLS facts per MX host and a summary of them. Delivery records its
// observations with the attempt's outcome (DeliveryCompletion); a probe
// records its own through RecordObservations.
type TLSRegistryService interface {
	RecordObservations(ctx context.Context, obs []HostObservation) error
}

// CertResultOf is the RFC 8460 result type of o's certificate verdict when
// the certificate was not valid: CertResult when the observer knew it, else
// Facts.ResultType when that names a certificate failure, else
// validation-failure. It is "" for a valid certificate or no TLS.
func (o HostObservation) CertResultOf() string {
	if o.Facts.Verified || (!o.Facts.TLS && o.Facts.VerifyError == "") {
		return ""
	}
	if o.CertResult != "" {
		return o.CertResult
	}
	switch o.Facts.ResultType {
	case ResultCertificateHostMismatch, ResultCertificateExpired, ResultCertificateNotTrusted:
		return o.Facts.ResultType
	}
	return ResultValidationFailure
}

// Partial reports whether o's attempt learnt less of the host than the
// host offers: the host offered STARTTLS but the attempt's own policy cut
// the handshake short (a version below its minimum, a certificate it
// refused). Such an observation says nothing of the versions the host
// accepts, so the registry keeps what it knew of them.
func (o HostObservation) Partial() bool {
	return !o.Facts.TLS && o.Facts.ResultType != "" && o.Facts.ResultType != ResultSTARTTLSNotSupported
}

// HostFacts are the latest facts the registry holds of one MX host.
type HostFacts struct {
	MXHost string
	At     time.Time
	Facts  TLSFacts
	// CertResult is the RFC 8460 type of the certificate's failure, "" when
	// it was valid or never seen.
	CertResult string
}

// RegistryTimeResolution is how old the times the registry keeps may be:
// an observation of a host that says nothing new within this time of the one
// stored is not written, nor is a domain's summary it does not change.
// Under load a host is observed hundreds of times a second; rewriting its
// rows, and the indexes on their times, for each of them was most of what
// the registry cost.
const RegistryTimeResolution = time.Second

// RegistryDomain is what the registry knows of one recipient domain of one
// account.
type RegistryDomain struct {
	Domain string
	// Recipients is how many recipients at Domain the account's accepted
	// mail sends asked for in the window, attempted or not.
	Recipients int64
	// The summary over every host observation kept: the highest TLS
	// version any host negotiated ("" for none), whether any presented a
	// valid certificate, and the time of the latest observation (zero
	// when there is none).
	HighestVersion string
	ValidCertSeen  bool
	LastAttempt    time.Time
	// Hosts are the latest facts per MX host, by host name; none when no
	// attempt ever reached one.
	Hosts []HostFacts
}

// TLSRegistryStore is the registry as a store keeps it. Delivery's
// observations arrive with DeliveryCompletion.Observations; the
// recipients per domain and day are counted by EnqueueMessages.
type TLSRegistryStore interface {
	TLSRegistryService
	// TLSRegistry returns the domains accountID's mail sends asked for
	// recipients at on sinceDay or later (days counted as RegistryDay
	// does), by domain.
	TLSRegistry(ctx context.Context, accountID int64, sinceDay int64) ([]RegistryDomain, error)
	// PruneTLSRegistry forgets observations older than before and the
	// counts of days before before's. Several nodes may run it at once.
	PruneTLSRegistry(ctx context.Context, before time.Time) error
}

// RegistryDay is the day of t the registry counts recipients in: whole
// UTC days since the Unix epoch.
func RegistryDay(t time.Time) int64 {
	return t.UTC().Unix() / 86400
}

// DomainRecipients counts msgs' recipients per account, domain and day of
// the message's creation (at when it has none), in a fixed order (so that
// stores updating the counters lock their rows in the same order).
func DomainRecipients(msgs []*Message, at time.Time) []DomainDayCount {
	index := map[DomainDayCount]int{}
	var out []DomainDayCount
	for _, m := range msgs {
		created := m.CreatedAt
		if created.IsZero() {
			created = at
		}
		for _, r := range m.Recipients {
			domain := r.Domain
			if domain == "" {
				domain = AddressDomain(r.Email)
			}
			key := DomainDayCount{AccountID: m.AccountID, Domain: domain, Day: RegistryDay(created)}
			k, ok := index[key]
			if !ok {
				k = len(out)
				index[key] = k
				out = append(out, key)
			}
			out[k].Recipients++
		}
	}
	slices.SortFunc(out, func(a, b DomainDayCount) int {
		return cmp.Or(cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.Domain, b.Domain), cmp.Compare(a.Day, b.Day))
	})
	return out
}

// DomainDayCount is how many recipients one account's mail sends asked for
// at one domain on one day.
type DomainDayCount struct {
	AccountID  int64
	Domain     string
	Day        int64
	Recipients int64
}

// tlsVersionRank orders TLSFacts.Version spellings; 0 for no TLS.
func tlsVersionRank(v string) int {
	switch v {
	case "1.0":
		return 1
	case "1.1":
		return 2
	case "1.2":
		return 3
	case "1.3":
		return 4
	}
	return 0
}

// Permits reports whether a session with facts f meets s and, when it does
// not, the RFC 8460 result type of the failure. certResult is the type of
// the certificate's failure, if it failed. It is DecideTLS applied to the
// facts, so the preview judges hosts exactly as delivery does.
func (s EnforcedTLS) Permits(f TLSFacts, certResult string) (ok bool, resultType string) {
	v := DecideTLS(RequirementOf(s), SeenInFacts(f, certResult))
	if v.Action == TLSNextMX {
		return false, v.ResultType
	}
	return true, ""
}

// TLSPreview is what a policy would have done to an account's recent mail.
type TLSPreview struct {
	Policy         EnforcedTLS     `json:"policy"`
	Days           int             `json:"days"`
	DomainsSeen    int             `json:"domains_seen"`
	RecipientsSeen int64           `json:"recipients_seen"`
	WouldBlock     PreviewCount    `json:"would_block"`
	Unknown        PreviewCount    `json:"unknown"`
	Domains        []BlockedDomain `json:"domains"`
}

// PreviewCount counts domains and their recipients.
type PreviewCount struct {
	Domains    int   `json:"domains"`
	Recipients int64 `json:"recipients"`
}

// BlockedDomain is a domain a policy would block, judged by its best host.
type BlockedDomain struct {
	Domain      string      `json:"domain"`
	Recipients  int64       `json:"recipients"`
	LastAttempt time.Time   `json:"last_attempt"`
	ResultType  string      `json:"result_type"`
	Best        BestHostTLS `json:"best"`
}

// BestHostTLS is what the best host of a blocked domain offered.
type BestHostTLS struct {
	TLSVersion *string `json:"tls_version"` // null: no TLS
	CertValid  bool    `json:"cert_valid"`
}

// PreviewPolicy judges domains under policy. A domain with no host facts
// is unknown, never safe; one is blocked when no host met the policy, and
// is then described by its best host (highest version, then a valid
// certificate). Domains lists every blocked one, most recipients first,
// then by name.
func PreviewPolicy(policy EnforcedTLS, days int, domains []RegistryDomain) TLSPreview {
	p := TLSPreview{Policy: policy, Days: days, Domains: []BlockedDomain{}}
	for _, d := range domains {
		if d.Recipients <= 0 {
			continue
		}
		p.DomainsSeen++
		p.RecipientsSeen += d.Recipients
		if len(d.Hosts) == 0 {
			p.Unknown.Domains++
			p.Unknown.Recipients += d.Recipients
			continue
		}
		best, met := -1, false
		for i, h := range d.Hosts {
			if ok, _ := policy.Permits(h.Facts, h.CertResult); ok {
				met = true
				break
			}
			if best < 0 || betterHost(h, d.Hosts[best]) {
				best = i
			}
		}
		if met {
			continue
		}
		h := d.Hosts[best]
		_, resultType := policy.Permits(h.Facts, h.CertResult)
		bd := BlockedDomain{Domain: d.Domain, Recipients: d.Recipients, LastAttempt: d.LastAttempt.UTC().Truncate(time.Second),
			ResultType: resultType, Best: BestHostTLS{CertValid: h.Facts.TLS && h.Facts.Verified}}
		if h.Facts.TLS {
			v := h.Facts.Version
			bd.Best.TLSVersion = &v
		}
		p.WouldBlock.Domains++
		p.WouldBlock.Recipients += d.Recipients
		p.Domains = append(p.Domains, bd)
	}
	slices.SortFunc(p.Domains, func(a, b BlockedDomain) int {
		return cmp.Or(cmp.Compare(b.Recipients, a.Recipients), cmp.Compare(a.Domain, b.Domain))
	})
	return p
}

// betterHost reports whether a offered more than b: a higher version, then
// a valid certificate.
func betterHost(a, b HostFacts) bool {
	ra, rb := tlsVersionRank(a.Facts.Version), tlsVersionRank(b.Facts.Version)
	if !a.Facts.TLS {
		ra = -1
	}
	if !b.Facts.TLS {
		rb = -1
	}
	if ra != rb {
		return ra > rb
	}
	return a.Facts.Verified && !b.Facts.Verified
}

// CleanObservations returns obs with domain and host names in lower case
// without a trailing dot, or EINVALID naming the first observation that
// lacks an account, a domain, a host or a time.
func CleanObservations(obs []HostObservation) ([]HostObservation, error) {
	out := make([]HostObservation, len(obs))
	for i, o := range obs {
		o.Domain = strings.ToLower(strings.TrimSuffix(o.Domain, "."))
		o.MXHost = strings.ToLower(strings.TrimSuffix(o.MXHost, "."))
		if o.AccountID <= 0 || o.Domain == "" || o.MXHost == "" || o.At.IsZero() {
			return nil, Invalid(FieldError{Field: "observations", Message: fmt.Sprintf("observation %d lacks an account, a domain, an MX host or a time", i)})
		}
		out[i] = o
	}
	return out, nil
}

// SeenVersion is the version o's session negotiated, "" for none.
func (o HostObservation) SeenVersion() string {
	if !o.Facts.TLS {
		return ""
	}
	return o.Facts.Version
}

// SeenValidCert reports whether o's host presented a valid certificate.
func (o HostObservation) SeenValidCert() bool { return o.Facts.TLS && o.Facts.Verified }
