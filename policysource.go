package sealpost

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Recipients' own TLS policies. The effective requirement for a delivery is
// the strongest of several sources; each can only raise it, never lower it.

// PolicySource names where a TLS requirement on a delivery came from.
type PolicySource string

const (
	PolicySourceAccount PolicySource = "account" // the account's Enforced TLS setting
	PolicySourceDomain  PolicySource = "domain"  // the account's policy for the recipient domain
	PolicySourceMTASTS  PolicySource = "mta-sts" // the recipient domain's MTA-STS policy (RFC 8461)
	PolicySourceDANE    PolicySource = "dane"    // the MX host's DNSSEC-signed TLSA records (RFC 7672)
)

// DomainTLSPolicy is an account's own Enforced TLS rule for mail to one
// recipient domain. It can only raise the account's setting: a weaker one
// is kept but has no effect.
type DomainTLSPolicy struct {
	// Domain is normalised: lower-case ASCII (IDNA A-labels), no trailing dot.
	Domain    string
	Policy    EnforcedTLS
	CreatedAt time.Time
	UpdatedAt time.Time
}

// DomainTLSPolicyService keeps accounts' per-domain policies.
type DomainTLSPolicyService interface {
	// PutDomainTLSPolicy creates or replaces the policy for p.Domain;
	// created reports that there was none.
	PutDomainTLSPolicy(ctx context.Context, accountID int64, p DomainTLSPolicy) (stored DomainTLSPolicy, created bool, err error)
	// DomainTLSPolicy returns the policy for domain, or an ENOTFOUND error.
	DomainTLSPolicy(ctx context.Context, accountID int64, domain string) (*DomainTLSPolicy, error)
	// DomainTLSPolicies lists the account's policies by domain.
	DomainTLSPolicies(ctx context.Context, accountID int64) ([]DomainTLSPolicy, error)
	// DeleteDomainTLSPolicy removes the policy for domain, or answers ENOTFOUND.
	DeleteDomainTLSPolicy(ctx context.Context, accountID int64, domain string) error
}

// TLSARecord is one DNS TLSA record (RFC 6698) as DANE for SMTP uses it.
type TLSARecord struct {
	Usage        uint8 // 2: DANE-TA, 3: DANE-EE; others are unusable for SMTP (RFC 7672 3.1.3)
	Selector     uint8 // 0: full certificate, 1: SubjectPublicKeyInfo
	MatchingType uint8 // 0: exact, 1: SHA-256, 2: SHA-512
	Data         []byte
}

// TLSA record fields that DANE for SMTP uses.
const (
	TLSAUsageDANETA    = 2
	TLSAUsageDANEEE    = 3
	TLSASelectorCert   = 0
	TLSASelectorSPKI   = 1
	TLSAMatchingFull   = 0
	TLSAMatchingSHA256 = 1
	TLSAMatchingSHA512 = 2
)

// ErrDANENoMatch is what VerifyDANE answers when the server's certificate
// chain satisfies none of the usable TLSA records: the server is not
// authenticated, however valid its certificate is otherwise.
var ErrDANENoMatch = errors.New("no usable TLSA record matches the server's certificate")

// UsableTLSA returns the records DANE for SMTP can use (RFC 7672 3.1.3):
// DANE-TA(2) and DANE-EE(3) with a known selector and matching type, and
// data of the digest's length. PKIX-TA(0) and PKIX-EE(1) records, and
// anything else, are unusable and ignored.
func UsableTLSA(records []TLSARecord) []TLSARecord {
	var usable []TLSARecord
	for _, r := range records {
		if tlsaUsable(r) {
			usable = append(usable, r)
		}
	}
	return usable
}

func tlsaUsable(r TLSARecord) bool {
	if r.Usage != TLSAUsageDANETA && r.Usage != TLSAUsageDANEEE {
		return false
	}
	if r.Selector != TLSASelectorCert && r.Selector != TLSASelectorSPKI {
		return false
	}
	switch r.MatchingType {
	case TLSAMatchingFull:
		return len(r.Data) > 0
	case TLSAMatchingSHA256:
		return len(r.Data) == sha256.Size
	case TLSAMatchingSHA512:
		return len(r.Data) == sha512.Size
	}
	return false
}

// tlsaMatches reports whether cert is the one r designates.
func tlsaMatches(r TLSARecord, cert *x509.Certificate) bool {
	data := cert.Raw
	if r.Selector == TLSASelectorSPKI {
		data = cert.RawSubjectPublicKeyInfo
	}
	switch r.MatchingType {
	case TLSAMatchingSHA256:
		sum := sha256.Sum256(data)
		data = sum[:]
	case TLSAMatchingSHA512:
		sum := sha512.Sum512(data)
		data = sum[:]
	}
	return subtle.ConstantTimeCompare(data, r.Data) == 1
}

// VerifyDANE checks the server's certificate chain (leaf first, as
// presented) against usable TLSA records per RFC 7672: DANE-EE(3) matches
// the leaf with no name or expiry check; DANE-TA(2) matches a certificate
// of the chain as trust anchor, then the leaf must chain to it, be valid at
// now and carry one of names. nil means the server is authenticated.
// Unusable records are ignored; with none usable, nothing authenticates the
// server and the answer wraps ErrDANENoMatch.
func VerifyDANE(chain []*x509.Certificate, records []TLSARecord, names []string, now time.Time) error {
	if len(chain) == 0 || chain[0] == nil {
		return fmt.Errorf("%w: the server presented no certificate", ErrDANENoMatch)
	}
	usable := UsableTLSA(records)
	if len(usable) == 0 {
		return fmt.Errorf("%w: there are no usable TLSA records", ErrDANENoMatch)
	}
	leaf := chain[0]
	var anchorErrs []error
	for _, r := range usable {
		if r.Usage == TLSAUsageDANEEE {
			// RFC 7672 3.1.1: the key is the authentication; names and
			// dates in the certificate are not looked at.
			if tlsaMatches(r, leaf) {
				return nil
			}
			continue
		}
		// RFC 7672 3.1.2: the server must present the trust anchor in its
		// chain, so only presented certificates are candidates.
		for _, anchor := range chain {
			if anchor == nil || !tlsaMatches(r, anchor) {
				continue
			}
			err := verifyToAnchor(chain, anchor, names, now)
			if err == nil {
				return nil
			}
			anchorErrs = append(anchorErrs, err)
		}
	}
	if err := errors.Join(anchorErrs...); err != nil {
		return fmt.Errorf("%w: %w", ErrDANENoMatch, err)
	}
	return ErrDANENoMatch
}

// verifyToAnchor checks that the leaf chains to anchor through the other
// presented certificates, is valid at now and names one of names.
func verifyToAnchor(chain []*x509.Certificate, anchor *x509.Certificate, names []string, now time.Time) error {
	leaf := chain[0]
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		if c != nil && c != anchor {
			intermediates.AddCert(c)
		}
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		// RFC 7672 asks for no particular extended key usage; a server
		// certificate made for another service still authenticates.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("DANE-TA: %w", err)
	}
	for _, name := range names {
		if certHasName(leaf, name) {
			return nil
		}
	}
	return fmt.Errorf("DANE-TA: the certificate is not for any of %s", strings.Join(names, ", "))
}

// certHasName matches name against the certificate's DNS names (a wildcard
// standing for one whole leftmost label), or against its common name when
// it has none (RFC 7672 3.2.3).
func certHasName(cert *x509.Certificate, name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return false
	}
	if len(cert.DNSNames) == 0 {
		return strings.EqualFold(strings.TrimSuffix(cert.Subject.CommonName, "."), name)
	}
	return cert.VerifyHostname(name) == nil
}
