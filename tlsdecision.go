package sealpost

// The Enforced TLS decision: what one session with one MX host may do,
// given what is required of it and what the host showed. Delivery decides
// every session with DecideTLS, the probe its verdicts, and the readiness
// preview its judgements of recorded facts (Permits), so none of them can
// disagree with another. It lives here rather than in delivery because the
// preview, which only the root package may hold, needs it too.

// TLSRequirement is what is required of the TLS of one MX host: by one
// source of policy, or by all of them together (Raise).
type TLSRequirement struct {
	// RequireTLS: nothing but the TLS negotiation may go in clear.
	RequireTLS bool `json:"require_tls"`
	// RequireValidCert: the certificate must be valid for the MX host name
	// under the Web PKI (trusted roots, current time); implies TLS.
	RequireValidCert bool `json:"require_valid_cert"`
	// Version is the lowest TLS version allowed when TLS is mandatory.
	Version TLSVersion `json:"version"`
	// DANE: the certificate must match the host's TLSA records (RFC
	// 7672); implies TLS. It is a check beside RequireValidCert, never
	// instead of it.
	DANE bool `json:"dane"`
}

// RequirementOf is what an Enforced TLS setting requires.
func RequirementOf(p EnforcedTLS) TLSRequirement {
	return TLSRequirement{RequireTLS: p.RequireTLS, RequireValidCert: p.RequireValidCert, Version: p.Version}
}

// Mandatory reports whether a host that cannot meet r must get nothing.
func (r TLSRequirement) Mandatory() bool { return r.RequireTLS || r.RequireValidCert || r.DANE }

// Raise returns the strongest of r and o: every requirement of either. A
// version counts only where TLS is mandatory: an opportunistic setting's
// version is unused, and must not raise another source's floor.
func (r TLSRequirement) Raise(o TLSRequirement) TLSRequirement {
	out := TLSRequirement{
		RequireTLS:       r.RequireTLS || o.RequireTLS,
		RequireValidCert: r.RequireValidCert || o.RequireValidCert,
		DANE:             r.DANE || o.DANE,
	}
	switch {
	case r.Mandatory() == o.Mandatory():
		out.Version = max(r.Version, o.Version)
	case r.Mandatory():
		out.Version = r.Version
	default:
		out.Version = o.Version
	}
	return out
}

// Stricter reports whether r requires something o does not: whether
// raising o by r changes what a host is held to.
func (r TLSRequirement) Stricter(o TLSRequirement) bool {
	return o.Raise(r).Enforced() != o.Enforced()
}

// Enforced is what r holds a host to: nothing while TLS is optional (a
// version binds nothing then), and TLS whenever anything is mandatory
// (require_valid_cert and DANE imply it).
func (r TLSRequirement) Enforced() TLSRequirement {
	if !r.Mandatory() {
		return TLSRequirement{}
	}
	r.RequireTLS = true
	return r
}

// TLSStep is how far a host's STARTTLS got in one session.
type TLSStep int

const (
	// TLSNotOffered: the host does not speak ESMTP or did not offer
	// STARTTLS (or an attacker removed it from the EHLO reply).
	TLSNotOffered TLSStep = iota + 1
	// TLSRefused: the host answered STARTTLS with something but 220.
	TLSRefused
	// TLSFailed: the handshake did not complete, or plaintext came
	// after the 220 (an injection).
	TLSFailed
	// TLSEstablished: the handshake completed.
	TLSEstablished
)

// TLSSeen is what a host showed of its TLS in one session.
type TLSSeen struct {
	Step TLSStep
	// Version is the negotiated version (TLSEstablished only).
	Version TLSVersion
	// CertChecked: the Web PKI check of the certificate ran; CertResult is
	// the RFC 8460 type of its failure, "" when the certificate is valid.
	CertChecked bool
	CertResult  string
	// DANEChecked: the certificate was matched against TLSA records;
	// DANEResult is the RFC 8460 type of the failure, "" on a match.
	DANEChecked bool
	DANEResult  string
	// Interrupted: our own deadline, not the server, ended the handshake.
	Interrupted bool
}

// TLSAction is what a session may do next.
type TLSAction int

const (
	// TLSProceed: mail may go on this session (in plaintext when no TLS
	// was established and none is required).
	TLSProceed TLSAction = iota + 1
	// TLSNextMX: the host fails the requirement; try the next MX host.
	// When none is left, the mail is blocked with the verdict's result type.
	TLSNextMX
	// TLSDefer: the host cannot be judged now; try the next MX host, and
	// defer the mail when none takes it.
	TLSDefer
	// TLSRetryPlain: opportunistic TLS failed and left the connection
	// unusable; reconnect and deliver without STARTTLS.
	TLSRetryPlain
)

func (a TLSAction) String() string {
	switch a {
	case TLSProceed:
		return "proceed"
	case TLSNextMX:
		return "next-mx"
	case TLSDefer:
		return "defer"
	case TLSRetryPlain:
		return "retry-plaintext"
	}
	return "TLSAction(?)"
}

// TLSVerdict is DecideTLS's answer. ResultType is the RFC 8460 result
// type of a TLSNextMX.
type TLSVerdict struct {
	Action     TLSAction
	ResultType string
}

// DecideTLS is the decision table of the Enforced TLS policy (the delivery
// spec's, extended by DANE): what may be done with a host that showed seen
// under req.
func DecideTLS(req TLSRequirement, seen TLSSeen) TLSVerdict {
	fail := func(rt string) TLSVerdict { return TLSVerdict{Action: TLSNextMX, ResultType: rt} }
	if !req.Mandatory() {
		if seen.Step == TLSFailed {
			// Any TLS beats plaintext, but plaintext beats no mail.
			return TLSVerdict{Action: TLSRetryPlain}
		}
		return TLSVerdict{Action: TLSProceed}
	}
	switch seen.Step {
	case TLSNotOffered:
		return fail(ResultSTARTTLSNotSupported)
	case TLSRefused:
		return fail(ResultValidationFailure)
	case TLSFailed:
		if seen.Interrupted {
			// A timeout says nothing about the server's TLS: transient.
			return TLSVerdict{Action: TLSDefer}
		}
		// The handshake ended for the certificate when a check that is
		// required failed; otherwise for TLS itself.
		if req.RequireValidCert && seen.CertChecked && seen.CertResult != "" {
			return fail(seen.CertResult)
		}
		if req.DANE && seen.DANEChecked && seen.DANEResult != "" {
			return fail(seen.DANEResult)
		}
		return fail(ResultValidationFailure)
	case TLSEstablished:
		if seen.Version < req.Version {
			return fail(ResultValidationFailure)
		}
		if req.RequireValidCert && (!seen.CertChecked || seen.CertResult != "") {
			return fail(orValidationFailure(seen.CertResult))
		}
		if req.DANE && (!seen.DANEChecked || seen.DANEResult != "") {
			return fail(orValidationFailure(seen.DANEResult))
		}
		return TLSVerdict{Action: TLSProceed}
	}
	// A step nobody knows: fail closed.
	return fail(ResultValidationFailure)
}

func orValidationFailure(rt string) string {
	if rt == "" {
		return ResultValidationFailure
	}
	return rt
}

// SeenInFacts is what recorded facts say a host showed: TLS at a version
// with a certificate judged, or no TLS. certResult is the type of the
// certificate's failure, if it failed.
func SeenInFacts(f TLSFacts, certResult string) TLSSeen {
	if !f.TLS {
		return TLSSeen{Step: TLSNotOffered}
	}
	s := TLSSeen{Step: TLSEstablished, Version: versionOfName(f.Version), CertChecked: true}
	if !f.Verified {
		s.CertResult = orValidationFailure(certResult)
	}
	return s
}

// versionOfName parses TLSFacts.Version; 0 for anything unknown, which no
// floor accepts.
func versionOfName(v string) TLSVersion {
	switch v {
	case "1.0":
		return 0x0301
	case "1.1":
		return TLS11
	case "1.2":
		return TLS12
	case "1.3":
		return TLS13
	}
	return 0
}
