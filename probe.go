package sealpost

import (
	"context"
	"strings"
	"time"
)

// TLSProbe is what asking a recipient domain's mail servers about their TLS
// found, as POST /v3/tls/probe and "sealpost tls probe --json" answer it.
type TLSProbe struct {
	Domain   string    `json:"domain"`
	ProbedAt time.Time `json:"probed_at"`
	// Error says why the probe could not run at all: the domain does not
	// exist, accepts no mail (null MX), or its MX lookup failed. Nothing
	// else is filled in then.
	Error string `json:"error,omitempty"`
	// ImplicitMX: the domain has no MX records and its own name stands in
	// for one (RFC 5321 5.1).
	ImplicitMX bool              `json:"implicit_mx"`
	MXHosts    []ProbedHost      `json:"mx_hosts"`
	Policies   PublishedPolicies `json:"policies"`
	// Verdicts are what delivery would do under each of ProbePolicies.
	Verdicts []ProbeVerdict `json:"verdicts"`
}

// ProbedHost is one MX host, in the order delivery tries them.
type ProbedHost struct {
	Host       string   `json:"host"`
	Preference uint16   `json:"preference"`
	Addresses  []string `json:"addresses"`
	// Address is the one the probe reached, the first that accepted a
	// connection, as delivery does; "" when none did.
	Address  string `json:"address,omitempty"`
	STARTTLS bool   `json:"starttls"`
	// TLSVersions are those the server completed a handshake at, each
	// tried on its own connection: "1.0" ... "1.3", oldest first.
	TLSVersions []string `json:"tls_versions"`
	// Cipher is the suite negotiated at the newest version.
	Cipher      string             `json:"cipher,omitempty"`
	Certificate *ProbedCertificate `json:"certificate"`
	// TLSA is whether _25._tcp.<host> has TLSA records (DANE, RFC 7672).
	TLSA   bool          `json:"tlsa"`
	Errors []ProbeFailed `json:"errors"`
	// Requirements are what recipients' policy sources other than the
	// account's own settings require of this host, as delivery applies
	// them: one entry per source that applies (mta-sts, dane). The
	// verdicts are raised by them.
	Requirements []SourceRequirement `json:"requirements"`
}

// SourceRequirement is what one policy source requires of one MX host.
type SourceRequirement struct {
	Source PolicySource `json:"source"`
	// Mode is the MTA-STS policy's mode ("enforce", "testing").
	Mode string `json:"mode,omitempty"`
	// Requirement is what the source raises the host's policy by; nil when
	// it raises nothing (MTA-STS testing) or excludes the host.
	Requirement *TLSRequirement `json:"requirement,omitempty"`
	// Excluded: the domain's MTA-STS policy in enforce mode does not list
	// the host, so delivery never connects to it.
	Excluded bool `json:"excluded,omitempty"`
	// Error says why the source cannot be known now; delivery defers.
	Error string `json:"error,omitempty"`
}

// ProbeFailed is one step of the probe that did not work.
type ProbeFailed struct {
	// Step is "address", "connect", "greeting", "ehlo", "starttls",
	// "tls1.0" ... "tls1.3" (the handshake at that version) or "tlsa".
	Step  string `json:"step"`
	Error string `json:"error"`
}

// ProbedCertificate is the certificate the server presented at the newest
// version, checked as delivery checks it: for the MX host name, against
// the trusted roots, at the time of the probe.
type ProbedCertificate struct {
	SubjectNames []string  `json:"subject_names"`
	Issuer       string    `json:"issuer"`
	NotAfter     time.Time `json:"not_after"`
	Valid        bool      `json:"valid"`
	// ResultType is the RFC 8460 result type of an invalid certificate.
	ResultType string `json:"result_type,omitempty"`
	Error      string `json:"error,omitempty"`
}

// PublishedPolicies are the domain's own TLS statements, reported as the
// probe found them. What delivery requires because of them is in each
// host's Requirements.
type PublishedPolicies struct {
	MTASTS MTASTSFinding `json:"mta_sts"`
	TLSRPT TLSRPTFinding `json:"tls_rpt"`
}

// MTASTSFinding is the domain's MTA-STS record and policy (RFC 8461).
type MTASTSFinding struct {
	Published bool          `json:"published"` // a _mta-sts TXT record exists
	ID        string        `json:"id,omitempty"`
	Policy    *MTASTSPolicy `json:"policy"`
	// Error is why the record or the policy could not be used.
	Error string `json:"error,omitempty"`
}

// TLSRPTFinding is the domain's TLS reporting record (RFC 8460).
type TLSRPTFinding struct {
	Published bool     `json:"published"`
	RUA       []string `json:"rua"`
	Error     string   `json:"error,omitempty"`
}

// ProbeVerdict is what a delivery attempt under Policy would come to.
type ProbeVerdict struct {
	Policy    EnforcedTLS `json:"policy"`
	Delivered bool        `json:"delivered"`
	// Outcome is "delivered", "blocked" (no MX host meets the policy),
	// "deferred" (no host met it, and one could not be reached or timed
	// out in its handshake: a later attempt may still deliver) or "bounced" (every host is at an address
	// this server may not connect to).
	Outcome string `json:"outcome"`
	// ResultType is the RFC 8460 result type of a blocked delivery, as its
	// event would carry it.
	ResultType string `json:"result_type,omitempty"`
}

// Probe outcomes.
const (
	ProbeDelivered = "delivered"
	ProbeBlocked   = "blocked"
	ProbeDeferred  = "deferred"
	ProbeBounced   = "bounced"
)

// ProbePolicies are the seven distinct Enforced TLS policies: the default
// (opportunistic; its version is unused), require_tls at each version, and
// require_valid_cert at each version.
func ProbePolicies() []EnforcedTLS {
	ps := []EnforcedTLS{DefaultEnforcedTLS()}
	for _, v := range []TLSVersion{TLS11, TLS12, TLS13} {
		ps = append(ps, EnforcedTLS{RequireTLS: true, Version: v})
	}
	for _, v := range []TLSVersion{TLS11, TLS12, TLS13} {
		ps = append(ps, EnforcedTLS{RequireValidCert: true, Version: v})
	}
	return ps
}

// Observations are the probe's facts for the registry of recipient
// domains: one per MX host it reached.
func (p *TLSProbe) Observations(accountID int64) []HostObservation {
	var obs []HostObservation
	for _, h := range p.MXHosts {
		if h.Address == "" {
			continue
		}
		f := TLSFacts{MXHost: h.Host, MXIP: h.Address, Cipher: h.Cipher}
		if n := len(h.TLSVersions); n > 0 {
			f.TLS = true
			f.Version = h.TLSVersions[n-1]
		}
		switch {
		case !h.STARTTLS:
			f.ResultType = ResultSTARTTLSNotSupported
		case len(h.TLSVersions) == 0:
			f.ResultType = ResultValidationFailure
		case h.Certificate != nil:
			f.Verified = h.Certificate.Valid
			f.VerifyError = h.Certificate.Error
			f.ResultType = h.Certificate.ResultType
		}
		obs = append(obs, HostObservation{AccountID: accountID, Domain: p.Domain, MXHost: h.Host, At: p.ProbedAt, Facts: f})
	}
	return obs
}

// TLSProber probes a recipient domain. A domain that cannot be probed
// (it does not exist) is a TLSProbe with Error set, not an error; error is
// for the probe's own failures.
type TLSProber interface {
	Probe(ctx context.Context, domain string) (*TLSProbe, error)
}

// ValidateProbeDomain accepts a domain name to probe: ASCII letters,
// digits and hyphens in dot-separated labels (an internationalised name in
// its xn-- form), at least two labels, not an IP address.
func ValidateProbeDomain(field, d string) *FieldError {
	bad := func(msg string) *FieldError { return &FieldError{Field: field, Message: field + " " + msg} }
	if d == "" {
		return bad("is required")
	}
	d = strings.TrimSuffix(d, ".")
	if len(d) > 253 {
		return bad("must be at most 253 characters")
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return bad("must be a domain name such as example.com")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return bad("must be a domain name such as example.com")
		}
		for i := range len(l) {
			if c := l[i]; !isAlnumByte(c) && c != '-' {
				return bad("must be a domain name such as example.com (an internationalised name in its xn-- form)")
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return bad("must be a domain name, not an IP address")
	}
	return nil
}
