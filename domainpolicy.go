package sealpost

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// MaxDomainTLSPoliciesPerAccount caps an account's per-domain policies, so
// that one tenant cannot grow the table (and every delivery's lookup in
// it) without bound. Replacing an existing policy is always allowed.
const MaxDomainTLSPoliciesPerAccount = 1000

// DomainTLSPolicyLimit is the ELIMIT error of an account that has
// MaxDomainTLSPoliciesPerAccount policies already.
func DomainTLSPolicyLimit() *Error {
	return &Error{Code: ELIMIT, Fields: []FieldError{{Field: "domain", Message: fmt.Sprintf(
		"There is a limit of %d per-domain TLS policies on your account.", MaxDomainTLSPoliciesPerAccount)}}}
}

// CheckDomainTLSPolicyPut decides a put from what a store read in the
// transaction that writes it: whether the account has a policy for the
// domain already, and how many it has. Only a creation counts against
// MaxDomainTLSPoliciesPerAccount.
func CheckDomainTLSPolicyPut(exists bool, policies int) error {
	if !exists && policies >= MaxDomainTLSPoliciesPerAccount {
		return DomainTLSPolicyLimit()
	}
	return nil
}

// Longest name DNS can carry in presentation form, without the final dot
// (RFC 1035 2.3.4: 255 octets on the wire).
const maxDomainLength = 253

// domainProfile maps a name as IDNA2008 lookup does (UTS #46: case folding,
// width mapping) and checks the result is a host name: STD3 letters,
// digits and hyphens, Bidi rules, and DNS lengths.
var domainProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.VerifyDNSLength(true),
	idna.Transitional(false),
)

// NormalizeDomain returns the form in which a recipient domain is stored and
// compared: lower-case ASCII, internationalised labels as IDNA A-labels
// ("xn--..."), without the trailing dot of a fully qualified name. It
// refuses anything that is not a host name with at least two labels and a
// top-level label that is not all digits (an IP address is not a domain).
// The input is untrusted (a URL path segment); the error names the problem.
func NormalizeDomain(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("domain is empty")
	}
	if len(s) > 4*maxDomainLength || !utf8.ValidString(s) {
		// Longer than any name whose A-labels could fit; refused before
		// IDNA spends time on it.
		return "", fmt.Errorf("domain is not a valid domain name")
	}
	// The trailing dot is removed after mapping, which turns the
	// ideographic full stop and its kin into ".".
	ascii, err := domainProfile.ToASCII(s)
	if err != nil {
		return "", fmt.Errorf("domain %q is not a valid domain name", s)
	}
	ascii = strings.TrimSuffix(ascii, ".")
	// ToASCII leaves a label that is already ASCII alone apart from case
	// mapping; lower-case is checked again so that no profile option can
	// make two spellings of one name two policies.
	ascii = strings.ToLower(ascii)
	if len(ascii) > maxDomainLength || strings.HasSuffix(ascii, ".") {
		return "", fmt.Errorf("domain %q is not a valid domain name", s)
	}
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("domain %q must have at least two labels", s)
	}
	for _, l := range labels {
		if !hostLabel(l) {
			return "", fmt.Errorf("domain %q is not a valid domain name", s)
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", fmt.Errorf("domain %q is an address, not a domain name", s)
	}
	// A-labels must decode: "xn--" followed by invalid Punycode would
	// name no domain anyone can own.
	if _, err := domainProfile.ToUnicode(ascii); err != nil {
		return "", fmt.Errorf("domain %q is not a valid domain name", s)
	}
	return ascii, nil
}

// hostLabel reports whether l is a host name label (RFC 1123 2.1): 1 to 63
// letters, digits and hyphens, neither first nor last a hyphen.
func hostLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Strongest returns the setting that meets both a and b, by the rule every
// source of policy combines with (TLSRequirement.Raise).
func Strongest(a, b EnforcedTLS) EnforcedTLS {
	r := RequirementOf(a).Raise(RequirementOf(b))
	return EnforcedTLS{RequireTLS: r.RequireTLS, RequireValidCert: r.RequireValidCert, Version: r.Version}
}

// Raises reports whether s demands more of a recipient's server than base
// does (TLSRequirement.Stricter). A policy that does not raise base has no
// effect on mail under base.
func (s EnforcedTLS) Raises(base EnforcedTLS) bool {
	return RequirementOf(s).Stricter(RequirementOf(base))
}

// Check refuses a policy a store must not keep: a domain not in its normal
// form, or a version SendGrid does not know.
func (p DomainTLSPolicy) Check() error {
	var problems []FieldError
	if d, err := NormalizeDomain(p.Domain); err != nil || d != p.Domain {
		problems = append(problems, FieldError{Field: "domain", Message: fmt.Sprintf("domain %q is not a normalised domain name", p.Domain)})
	}
	if !p.Policy.Version.Valid() {
		problems = append(problems, FieldError{Field: "version", Message: "version must be one of 1.1, 1.2, 1.3"})
	}
	if len(problems) > 0 {
		return Invalid(problems...)
	}
	return nil
}
